//! `map2`, the element-wise loop under GELU, dropout and `add_scaled`: split over the cores,
//! compiled for the widest vector unit the CPU has.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Values per rayon task for element-wise work.
const ELEMENTWISE_TASK: usize = 1 << 14;

/// `out[i] = f(a[i], b[i])`, split over the cores. `i` is the global index. The output is
/// written once, not zero-filled first.
pub(super) fn map2(a: &[f32], b: &[f32], f: impl Fn(usize, f32, f32) -> f32 + Sync) -> Vec<f32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::gelu::{gelu, gelu_grad};

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
}
