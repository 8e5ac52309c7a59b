//! Encoder speed on the shapes of ../shared/bench: batch 32 × 64 tokens, random weights.
//! Prints medians of 10 runs after 2 warm-ups (seq/s), and where the train step's time goes
//! (forward, loss + backward, optimiser), once with candle_nn's AdamW (the optimiser of the
//! earlier numbers) and once with Retort's own AdamW, which `retort train` uses.
//! Part `int8`: the same inference with the encoder's linear maps in int8, and each linear
//! shape of the teacher alone, f32 vs int8 (`RETORT_NO_VNNI=1`: the portable int8 loop).
//! Run with `cargo run --release --example bench_shapes`; an argument `inference`, `int8` or
//! `train` runs only that part (e.g. under a profiler).

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer};
use retort::model::{EncoderInput, ModelConfig, Outputs, Pass, SequenceClassifier};
use retort::train::optim;
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

/// The process settings of the `retort` binary (crates/retort-cli/src/main.rs): glibc keeps
/// freed tensor buffers for reuse instead of unmapping them, and candle's element-wise ops
/// run inline, all parallel work on rayon (see `kernels::disable_candle_pool`). Without them
/// the numbers also swing with the size of the environment, which shifts malloc's heuristics.
fn configure_process() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
    retort::model::kernels::disable_candle_pool();
}

fn main() {
    configure_process();
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

    if run("int8") {
        for (name, m) in [("student", &student), ("teacher", &teacher)] {
            let mut q = m.clone();
            q.quantize_int8().unwrap();
            let forward = |m: &SequenceClassifier| {
                median(|| {
                    drop(
                        m.forward(&input, Pass::INFERENCE, Outputs::default())
                            .unwrap(),
                    )
                })
            };
            let (f, i) = (forward(m), forward(&q));
            println!(
                "{name} inference: f32 {:.1} seq/s, int8 {:.1} seq/s ({:.2}x)",
                b as f64 / f,
                b as f64 / i,
                f / i
            );
        }
        int8_linears(b * s, &dev);
    }

    if !run("train") {
        return;
    }
    let mut opt = AdamW::new_lr(student.params.vars(), 1e-4).unwrap();
    train_step("candle_nn AdamW", &student, &input, &labels, |g| {
        opt.step(g).unwrap()
    });
    // What `retort train` runs: the gradients go through `Grads` into Retort's own AdamW.
    let mut opt = optim::AdamW::new(&student.params, 0.01).unwrap();
    let vars = opt.vars();
    train_step("Retort's AdamW", &student, &input, &labels, |store| {
        let mut grads = optim::Grads::empty(vars.len());
        grads.accumulate(store, &vars, 1.0).unwrap();
        opt.step(&grads, 1e-4).unwrap()
    });
}

/// Each linear shape of the teacher on `rows` rows: f32 kernel vs int8.
fn int8_linears(rows: usize, dev: &Device) {
    for (in_dim, out_dim) in [(384, 384), (384, 1536), (1536, 384)] {
        let x = Tensor::randn(0f32, 1.0, (rows, in_dim), dev).unwrap();
        let mut linear = retort::model::layers::Linear {
            weight: Tensor::randn(0f32, 0.05, (out_dim, in_dim), dev).unwrap(),
            bias: Tensor::zeros(out_dim, DType::F32, dev).unwrap(),
            int8: None,
        };
        let f = median(|| drop(linear.forward(&x).unwrap()));
        linear.quantize_int8().unwrap();
        let i = median(|| drop(linear.forward(&x).unwrap()));
        println!(
            "linear [{rows}, {in_dim}] -> {out_dim}: f32 {:.2} ms, int8 {:.2} ms ({:.2}x)",
            f * 1e3,
            i * 1e3,
            f / i
        );
    }
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
