//! Encoder speed on fixed shapes: batch 32 × 64 tokens (synthetic ids, no padding).
//!
//! ```text
//! cargo run --release --example bench_shapes -- [--json] [--reps N] [--warmup N] [--threads N]
//!     [--teacher DIR --student DIR] [PART...]
//! ```
//! Parts (default `inference train`):
//! - `inference`: student 4×256 and teacher 6×384 (the shapes of `../shared/bench`, random
//!   weights), sequences/s;
//! - `train`: the student's train step (forward, CE, backward, AdamW) and where its time goes,
//!   with candle_nn's AdamW (the optimiser of the first numbers) and Retort's own;
//! - `distill`: one distillation step as `retort distill` runs it with an online teacher:
//!   teacher forward without gradients, student forward + `hard_ce` + `soft_kl` (T = 2) +
//!   backward + Retort's AdamW. The models come from `--teacher`/`--student` checkpoint
//!   directories, or are the shapes above;
//! - `ops`: where the inference forward pass's time goes, per operation of one layer
//!   (the kernels the encoder calls, on random tensors of the layer's shapes), for both
//!   models; the rest (embeddings, head, glue) is the forward pass minus the layers;
//! - `peak`: the machine's measured f32 matrix-multiply peak (the gemm crate Retort uses,
//!   1024³, best of the repetitions) and the fraction of it the teacher's forward pass
//!   reaches (its matmul FLOPs / its time);
//! - `int8`: inference with the encoder's linear maps in int8 (as an `--quantize int8` export
//!   runs), and each linear shape of the teacher alone, f32 vs int8 (`RETORT_NO_VNNI=1`: the
//!   f32 fallback of CPUs without AVX-512 VNNI);
//! - `sweep`: the Retort side of `scripts/bench_fair.py` (issue 16's shapes): inference of
//!   both models at every `--lengths` × `--batches` (batch 1 is latency), the distillation
//!   step at every length and each batch above 1, and, with `--dev FILE` (a TSV whose first
//!   column is the text), inference over that file's texts in length-sorted batches of 32
//!   padded per batch. One JSON line per row (`kind`, `model`, `batch_size`, `seq_len`,
//!   `median_s`, `p5_s`, `p95_s`), whatever `--json` says. Inference runs on weights packed
//!   for inference, as `retort eval` and a frozen teacher do (`--unpacked`: without);
//! - `linear`: each linear shape of the 6 × 384 models at `--lengths` rows, the linear op on
//!   the plain weight against the same op on the packed weight, interleaved.
//!
//! With `--json` every measurement is one JSON line (what `scripts/bench_vs_pytorch.sh`
//! reads). Times are medians after warm-up, spread as p5/p95.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer};
use retort::bench::{self, Repetitions, Stats};
use retort::model::{EncoderInput, ModelConfig, Outputs, Pass, Transformer};
use retort::objective::loss;
use retort::objective::{Objective, Teacher, TrainBatch};
use retort::train::config::LossWeights;
use retort::train::{optim, step};
use serde_json::json;

const BATCH: usize = 32;
const SEQ: usize = 64;
const PEAK_N: usize = 1024;

fn config(layers: usize, hidden: usize, heads: usize, ffn: usize) -> ModelConfig {
    ModelConfig::from_json(&json!({
        "model_type": "bert", "vocab_size": 30522, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ffn,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0
    }))
    .unwrap()
}

/// Command-line options (hand-parsed: an example has no clap).
struct Options {
    json: bool,
    reps: Repetitions,
    teacher: Option<PathBuf>,
    student: Option<PathBuf>,
    parts: Vec<String>,
    /// The sweep's sequence lengths and batch sizes, and its real-text file.
    lengths: Vec<usize>,
    batches: Vec<usize>,
    dev: Option<PathBuf>,
    /// The sweep without weights packed for inference (what it measured before they were).
    unpacked: bool,
}

fn list(text: &str) -> Vec<usize> {
    text.split(',')
        .map(|v| v.trim().parse().expect("a comma-separated list of numbers"))
        .collect()
}

