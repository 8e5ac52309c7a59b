//! Vectorisable scalar maths: 8-way sums and dot products, column sums, branch-free `exp`, `erf`.

use super::storage::task_len;
use rayon::prelude::*;

/// `Σ f(x_i, y_i)` with 8 independent accumulators, which the compiler maps to SIMD adds
/// (a plain fold must keep the sequential order and stays scalar).
#[inline(always)]
pub(super) fn sum_zip(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
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

#[inline(always)]
pub(super) fn sum(x: &[f32]) -> f32 {
    sum_zip(x, x, |a, _| a)
}

pub(super) fn dot(x: &[f32], y: &[f32]) -> f32 {
    sum_zip(x, y, |a, b| a * b)
}

/// `a += b`, element-wise (reduces per-task partial sums).
pub(super) fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    for (a, b) in a.iter_mut().zip(&b) {
        *a += b;
    }
    a
}

/// Sums of each column of a row-major `[rows, cols]` matrix (a bias gradient).
pub(super) fn column_sums(x: &[f32], cols: usize) -> Vec<f32> {
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

#[inline(always)]
pub(super) fn max(x: &[f32]) -> f32 {
    x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// `e^x` within ~2 ulp (Cephes' polynomial), branch-free so loops over it vectorise;
/// exactly 0 below `e^-87`, where f32 turns denormal (softmax masks rely on that).
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
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

/// [`exp`] on 16 lanes: the same operations in the same order (no fused multiply-add),
/// so each lane gives exactly the scalar's result.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn exp16(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = _mm512_set1_ps;
    let (add, mul, sub) = (_mm512_add_ps, _mm512_mul_ps, _mm512_sub_ps);
    let xc = _mm512_min_ps(_mm512_max_ps(x, c(-87.0)), c(88.0));
    let n = sub(
        add(mul(xc, c(std::f32::consts::LOG2_E)), c(12_582_912.0)),
        c(12_582_912.0),
    );
    let r = sub(sub(xc, mul(n, c(0.693_359_4))), mul(n, c(-2.121_944_4e-4)));
    let mut p = c(1.987_569_1e-4);
    for k in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = add(mul(p, r), c(k));
    }
    let e_r = add(add(mul(mul(p, r), r), r), c(1.0));
    let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(-87.0));
    _mm512_maskz_mul_ps(!below, e_r, _mm512_castsi512_ps(bits))
}

/// `erf(x)` within ~1e-7 (Eigen's rational approximation on [-4, 4]; beyond, erf is ±1
/// in f32), branch-free so loops over it vectorise.
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
