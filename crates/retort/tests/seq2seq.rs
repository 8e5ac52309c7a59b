//! The encoder–decoder translator (`model/seq2seq.rs`) and its decoding (`model/generate.rs`):
//! the causal mask, cross-attention over sources of other lengths, padding on both sides,
//! every tensor trained, autograd against finite differences, the key/value cache against
//! whole-prefix passes, and a saved model reloading with the same logits.

mod common;

use candle_core::{Device, Tensor};
use retort::model::generate::{beam_search, greedy, DecodeOptions, StepModel};
use retort::model::seq2seq::{log_probs, pad_ids, Seq2Seq, Seq2SeqConfig};
use retort::model::Pass;

fn tiny(dropout: f32) -> Seq2Seq {
    let config = Seq2SeqConfig {
        vocab_size: 23,
        d_model: 16,
        encoder_layers: 2,
        decoder_layers: 2,
        heads: 4,
        ffn_dim: 32,
        max_positions: 64,
        dropout,
        pad_token_id: 0,
        decoder_start_token_id: 1,
        eos_token_id: 2,
    };
    let model = Seq2Seq::fresh(config, 7).unwrap();
    // A fresh output bias is zero; a random one tests that it is applied.
    model.params.iter().for_each(|(name, var)| {
        if name == "final_logits_bias" {
            var.set(&common::seeded_normal(var.dims(), 11)).unwrap();
        }
    });
    model
}

fn sources() -> Vec<Vec<u32>> {
    vec![vec![5, 9, 4, 12, 2], vec![7, 3, 2]]
}

fn logits(model: &Seq2Seq, src: &[Vec<u32>], tgt: &[Vec<u32>]) -> Tensor {
    let (s, s_mask) = pad_ids(src, 0).unwrap();
    let (t, _) = pad_ids(tgt, 0).unwrap();
    model.forward(&s, &s_mask, &t, Pass::INFERENCE).unwrap()
}

/// Label-smoothing-free cross-entropy of the next tokens, the loss the gradient tests take.
fn loss(model: &Seq2Seq, pass: Pass) -> Tensor {
    let (s, s_mask) = pad_ids(&sources(), 0).unwrap();
    let (t, _) = pad_ids(&[vec![1, 6, 8, 11], vec![1, 10, 13, 2]], 0).unwrap();
    let gold = Tensor::new(&[6u32, 8, 11, 2, 10, 13, 2, 0], &Device::Cpu).unwrap();
    let out = model.forward(&s, &s_mask, &t, pass).unwrap();
    let flat = out.reshape((8, 23)).unwrap();
    candle_nn::loss::cross_entropy(&flat, &gold).unwrap()
}

#[test]
fn a_position_sees_only_the_target_tokens_before_it() {
    let model = tiny(0.0);
    let a = logits(&model, &sources()[..1], &[vec![1, 6, 8, 11]]);
    let b = logits(&model, &sources()[..1], &[vec![1, 6, 17, 3]]);
    // Positions 0 and 1 read tokens 1 and 6 only: equal; position 2 reads the changed token.
    let first_two = |t: &Tensor| t.narrow(1, 0, 2).unwrap();
    assert!(common::max_abs_diff(&first_two(&a), &first_two(&b)) < 1e-6);
    assert!(common::max_abs_diff(&a.narrow(1, 2, 1).unwrap(), &b.narrow(1, 2, 1).unwrap()) > 1e-4);
}

#[test]
fn padding_on_either_side_changes_no_real_position() {
    let model = tiny(0.0);
    // Sources of 5 and 3 tokens and targets of 4 and 2, batched (padded) and alone.
    let tgt = vec![vec![1, 6, 8, 11], vec![1, 10]];
    let batched = logits(&model, &sources(), &tgt);
    for i in 0..2 {
        let alone = logits(&model, &sources()[i..i + 1], &tgt[i..i + 1]);
        let len = tgt[i].len();
        let row = batched.narrow(0, i, 1).unwrap().narrow(1, 0, len).unwrap();
        assert!(common::max_abs_diff(&row, &alone) < 1e-5, "row {i}");
    }
    // Cross-attention reads the source: another source changes the output.
    let other = logits(&model, &[vec![14, 15, 2]], &tgt[1..]);
    let alone = logits(&model, &sources()[1..], &tgt[1..]);
    assert!(common::max_abs_diff(&other, &alone) > 1e-4);
}

#[test]
fn every_tensor_gets_a_gradient_and_changes_after_one_step() {
    let model = tiny(0.1);
    common::assert_every_tensor_trains("seq2seq", &model.params, || loss(&model, Pass::TRAIN));
}

