//! Matrix products: the gemm crate on strided views, and `small_m_linear` (a few rows against a
//! row-major weight, AVX-512 or portable).

use super::may_fork;
use super::storage::Mat;
use gemm::Parallelism;

/// Up to this many rows, the linear layer's forward pass uses [`small_m_linear`]: the gemm
/// crate packs the whole weight matrix at every call, which for a sentence or two costs
/// more than the product itself (62% of batch-1 time in `perf`).
pub(crate) const SMALL_M_ROWS: usize = 64;

/// `y[r, o] += x[r, :] · w[o, :]` for a few rows of `x` (`rows × inp`) against the row-major
/// weight `w` (`out × inp`), reading the weights in place: one pass over `w`, each weight
/// row used for every input row while it is in L1.
pub(super) fn small_m_linear(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    rows: usize,
    inp: usize,
    out: usize,
) {
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

/// Products smaller than this many multiply-adds run on the calling thread: waking the
/// other threads costs more than they save (batch-1 inference was slower with 2 threads
/// than with 1).
const PARALLEL_MIN_MACS: usize = 1 << 22;

/// `dst = scale · a b`, or `dst += scale · a b` when `accumulate`; `dst` is row-major with
/// row stride `dst_rs`. Multi-threaded when `parallel` (only for big products: the
/// per-head ones run inside rayon tasks already).
pub(super) fn gemm(
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
pub(super) fn gemm_new(a: Mat, b: Mat, scale: f32, parallel: bool) -> Vec<f32> {
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
pub(super) fn repeat_rows(row: &[f32], rows: usize) -> Vec<f32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::linear_f64;

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
            let want = linear_f64(&x, &w, &vec![0.5; out], inp);
            for (k, (got, want)) in y.iter().zip(want).enumerate() {
                assert!(
                    (*got as f64 - want).abs() < 1e-4,
                    "{rows}x{inp}x{out} [{k}]: {got} vs {want}"
                );
            }
        }
    }
}
