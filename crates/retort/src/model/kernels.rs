//! Fused CPU kernels with hand-written backward passes.
//!
//! Why they exist: built from small differentiable candle ops, a LayerNorm or an attention
//! block allocates a full-size tensor per step, and autograd then adds a zero-filled
//! gradient buffer and an `add` per step on the way back. Measured on the student train
//! step, that bookkeeping (not the matmuls) took most of the time. Each kernel here does its
//! block in one pass over memory, split over rows with rayon, and records its backward pass
//! through candle's `CustomOp` machinery (`apply_op*`, not the `_no_bwd` variants), so
//! parameters upstream keep getting gradients — unlike candle's fused `layer_norm` and
//! `softmax_last_dim`, which record none.
//!
//! Everything is f32 on the CPU. The public wrappers make their inputs contiguous; the ops
//! check it again. Element-wise maths is written branch-free with its own `exp` and `erf`
//! so the compiler vectorises the loops (libm's `expf`/`erff` are scalar calls).
//!
//! Parallel work, the matmuls included, runs on rayon's pool. (candle's own barrier pool
//! spin-waits, which under load on a small machine stalls every op; the kernels tried it
//! and were slower. See [`disable_candle_pool`] for candle's remaining element-wise ops.)

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Storage,
    Tensor,
};
use gemm::Parallelism;
use rayon::prelude::*;
use std::mem::MaybeUninit;

// ---------------------------------------------------------------------------------------
// Public entry points.
// ---------------------------------------------------------------------------------------

/// `x Wᵀ + b` over the last dimension of `x`, weights `[out, in]` as in PyTorch. One gemm
/// with the bias folded in; the backward pass is two gemms and a column sum.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LinearOp { gelu: false },
    )
}

/// `gelu(x Wᵀ + b)`, the feed-forward block's first half. When no input records a backward
/// pass (inference, see `Pass::grad`), GELU runs in place on the product, in the same op:
/// no second buffer of the block's widest activation. Otherwise it is [`linear`] then
/// [`gelu_erf`], each with its backward pass.
pub fn linear_gelu(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if x.track_op() || weight.track_op() || bias.track_op() {
        return gelu_erf(&linear(x, weight, bias)?);
    }
    x.contiguous()?.apply_op3_no_bwd(
        &weight.contiguous()?,
        &bias.contiguous()?,
        &LinearOp { gelu: true },
    )
}

/// Layer normalisation over the last dimension: `(x - mean) / sqrt(var + eps) * w + b`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps: eps as f32 },
    )
}

/// Layer normalisation of `x + residual` (the post-LN residual block) in one op: the sum
/// is never a tensor of its own, in either pass.
pub fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let weight_bias = Tensor::stack(&[weight, bias], 0)?;
    x.contiguous()?.apply_op3(
        &residual.contiguous()?,
        &weight_bias,
        AddLayerNormOp { eps: eps as f32 },
    )
}

/// Softmax over the last dimension.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxOp)
}

/// GELU with the exact (erf) formulation, as BERT uses.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluOp)
}

/// Inverted dropout: zeroes each value with probability `p` and scales the rest by
/// `1 / (1 - p)`. The mask is a pure function of `(seed, index)`, so the backward pass
/// regenerates it instead of storing it, and a run is reproducible from its seeds.
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        bail!("dropout probability must be in [0, 1), got {p}")
    }
    x.contiguous()?.apply_op1(DropoutOp::new(p, seed))
}

/// Attention probabilities `softmax(q kᵀ / sqrt(d) + mask)` per head, `[batch, heads, seq,
/// seq]`. `q` and `k` are `[batch, seq, hidden]` projections: heads are read in place, with
/// no transposes or copies. `mask_bias` holds `batch × seq` additive key biases (0 for real
/// keys, a large negative number for padding), in any shape.
pub fn attention_probs(q: &Tensor, k: &Tensor, mask_bias: &Tensor, heads: usize) -> Result<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &mask_bias.contiguous()?,
        AttnProbsOp { heads },
    )
}

/// `probs · v` per head, written straight into `[batch, seq, hidden]` (heads side by side,
/// as the output projection expects). `probs` is `[batch, heads, seq, seq]`.
pub fn attention_context(probs: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    probs
        .contiguous()?
        .apply_op2(&v.contiguous()?, AttnContextOp { heads })
}

/// `a + s·b` (or `s·b` without `a`) in one multi-threaded pass, recording no backward pass:
/// sums of gradients over micro-batches and parts of a batch (candle's `add` and `affine`
/// run on one thread, two passes, over tens of MB of embedding gradients).
pub fn add_scaled(a: Option<&Tensor>, b: &Tensor, s: f32) -> Result<Tensor> {
    let sum = match a {
        Some(a) if a.shape() != b.shape() => {
            bail!("add_scaled: shapes {:?} and {:?}", a.shape(), b.shape())
        }
        Some(a) => with_values([a, b], |[a, b]| Ok(map2(a, b, |_, a, b| a + s * b)))?,
        None => with_values([b], |[b]| Ok(map2(b, b, |_, b, _| s * b)))?,
    };
    tensor(sum, b.shape().clone())
}

/// Sets up the process for the kernels: call it first thing in `main`, before other threads
/// start and before any tensor op.
///
/// - glibc keeps freed tensor buffers for reuse. Each tensor op allocates its output; glibc
///   serves large blocks with mmap and gives them back with munmap, so a training step spent
///   about half its time in the kernel mapping and zeroing pages. Raising the mmap threshold
///   to its maximum (32 MiB) and never trimming the heap lets freed buffers be reused.
/// - candle's own element-wise pool is off ([`disable_candle_pool`]).
pub fn configure_process() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
    disable_candle_pool();
}

/// Makes candle run its own element-wise ops on the calling thread rather than on its
/// worker pool, unless the user set `CANDLE_NUM_THREADS`. The kernels here and the matmuls
/// run on rayon's pool; candle's second pool only adds threads that spin-wait against
/// rayon's for the same cores (on 2 cores: a third of the backward pass, mostly in the
/// gradient sums candle's autograd adds per op). Matmul threads are unaffected.
///
/// It sets an environment variable candle reads once: call it first thing in `main`, before
/// other threads start and before any tensor op.
pub fn disable_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

// ---------------------------------------------------------------------------------------
// Plumbing: storage access, row splitting, gemm.
// ---------------------------------------------------------------------------------------

/// The f32 values of a contiguous CPU storage under `layout`.
fn values<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused kernel: expected a contiguous tensor")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Runs `f` on the f32 values of the tensors (made contiguous first). Backward passes use
/// it to read their inputs without copying them.
fn with_values<const N: usize, R>(
    tensors: [&Tensor; N],
    f: impl FnOnce([&[f32]; N]) -> Result<R>,
) -> Result<R> {
    let tensors = tensors
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices: [&[f32]; N] = [&[]; N];
    for (slot, (storage, layout)) in slices.iter_mut().zip(&guards) {
        *slot = match &**storage {
            Storage::Cpu(s) => values(s, layout)?,
            _ => bail!("fused kernels run on the CPU only"),
        };
    }
    f(slices)
}

fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(values, shape.into(), &Device::Cpu)
}

/// Size of the last dimension, and the number of rows before it.
fn rows_cols(shape: &Shape) -> Result<(usize, usize)> {
    let cols = *shape.dims().last().unwrap_or(&1);
    if cols == 0 {
        bail!("fused kernel: empty last dimension in {shape:?}")
    }
    Ok((shape.elem_count() / cols, cols))
}

