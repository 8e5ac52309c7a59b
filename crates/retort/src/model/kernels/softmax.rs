//! Softmax over the last dimension; its per-row forward and backward steps serve attention too.

use super::math::{dot, exp, max, sum};
use super::storage::{rows_cols, task_len, tensor, values, with_values};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Softmax over the last dimension.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxOp)
}

struct SoftmaxOp;

/// Softmax of one row, in place. Compiled again with AVX-512 and picked at run time, as
/// `elementwise::map2_chunk` is (the crate's baseline is SSE2: 4 lanes).
pub(super) fn softmax_in_place(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { softmax_in_place_avx512(row) };
        }
    }
    softmax_in_place_loop(row)
}

/// [`softmax_in_place_loop`] in AVX-512 intrinsics: a row of attention scores is short
/// (8–128 values), and the compiled loop spent more of a row in its prologues, scalar
/// remainders and reductions than in the 16-wide arithmetic (2.6 ns per value). The same
/// `exp` (see `math::exp16`); the max and the sum reduce over 16 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_in_place_avx512(row: &mut [f32]) {
    use super::math::exp16;
    use std::arch::x86_64::*;
    let (n, p) = (row.len(), row.as_mut_ptr());
    let body = n / 16 * 16;
    let tail: __mmask16 = ((1u32 << (n - body)) - 1) as u16;
    // SAFETY (every load and store below): offsets below `body` are whole vectors of the
    // row, and the tail is masked to its `n - body` values.
    unsafe {
        let mut mv = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..body).step_by(16) {
            mv = _mm512_max_ps(mv, _mm512_loadu_ps(p.add(i)));
        }
        let t = _mm512_mask_loadu_ps(mv, tail, p.add(body));
        let m = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(mv, t)));
        let mut sv = _mm512_setzero_ps();
        for i in (0..body).step_by(16) {
            let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), m));
            _mm512_storeu_ps(p.add(i), e);
            sv = _mm512_add_ps(sv, e);
        }
        let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, p.add(body)), m));
        _mm512_mask_storeu_ps(p.add(body), tail, e);
        sv = _mm512_mask_add_ps(sv, tail, sv, e);
        let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sv));
        for i in (0..body).step_by(16) {
            _mm512_storeu_ps(p.add(i), _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), inv));
        }
        let t = _mm512_maskz_loadu_ps(tail, p.add(body));
        _mm512_mask_storeu_ps(p.add(body), tail, _mm512_mul_ps(t, inv));
    }
}

#[inline(always)]
fn softmax_in_place_loop(row: &mut [f32]) {
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
pub(super) fn softmax_bwd_row(dx: &mut [f32], y: &[f32], dy: &[f32], scale: f32) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{check_grads, max_diff, rand_tensor};
    use candle_core::D;

    #[test]
    fn softmax_matches_candle_and_finite_differences() {
        let x = (rand_tensor(&[2, 3, 9], 8) * 4.0).unwrap();
        let want = candle_nn::ops::softmax(&x, D::Minus1).unwrap();
        assert!(max_diff(&softmax_last(&x).unwrap(), &want) < 1e-6);
        check_grads(|t| softmax_last(&t[0]).unwrap(), &[x], &[0]);
    }

    #[test]
    fn the_avx512_row_matches_the_portable_loop() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        // Lengths below, at and past whole vectors; scores spread as attention's are, and
        // a masked key (−1e9) whose probability must be exactly 0.
        for n in [1usize, 5, 16, 17, 31, 128, 200] {
            let mut fast: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
                .collect();
            if n > 1 {
                fast[n / 2] = -1e9;
            }
            let mut slow = fast.clone();
            softmax_in_place_loop(&mut slow);
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { softmax_in_place_avx512(&mut fast) };
            if n > 1 {
                assert_eq!(fast[n / 2], 0.0, "{n}");
            }
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-6 * b.max(1e-3), "{n}: {a} vs {b}");
            }
            assert!((fast.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{n}");
        }
    }
}
