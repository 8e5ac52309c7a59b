//! Where the encoder's time goes, per operation: each kernel of one layer of the 6 × 384
//! teacher shape (12 heads, as all-MiniLM-L6-v2), on a batch of 32 × 64 tokens, forward alone
//! (as inference runs it) and forward + backward (as training runs it: inputs and weights
//! are variables, the backward pass starts from the sum of the output).
//!
//! ```text
//! cargo bench -p retort --bench ops             # all
//! cargo bench -p retort --bench ops -- linear   # those whose name contains "linear"
//! ```
//! BENCHMARKS.md has the numbers; `bench_shapes ops` gives each op's share of a whole pass.

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use retort::model::kernels;

const ROWS: usize = 32 * 64;
const HIDDEN: usize = 384;
const FFN: usize = 1536;
const HEADS: usize = 12;
const VOCAB: usize = 30522;

fn randn(shape: &[usize], std: f32) -> Tensor {
    Tensor::randn(0f32, std, shape, &Device::Cpu).unwrap()
}

/// Times `op` on plain tensors (`forward`) and on variables with its backward pass
/// (`forward_backward`). `inputs` makes the op's inputs.
fn forward_and_backward(
    c: &mut Criterion,
    name: &str,
    inputs: &[Tensor],
    op: impl Fn(&[Tensor]) -> Tensor,
) {
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    group.bench_function("forward", |b| b.iter(|| op(inputs)));
    let vars: Vec<Tensor> = inputs
        .iter()
        .map(|t| match t.dtype() {
            DType::F32 => Var::from_tensor(t).unwrap().as_tensor().clone(),
            _ => t.clone(),
        })
        .collect();
    group.bench_function("forward_backward", |b| {
        b.iter(|| op(&vars).sum_all().unwrap().backward().unwrap())
    });
    group.finish();
}

fn ops(c: &mut Criterion) {
    kernels::configure_process();
    let x = randn(&[ROWS, HIDDEN], 1.0);
    let w = |o: usize, i: usize| randn(&[o, i], 0.05);
    let b = |o: usize| randn(&[o], 0.02);

    let (wq, bq) = (w(HIDDEN, HIDDEN), b(HIDDEN));
    forward_and_backward(
        c,
        "linear 384->384 (Q, K, V, output)",
        &[x.clone(), wq, bq],
        |t| kernels::linear(&t[0], &t[1], &t[2]).unwrap(),
    );
    let (wi, bi) = (w(FFN, HIDDEN), b(FFN));
    forward_and_backward(
        c,
        "linear+GELU 384->1536 (FFN in)",
        &[x.clone(), wi, bi],
        |t| kernels::linear_gelu(&t[0], &t[1], &t[2]).unwrap(),
    );
    let inner = randn(&[ROWS, FFN], 1.0);
    let (wo, bo) = (w(HIDDEN, FFN), b(HIDDEN));
    forward_and_backward(c, "linear 1536->384 (FFN out)", &[inner, wo, bo], |t| {
        kernels::linear(&t[0], &t[1], &t[2]).unwrap()
    });

    // The two products a linear map's backward pass needs, alone: what the backward passes
    // above would cost without anything else.
    for (inp, out) in [(HIDDEN, HIDDEN), (HIDDEN, FFN), (FFN, HIDDEN)] {
        let (x, w, dy) = (
            randn(&[ROWS, inp], 1.0),
            w(out, inp),
            randn(&[ROWS, out], 1.0),
        );
        let mut group = c.benchmark_group(format!("backward products {inp}->{out}"));
        group.sample_size(20);
        group.bench_function("dx = dy W", |b| b.iter(|| dy.matmul(&w).unwrap()));
        group.bench_function("dW = dy^T x", |b| {
            b.iter(|| dy.t().unwrap().matmul(&x).unwrap())
        });
        group.finish();
    }

    let qkv = |s: f32| randn(&[32, 64, HIDDEN], s);
    let mask = Tensor::zeros((32, 1, 1, 64), DType::F32, &Device::Cpu).unwrap();
    forward_and_backward(
        c,
        "attention scores+mask+softmax",
        &[qkv(1.0), qkv(1.0), mask],
        |t| kernels::attention_probs(&t[0], &t[1], &t[2], HEADS).unwrap(),
    );
    let probs = kernels::attention_probs(&qkv(1.0), &qkv(1.0), &randn(&[32, 1, 1, 64], 0.0), HEADS)
        .unwrap();
    forward_and_backward(c, "attention probs x V", &[probs, qkv(1.0)], |t| {
        kernels::attention_context(&t[0], &t[1], HEADS).unwrap()
    });

    let (gamma, beta) = (randn(&[HIDDEN], 1.0), b(HIDDEN));
    forward_and_backward(
        c,
        "residual add+LayerNorm",
        &[x.clone(), randn(&[ROWS, HIDDEN], 1.0), gamma, beta],
        |t| kernels::add_layer_norm(&t[0], &t[1], &t[2], &t[3], 1e-12).unwrap(),
    );

    let table = randn(&[VOCAB, HIDDEN], 0.05);
    let ids: Vec<u32> = (0..ROWS as u32).map(|i| i * 7919 % VOCAB as u32).collect();
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap();
    forward_and_backward(c, "word embedding lookup", &[table, ids], |t| {
        t[0].index_select(&t[1], 0).unwrap()
    });
}

criterion_group!(benches, ops);
criterion_main!(benches);