/// Values handed to one rayon task, in whole rows of `row_len`: ~16k values amortise the
/// scheduling yet still split a batch over the cores.
fn task_len(row_len: usize) -> usize {
    ((1 << 14) / row_len).max(1) * row_len
}

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A `rows × cols` block of row-major data with row stride `rs`.
    fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// Up to this many rows, the linear layer's forward pass uses [`small_m_linear`]: the gemm
/// crate packs the whole weight matrix at every call, which for a sentence or two costs
/// more than the product itself (62% of batch-1 time in `perf`).
pub(crate) const SMALL_M_ROWS: usize = 64;

/// `y[r, o] += x[r, :] · w[o, :]` for a few rows of `x` (`rows × inp`) against the row-major
/// weight `w` (`out × inp`), reading the weights in place: one pass over `w`, each weight
/// row used for every input row while it is in L1.
fn small_m_linear(y: &mut [f32], x: &[f32], w: &[f32], rows: usize, inp: usize, out: usize) {
    debug_assert!(y.len() == rows * out && x.len() == rows * inp && w.len() == out * inp);
    // Enough work for two threads: each takes half of the rows (a multiple of 4, the block).
    if rows >= 8 && rows * inp * out >= PARALLEL_MIN_MACS && may_fork() {
        let half = rows / 2 / 4 * 4;
        let (y0, y1) = y.split_at_mut(half * out);
        let (x0, x1) = x.split_at(half * inp);
        rayon::join(
            || small_m_linear_serial(y0, x0, w, half, inp, out),
            || small_m_linear_serial(y1, x1, w, rows - half, inp, out),
        );
    } else {
        small_m_linear_serial(y, x, w, rows, inp, out);
    }
}

/// [`small_m_linear`] on the calling thread.
fn small_m_linear_serial(y: &mut [f32], x: &[f32], w: &[f32], rows: usize, inp: usize, out: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX-512F and FMA (checked just above).
            return unsafe { small_m_linear_avx512(y, x, w, rows, inp, out) };
        }
    }
    small_m_linear_loop(y, x, w, rows, inp, out)
}

/// Blocks of 4 weight rows × 4 input rows in 16 AVX-512 accumulators: the fused
/// multiply-adds do not wait on each other and every load feeds 4 of them; the lanes are
/// summed once per output at the end. Leftover rows, outputs and columns go through the
/// portable loop's arithmetic.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn small_m_linear_avx512(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    rows: usize,
    inp: usize,
    out: usize,
) {
    use std::arch::x86_64::*;
    const L: usize = 16;
    let body = inp / L * L;
    let (full_o, full_r) = (out / 4 * 4, rows / 4 * 4);
    for o0 in (0..full_o).step_by(4) {
        // The next block's 4 weight rows (contiguous), fetched while this block computes: the
        // weights come from memory once per call, and waiting on them was most of the time.
        let next = w.as_ptr().wrapping_add((o0 + 4) * inp);
        let prefetch = o0 + 8 <= full_o;
        for r0 in (0..full_r).step_by(4) {
            let mut acc = [_mm512_setzero_ps(); 16];
            for c in (0..body).step_by(L) {
                if prefetch && r0 == 0 {
                    for k in 0..4 {
                        // A prefetch never faults; the address is in `w` (o0 + 8 <= out).
                        let line = next.wrapping_add(k * inp + c) as *const i8;
                        _mm_prefetch::<_MM_HINT_T0>(line);
                    }
                }
                // SAFETY: o0 + 3 < out, r0 + 3 < rows and c + L <= inp, so every load is in bounds.
                let wv: [__m512; 4] = std::array::from_fn(|k| unsafe {
                    _mm512_loadu_ps(w.as_ptr().add((o0 + k) * inp + c))
                });
                for r in 0..4 {
                    let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add((r0 + r) * inp + c)) };
                    for k in 0..4 {
                        acc[r * 4 + k] = _mm512_fmadd_ps(xv, wv[k], acc[r * 4 + k]);
                    }
                }
            }
            for r in 0..4 {
                for k in 0..4 {
                    let (row, o) = (r0 + r, o0 + k);
                    let mut sum = _mm512_reduce_add_ps(acc[r * 4 + k]);
                    for j in body..inp {
                        sum = x[row * inp + j].mul_add(w[o * inp + j], sum);
                    }
                    y[row * out + o] += sum;
                }
            }
        }
    }
    // Rows below the last 4-row block, one at a time against 4 weight rows (vectorised too:
    // a scalar loop here cost more than all the blocks for a 25-token sentence).
    for r in full_r..rows {
        for o0 in (0..full_o).step_by(4) {
            let mut acc = [_mm512_setzero_ps(); 4];
            for c in (0..body).step_by(L) {
                // SAFETY: r < rows, o0 + 3 < out and c + L <= inp: every load is in bounds.
                let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add(r * inp + c)) };
                for (k, a) in acc.iter_mut().enumerate() {
                    let wv = unsafe { _mm512_loadu_ps(w.as_ptr().add((o0 + k) * inp + c)) };
                    *a = _mm512_fmadd_ps(xv, wv, *a);
                }
            }
            for (k, a) in acc.iter().enumerate() {
                let o = o0 + k;
                let mut sum = _mm512_reduce_add_ps(*a);
                for j in body..inp {
                    sum = x[r * inp + j].mul_add(w[o * inp + j], sum);
                }
                y[r * out + o] += sum;
            }
        }
    }
    // Outputs past the last 4-weight-row block (e.g. a 2-label head).
    for o in full_o..out {
        for r in 0..rows {
            let (xr, wr) = (&x[r * inp..(r + 1) * inp], &w[o * inp..(o + 1) * inp]);
            y[r * out + o] += xr.iter().zip(wr).fold(0f32, |s, (a, b)| a.mul_add(*b, s));
        }
    }
}

/// The portable version: one dot product per output.
fn small_m_linear_loop(y: &mut [f32], x: &[f32], w: &[f32], rows: usize, inp: usize, out: usize) {
    for (o, wr) in w.chunks_exact(inp).enumerate().take(out) {
        for r in 0..rows {
            let xr = &x[r * inp..(r + 1) * inp];
            y[r * out + o] += xr.iter().zip(wr).fold(0f32, |s, (a, b)| a.mul_add(*b, s));
        }
    }
}

/// Whether a product may split over the threads: not when it is called from a rayon worker,
/// that is from work already split over the threads (an inference batch run as one part
/// per thread, see `SequenceClassifier::forward`), where forking only adds overhead.
pub(crate) fn may_fork() -> bool {
    rayon::current_num_threads() > 1 && rayon::current_thread_index().is_none()
}

/// Products smaller than this many multiply-adds run on the calling thread: waking the
/// other threads costs more than they save (batch-1 inference was slower with 2 threads
/// than with 1).
const PARALLEL_MIN_MACS: usize = 1 << 22;

/// `dst = scale · a b`, or `dst += scale · a b` when `accumulate`; `dst` is row-major with
/// row stride `dst_rs`. Multi-threaded when `parallel` (only for big products: the
/// per-head ones run inside rayon tasks already).
fn gemm(
    dst: &mut [f32],
    dst_rs: usize,
    a: Mat,
    b: Mat,
    scale: f32,
    accumulate: bool,
    parallel: bool,
) {
    let (m, n) = (a.rows, b.cols);
    assert!(
        m == 0 || n == 0 || ((m - 1) * dst_rs + n <= dst.len() && (m == 1 || dst_rs >= n)),
        "gemm: destination out of bounds"
    );
    // SAFETY: `dst` holds every index written (checked just above) and, a unique borrow,
    // cannot alias `a` or `b`.
    unsafe { gemm_raw(dst.as_mut_ptr(), dst_rs, a, b, scale, accumulate, parallel) }
}

