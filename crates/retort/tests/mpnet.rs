//! The real all-mpnet-base-v2 (110M parameters), run on demand: it needs
//! `scripts/fetch-models.sh --mpnet` and the reference that `scripts/parity_real.py --model
//! models/all-mpnet-base-v2 --json '' --out target/parity/mpnet-dev64.safetensors` writes
//! (transformers' `MPNetModel` on the first 64 SST-2 dev sentences):
//! `cargo test --release --test mpnet -- --ignored --nocapture`.
//! The committed tiny MPNet (`tests/parity.rs`) runs in every test run.

mod common;

use std::path::PathBuf;

use candle_core::{DType, Device};
use retort::model::{Outputs, Pass};
use retort::text::batch::pad_batch;
use retort::Classifier;

/// Every position of the last layer (a sequence head alone would need the first only).
const WHOLE: Outputs = Outputs {
    hidden_states: false,
    attentions: false,
    last_hidden_state: true,
};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
#[ignore = "needs models/all-mpnet-base-v2 (fetch-models.sh --mpnet) and scripts/parity_real.py's reference"]
fn mpnet_matches_transformers_on_64_dev_sentences() {
    let path = repo("target/parity/mpnet-dev64.safetensors");
    let exp = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/parity_real.py first", path.display()));
    let c = Classifier::load(&repo("models/all-mpnet-base-v2"), 128).unwrap();
    assert!(c.report.fresh_head, "a base model: the head is fresh");
    // transformers' MPNetModel has 109,486,464 parameters, 590,592 of them its pooler, which
    // a classifier does not use (MPNet's head reads the first token through its own dense).
    assert_eq!(
        c.model
            .params()
            .count_where(|n| !n.starts_with("classifier.")),
        108_895_872
    );

    // Retort's tokenizer gives transformers' ids (tokenizer.json asks for padding to 128:
    // Retort pads to the longest of a batch, with the config's pad id).
    let ids = exp["input_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec2::<u32>()
        .unwrap();
    let sentences = common::sst2_dev_sentences(ids.len());
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let encoded = c.tokenizer.encode_batch(&refs).unwrap();
    let items: Vec<_> = encoded.iter().collect();
    let input = pad_batch(&items, c.model.config().pad_token_id).unwrap();
    assert_eq!(input.input_ids.to_vec2::<u32>().unwrap(), ids);

    let h = c
        .model
        .forward(&input, Pass::INFERENCE, WHOLE)
        .unwrap()
        .last_hidden_state;
    let max = common::max_diff_at_real_tokens(&h, &exp["last_hidden_state"], &input.attention_mask);
    let (n, l, hdim) = exp["last_hidden_state"].dims3().unwrap();
    println!("all-mpnet-base-v2, {n} SST-2 dev sentences padded to {l} tokens, hidden {hdim}: max abs diff {max:.3e}");
    assert!(max <= 1e-4, "max abs diff {max}");
}
