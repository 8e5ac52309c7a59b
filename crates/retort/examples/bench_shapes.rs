//! Encoder speed on the shapes of ../shared/bench: batch 32 × 64 tokens, random weights.
//! Prints medians of 10 runs after 2 warm-ups (seq/s), and where the train step's time goes
//! (forward, loss + backward, optimiser), with candle_nn's AdamW and with the same update
//! through the fused in-place kernel. Run with `cargo run --release --example bench_shapes`;
//! an argument `inference` or `train` runs only that part (e.g. under a profiler).

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use retort::model::kernels::{adamw_update, AdamWStep};
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

fn median_of(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median wall time of `f` over 10 runs after 2 warm-ups.
fn median(mut f: impl FnMut()) -> f64 {
    let mut times = Vec::new();
    for i in 0..12 {
        let t = Instant::now();
        f();
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    median_of(times)
}

fn main() {
    // Candle's element-wise ops inline, all parallel work on rayon (see the function's doc);
    // run with CANDLE_NUM_THREADS=2 to see candle's default.
    retort::model::kernels::disable_candle_pool();
    let only = std::env::args().nth(1);
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
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
        if !run("inference") {
            break;
        }
        let t = median(|| {
            m.forward(&input, Pass::INFERENCE, Outputs::default())
                .unwrap();
        });
        println!("{name} inference: {:.1} seq/s", b as f64 / t);
    }

    if !run("train") {
        return;
    }
    let vars = student.params.vars();
    let mut opt = AdamW::new_lr(vars.clone(), 1e-4).unwrap();
    train_step("candle_nn AdamW", &student, &input, &labels, |g| {
        opt.step(g).unwrap()
    });
    let mut fused = FusedAdamW::new(vars);
    train_step("fused AdamW kernel", &student, &input, &labels, |g| {
        fused.step(g)
    });
}

/// Times the student train step as a whole and per phase.
fn train_step(
    optimiser: &str,
    student: &SequenceClassifier,
    input: &EncoderInput,
    labels: &Tensor,
    mut step: impl FnMut(&GradStore),
) {
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    let t = median(|| {
        let t0 = Instant::now();
        let logits = student
            .forward(input, Pass::TRAIN, Outputs::default())
            .unwrap()
            .logits;
        let t1 = Instant::now();
        let loss = candle_nn::loss::cross_entropy(&logits, labels).unwrap();
        let grads = loss.backward().unwrap();
        let t2 = Instant::now();
        step(&grads);
        let t3 = Instant::now();
        for (v, d) in phases.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
            v.push(d.as_secs_f64() * 1e3);
        }
    });
    let batch = input.input_ids.dim(0).unwrap();
    println!(
        "student train step ({optimiser}): {:.1} seq/s",
        batch as f64 / t
    );
    let [fwd, bwd, opt] = phases.map(|v| median_of(v[2..].to_vec()));
    println!("  forward {fwd:.1} ms, loss + backward {bwd:.1} ms, optimiser {opt:.1} ms");
}

/// candle_nn's AdamW update (same defaults) through the in-place `kernels::adamw_update`.
struct FusedAdamW {
    vars: Vec<Var>,
    moments: Vec<(Tensor, Tensor)>,
    steps: usize,
}

impl FusedAdamW {
    fn new(vars: Vec<Var>) -> Self {
        let moments = vars
            .iter()
            .map(|v| (v.zeros_like().unwrap(), v.zeros_like().unwrap()))
            .collect();
        Self {
            vars,
            moments,
            steps: 0,
        }
    }

    fn step(&mut self, grads: &GradStore) {
        self.steps += 1;
        let d = ParamsAdamW::default();
        let hp = AdamWStep {
            lr: 1e-4,
            beta1: d.beta1,
            beta2: d.beta2,
            eps: d.eps,
            weight_decay: d.weight_decay,
            step: self.steps,
        };
        for (var, (m, v)) in self.vars.iter().zip(&self.moments) {
            if let Some(g) = grads.get(var.as_tensor()) {
                adamw_update(var, m, v, g, &hp).unwrap();
            }
        }
    }
}