/// `scale · a b` as a new row-major matrix. The buffer is not zero-filled first: without
/// `accumulate`, gemm writes each value before it reads it (it reads the destination only
/// to add later blocks of the inner dimension onto earlier ones). Zero-filling reused
/// memory was 5% of a distillation step (`perf`).
fn gemm_new(a: Mat, b: Mat, scale: f32, parallel: bool) -> Vec<f32> {
    let len = a.rows * b.cols;
    let mut dst = Vec::with_capacity(len);
    // SAFETY: the allocation holds `len` values, row stride `b.cols`; gemm initialises all
    // of them (see above) before `set_len` exposes them.
    unsafe {
        gemm_raw(dst.as_mut_ptr(), b.cols, a, b, scale, false, parallel);
        dst.set_len(len);
    }
    dst
}

/// `rows` copies of `row`, one after the other (a bias broadcast over the rows).
fn repeat_rows(row: &[f32], rows: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(rows * row.len());
    for _ in 0..rows {
        y.extend_from_slice(row);
    }
    y
}

/// [`gemm`] into raw memory. Safety: `dst` must be valid for writes (and, with
/// `accumulate`, reads of initialised values) at every `i * dst_rs + j`, `i < a.rows`,
/// `j < b.cols`, and must not overlap `a` or `b`.
unsafe fn gemm_raw(
    dst: *mut f32,
    dst_rs: usize,
    a: Mat,
    b: Mat,
    scale: f32,
    accumulate: bool,
    parallel: bool,
) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert_eq!(k, b.rows, "gemm: inner dimensions differ");
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm: operand out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = if parallel && m * n * k >= PARALLEL_MIN_MACS && may_fork() {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        a.data.as_ptr(),
        a.cs as isize,
        a.rs as isize,
        b.data.as_ptr(),
        b.cs as isize,
        b.rs as isize,
        1.0,
        scale,
        false,
        false,
        false,
        parallelism,
    )
}

// ---------------------------------------------------------------------------------------
// Vectorisable scalar maths.
// ---------------------------------------------------------------------------------------

/// `Σ f(x_i, y_i)` with 8 independent accumulators, which the compiler maps to SIMD adds
/// (a plain fold must keep the sequential order and stays scalar).
#[inline(always)]
fn sum_zip(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(&a, &b)| f(a, b))
        .sum();
    for (x8, y8) in xc.zip(yc) {
        for ((acc, &a), &b) in acc.iter_mut().zip(x8).zip(y8) {
            *acc += f(a, b);
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn sum(x: &[f32]) -> f32 {
    sum_zip(x, x, |a, _| a)
}

fn dot(x: &[f32], y: &[f32]) -> f32 {
    sum_zip(x, y, |a, b| a * b)
}

/// `a += b`, element-wise (reduces per-task partial sums).
fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    for (a, b) in a.iter_mut().zip(&b) {
        *a += b;
    }
    a
}

/// Sums of each column of a row-major `[rows, cols]` matrix (a bias gradient).
fn column_sums(x: &[f32], cols: usize) -> Vec<f32> {
    x.par_chunks(task_len(cols))
        .map(|chunk| {
            let mut acc = vec![0f32; cols];
            for row in chunk.chunks_exact(cols) {
                for (a, v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            acc
        })
        .reduce(|| vec![0f32; cols], add_into)
}

fn max(x: &[f32]) -> f32 {
    x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// `e^x` within ~2 ulp (Cephes' polynomial), branch-free so loops over it vectorise;
/// exactly 0 below `e^-87`, where f32 turns denormal (softmax masks rely on that).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2^23 rounds an f32 of magnitude < 2^22 to an integer.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits(((n as i32 + 127) << 23) as u32);
    if x < -87.0 {
        0.0
    } else {
        e_r * two_n
    }
}

/// `erf(x)` within ~1e-7 (Eigen's rational approximation on [-4, 4]; beyond, erf is ±1
/// in f32), branch-free so loops over it vectorise.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_474e-2;
    x * p / q
}

// ---------------------------------------------------------------------------------------
// Linear.
// ---------------------------------------------------------------------------------------

struct LinearOp {
    /// Apply GELU to the output in place (inference only: the backward pass below is the
    /// plain linear map's).
    gelu: bool,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "retort-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (values(xs, xl)?, values(ws, wl)?, values(bs, bl)?);
        let (rows, inp) = rows_cols(xl.shape())?;
        let (out, w_in) = wl.shape().dims2()?;
        if w_in != inp || b.len() != out {
            bail!(
                "linear: x {:?}, weight {:?}, bias {:?}",
                xl.shape(),
                wl.shape(),
                bl.shape()
            )
        }
        let xm = Mat::rows(x, rows, inp, inp);
        let wt = Mat::rows(w, out, inp, inp).t();
        // Rows start from the bias and the product accumulates onto them; the GELU epilogue
        // adds the bias itself, which spares the big products a pass over their output.
        let mut y = if rows <= SMALL_M_ROWS {
            let mut y = match self.gelu {
                true => vec![0f32; rows * out],
                false => repeat_rows(b, rows),
            };
            small_m_linear(&mut y, x, w, rows, inp, out);
            y
        } else if self.gelu {
            gemm_new(xm, wt, 1.0, true)
        } else {
            let mut y = repeat_rows(b, rows);
            gemm(&mut y, out, xm, wt, 1.0, true, true);
            y
        };
        if self.gelu {
            bias_gelu_in_place(&mut y, b);
        }
        let mut dims = xl.shape().dims().to_vec();
        *dims.last_mut().unwrap() = out;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.gelu {
            bail!("linear + GELU is an inference-only op: it has no backward pass")
        }
        let (rows, inp) = rows_cols(x.shape())?;
        let out = w.dim(0)?;
        // Nothing upstream of x to train (e.g. frozen embeddings): skip its gemm.
        let want_dx = x.track_op();
        let (x_shape, b_shape) = (x.shape().clone(), b.shape().clone());
        with_values([x, w, dy], |[x, w, dy]| {
            let dy_m = Mat::rows(dy, rows, out, out);
            let dx = if want_dx {
                // dx = dy W
                let dx = gemm_new(dy_m, Mat::rows(w, out, inp, inp), 1.0, true);
                Some(tensor(dx, x_shape)?)
            } else {
                None
            };
            // dW = dyᵀ x
            let dw = gemm_new(dy_m.t(), Mat::rows(x, rows, inp, inp), 1.0, true);
            let db = column_sums(dy, out);
            Ok((
                dx,
                Some(tensor(dw, (out, inp))?),
                Some(tensor(db, b_shape)?),
            ))
        })
    }
}

// ---------------------------------------------------------------------------------------
// LayerNorm, alone and fused with the residual add before it.
// ---------------------------------------------------------------------------------------

struct LayerNormOp {
    eps: f32,
}

/// LayerNorm of `x + residual`; weight and bias come stacked as `[2, hidden]` (a custom op
/// takes at most three inputs).
struct AddLayerNormOp {
    eps: f32,
}

/// Mean and `1 / sqrt(var + eps)` of one row (two passes: no cancellation).
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let var = sum_zip(x, x, |v, _| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm forward over `len` values in rows of `w.len()`: `fill(i, rows)` writes the
/// input of task `i`'s rows, which are then normalised in place.
fn ln_forward(
    len: usize,
    w: &[f32],
    b: &[f32],
    eps: f32,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let h = w.len();
    let mut y = vec![0f32; len];
    y.par_chunks_mut(task_len(h))
        .enumerate()
        .for_each(|(i, y)| {
            fill(i, y);
            for y in y.chunks_exact_mut(h) {
                let (mean, rstd) = row_stats(y, eps);
                for ((y, &w), &b) in y.iter_mut().zip(w).zip(b) {
                    *y = (*y - mean) * rstd * w + b;
                }
            }
        });
    y
}

/// LayerNorm backward for upstream gradient `dy`; `fill(i, rows)` writes the forward input
/// of task `i`'s rows (recomputed rather than stored). With `x̂ = (x - mean) · rstd` and
/// `g = dy ⊙ w`: `dx = rstd · (g - mean(g) - x̂ · mean(g ⊙ x̂))`, `dw = Σ dy ⊙ x̂`,
/// `db = Σ dy` (sums over rows). Returns `dx` and `[dw, db]` side by side.
fn ln_backward(
    dy: &[f32],
    w: &[f32],
    eps: f32,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> (Vec<f32>, Vec<f32>) {
    let h = w.len();
    let task = task_len(h);
    let mut dx = vec![0f32; dy.len()];
    let dw_db = dx
        .par_chunks_mut(task)
        .zip(dy.par_chunks(task))
        .enumerate()
        .map(|(i, (dx, dy))| {
            let mut x = vec![0f32; dx.len()];
            fill(i, &mut x);
            let mut dw_db = vec![0f32; 2 * h];
            let (dw, db) = dw_db.split_at_mut(h);
            let (mut xhat, mut g) = (vec![0f32; h], vec![0f32; h]);
            let rows = dx
                .chunks_exact_mut(h)
                .zip(x.chunks_exact(h))
                .zip(dy.chunks_exact(h));
            for ((dx, x), dy) in rows {
                let (mean, rstd) = row_stats(x, eps);
                for i in 0..h {
                    xhat[i] = (x[i] - mean) * rstd;
                    g[i] = dy[i] * w[i];
                    dw[i] += dy[i] * xhat[i];
                    db[i] += dy[i];
                }
                let mean_g = sum(&g) / h as f32;
                let mean_gx = dot(&g, &xhat) / h as f32;
                for ((dx, &g), &xh) in dx.iter_mut().zip(&g).zip(&xhat) {
                    *dx = rstd * (g - mean_g - xh * mean_gx);
                }
            }
            dw_db
        })
        .reduce(|| vec![0f32; 2 * h], add_into);
    (dx, dw_db)
}

/// Copies task `i`'s rows of `x` (tasks of `task_len(h)` values).
fn copy_rows(x: &[f32], h: usize) -> impl Fn(usize, &mut [f32]) + Sync + '_ {
    move |i, out| out.copy_from_slice(&x[i * task_len(h)..][..out.len()])
}

/// Writes task `i`'s rows of `x + r`.
fn sum_rows<'a>(x: &'a [f32], r: &'a [f32], h: usize) -> impl Fn(usize, &mut [f32]) + Sync + 'a {
    move |i, out| {
        let start = i * task_len(h);
        let (x, r) = (&x[start..][..out.len()], &r[start..][..out.len()]);
        for ((o, &x), &r) in out.iter_mut().zip(x).zip(r) {
            *o = x + r;
        }
    }
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "retort-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (values(xs, xl)?, values(ws, wl)?, values(bs, bl)?);
        let (_, h) = rows_cols(xl.shape())?;
        if w.len() != h || b.len() != h {
            bail!(
                "layer_norm: x {:?}, weight {:?}, bias {:?}",
                xl.shape(),
                wl.shape(),
                bl.shape()
            )
        }
        let y = ln_forward(x.len(), w, b, self.eps, copy_rows(x, h));
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, h) = rows_cols(x.shape())?;
        let (dx, dw_db) = with_values([x, w, dy], |[x, w, dy]| {
            Ok(ln_backward(dy, w, self.eps, copy_rows(x, h)))
        })?;
        let (dw, db) = dw_db.split_at(h);
        Ok((
            Some(tensor(dx, x.shape().clone())?),
            Some(tensor(dw.to_vec(), h)?),
            Some(tensor(db.to_vec(), h)?),
        ))
    }
}

