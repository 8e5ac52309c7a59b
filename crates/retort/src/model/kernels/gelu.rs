//! GELU (exact, erf form), and the bias + GELU epilogue of the fused feed-forward linear map.

use super::elementwise::map2;
use super::math::{erf, exp};
use super::storage::{task_len, tensor, values, with_values};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// GELU with the exact (erf) formulation, as BERT uses.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluOp)
}

/// `x[r, j] = gelu(x[r, j] + bias[j])` over rows of `bias.len()`, split over the cores: the
/// epilogue of the fused feed-forward linear map, [`linear_gelu`](super::linear_gelu).
/// Compiled for AVX-512 and AVX2 as `elementwise::map2_chunk` is.
pub(super) fn bias_gelu_in_place(x: &mut [f32], bias: &[f32]) {
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
pub(super) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * INV_SQRT_2))
}

/// `d/dx [x Φ(x)] = Φ(x) + x φ(x)`.
#[inline(always)]
pub(super) fn gelu_grad(x: f32) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{check_grads, max_diff, rand_tensor};

    #[test]
    fn gelu_matches_candle_and_finite_differences() {
        let x = (rand_tensor(&[4, 10], 9) * 4.0).unwrap();
        let want = x.gelu_erf().unwrap();
        assert!(max_diff(&gelu_erf(&x).unwrap(), &want) < 1e-6);
        check_grads(|t| gelu_erf(&t[0]).unwrap(), &[x], &[0]);
    }
}
