//! Encoder speed on the shapes of ../shared/bench: batch 32 × 64 tokens, random weights.
//! Prints medians of 10 runs after 2 warm-ups (seq/s). Run with
//! `cargo run --release --example bench_shapes`.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer};
use retort::model::{EncoderInput, ModelConfig, Outputs, Pass, SequenceClassifier};
use serde_json::json;

fn config(layers: usize, hidden: usize, heads: usize, ffn: usize) -> ModelConfig {
    ModelConfig::from_json(&json!({
        "model_type": "bert", "vocab_size": 30522, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ffn,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0
    }))
    .unwrap()
}

fn median(mut f: impl FnMut()) -> f64 {
    let mut times = Vec::new();
    for i in 0..12 {
        let t = Instant::now();
        f();
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    times[5]
}

fn main() {
    let dev = Device::Cpu;
    let (b, s) = (32usize, 64usize);
    let ids: Vec<u32> = (0..b * s)
        .map(|i| ((i * 7919) % 30000 + 100) as u32)
        .collect();
    let input = EncoderInput {
        input_ids: Tensor::from_vec(ids, (b, s), &dev).unwrap(),
        token_type_ids: Tensor::zeros((b, s), DType::U32, &dev).unwrap(),
        attention_mask: Tensor::ones((b, s), DType::F32, &dev).unwrap(),
    };
    let labels =
        Tensor::from_vec((0..b as u32).map(|i| i % 2).collect::<Vec<_>>(), b, &dev).unwrap();
    let student = SequenceClassifier::fresh(config(4, 256, 4, 1024), &dev, 0).unwrap();
    let teacher = SequenceClassifier::fresh(config(6, 384, 6, 1536), &dev, 1).unwrap();
    for (name, m) in [("student", &student), ("teacher", &teacher)] {
        let t = median(|| {
            m.forward(&input, Pass::INFERENCE, Outputs::default())
                .unwrap();
        });
        println!("{name} inference: {:.1} seq/s", b as f64 / t);
    }
    let mut opt = AdamW::new_lr(student.params.vars(), 1e-4).unwrap();
    let t = median(|| {
        let logits = student
            .forward(&input, Pass::TRAIN, Outputs::default())
            .unwrap()
            .logits;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
        opt.backward_step(&loss).unwrap();
    });
    println!("student train step: {:.1} seq/s", b as f64 / t);
}
