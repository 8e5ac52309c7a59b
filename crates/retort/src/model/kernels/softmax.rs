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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_in_place_avx512(row: &mut [f32]) {
    softmax_in_place_loop(row)
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
}