impl CustomOp3 for AddLayerNormOp {
    fn name(&self) -> &'static str {
        "retort-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, r, wb) = (values(xs, xl)?, values(rs, rl)?, values(ps, pl)?);
        let (_, h) = rows_cols(xl.shape())?;
        if rl.shape() != xl.shape() || wb.len() != 2 * h {
            bail!(
                "add_layer_norm: x {:?}, residual {:?}, weight and bias {:?}",
                xl.shape(),
                rl.shape(),
                pl.shape()
            )
        }
        let (w, b) = wb.split_at(h);
        let y = ln_forward(x.len(), w, b, self.eps, sum_rows(x, r, h));
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    /// Both addends get the gradient of their sum.
    fn bwd(
        &self,
        x: &Tensor,
        r: &Tensor,
        wb: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, h) = rows_cols(x.shape())?;
        let (dx, dw_db) = with_values([x, r, wb, dy], |[x, r, wb, dy]| {
            Ok(ln_backward(dy, &wb[..h], self.eps, sum_rows(x, r, h)))
        })?;
        let dx = tensor(dx, x.shape().clone())?;
        Ok((Some(dx.clone()), Some(dx), Some(tensor(dw_db, (2, h))?)))
    }
}

// ---------------------------------------------------------------------------------------
// Softmax.
// ---------------------------------------------------------------------------------------

struct SoftmaxOp;

/// Softmax of one row, in place.
fn softmax_in_place(row: &mut [f32]) {
    let m = max(row);
    for v in row.iter_mut() {
        *v = exp(*v - m);
    }
    let inv = 1.0 / sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Softmax backward for one row: `dx = scale · y ⊙ (dy - Σ dy ⊙ y)`.
fn softmax_bwd_row(dx: &mut [f32], y: &[f32], dy: &[f32], scale: f32) {
    let d = dot(dy, y);
    for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
        *dx = scale * y * (dy - d);
    }
}

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "retort-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut y = values(s, l)?.to_vec();
        let (_, n) = rows_cols(l.shape())?;
        y.par_chunks_mut(task_len(n))
            .for_each(|rows| rows.chunks_exact_mut(n).for_each(softmax_in_place));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (_, n) = rows_cols(y.shape())?;
        let dx = with_values([y, dy], |[y, dy]| {
            let mut dx = vec![0f32; y.len()];
            let t = task_len(n);
            dx.par_chunks_mut(t)
                .zip(y.par_chunks(t))
                .zip(dy.par_chunks(t))
                .for_each(|((dx, y), dy)| {
                    let rows = dx
                        .chunks_exact_mut(n)
                        .zip(y.chunks_exact(n))
                        .zip(dy.chunks_exact(n));
                    for ((dx, y), dy) in rows {
                        softmax_bwd_row(dx, y, dy, 1.0);
                    }
                });
            Ok(dx)
        })?;
        Ok(Some(tensor(dx, y.shape().clone())?))
    }
}

