//! The real all-MiniLM-L6-v2 checkpoint (fetched by `scripts/fetch-models.sh`).
//!
//! Checks the parameter count and transformers' last hidden state (committed in
//! `tests/fixtures/minilm-expected.json` by `scripts/parity_real.py`) for three SST-2
//! sentences. The 64-sentence comparison needs the reference file that script writes
//! and is run on demand: `cargo test --release --test minilm -- --ignored --nocapture`.

mod common;

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use retort::model::{Outputs, Pass};
use retort::text::batch::pad_batch;
use retort::Classifier;

/// Every position of the last layer (a sequence head alone would need the first only).
const WHOLE: Outputs = Outputs {
    hidden_states: false,
    attentions: false,
    last_hidden_state: true,
};

fn model_dir() -> PathBuf {
    common::minilm_dir()
}

#[derive(serde::Deserialize)]
struct Expected {
    sentences: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    last_hidden_state_cls: Vec<Vec<f32>>,
    last_hidden_state_mean: Vec<Vec<f32>>,
}

#[test]
fn minilm_has_22_7m_parameters_and_a_fresh_head() {
    let c = Classifier::load(&model_dir(), 128).unwrap();
    assert!(
        c.report.fresh_head,
        "all-MiniLM-L6-v2 is a base model without a head"
    );
    let base = c
        .model
        .params()
        .count_where(|n| !n.starts_with("classifier."));
    assert_eq!(base, 22_713_216); // what transformers reports for BertModel
    assert_eq!(c.report.unused, vec!["embeddings.position_ids"]);
}

#[test]
fn minilm_matches_transformers_on_sst2_sentences() {
    let path = common::fixture("minilm-expected.json");
    let exp: Expected = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let c = Classifier::load(&model_dir(), 128).unwrap();
    for (i, text) in exp.sentences.iter().enumerate() {
        let e = c.tokenizer.encode(text).unwrap();
        assert_eq!(e.ids, exp.input_ids[i], "token ids of sentence {i}");
        let input = pad_batch(&[&e], 0).unwrap();
        let h = c
            .model
            .forward(&input, Pass::INFERENCE, WHOLE)
            .unwrap()
            .last_hidden_state;
        let cls = h.narrow(1, 0, 1).unwrap().flatten_all().unwrap();
        let mean = h.mean(1).unwrap().flatten_all().unwrap();
        let want_cls = Tensor::new(exp.last_hidden_state_cls[i].as_slice(), &Device::Cpu).unwrap();
        let want_mean =
            Tensor::new(exp.last_hidden_state_mean[i].as_slice(), &Device::Cpu).unwrap();
        // The JSON keeps 6 decimals: 1e-4 leaves ample room for that rounding.
        assert!(
            common::max_abs_diff(&cls, &want_cls) <= 1e-4,
            "sentence {i}: [CLS] state"
        );
        assert!(
            common::max_abs_diff(&mean, &want_mean) <= 1e-4,
            "sentence {i}: mean state"
        );
    }
}

/// Max |Retort - transformers| over the real tokens of the first 64 SST-2 dev sentences.
#[test]
#[ignore = "needs target/parity/minilm-dev64.safetensors from scripts/parity_real.py"]
fn minilm_matches_transformers_on_64_dev_sentences() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/parity/minilm-dev64.safetensors");
    let exp = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/parity_real.py first", path.display()));
    let plain = Classifier::load(&model_dir(), 128).unwrap();
    let mut packed = plain.clone();
    packed.pack_for_inference().unwrap();
    let input = retort::model::EncoderInput {
        input_ids: exp["input_ids"].to_dtype(DType::U32).unwrap(),
        token_type_ids: exp["token_type_ids"].to_dtype(DType::U32).unwrap(),
        attention_mask: exp["attention_mask"].to_dtype(DType::F32).unwrap(),

        word_noise: None,

        target_ids: None,
    };
    // The weights as loaded, and packed for inference (what `retort eval` runs) in batches
    // of 8, few enough tokens per thread for the packed product.
    for (how, c) in [("plain", &plain), ("packed", &packed)] {
        let n = input.input_ids.dim(0).unwrap();
        let parts: Vec<_> = (0..n)
            .step_by(8)
            .map(|i| {
                let take = |t: &candle_core::Tensor| t.narrow(0, i, 8.min(n - i)).unwrap();
                let part = retort::model::EncoderInput {
                    input_ids: take(&input.input_ids),
                    token_type_ids: take(&input.token_type_ids),
                    attention_mask: take(&input.attention_mask),
                    word_noise: None,
                    target_ids: None,
                };
                c.model
                    .forward(&part, Pass::INFERENCE, WHOLE)
                    .unwrap()
                    .last_hidden_state
            })
            .collect();
        let h = candle_core::Tensor::cat(&parts, 0).unwrap();
        let max =
            common::max_diff_at_real_tokens(&h, &exp["last_hidden_state"], &input.attention_mask);
        let (n, l, hdim) = exp["last_hidden_state"].dims3().unwrap();
        println!("all-MiniLM-L6-v2 ({how} weights), {n} SST-2 dev sentences padded to {l} tokens, hidden {hdim}: max abs diff {max:.3e}");
        assert!(max <= 1e-4, "{how}: max abs diff {max}");
    }
}
