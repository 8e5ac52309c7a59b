//! Parity with Hugging Face transformers on tiny random checkpoints.
//!
//! `scripts/make_fixtures.py` saved a BERT (with tokenizer.json) and a DistilBERT (vocab.txt
//! only) with classification heads, `scripts/make_mpnet_fixture.py` an MPNet (relative
//! position bias, positions counted from the padding id, a 94-token sentence reaching the
//! wide buckets), and transformers' logits, hidden states and attention probabilities for a
//! few sentences, alone and padded together. Retort must reproduce
//! every one of them within 1e-4, through both the inference and the differentiable path.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{expected, fixture, max_abs_diff, sentences};
use retort::model::{EncoderInput, Outputs, Pass};
use retort::text::batch::pad_batch;
use retort::Classifier;

/// Every position of the last layer (a sequence head alone would need the first only).
const WHOLE: Outputs = Outputs {
    hidden_states: false,
    attentions: false,
    last_hidden_state: true,
};

const TOL: f32 = 1e-4;
const ALL: Outputs = Outputs {
    hidden_states: true,
    attentions: true,
    last_hidden_state: true,
};

fn ids_of(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::U32).unwrap().to_vec2().unwrap()
}

/// Tokenises like transformers, then checks logits, every hidden state and attention map
/// (with `packed`, on the weights packed for inference).
fn check_fixture(name: &str, pass: Pass, packed: bool) {
    let exp = expected(name);
    let mut c = Classifier::load(&fixture(name), 128).unwrap();
    if packed {
        c.pack_for_inference().unwrap();
    }
    let layers = c.model.config().num_layers;
    let pad = c.model.config().pad_token_id;
    let texts = sentences(name);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let encoded = c.tokenizer.encode_batch(&refs).unwrap();

    // Each sentence alone, no padding.
    for (i, enc) in encoded.iter().enumerate() {
        let want_ids = ids_of(&exp[&format!("single.{i}.input_ids")]);
        assert_eq!(
            vec![enc.ids.clone()],
            want_ids,
            "{name}: token ids of sentence {i}"
        );
        let input = pad_batch(&[enc], pad).unwrap();
        let out = c.model.forward(&input, pass, ALL).unwrap();
        let d = max_abs_diff(&out.logits, &exp[&format!("single.{i}.logits")]);
        assert!(d <= TOL, "{name}: sentence {i} logits differ by {d}");
        for k in 0..=layers {
            let d = max_abs_diff(
                &out.hidden_states[k],
                &exp[&format!("single.{i}.hidden.{k}")],
            );
            assert!(
                d <= TOL,
                "{name}: sentence {i} hidden state {k} differs by {d}"
            );
        }
    }

    // All sentences padded together: real tokens must be unaffected by padding.
    let items: Vec<_> = encoded.iter().collect();
    let input = pad_batch(&items, pad).unwrap();
    assert_eq!(ids_of(&input.input_ids), ids_of(&exp["padded.input_ids"]));
    let mask = exp["padded.attention_mask"].to_dtype(DType::F32).unwrap();
    assert_eq!(max_abs_diff(&input.attention_mask, &mask), 0.0);
    let out = c.model.forward(&input, pass, ALL).unwrap();
    let d = max_abs_diff(&out.logits, &exp["padded.logits"]);
    assert!(d <= TOL, "{name}: padded logits differ by {d}");
    let real = mask.unsqueeze(2).unwrap(); // [n, L, 1]
    for k in 0..=layers {
        let want = &exp[&format!("padded.hidden.{k}")];
        let d = max_abs_diff(
            &out.hidden_states[k].broadcast_mul(&real).unwrap(),
            &want.broadcast_mul(&real).unwrap(),
        );
        assert!(
            d <= TOL,
            "{name}: padded hidden state {k} differs by {d} at real tokens"
        );
    }
    let real_queries = mask.unsqueeze(1).unwrap().unsqueeze(3).unwrap(); // [n, 1, L, 1]
    for k in 0..layers {
        let want = &exp[&format!("padded.attention.{k}")];
        let d = max_abs_diff(
            &out.attentions[k].broadcast_mul(&real_queries).unwrap(),
            &want.broadcast_mul(&real_queries).unwrap(),
        );
        assert!(d <= TOL, "{name}: attention map {k} differs by {d}");
    }
}

#[test]
fn bert_matches_transformers() {
    check_fixture("tiny-bert", Pass::INFERENCE, false);
}

#[test]
fn distilbert_matches_transformers() {
    check_fixture("tiny-distilbert", Pass::INFERENCE, false);
}

#[test]
fn mpnet_matches_transformers() {
    check_fixture("tiny-mpnet", Pass::INFERENCE, false);
}

#[test]
fn packed_weights_match_transformers_too() {
    check_fixture("tiny-bert", Pass::INFERENCE, true);
    check_fixture("tiny-distilbert", Pass::INFERENCE, true);
    check_fixture("tiny-mpnet", Pass::INFERENCE, true);
}

#[test]
fn differentiable_path_matches_transformers_too() {
    check_fixture("tiny-bert", Pass::GRAD_NO_DROPOUT, false);
    check_fixture("tiny-distilbert", Pass::GRAD_NO_DROPOUT, false);
    check_fixture("tiny-mpnet", Pass::GRAD_NO_DROPOUT, false);
}

#[test]
fn padding_never_changes_real_tokens() {
    let c = Classifier::load(&fixture("tiny-bert"), 64).unwrap();
    let e = c
        .tokenizer
        .encode("The music was surprisingly good!")
        .unwrap();
    let alone = pad_batch(&[&e], 0).unwrap();
    let n = e.ids.len();
    // The same sentence padded by 7 positions filled with arbitrary (non-pad) token ids.
    let ids: Vec<u32> = e
        .ids
        .iter()
        .copied()
        .chain([9, 17, 33, 5, 5, 40, 2])
        .collect();
    let mut mask = vec![1f32; n];
    mask.extend([0f32; 7]);
    let padded = EncoderInput {
        input_ids: Tensor::from_vec(ids, (1, n + 7), &Device::Cpu).unwrap(),
        token_type_ids: Tensor::zeros((1, n + 7), DType::U32, &Device::Cpu).unwrap(),
        attention_mask: Tensor::from_vec(mask, (1, n + 7), &Device::Cpu).unwrap(),

        word_noise: None,

        target_ids: None,
    };
    let a = c.model.forward(&alone, Pass::INFERENCE, WHOLE).unwrap();
    let b = c.model.forward(&padded, Pass::INFERENCE, WHOLE).unwrap();
    let real = b.last_hidden_state.narrow(1, 0, n).unwrap();
    assert!(max_abs_diff(&a.last_hidden_state, &real) < 1e-5);
    assert!(max_abs_diff(&a.logits, &b.logits) < 1e-5);
}

#[test]
fn dropout_only_in_training_mode() {
    let c = Classifier::load(&fixture("tiny-bert"), 64).unwrap();
    let e = c.tokenizer.encode("I didn't like the ending.").unwrap();
    let input = pad_batch(&[&e], 0).unwrap();
    let run = |pass| {
        c.model
            .forward(&input, pass, Outputs::default())
            .unwrap()
            .logits
    };
    assert_eq!(
        max_abs_diff(&run(Pass::INFERENCE), &run(Pass::INFERENCE)),
        0.0
    );
    assert!(max_abs_diff(&run(Pass::TRAIN), &run(Pass::INFERENCE)) > 1e-4);
}