#[test]
fn autograd_agrees_with_finite_differences() {
    let model = tiny(0.0);
    let grads = loss(&model, Pass::GRAD_NO_DROPOUT).backward().unwrap();
    let value = || {
        loss(&model, Pass::GRAD_NO_DROPOUT)
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    for name in [
        "model.shared.weight",
        "model.encoder.layers.0.self_attn.q_proj.weight",
        "model.decoder.layers.1.encoder_attn.k_proj.weight",
        "model.decoder.layers.0.self_attn.v_proj.bias",
        "model.decoder.layers.1.final_layer_norm.weight",
        "final_logits_bias",
    ] {
        let var = model.params.get(name).unwrap();
        let grad = common::grad_values(&grads, var);
        for index in [0, 5, grad.len() - 1] {
            let numeric = common::finite_difference(var, index, 1e-2, value);
            let analytic = grad[index] as f64;
            assert!(
                (numeric - analytic).abs() < 2e-3 + 2e-2 * analytic.abs(),
                "{name}[{index}]: numeric {numeric} vs autograd {analytic}"
            );
        }
    }
}

/// The same model decoding without its cache: each step runs the decoder over the whole
/// prefix and reads its last position.
struct Uncached<'a>(&'a Seq2Seq);

impl StepModel for Uncached<'_> {
    type State = (Vec<Vec<u32>>, Vec<Vec<u32>>);

    fn start(&self, sources: &[Vec<u32>]) -> retort::Result<Self::State> {
        Ok((sources.to_vec(), vec![Vec::new(); sources.len()]))
    }

    fn step(&self, state: &mut Self::State, tokens: &[u32]) -> retort::Result<Vec<Vec<f32>>> {
        for (prefix, &t) in state.1.iter_mut().zip(tokens) {
            prefix.push(t);
        }
        let out = logits(self.0, &state.0, &state.1);
        let last = out.narrow(1, state.1[0].len() - 1, 1)?.squeeze(1)?;
        log_probs(&last)
    }

    fn select(&self, state: &mut Self::State, rows: &[u32]) -> retort::Result<()> {
        state.0 = rows.iter().map(|&r| state.0[r as usize].clone()).collect();
        state.1 = rows.iter().map(|&r| state.1[r as usize].clone()).collect();
        Ok(())
    }

    fn start_token(&self) -> u32 {
        1
    }

    fn end_token(&self) -> u32 {
        2
    }
}

#[test]
fn cached_and_uncached_decoding_give_the_same_tokens() {
    let model = tiny(0.0);
    let opts = DecodeOptions {
        beam: 3,
        length_penalty: 1.0,
        max_len_a: 1.0,
        max_len_b: 4,
    };
    let cached = greedy(&model, &sources(), &opts).unwrap();
    assert_eq!(
        cached,
        greedy(&Uncached(&model), &sources(), &opts).unwrap()
    );
    assert!(cached.iter().all(|s| !s.is_empty()));
    let beams = beam_search(&model, &sources(), &opts).unwrap();
    assert_eq!(
        beams,
        beam_search(&Uncached(&model), &sources(), &opts).unwrap()
    );

    // Step by step, the cache's logits are the whole pass's.
    let (s, mask) = pad_ids(&sources(), 0).unwrap();
    let mut state = model.start(&s, &mask).unwrap();
    let prefix = [vec![1u32, 6, 8, 11], vec![1, 10, 13, 2]];
    let whole = logits(&model, &sources(), &prefix);
    for (t, (&a, &b)) in prefix[0].iter().zip(&prefix[1]).enumerate() {
        let tokens = Tensor::new(&[a, b], &Device::Cpu).unwrap();
        let step = model.step(&mut state, &tokens).unwrap();
        let want = whole.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        assert!(common::max_abs_diff(&step, &want) < 1e-5, "step {t}");
    }
}

#[test]
fn a_saved_model_reloads_with_the_same_logits_and_bad_configs_are_refused() {
    let model = tiny(0.0);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["architectures"][0], "MarianMTModel");
    let again = Seq2Seq::load(dir.path()).unwrap();
    let tgt = [vec![1, 6, 8, 11], vec![1, 10, 13, 2]];
    let d = common::max_abs_diff(
        &logits(&model, &sources(), &tgt),
        &logits(&again, &sources(), &tgt),
    );
    assert_eq!(d, 0.0);
    assert_eq!(logits(&again, &sources(), &tgt).dims(), [2, 4, 23]);

    let mut bad = model.config.clone();
    bad.heads = 3;
    let err = Seq2Seq::fresh(bad, 0).unwrap_err().to_string();
    assert!(err.contains("divisible by heads 3"), "{err}");
    let mut bad = model.config.clone();
    bad.eos_token_id = 99;
    assert!(Seq2Seq::fresh(bad, 0).is_err());
    // A sequence longer than the position table is an error, not a panic.
    let long = vec![vec![5u32; 70]];
    let (s, mask) = pad_ids(&long, 0).unwrap();
    let err = model
        .encode(&s, &mask, Pass::INFERENCE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("longer than the model's 64 positions"),
        "{err}"
    );
}