// ---------------------------------------------------------------------------------------
// Element-wise ops: GELU, dropout.
// ---------------------------------------------------------------------------------------

/// Values per rayon task for element-wise work.
const ELEMENTWISE_TASK: usize = 1 << 14;

/// `out[i] = f(a[i], b[i])`, split over the cores. `i` is the global index. The output is
/// written once, not zero-filled first.
fn map2(a: &[f32], b: &[f32], f: impl Fn(usize, f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "map2: lengths differ");
    let mut out = Vec::with_capacity(a.len());
    out.spare_capacity_mut()
        .par_chunks_mut(ELEMENTWISE_TASK)
        .zip(a.par_chunks(ELEMENTWISE_TASK))
        .zip(b.par_chunks(ELEMENTWISE_TASK))
        .enumerate()
        .for_each(|(t, ((out, a), b))| map2_chunk(t * ELEMENTWISE_TASK, out, a, b, &f));
    // SAFETY: the chunks cover the whole capacity, `a.len()` values, and `map2_loop` writes
    // every value of its chunk (its inputs have the chunk's length).
    unsafe { out.set_len(a.len()) };
    out
}

/// One task of [`map2`], compiled for the widest vector unit the CPU has.
///
/// The crate is built for baseline x86-64 (SSE2, 4 lanes), so element-wise maths such as
/// GELU's `erf` ran 4 values at a time while the matmuls (gemm dispatches at run time)
/// used AVX-512. The same loop is compiled again with AVX-512 and AVX2 enabled and picked
/// at run time; no fused multiply-add is introduced (Rust does not contract `a * b + c`),
/// so every path gives bit-identical results.
fn map2_chunk<F: Fn(usize, f32, f32) -> f32>(
    base: usize,
    out: &mut [MaybeUninit<f32>],
    a: &[f32],
    b: &[f32],
    f: &F,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { map2_chunk_avx512(base, out, a, b, f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { map2_chunk_avx2(base, out, a, b, f) };
        }
    }
    map2_loop(base, out, a, b, f)
}

/// [`map2_loop`] compiled with a target feature enabled; callers check the CPU has it.
macro_rules! map2_loop_with {
    ($name:ident, $feature:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name<F: Fn(usize, f32, f32) -> f32>(
            base: usize,
            out: &mut [MaybeUninit<f32>],
            a: &[f32],
            b: &[f32],
            f: &F,
        ) {
            map2_loop(base, out, a, b, f)
        }
    };
}
map2_loop_with!(map2_chunk_avx512, "avx512f");
map2_loop_with!(map2_chunk_avx2, "avx2");

#[inline(always)]
fn map2_loop<F: Fn(usize, f32, f32) -> f32>(
    base: usize,
    out: &mut [MaybeUninit<f32>],
    a: &[f32],
    b: &[f32],
    f: &F,
) {
    debug_assert!(out.len() == a.len() && a.len() == b.len());
    for (i, ((o, &a), &b)) in out.iter_mut().zip(a).zip(b).enumerate() {
        o.write(f(base + i, a, b));
    }
}

/// `x[r, j] = gelu(x[r, j] + bias[j])` over rows of `bias.len()`, split over the cores: the
/// epilogue of the fused feed-forward linear map, [`linear_gelu`]. Compiled for AVX-512 and
/// AVX2 as [`map2_chunk`] is.
fn bias_gelu_in_place(x: &mut [f32], bias: &[f32]) {
    x.par_chunks_mut(task_len(bias.len())).for_each(|chunk| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                return unsafe { bias_gelu_avx512(chunk, bias) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { bias_gelu_avx2(chunk, bias) };
            }
        }
        bias_gelu_loop(chunk, bias)
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn bias_gelu_avx512(x: &mut [f32], bias: &[f32]) {
    bias_gelu_loop(x, bias)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bias_gelu_avx2(x: &mut [f32], bias: &[f32]) {
    bias_gelu_loop(x, bias)
}

#[inline(always)]
fn bias_gelu_loop(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = gelu(*v + b);
        }
    }
}

struct GeluOp;