fn options() -> Options {
    let mut o = Options {
        json: false,
        reps: Repetitions {
            warmup: 2,
            reps: 10,
        },
        teacher: None,
        student: None,
        parts: Vec::new(),
        lengths: vec![8, 13, 16, 31, 64, 128],
        batches: vec![1, 8, 32],
        dev: None,
        unpacked: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--json" => o.json = true,
            "--reps" => o.reps.reps = value().parse().expect("--reps N"),
            "--warmup" => o.reps.warmup = value().parse().expect("--warmup N"),
            "--threads" => bench::set_threads(value().parse().expect("--threads N")),
            "--teacher" => o.teacher = Some(value().into()),
            "--student" => o.student = Some(value().into()),
            "--lengths" => o.lengths = list(&value()),
            "--batches" => o.batches = list(&value()),
            "--dev" => o.dev = Some(value().into()),
            "--unpacked" => o.unpacked = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            part if PARTS.contains(&part) => o.parts.push(a),
            other => {
                eprintln!("bench_shapes: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    if o.parts.is_empty() {
        o.parts = vec!["inference".into(), "train".into()];
    }
    o
}

/// The parts this example can measure (see the module comment).
const PARTS: [&str; 8] = [
    "inference",
    "train",
    "distill",
    "ops",
    "peak",
    "int8",
    "sweep",
    "linear",
];

const USAGE: &str = "usage: bench_shapes [--json] [--reps N] [--warmup N] [--threads N] \
[--teacher DIR --student DIR] [--lengths 8,13,...] [--batches 1,8,...] [--dev FILE] [--unpacked] [PART...]
parts: inference, train, distill, ops, peak, int8, sweep, linear (default: inference train)";

/// Prints one measurement as text or as a JSON line.
fn report(o: &Options, part: &str, model: &str, s: &Stats, extra: serde_json::Value) {
    let per_s = BATCH as f64 / s.median;
    if o.json {
        let mut v = json!({
            "part": part, "model": model, "threads": bench::threads(), "batch_size": BATCH,
            "seq_len": SEQ, "sequences_per_second": per_s, "median_s": s.median,
            "p5_s": s.p5, "p95_s": s.p95, "reps": s.samples,
        });
        if let (Some(v), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(e.clone());
        }
        println!("{v}");
    } else {
        println!(
            "{part} {model}: {per_s:.1} seq/s (median {:.1} ms, p5 {:.1}, p95 {:.1}) {extra}",
            s.median * 1e3,
            s.p5 * 1e3,
            s.p95 * 1e3
        );
    }
}

fn load(dir: &std::path::Path) -> Transformer {
    retort::Classifier::load(dir, 512)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", dir.display()))
        .transformer("bench_shapes")
        .unwrap()
        .clone()
}

fn main() {
    retort::model::kernels::configure_process();
    let o = options();
    let shapes = || {
        (
            Transformer::fresh(config(4, 256, 4, 1024), 0).unwrap(),
            Transformer::fresh(config(6, 384, 6, 1536), 1).unwrap(),
        )
    };
    let (student, teacher) = match (&o.teacher, &o.student) {
        (Some(t), Some(s)) => (load(s), load(t)),
        (None, None) => shapes(),
        _ => panic!("give both --teacher and --student, or neither"),
    };
    let (sname, tname) = match (&o.teacher, &o.student) {
        (Some(t), Some(s)) => (s.display().to_string(), t.display().to_string()),
        _ => ("student-4x256".to_string(), "teacher-6x384".to_string()),
    };
    let input = bench::synthetic_input(BATCH, SEQ, teacher.config.vocab_size).unwrap();
    let classes = student.config.num_labels() as u32;
    let labels = Tensor::from_vec(
        (0..BATCH as u32).map(|i| i % classes).collect::<Vec<_>>(),
        BATCH,
        &Device::Cpu,
    )
    .unwrap();
    for part in o.parts.clone() {
        match part.as_str() {
            "inference" => {
                for (name, m) in [(&sname, &student), (&tname, &teacher)] {
                    let s = forward_time(m, &input, o.reps);
                    report(&o, "inference", name, &s, json!({}));
                }
            }
            "train" => train_steps(&o, &student, &sname, &input, &labels),
            "distill" => {
                let s = distill_step(&teacher, &student, &input, o.reps);
                report(
                    &o,
                    "distill_step",
                    &format!("{tname} -> {sname}"),
                    &s,
                    json!({}),
                );
            }
            "peak" => peak(&o, &teacher, &tname, &input),
            "sweep" => sweep(&o, [("student", &student), ("teacher", &teacher)]),
            "int8" => int8(&o, [(&sname, &student), (&tname, &teacher)], &input),
            "linear" => packed_linears(&o),
            "ops" => {
                for (name, m) in [(&sname, &student), (&tname, &teacher)] {
                    ops(&o, m, name, &input).unwrap();
                }
            }
            other => unreachable!("{other:?} is not in PARTS"),
        }
    }
}

/// One row of the sweep as a JSON line.
fn sweep_row(kind: &str, model: &str, batch: usize, seq: usize, s: &Stats) {
    let v = json!({
        "side": "retort", "kind": kind, "model": model, "batch_size": batch, "seq_len": seq,
        "threads": bench::threads(), "median_s": s.median, "p5_s": s.p5, "p95_s": s.p95,
        "reps": s.samples,
    });
    println!("{v}");
}

/// Issue 16's shapes: inference at every length × batch, the distillation step at every
/// length × batch above 1, and inference over real text in length-sorted batches.
fn sweep(o: &Options, [(sname, student), (tname, teacher)]: [(&str, &Transformer); 2]) {
    // Inference on packed weights, as `retort eval` and `retort distill`'s frozen teacher
    // run; the student that trains in the distillation step stays unpacked.
    let packed = |m: &Transformer| {
        let mut m = m.clone();
        if !o.unpacked {
            m.pack_for_inference().unwrap();
        }
        m
    };
    let (student_infer, teacher) = (packed(student), packed(teacher));
    let models = [(sname, &student_infer), (tname, &teacher)];
    let teacher = &teacher;
    let vocab = teacher.config.vocab_size;
    for &seq in &o.lengths {
        for &batch in &o.batches {
            let input = bench::synthetic_input(batch, seq, vocab).unwrap();
            for (name, m) in models {
                sweep_row(
                    "inference",
                    name,
                    batch,
                    seq,
                    &forward_time(m, &input, o.reps),
                );
            }
            if batch > 1 {
                let s = distill_step(teacher, student, &input, o.reps);
                sweep_row("distill_step", "teacher->student", batch, seq, &s);
            }
        }
    }
    let Some(path) = &o.dev else { return };
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let texts: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    let dir = o
        .teacher
        .as_ref()
        .expect("--dev needs --teacher (its tokenizer)");
    let tokenizer = retort::Classifier::load(dir, 512).unwrap().tokenizer;
    let encoded = tokenizer.encode_batch(&texts).unwrap();
    let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
    let pad = teacher.config.pad_token_id;
    let batches: Vec<EncoderInput> = retort::text::batch::length_sorted_batches(&lengths, 32)
        .iter()
        .map(|idx| {
            let items: Vec<_> = idx.iter().map(|&i| &encoded[i]).collect();
            retort::text::batch::pad_batch(&items, pad).unwrap()
        })
        .collect();
    let longest = lengths.iter().copied().max().unwrap_or(0);
    for (name, m) in models {
        let s = bench::time(o.reps, || {
            for input in &batches {
                m.forward(input, Pass::INFERENCE, Outputs::default())?;
            }
            Ok(())
        })
        .unwrap();
        sweep_row("dev_inference", name, texts.len(), longest, &s);
    }
}

/// Median time of the inference forward pass on `input`.
fn forward_time(m: &Transformer, input: &EncoderInput, reps: Repetitions) -> Stats {
    bench::time(reps, || {
        m.forward(input, Pass::INFERENCE, Outputs::default())?;
        Ok(())
    })
    .unwrap()
}

/// The train step with both optimisers, and where its time goes.
fn train_steps(
    o: &Options,
    student: &Transformer,
    name: &str,
    input: &EncoderInput,
    labels: &Tensor,
) {
    let mut opt = AdamW::new_lr(student.params.vars(), 1e-4).unwrap();
    let (s, phases) = train_step(student, input, labels, o.reps, |g| opt.step(g).unwrap());
    report(o, "train_step_candle_adamw", name, &s, phases);
    // What `retort train` runs: the gradients go through `Grads` into Retort's own AdamW.
    let mut opt = optim::AdamW::new(&student.params, 0.01).unwrap();
    let vars = opt.vars();
    let (s, phases) = train_step(student, input, labels, o.reps, |store| {
        let mut grads = optim::Grads::empty(vars.len());
        grads.accumulate(store, &vars, 1.0).unwrap();
        opt.step(&grads, 1e-4).unwrap()
    });
    report(o, "train_step", name, &s, phases);
}

/// Inference of each model with its linear maps in int8, against f32.
fn int8(o: &Options, models: [(&str, &Transformer); 2], input: &EncoderInput) {
    for (name, m) in models {
        let mut q = m.clone();
        q.quantize_int8().unwrap();
        let (f, i) = (
            forward_time(m, input, o.reps),
            forward_time(&q, input, o.reps),
        );
        report(
            o,
            "inference_int8",
            name,
            &i,
            json!({"speedup_vs_f32": f.median / i.median}),
        );
    }
    int8_linears(o, BATCH * SEQ);
}

/// Each linear shape of the teacher on `rows` rows: f32 kernel vs int8.
fn int8_linears(o: &Options, rows: usize) {
    let dev = Device::Cpu;
    for (in_dim, out_dim) in [(384, 384), (384, 1536), (1536, 384)] {
        let x = Tensor::randn(0f32, 1.0, (rows, in_dim), &dev).unwrap();
        let mut linear = retort::model::layers::Linear::new(
            Tensor::randn(0f32, 0.05, (out_dim, in_dim), &dev).unwrap(),
            Tensor::zeros(out_dim, DType::F32, &dev).unwrap(),
        );
        let time = |l: &retort::model::layers::Linear| {
            bench::time(o.reps, || {
                l.forward(&x)?;
                Ok(())
            })
            .unwrap()
        };
        let f = time(&linear);
        linear.quantize_int8().unwrap();
        let i = time(&linear);
        println!(
            "linear [{rows}, {in_dim}] -> {out_dim}: f32 {:.2} ms, int8 {:.2} ms ({:.2}x)",
            f.median * 1e3,
            i.median * 1e3,
            f.median / i.median
        );
    }
}

/// Each linear shape of the 6 × 384 models at the sweep's row counts (`--lengths`, rows =
/// tokens): the linear op on the plain weight (the few-row kernel up to 64 rows, gemm above)
/// against the same op on the weight packed once for inference, interleaved.
fn packed_linears(o: &Options) {
    let dev = Device::Cpu;
    for (in_dim, out_dim) in [(384, 384), (384, 1536), (1536, 384)] {
        let weight = Tensor::randn(0f32, 0.05, (out_dim, in_dim), &dev).unwrap();
        let bias = vec![0.01f32; out_dim];
        let bias_t = Tensor::from_slice(&bias, out_dim, &dev).unwrap();
        let packed = retort::model::kernels::PackedWeight::pack(
            &weight.flatten_all().unwrap().to_vec1().unwrap(),
            out_dim,
            in_dim,
        );
        for &rows in &o.lengths {
            let x = Tensor::randn(0f32, 1.0, (rows, in_dim), &dev).unwrap();
            let (mut plain, mut fast) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                plain.push(
                    bench::time(o.reps, || {
                        retort::model::kernels::linear(&x, &weight, &bias_t)?;
                        Ok(())
                    })
                    .unwrap()
                    .median,
                );
                fast.push(
                    bench::time(o.reps, || {
                        retort::model::kernels::linear_packed(&x, &packed, &bias, false)?;
                        Ok(())
                    })
                    .unwrap()
                    .median,
                );
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[1]
            };
            let (p, f) = (median(&mut plain), median(&mut fast));
            let gflops = 2.0 * (rows * in_dim * out_dim) as f64 / 1e9;
            println!(
                "linear [{rows:>4}, {in_dim}] -> {out_dim:>4}: plain {:8.3} ms {:6.1} GFLOP/s, \
                 packed {:8.3} ms {:6.1} GFLOP/s ({:.2}x)",
                p * 1e3,
                gflops / p,
                f * 1e3,
                gflops / f,
                p / f
            );
        }
    }
}

/// Times the student train step as a whole and per phase.
fn train_step(
    student: &Transformer,
    input: &EncoderInput,
    labels: &Tensor,
    reps: Repetitions,
    mut step: impl FnMut(&GradStore),
) -> (Stats, serde_json::Value) {
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    let s = bench::time(reps, || {
        let t0 = Instant::now();
        let logits = student
            .forward(input, Pass::TRAIN, Outputs::default())?
            .logits;
        let t1 = Instant::now();
        let grads = loss::hard_ce(&logits, labels)?.backward()?;
        let t2 = Instant::now();
        step(&grads);
        for (v, d) in phases.iter_mut().zip([t1 - t0, t2 - t1, t2.elapsed()]) {
            v.push(d.as_secs_f64() * 1e3);
        }
        Ok(())
    })
    .unwrap();
    let [fwd, bwd, opt] = phases.map(|v| Stats::of(&v[reps.warmup..]).unwrap().median);
    (
        s,
        json!({"forward_ms": fwd, "loss_backward_ms": bwd, "optimiser_ms": opt}),
    )
}

/// One distillation step as `retort distill` runs it (`train::step::forward_backward`, one
/// part per thread): teacher without gradients, student forward/backward with `hard_ce` +
/// `soft_kl` (T = 2), AdamW.
fn distill_step(
    teacher: &Transformer,
    student: &Transformer,
    input: &EncoderInput,
    reps: Repetitions,
) -> Stats {
    let weights = LossWeights {
        hard_ce: 1.0,
        soft_kl: 1.0,
        ..LossWeights::default()
    };
    let online = Teacher {
        model: Some(std::sync::Arc::new(teacher.clone())),
        cached_logits: None,
        learns: None,
    };
    let hidden = student.config.hidden_size;
    let objective = Objective::distill(
        &weights.terms(),
        &Default::default(),
        2.0,
        online,
        student.config.num_layers,
        hidden,
        0,
    )
    .unwrap();
    let classes = student.config.num_labels();
    let indices: Vec<usize> = (0..input.input_ids.dim(0).unwrap()).collect();
    // Parts are consecutive rows of the synthetic batch.
    let make_batch = |idx: &[usize]| -> retort::Result<TrainBatch> {
        Ok(TrainBatch::sentences(
            input.narrow_batch(idx[0], idx.len())?,
            idx.iter().map(|&i| Some(i % classes)).collect(),
            idx,
        ))
    };
    let mut opt = optim::AdamW::new(&student.params, 0.01).unwrap();
    let vars = opt.vars();
    bench::time(reps, || {
        let mut grads = optim::Grads::empty(vars.len());
        for part in step::forward_backward(student, &objective, &indices, 0, &make_batch)? {
            assert!(part.grads.is_some(), "a finite loss");
            part.add_to(&mut grads, &vars, part.share)?;
        }
        opt.step(&grads, 1e-4)?;
        Ok(())
    })
    .unwrap()
}

/// Matrix-multiply FLOPs of one inference forward pass (the attention products included;
/// embeddings, softmax, LayerNorm and the head are left out: they are not matmuls).
fn forward_flops(c: &ModelConfig, batch: usize, seq: usize) -> f64 {
    let (h, f, tokens) = (
        c.hidden_size as f64,
        c.intermediate_size as f64,
        (batch * seq) as f64,
    );
    let per_layer = 2.0 * tokens * (4.0 * h * h + 2.0 * h * f) + 4.0 * tokens * seq as f64 * h;
    per_layer * c.num_layers as f64
}

/// Peak GFLOP/s of an f32 `PEAK_N`³ product on all threads, and the teacher's forward pass
/// as a fraction of it.
fn peak(o: &Options, teacher: &Transformer, name: &str, input: &EncoderInput) {
    let n = PEAK_N;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let s = bench::time(o.reps, || {
        // SAFETY: all three buffers are n×n, row-major, and `c` aliases neither input.
        unsafe {
            gemm::gemm(
                n,
                n,
                n,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                n as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(bench::threads()),
            );
        }
        Ok(())
    })
    .unwrap();
    let peak_gflops = 2.0 * (n as f64).powi(3) / s.min / 1e9;
    let fwd = forward_time(teacher, input, o.reps);
    let fwd_gflops = forward_flops(&teacher.config, BATCH, SEQ) / fwd.median / 1e9;
    let extra = json!({
        "matmul_n": n, "peak_gflops": peak_gflops, "forward_gflops": fwd_gflops,
        "fraction_of_peak": fwd_gflops / peak_gflops,
    });
    report(o, "peak", name, &fwd, extra);
}

/// Times each operation of one encoder layer at batch × seq, and prints its share of the
/// whole forward pass (and, for the matrix products, its GFLOP/s).
fn ops(o: &Options, m: &Transformer, name: &str, input: &EncoderInput) -> candle_core::Result<()> {
    use retort::model::kernels::*;
    let c = &m.config;
    let (h, f, heads, dev) = (
        c.hidden_size,
        c.intermediate_size,
        c.num_heads,
        &Device::Cpu,
    );
    let rand = |dims: &[usize]| Tensor::randn(0f32, 0.05, dims, dev);
    let (x, w_hh, w_fh, w_hf) = (
        rand(&[BATCH, SEQ, h])?,
        rand(&[h, h])?,
        rand(&[f, h])?,
        rand(&[h, f])?,
    );
    let (b_h, b_f, ones) = (
        Tensor::zeros(h, candle_core::DType::F32, dev)?,
        Tensor::zeros(f, candle_core::DType::F32, dev)?,
        Tensor::ones(h, candle_core::DType::F32, dev)?,
    );
    let mask = Tensor::zeros((BATCH, SEQ), candle_core::DType::F32, dev)?;
    let probs = attention_probs(&x, &x, &mask, heads)?;
    let inner = linear(&x, &w_fh, &b_f)?;
    let tokens = (BATCH * SEQ) as f64;
    let (hh, hf, att) = (
        2.0 * tokens * (h * h) as f64,
        2.0 * tokens * (h * f) as f64,
        2.0 * tokens * (SEQ * h) as f64,
    );
    type Op<'a> = (
        &'a str,
        f64,
        Box<dyn Fn() -> candle_core::Result<Tensor> + 'a>,
    );
    let list: Vec<Op> = vec![
        (
            "Q, K, V projections (3 linear)",
            3.0 * hh,
            Box::new(|| {
                linear(&x, &w_hh, &b_h)?;
                linear(&x, &w_hh, &b_h)?;
                linear(&x, &w_hh, &b_h)
            }),
        ),
        (
            "attention scores + mask + softmax",
            att,
            Box::new(|| attention_probs(&x, &x, &mask, heads)),
        ),
        (
            "attention probabilities x V",
            att,
            Box::new(|| attention_context(&probs, &x, heads)),
        ),
        (
            "attention output linear",
            hh,
            Box::new(|| linear(&x, &w_hh, &b_h)),
        ),
        (
            "residual + LayerNorm (x2)",
            0.0,
            Box::new(|| {
                add_layer_norm(&x, &x, &ones, &b_h, 1e-12)?;
                add_layer_norm(&x, &x, &ones, &b_h, 1e-12)
            }),
        ),
        (
            "feed-forward in linear",
            hf,
            Box::new(|| linear(&x, &w_fh, &b_f)),
        ),
        ("GELU", 0.0, Box::new(|| gelu_erf(&inner))),
        (
            "feed-forward out linear",
            hf,
            Box::new(|| linear(&inner, &w_hf, &b_h)),
        ),
    ];
    let total = forward_time(m, input, o.reps).median;
    let mut layer = 0.0;
    println!(
        "{name}: forward {:.1} ms (batch {BATCH} x {SEQ}), {} layers",
        total * 1e3,
        c.num_layers
    );
    for (op, flops, run) in &list {
        let s = bench::time(o.reps, || {
            run()?;
            Ok(())
        })
        .unwrap();
        let t = s.median;
        layer += t;
        let rate = if *flops > 0.0 {
            format!("{:.1} GFLOP/s", flops / t / 1e9)
        } else {
            String::new()
        };
        let share = 100.0 * t * c.num_layers as f64 / total;
        // The fastest run too: on a shared machine it moves least with the load.
        println!(
            "  {op:<36} {:>7.2} ms/layer (min {:>6.2}) {share:>5.1}%  {rate}",
            t * 1e3,
            s.min * 1e3
        );
    }
    let rest = total - layer * c.num_layers as f64;
    println!(
        "  {:<36} {:>7.2} ms       {:>5.1}%",
        "rest: embeddings, head, glue",
        rest * 1e3,
        100.0 * rest / total
    );
    Ok(())
}