const INV_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2π)`, the normal density's constant.
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * INV_SQRT_2))
}

/// `d/dx [x Φ(x)] = Φ(x) + x φ(x)`.
#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x)
}

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "retort-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(s, l)?;
        let y = map2(x, x, |_, x, _| gelu(x));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_values([x, dy], |[x, dy]| {
            Ok(map2(x, dy, |_, x, dy| dy * gelu_grad(x)))
        })?;
        Ok(Some(tensor(dx, x.shape().clone())?))
    }
}

struct DropoutOp {
    /// A value is dropped when its 32-bit hash falls below this.
    threshold: u32,
    scale: f32,
    keys: [u32; 2],
}

/// A 32-bit integer hash with good avalanche ("lowbias32", C. Wellons).
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

impl DropoutOp {
    fn new(p: f32, seed: u64) -> Self {
        Self {
            threshold: (p as f64 * 4_294_967_296.0) as u32,
            scale: 1.0 / (1.0 - p),
            keys: [mix32(seed as u32), mix32((seed >> 32) as u32 ^ 0x9e37_79b9)],
        }
    }

    /// The mask's factor for value `i`: 0 or `1 / (1 - p)`.
    #[inline(always)]
    fn factor(&self, i: usize) -> f32 {
        let h = mix32(mix32(i as u32 ^ self.keys[0]).wrapping_add(self.keys[1]));
        if h < self.threshold {
            0.0
        } else {
            self.scale
        }
    }
}

impl CustomOp1 for DropoutOp {
    fn name(&self) -> &'static str {
        "retort-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(s, l)?;
        let y = map2(x, x, |i, x, _| x * self.factor(i));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_values([dy], |[dy]| {
            Ok(map2(dy, dy, |i, dy, _| dy * self.factor(i)))
        })?;
        Ok(Some(tensor(dx, y.shape().clone())?))
    }
}

// ---------------------------------------------------------------------------------------
// Attention.
// ---------------------------------------------------------------------------------------

/// Shapes of an attention block: `[batch, seq, hidden]` projections split into heads.
#[derive(Clone, Copy)]
struct Heads {
    batch: usize,
    seq: usize,
    hidden: usize,
    heads: usize,
    dim: usize,
}

impl Heads {
    fn new(shape: &Shape, heads: usize) -> Result<Self> {
        let (batch, seq, hidden) = shape.dims3()?;
        if heads == 0 || hidden % heads != 0 {
            bail!("attention: hidden size {hidden} is not a multiple of {heads} heads")
        }
        Ok(Self {
            batch,
            seq,
            hidden,
            heads,
            dim: hidden / heads,
        })
    }

    /// Values of one batch element of a projection.
    fn proj(&self) -> usize {
        self.seq * self.hidden
    }

    /// Values of one batch element's probabilities (all heads).
    fn probs(&self) -> usize {
        self.heads * self.seq * self.seq
    }

    fn probs_shape(&self) -> Shape {
        Shape::from((self.batch, self.heads, self.seq, self.seq))
    }

    /// Head `hd` of one batch element's projection, a `seq × dim` strided view.
    fn head<'a>(&self, proj: &'a [f32], hd: usize) -> Mat<'a> {
        Mat::rows(&proj[hd * self.dim..], self.seq, self.dim, self.hidden)
    }

    /// Head `hd`'s `seq × seq` block of one batch element's probabilities.
    fn block<'a>(&self, probs: &'a [f32], hd: usize) -> Mat<'a> {
        let n = self.seq * self.seq;
        Mat::rows(&probs[hd * n..(hd + 1) * n], self.seq, self.seq, self.seq)
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dim as f32).sqrt()
    }
}

struct AttnProbsOp {
    heads: usize,
}

impl CustomOp3 for AttnProbsOp {
    fn name(&self) -> &'static str {
        "retort-attention-probs"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, mask) = (values(qs, ql)?, values(ks, kl)?, values(ms, ml)?);
        let hs = Heads::new(ql.shape(), self.heads)?;
        if kl.shape() != ql.shape() || mask.len() != hs.batch * hs.seq {
            bail!(
                "attention: q {:?}, k {:?}, mask {:?}",
                ql.shape(),
                kl.shape(),
                ml.shape()
            )
        }
        let (s, n) = (hs.seq, hs.seq * hs.seq);
        let mut probs = vec![0f32; hs.batch * hs.probs()];
        probs
            .par_chunks_mut(hs.probs())
            .zip(q.par_chunks(hs.proj()))
            .zip(k.par_chunks(hs.proj()))
            .zip(mask.par_chunks(s))
            .for_each(|(((probs, q), k), mask)| {
                for hd in 0..hs.heads {
                    let block = &mut probs[hd * n..(hd + 1) * n];
                    gemm(
                        block,
                        s,
                        hs.head(q, hd),
                        hs.head(k, hd).t(),
                        hs.scale(),
                        false,
                        false,
                    );
                    for row in block.chunks_exact_mut(s) {
                        for (v, m) in row.iter_mut().zip(mask) {
                            *v += m;
                        }
                        softmax_in_place(row);
                    }
                }
            });
        Ok((CpuStorage::F32(probs), hs.probs_shape()))
    }

    /// With `ds = softmax-backward(p, dp) · scale`: `dq = ds k`, `dk = dsᵀ q`. The mask is
    /// an input, not a parameter: no gradient.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        _mask: &Tensor,
        p: &Tensor,
        dp: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let hs = Heads::new(q.shape(), self.heads)?;
        let (s, n) = (hs.seq, hs.seq * hs.seq);
        let (dq, dk) = with_values([q, k, p, dp], |[q, k, p, dp]| {
            let mut dq = vec![0f32; q.len()];
            let mut dk = vec![0f32; k.len()];
            dq.par_chunks_mut(hs.proj())
                .zip(dk.par_chunks_mut(hs.proj()))
                .zip(q.par_chunks(hs.proj()).zip(k.par_chunks(hs.proj())))
                .zip(p.par_chunks(hs.probs()).zip(dp.par_chunks(hs.probs())))
                .for_each(|(((dq, dk), (q, k)), (p, dp))| {
                    let mut ds = vec![0f32; n];
                    for hd in 0..hs.heads {
                        let (p, dp) = (hs.block(p, hd).data, hs.block(dp, hd).data);
                        let rows = ds
                            .chunks_exact_mut(s)
                            .zip(p.chunks_exact(s))
                            .zip(dp.chunks_exact(s));
                        for ((ds, p), dp) in rows {
                            softmax_bwd_row(ds, p, dp, hs.scale());
                        }
                        let ds_m = Mat::rows(&ds, s, s, s);
                        let off = hd * hs.dim;
                        gemm(
                            &mut dq[off..],
                            hs.hidden,
                            ds_m,
                            hs.head(k, hd),
                            1.0,
                            false,
                            false,
                        );
                        gemm(
                            &mut dk[off..],
                            hs.hidden,
                            ds_m.t(),
                            hs.head(q, hd),
                            1.0,
                            false,
                            false,
                        );
                    }
                });
            Ok((dq, dk))
        })?;
        Ok((
            Some(tensor(dq, q.shape().clone())?),
            Some(tensor(dk, k.shape().clone())?),
            None,
        ))
    }
}

struct AttnContextOp {
    heads: usize,
}

impl CustomOp2 for AttnContextOp {
    fn name(&self) -> &'static str {
        "retort-attention-context"
    }

    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, v) = (values(ps, pl)?, values(vs, vl)?);
        let hs = Heads::new(vl.shape(), self.heads)?;
        if pl.shape() != &hs.probs_shape() {
            bail!("attention: probs {:?}, v {:?}", pl.shape(), vl.shape())
        }
        let mut ctx = vec![0f32; v.len()];
        ctx.par_chunks_mut(hs.proj())
            .zip(p.par_chunks(hs.probs()))
            .zip(v.par_chunks(hs.proj()))
            .for_each(|((ctx, p), v)| {
                for hd in 0..hs.heads {
                    let off = hd * hs.dim;
                    gemm(
                        &mut ctx[off..],
                        hs.hidden,
                        hs.block(p, hd),
                        hs.head(v, hd),
                        1.0,
                        false,
                        false,
                    );
                }
            });
        Ok((CpuStorage::F32(ctx), vl.shape().clone()))
    }

    /// `dp = dctx vᵀ`, `dv = pᵀ dctx`, per head.
    fn bwd(
        &self,
        p: &Tensor,
        v: &Tensor,
        _ctx: &Tensor,
        dctx: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let hs = Heads::new(v.shape(), self.heads)?;
        let n = hs.seq * hs.seq;
        let (dp, dv) = with_values([p, v, dctx], |[p, v, dctx]| {
            let mut dp = vec![0f32; p.len()];
            let mut dv = vec![0f32; v.len()];
            dp.par_chunks_mut(hs.probs())
                .zip(dv.par_chunks_mut(hs.proj()))
                .zip(p.par_chunks(hs.probs()))
                .zip(v.par_chunks(hs.proj()).zip(dctx.par_chunks(hs.proj())))
                .for_each(|(((dp, dv), p), (v, dctx))| {
                    for hd in 0..hs.heads {
                        let dc = hs.head(dctx, hd);
                        let block = &mut dp[hd * n..(hd + 1) * n];
                        gemm(block, hs.seq, dc, hs.head(v, hd).t(), 1.0, false, false);
                        let off = hd * hs.dim;
                        gemm(
                            &mut dv[off..],
                            hs.hidden,
                            hs.block(p, hd).t(),
                            dc,
                            1.0,
                            false,
                            false,
                        );
                    }
                });
            Ok((dp, dv))
        })?;
        Ok((
            Some(tensor(dp, p.shape().clone())?),
            Some(tensor(dv, v.shape().clone())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var, D};

    /// Deterministic values in [-1, 1).
    fn rand_tensor(dims: &[usize], seed: u32) -> Tensor {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n as u32)
            .map(|i| mix32(i ^ mix32(seed)) as f32 / 2_147_483_648.0 - 1.0)
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Checks autograd's gradient of `Σ r ⊙ f(inputs)` (fixed random `r`) with respect to
    /// each input in `check` against central differences, entry by entry.
    fn check_grads(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor], check: &[usize]) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let tracked: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&tracked);
        let r = rand_tensor(y.dims(), 7);
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let r64 = r.to_dtype(DType::F64).unwrap();
        let loss = |ts: &[Tensor]| -> f64 {
            let y = f(ts).to_dtype(DType::F64).unwrap();
            (y * &r64).unwrap().sum_all().unwrap().to_scalar().unwrap()
        };
        for &i in check {
            let g = grads
                .get(vars[i].as_tensor())
                .unwrap_or_else(|| panic!("input {i} got no gradient"));
            let g = flat(g);
            let x = flat(&inputs[i]);
            for (j, &analytic) in g.iter().enumerate() {
                let at = |delta: f32| {
                    let mut v = x.clone();
                    v[j] += delta;
                    let mut ts = inputs.to_vec();
                    ts[i] = Tensor::from_vec(v.clone(), inputs[i].shape(), &Device::Cpu).unwrap();
                    (loss(&ts), v[j])
                };
                let ((plus, xp), (minus, xm)) = (at(1e-3), at(-1e-3));
                let numeric = (plus - minus) / (xp - xm) as f64;
                let err = (numeric - analytic as f64).abs();
                assert!(
                    err <= 1e-3 + 1e-2 * numeric.abs(),
                    "input {i}[{j}]: autograd {analytic} vs finite difference {numeric}"
                );
            }
        }
    }

    #[test]
    fn small_m_linear_matches_a_plain_product_on_every_block_shape() {
        // 4 × 4 blocks, leftover rows and outputs, columns past the 16-lane body, and (the
        // last two shapes) enough work to split the rows over two threads.
        for (rows, inp, out) in [
            (1, 16, 4),
            (5, 37, 7),
            (8, 64, 12),
            (32, 384, 9),
            (3, 5, 2),
            (42, 384, 300),
            (16, 384, 1538),
        ] {
            let x: Vec<f32> = (0..rows * inp)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..out * inp)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 9.0)
                .collect();
            let mut y = vec![0.5f32; rows * out];
            small_m_linear(&mut y, &x, &w, rows, inp, out);
            for r in 0..rows {
                for o in 0..out {
                    let want: f64 = 0.5
                        + (0..inp)
                            .map(|i| x[r * inp + i] as f64 * w[o * inp + i] as f64)
                            .sum::<f64>();
                    let got = y[r * out + o] as f64;
                    assert!(
                        (got - want).abs() < 1e-4,
                        "{rows}x{inp}x{out} [{r},{o}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -4000..4000 {
            let x = i as f32 * 0.02;
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            assert!(rel < 5e-7, "exp({x}): {} vs {want}", exp(x));
            let want = candle_core::cpu::erf::erf_f64(x as f64);
            assert!(
                (erf(x) as f64 - want).abs() < 5e-7,
                "erf({x}): {} vs {want}",
                erf(x)
            );
        }
        assert_eq!(exp(-1e9), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn linear_forward_matches_matmul() {
        let x = rand_tensor(&[2, 5, 7], 1);
        let w = rand_tensor(&[3, 7], 2);
        let b = rand_tensor(&[3], 3);
        let want = x
            .broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        assert!(max_diff(&linear(&x, &w, &b).unwrap(), &want) < 1e-5);
    }

    #[test]
    fn add_scaled_matches_candle() {
        let (a, b) = (rand_tensor(&[300, 70], 1), rand_tensor(&[300, 70], 2));
        let scaled = (&b * 0.25).unwrap();
        let want = (&a + &scaled).unwrap();
        assert_eq!(flat(&add_scaled(Some(&a), &b, 0.25).unwrap()), flat(&want));
        assert_eq!(flat(&add_scaled(None, &b, 0.25).unwrap()), flat(&scaled));
        assert!(add_scaled(Some(&a), &rand_tensor(&[3], 1), 1.0).is_err());
    }

    #[test]
    fn fused_linear_gelu_matches_linear_then_gelu() {
        let (w, b) = (rand_tensor(&[40, 24], 2), rand_tensor(&[40], 3));
        // 5 rows run on the small-m kernel, 70 on gemm with the bias added by the epilogue.
        for rows in [5, 70] {
            let x = (rand_tensor(&[rows, 24], rows as u32) * 2.0).unwrap();
            let want = gelu_erf(&linear(&x, &w, &b).unwrap()).unwrap();
            let fused = linear_gelu(&x, &w, &b).unwrap();
            assert!(!fused.track_op());
            assert!(max_diff(&fused, &want) < 1e-5, "{rows} rows");
            // A variable input gets the differentiable pair, with its gradient.
            let v = Var::from_tensor(&x).unwrap();
            let y = linear_gelu(v.as_tensor(), &w, &b).unwrap();
            assert!(max_diff(&y, &want) < 1e-6);
            let grads = y.sum_all().unwrap().backward().unwrap();
            assert!(grads.get(v.as_tensor()).is_some());
        }
    }

    #[test]
    fn linear_backward_matches_finite_differences() {
        let inputs = [
            rand_tensor(&[2, 3, 5], 1),
            rand_tensor(&[4, 5], 2),
            rand_tensor(&[4], 3),
        ];
        check_grads(
            |t| linear(&t[0], &t[1], &t[2]).unwrap(),
            &inputs,
            &[0, 1, 2],
        );
    }

    fn naive_layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let centered = x.broadcast_sub(&mean).unwrap();
        let var = centered.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let std = (var + eps).unwrap().sqrt().unwrap();
        let normed = centered.broadcast_div(&std).unwrap();
        normed.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
    }

    #[test]
    fn layer_norm_forward_matches_naive() {
        // Rows longer than 8 exercise the vectorised sums and their tails.
        let x = (rand_tensor(&[3, 4, 21], 4) * 3.0).unwrap();
        let (w, b) = (rand_tensor(&[21], 5), rand_tensor(&[21], 6));
        let want = naive_layer_norm(&x, &w, &b, 1e-12);
        assert!(max_diff(&layer_norm(&x, &w, &b, 1e-12).unwrap(), &want) < 1e-5);
    }

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let inputs = [
            rand_tensor(&[3, 11], 4),
            rand_tensor(&[11], 5),
            rand_tensor(&[11], 6),
        ];
        check_grads(
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap(),
            &inputs,
            &[0, 1, 2],
        );
    }

    #[test]
    fn add_layer_norm_matches_naive_and_finite_differences() {
        let (x, r) = (rand_tensor(&[2, 3, 19], 30), rand_tensor(&[2, 3, 19], 31));
        let (w, b) = (rand_tensor(&[19], 32), rand_tensor(&[19], 33));
        let want = naive_layer_norm(&(&x + &r).unwrap(), &w, &b, 1e-12);
        assert!(max_diff(&add_layer_norm(&x, &r, &w, &b, 1e-12).unwrap(), &want) < 1e-5);
        let inputs = [
            rand_tensor(&[3, 11], 34),
            rand_tensor(&[3, 11], 35),
            w.narrow(0, 0, 11).unwrap(),
            b.narrow(0, 0, 11).unwrap(),
        ];
        check_grads(
            |t| add_layer_norm(&t[0], &t[1], &t[2], &t[3], 1e-5).unwrap(),
            &inputs,
            &[0, 1, 2, 3],
        );
    }

    /// Gradients of `Σ r ⊙ f(inputs)` for each input.
    fn grads_of(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> Vec<Tensor> {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let tracked: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&tracked);
        let r = rand_tensor(y.dims(), 8);
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        vars.iter()
            .map(|v| grads.get(v.as_tensor()).unwrap().clone())
            .collect()
    }

    #[test]
    fn big_inputs_split_over_tasks_match_candle_autograd() {
        // 300 rows of 100: several parallel tasks, so per-task offsets and partial sums
        // (weight and bias gradients) are exercised; candle's own autograd is the reference.
        let inputs = [
            rand_tensor(&[300, 100], 40),
            rand_tensor(&[300, 100], 41),
            rand_tensor(&[100], 42),
            rand_tensor(&[100], 43),
            rand_tensor(&[70, 100], 44),
            rand_tensor(&[70], 45),
        ];
        let ours = |t: &[Tensor]| {
            let h = add_layer_norm(&t[0], &t[1], &t[2], &t[3], 1e-5).unwrap();
            let h = layer_norm(&gelu_erf(&h).unwrap(), &t[2], &t[3], 1e-5).unwrap();
            softmax_last(&linear(&h, &t[4], &t[5]).unwrap()).unwrap()
        };
        let naive = |t: &[Tensor]| {
            let h = naive_layer_norm(&(&t[0] + &t[1]).unwrap(), &t[2], &t[3], 1e-5);
            let h = naive_layer_norm(&h.gelu_erf().unwrap(), &t[2], &t[3], 1e-5);
            let y = h
                .matmul(&t[4].t().unwrap())
                .unwrap()
                .broadcast_add(&t[5])
                .unwrap();
            candle_nn::ops::softmax(&y, D::Minus1).unwrap()
        };
        assert!(max_diff(&ours(&inputs), &naive(&inputs)) < 1e-5);
        for (i, (a, b)) in grads_of(ours, &inputs)
            .iter()
            .zip(grads_of(naive, &inputs))
            .enumerate()
        {
            let scale = flat(&b).iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(max_diff(a, &b) <= 1e-4 * scale.max(1.0), "input {i}");
        }
    }

    #[test]
    fn softmax_matches_candle_and_finite_differences() {
        let x = (rand_tensor(&[2, 3, 9], 8) * 4.0).unwrap();
        let want = candle_nn::ops::softmax(&x, D::Minus1).unwrap();
        assert!(max_diff(&softmax_last(&x).unwrap(), &want) < 1e-6);
        check_grads(|t| softmax_last(&t[0]).unwrap(), &[x], &[0]);
    }

    #[test]
    fn wide_element_wise_path_matches_the_baseline_bit_for_bit() {
        // Several rayon tasks, values across erf's clamp and exp's underflow.
        let x: Vec<f32> = (0..40_000)
            .map(|i| (i as f32 - 20_000.0) / 2_000.0)
            .collect();
        let wide = map2(&x, &x, |_, x, dy| dy * gelu_grad(x) + gelu(x));
        let mut base = Vec::with_capacity(x.len());
        map2_loop(
            0,
            base.spare_capacity_mut(),
            &x,
            &x,
            &|_, x: f32, dy: f32| dy * gelu_grad(x) + gelu(x),
        );
        // SAFETY: map2_loop wrote every value of the capacity.
        unsafe { base.set_len(x.len()) };
        assert!(wide
            .iter()
            .zip(&base)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn gelu_matches_candle_and_finite_differences() {
        let x = (rand_tensor(&[4, 10], 9) * 4.0).unwrap();
        let want = x.gelu_erf().unwrap();
        assert!(max_diff(&gelu_erf(&x).unwrap(), &want) < 1e-6);
        check_grads(|t| gelu_erf(&t[0]).unwrap(), &[x], &[0]);
    }

    #[test]
    fn dropout_keeps_the_expected_share_reproducibly() {
        let (p, n) = (0.3f32, 200_000);
        let x = Tensor::ones(n, DType::F32, &Device::Cpu).unwrap();
        let y = flat(&dropout(&x, p, 42).unwrap());
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f32 / n as f32;
        assert!((dropped - p).abs() < 0.01, "dropped {dropped}");
        assert!(y
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / (1.0 - p)).abs() < 1e-6));
        assert_eq!(
            y,
            flat(&dropout(&x, p, 42).unwrap()),
            "same seed, same mask"
        );
        assert_ne!(y, flat(&dropout(&x, p, 43).unwrap()), "new seed, new mask");
        assert_eq!(flat(&dropout(&x, 0.0, 1).unwrap()), flat(&x));
        // The backward pass regenerates the very same mask, in every parallel task.
        let v = Var::from_tensor(&x).unwrap();
        let grads = dropout(v.as_tensor(), p, 42)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(flat(grads.get(v.as_tensor()).unwrap()), y);
    }

    #[test]
    fn dropout_backward_reuses_the_mask() {
        let x = rand_tensor(&[4, 16], 10);
        check_grads(|t| dropout(&t[0], 0.5, 7).unwrap(), &[x], &[0]);
    }

    /// Attention from candle ops: split heads, q kᵀ / √d + mask, softmax, · v, merge.
    fn naive_attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        heads: usize,
    ) -> (Tensor, Tensor) {
        let (b, s, h) = q.dims3().unwrap();
        let split = |t: &Tensor| {
            t.reshape((b, s, heads, h / heads))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (split(q), split(k), split(v));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() / ((h / heads) as f64).sqrt()).unwrap();
        let scores = scores
            .broadcast_add(&mask.reshape((b, 1, 1, s)).unwrap())
            .unwrap();
        let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        let ctx = probs
            .matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, s, h))
            .unwrap();
        (probs, ctx)
    }

    fn attention_inputs() -> [Tensor; 4] {
        let (b, s, h) = (2, 5, 8);
        let mut mask = vec![0f32; b * s];
        mask[b * s - 1] = -1e9; // the second sequence's last key is padding
        [
            rand_tensor(&[b, s, h], 11),
            rand_tensor(&[b, s, h], 12),
            rand_tensor(&[b, s, h], 13),
            Tensor::from_vec(mask, (b, s), &Device::Cpu).unwrap(),
        ]
    }

    #[test]
    fn attention_matches_naive() {
        let [q, k, v, mask] = attention_inputs();
        let (want_p, want_ctx) = naive_attention(&q, &k, &v, &mask, 2);
        let probs = attention_probs(&q, &k, &mask, 2).unwrap();
        assert!(max_diff(&probs, &want_p) < 1e-6);
        let masked = probs.narrow(0, 1, 1).unwrap().narrow(3, 4, 1).unwrap();
        assert_eq!(flat(&masked), vec![0.0; 2 * 5], "padding gets exactly 0");
        let ctx = attention_context(&probs, &v, 2).unwrap();
        assert!(max_diff(&ctx, &want_ctx) < 1e-6);
    }

    #[test]
    fn attention_backward_matches_finite_differences() {
        let [q, k, v, mask] = attention_inputs();
        let inputs = [q, k, v, mask];
        check_grads(
            |t| {
                let p = attention_probs(&t[0], &t[1], &t[3], 2).unwrap();
                attention_context(&p, &t[2], 2).unwrap()
            },
            &inputs,
            &[0, 1, 2],
        );
        // The probabilities themselves are an output too (attention distillation).
        check_grads(
            |t| attention_probs(&t[0], &t[1], &t[2], 2).unwrap(),
            &[inputs[0].clone(), inputs[1].clone(), inputs[3].clone()],
            &[0, 1],
        );
    }

    #[test]
    fn gradients_flow_through_a_chain_of_kernels() {
        let x = Var::from_tensor(&rand_tensor(&[2, 3, 4], 14)).unwrap();
        let (w, b) = (rand_tensor(&[4, 4], 15), rand_tensor(&[4], 16));
        let h = linear(x.as_tensor(), &w, &b).unwrap();
        let y = layer_norm(&gelu_erf(&h).unwrap(), &b, &b, 1e-5).unwrap();
        let y = dropout(&softmax_last(&y).unwrap(), 0.1, 3).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).expect("x gets a gradient");
        assert!(flat(g).iter().any(|v| *v != 0.0));
    }
}
