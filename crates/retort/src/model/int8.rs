//! Int8 linear layers for inference: weights quantised per output channel, activations
//! quantised per row at run time, integer dot products.
//!
//! Scheme (symmetric, no zero points):
//! - weight row `o` (one output channel): `w[o][i] ≈ q[o][i] · s_w[o]`, `s_w[o] = max|w[o]| / 127`;
//! - input row `r`: `x[r][i] ≈ p[r][i] · s_x[r]`, `s_x[r] = max|x[r]| / 127`, computed per call;
//! - `y[r][o] = s_x[r] · s_w[o] · Σ_i p[r][i] q[o][i] + b[o]`, the sum in exact i32 arithmetic.
//!
//! Why per row and per channel: BERT's activations vary widely from token to token and its
//! weights from channel to channel; one scale per tensor loses about a point of SST-2
//! accuracy, per row / per channel keeps the error at the level of the rounding.
//!
//! The dot products use AVX-512 VNNI (`vpdpbusd`: u8 × i8, four products per 32-bit lane)
//! when the CPU has it, with a portable loop otherwise; both give the same integers. The
//! portable loop is slow, so a model's `Linear` uses it only through tests: without VNNI it
//! runs the dequantised weights on the f32 kernel ([`kernel_available`]).
//! `vpdpbusd` wants an unsigned operand, so activations are stored as `p + 128` and the
//! extra `128 · Σ_i q[o][i]` is subtracted afterwards (precomputed per channel).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Output channels per packed group: one 512-bit register of i32 accumulators.
const GROUP: usize = 16;
/// Inner-dimension values per 32-bit lane of `vpdpbusd`.
const QUAD: usize = 4;
/// Input rows per parallel task.
const ROWS_PER_TASK: usize = 32;

/// The int8 weights of one linear map `[out, in]`, with per-channel scales.
#[derive(Debug)]
pub struct Int8Weight {
    out_dim: usize,
    in_dim: usize,
    /// `[out, in]` row-major, as stored in a quantised checkpoint.
    q: Vec<i8>,
    /// `[out]` per-channel scales.
    scales: Vec<f32>,
    /// `[out_pad / 16][in_pad / 4][16][4]`: the layout the VNNI kernel loads 64 bytes at a time.
    packed: Vec<i8>,
    /// `[out_pad]`: `128 · Σ_i q[o][i]`, the correction for the unsigned activations.
    offset: Vec<i32>,
}

fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// The scale of symmetric int8 quantisation of `values`: `max|v| / 127` (1 for all zeros).
fn scale_of(amax: f32) -> f32 {
    if amax > 0.0 {
        amax / 127.0
    } else {
        1.0
    }
}

/// `v / scale` rounded to the nearest integer (ties to even, as the CPU's conversion does)
/// within ±127.
fn quantize_value(v: f32, inv_scale: f32) -> i32 {
    (v * inv_scale).clamp(-127.0, 127.0).round_ties_even() as i32
}

/// Symmetric int8 quantisation of `values` into `out`; returns the scale.
fn quantize_row(values: &[f32], out: &mut [i8]) -> f32 {
    let scale = scale_of(values.iter().fold(0f32, |m, v| m.max(v.abs())));
    for (o, &v) in out.iter_mut().zip(values) {
        *o = quantize_value(v, 1.0 / scale) as i8;
    }
    scale
}

/// [`quantize_row`] stored as unsigned `p + 128`, as the dot-product kernel wants it.
fn quantize_row_unsigned(values: &[f32], out: &mut [u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if vnni_available() {
        // SAFETY: the CPU has AVX-512F (checked above).
        return unsafe { vnni::quantize_row_unsigned(values, out) };
    }
    let scale = scale_of(values.iter().fold(0f32, |m, v| m.max(v.abs())));
    for (o, &v) in out.iter_mut().zip(values) {
        *o = (quantize_value(v, 1.0 / scale) + 128) as u8;
    }
    scale
}

impl Int8Weight {
    /// Quantises an f32 weight `[out, in]` (row-major).
    pub fn quantize(weight: &[f32], out_dim: usize, in_dim: usize) -> Result<Self> {
        check_len(weight.len(), out_dim, in_dim)?;
        let mut q = vec![0i8; weight.len()];
        let scales = weight
            .chunks(in_dim)
            .zip(q.chunks_mut(in_dim))
            .map(|(w, q)| quantize_row(w, q))
            .collect();
        Self::from_parts(q, scales, out_dim, in_dim)
    }

    /// Wraps stored int8 weights `[out, in]` and their `[out]` scales.
    pub fn from_parts(q: Vec<i8>, scales: Vec<f32>, out_dim: usize, in_dim: usize) -> Result<Self> {
        check_len(q.len(), out_dim, in_dim)?;
        if scales.len() != out_dim || scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(Error::Invalid(format!(
                "int8 weight [{out_dim}, {in_dim}] needs {out_dim} positive finite scales, got {}",
                scales.len()
            )));
        }
        let (out_pad, in_pad) = (round_up(out_dim, GROUP), round_up(in_dim, QUAD));
        let mut packed = vec![0i8; out_pad * in_pad];
        let mut offset = vec![0i32; out_pad];
        for o in 0..out_dim {
            let row = &q[o * in_dim..(o + 1) * in_dim];
            offset[o] = 128 * row.iter().map(|&v| v as i32).sum::<i32>();
            let (g, c) = (o / GROUP, o % GROUP);
            for (i, &v) in row.iter().enumerate() {
                let (k, j) = (i / QUAD, i % QUAD);
                packed[((g * (in_pad / QUAD) + k) * GROUP + c) * QUAD + j] = v;
            }
        }
        Ok(Self {
            out_dim,
            in_dim,
            q,
            scales,
            packed,
            offset,
        })
    }

    /// `[out, in]`.
    pub fn dims(&self) -> (usize, usize) {
        (self.out_dim, self.in_dim)
    }

    /// The stored integers `[out, in]` and per-channel scales.
    pub fn parts(&self) -> (&[i8], &[f32]) {
        (&self.q, &self.scales)
    }

    /// The f32 weight these integers stand for.
    pub fn dequantize(&self) -> Vec<f32> {
        self.q
            .chunks(self.in_dim)
            .zip(&self.scales)
            .flat_map(|(row, s)| row.iter().map(move |&v| v as f32 * s))
            .collect()
    }

    /// `x Wᵀ + b` for `rows` rows of `x` (`[rows, in]` row-major).
    pub fn forward(&self, x: &[f32], bias: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.in_dim;
        let mut y = vec![0f32; rows * self.out_dim];
        x.par_chunks(ROWS_PER_TASK * self.in_dim)
            .zip(y.par_chunks_mut(ROWS_PER_TASK * self.out_dim))
            .for_each(|(x, y)| self.forward_rows(x, bias, y));
        y
    }

    /// One task: quantise its rows, integer products, scale back.
    fn forward_rows(&self, x: &[f32], bias: &[f32], y: &mut [f32]) {
        let rows = x.len() / self.in_dim;
        let in_pad = round_up(self.in_dim, QUAD);
        let out_pad = round_up(self.out_dim, GROUP);
        // Unsigned activations `p + 128`; the padding is 128, i.e. zero.
        let mut xq = vec![128u8; rows * in_pad];
        let x_scales: Vec<f32> = x
            .chunks(self.in_dim)
            .zip(xq.chunks_mut(in_pad))
            .map(|(x, xq)| quantize_row_unsigned(x, xq))
            .collect();
        let mut acc = vec![0i32; rows * out_pad];
        dot_products(&xq, self, in_pad, out_pad, &mut acc);
        for (r, (y, acc)) in y
            .chunks_mut(self.out_dim)
            .zip(acc.chunks(out_pad))
            .enumerate()
        {
            for o in 0..self.out_dim {
                let dot = (acc[o] - self.offset[o]) as f32;
                y[o] = dot * x_scales[r] * self.scales[o] + bias[o];
            }
        }
    }
}

fn check_len(len: usize, out_dim: usize, in_dim: usize) -> Result<()> {
    if len != out_dim * in_dim || in_dim == 0 {
        return Err(Error::Invalid(format!(
            "int8 weight: {len} values do not make a [{out_dim}, {in_dim}] matrix"
        )));
    }
    Ok(())
}

/// `acc[r][o] = Σ_i xq[r][i] · w[o][i]` for the unsigned activations `xq` (`[rows, in_pad]`);
/// `acc` is `[rows, out_pad]`.
fn dot_products(xq: &[u8], w: &Int8Weight, in_pad: usize, out_pad: usize, acc: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if vnni_available() {
        // SAFETY: the CPU has the features the function is compiled for (checked above).
        unsafe { vnni::dot_products(xq, &w.packed, in_pad, out_pad, acc) };
        return;
    }
    dot_products_portable(xq, w, in_pad, out_pad, acc);
}

/// The same integers as the VNNI kernel, from the row-major weights: each output is one
/// contiguous dot product, which the compiler vectorises.
fn dot_products_portable(
    xq: &[u8],
    w: &Int8Weight,
    in_pad: usize,
    out_pad: usize,
    acc: &mut [i32],
) {
    for (x, acc) in xq.chunks(in_pad).zip(acc.chunks_mut(out_pad)) {
        let x = &x[..w.in_dim];
        for (a, row) in acc.iter_mut().zip(w.q.chunks(w.in_dim)) {
            *a = x.iter().zip(row).map(|(&x, &w)| x as i32 * w as i32).sum();
        }
    }
}

/// Whether int8 maps are worth running as int8 here: only with the VNNI kernel (the
/// portable loop is correct but about 20× slower than the f32 kernel).
pub fn kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return vnni_available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the VNNI kernel can run here (`RETORT_NO_VNNI=1` says no, to measure or test the
/// fallbacks).
#[cfg(target_arch = "x86_64")]
fn vnni_available() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        !std::env::var("RETORT_NO_VNNI").is_ok_and(|v| v == "1")
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vnni")
    })
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{GROUP, QUAD};
    use std::arch::x86_64::*;

    /// [`super::quantize_row_unsigned`], 16 values at a time (same rounding, same bytes).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn quantize_row_unsigned(x: &[f32], out: &mut [u8]) -> f32 {
        assert!(out.len() >= x.len());
        let chunks = x.chunks_exact(16);
        let tail = chunks.remainder();
        let mut m = _mm512_setzero_ps();
        for c in chunks.clone() {
            m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(c.as_ptr())));
        }
        let amax = tail
            .iter()
            .fold(_mm512_reduce_max_ps(m), |a, v| a.max(v.abs()));
        let scale = super::scale_of(amax);
        let inv = 1.0 / scale;
        let (vinv, lo, hi) = (
            _mm512_set1_ps(inv),
            _mm512_set1_ps(-127.0),
            _mm512_set1_ps(127.0),
        );
        let offset = _mm512_set1_epi32(128);
        for (i, c) in chunks.enumerate() {
            let v = _mm512_mul_ps(_mm512_loadu_ps(c.as_ptr()), vinv);
            let v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            // Conversion rounds to nearest, ties to even (the default MXCSR mode).
            let q = _mm512_add_epi32(_mm512_cvtps_epi32(v), offset);
            let bytes = _mm512_cvtepi32_epi8(q); // values are in 1..=255: no saturation needed
            _mm_storeu_si128(out.as_mut_ptr().add(i * 16) as *mut __m128i, bytes);
        }
        let done = x.len() - tail.len();
        for (o, &v) in out[done..].iter_mut().zip(tail) {
            *o = (super::quantize_value(v, inv) + 128) as u8;
        }
        scale
    }

    /// Rows and channel groups per register tile: 4 × 4 accumulators of 16 lanes.
    const TILE_ROWS: usize = 4;
    const TILE_GROUPS: usize = 4;

    /// See [`super::dot_products`]. Tiles of up to 4 rows × 64 channels keep 16 accumulators
    /// in registers; each 64-byte weight load feeds up to 4 `vpdpbusd`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn dot_products(
        xq: &[u8],
        packed: &[i8],
        in_pad: usize,
        out_pad: usize,
        acc: &mut [i32],
    ) {
        let rows = xq.len() / in_pad;
        let groups = out_pad / GROUP;
        for g0 in (0..groups).step_by(TILE_GROUPS) {
            let ng = TILE_GROUPS.min(groups - g0);
            for r0 in (0..rows).step_by(TILE_ROWS) {
                let nr = TILE_ROWS.min(rows - r0);
                let t = Tile {
                    xq,
                    packed,
                    in_pad,
                    out_pad,
                    r0,
                    g0,
                };
                if (nr, ng) == (TILE_ROWS, TILE_GROUPS) {
                    t.run::<TILE_ROWS, TILE_GROUPS>(acc);
                    continue;
                }
                // Edges: one row or one group at a time.
                for r in 0..nr {
                    for g in 0..ng {
                        t.at_row(r).at_group(g).run::<1, 1>(acc);
                    }
                }
            }
        }
    }

    /// A block of `R` rows from `r0` and `G` channel groups from `g0`.
    #[derive(Clone, Copy)]
    struct Tile<'a> {
        xq: &'a [u8],
        packed: &'a [i8],
        in_pad: usize,
        out_pad: usize,
        r0: usize,
        g0: usize,
    }

    impl Tile<'_> {
        fn at_row(self, r: usize) -> Self {
            Self {
                r0: self.r0 + r,
                ..self
            }
        }

        fn at_group(self, g: usize) -> Self {
            Self {
                g0: self.g0 + g,
                ..self
            }
        }

        #[target_feature(enable = "avx512f,avx512vnni")]
        unsafe fn run<const R: usize, const G: usize>(self, acc: &mut [i32]) {
            let quads = self.in_pad / QUAD;
            assert!((self.r0 + R) * self.in_pad <= self.xq.len());
            assert!((self.g0 + G) * quads * GROUP * QUAD <= self.packed.len());
            assert!((self.r0 + R - 1) * self.out_pad + (self.g0 + G) * GROUP <= acc.len());
            let mut sums = [[_mm512_setzero_si512(); G]; R];
            let x = self.xq.as_ptr().add(self.r0 * self.in_pad);
            let w = self.packed.as_ptr().add(self.g0 * quads * GROUP * QUAD);
            for k in 0..quads {
                let mut wv = [_mm512_setzero_si512(); G];
                for (g, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(w.add((g * quads + k) * GROUP * QUAD) as *const _);
                }
                for (r, row) in sums.iter_mut().enumerate() {
                    let four = (x.add(r * self.in_pad + k * QUAD) as *const i32).read_unaligned();
                    let xv = _mm512_set1_epi32(four);
                    for (s, v) in row.iter_mut().zip(&wv) {
                        *s = _mm512_dpbusd_epi32(*s, xv, *v);
                    }
                }
            }
            for (r, row) in sums.iter().enumerate() {
                for (g, s) in row.iter().enumerate() {
                    let at = (self.r0 + r) * self.out_pad + (self.g0 + g) * GROUP;
                    _mm512_storeu_si512(acc.as_mut_ptr().add(at) as *mut _, *s);
                }
            }
        }
    }
}

/// The int8 linear map as a candle op over the last dimension of `x` (inference only: it
/// records no backward pass).
#[derive(Debug, Clone)]
pub struct Int8Linear {
    pub weight: Arc<Int8Weight>,
    pub bias: Vec<f32>,
}

impl Int8Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.contiguous()?.apply_op1_no_bwd(self)?)
    }
}

impl CustomOp1 for Int8Linear {
    fn name(&self) -> &'static str {
        "int8-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(v), Some((start, end))) = (s, l.contiguous_offsets()) else {
            candle_core::bail!("int8-linear: expects contiguous f32 input")
        };
        let dims = l.shape().dims();
        let (out_dim, in_dim) = self.weight.dims();
        if dims.last() != Some(&in_dim) {
            candle_core::bail!("int8-linear: input {dims:?} does not end in {in_dim}")
        }
        let y = self.weight.forward(&v[start..end], &self.bias);
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("checked above") = out_dim;
        Ok((CpuStorage::F32(y), Shape::from(shape)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    fn f32_linear(x: &[f32], w: &[f32], b: &[f32], in_dim: usize) -> Vec<f32> {
        x.chunks(in_dim)
            .flat_map(|x| {
                w.chunks(in_dim)
                    .zip(b)
                    .map(|(w, b)| x.iter().zip(w).map(|(x, w)| x * w).sum::<f32>() + b)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Odd sizes exercise the padding of rows, channels and the inner dimension.
    const SHAPES: [(usize, usize, usize); 3] = [(7, 33, 50), (70, 64, 384), (5, 3, 6)];

    #[test]
    fn close_to_the_f32_linear() {
        for (rows, out_dim, in_dim) in SHAPES {
            let (w, x, b) = (
                random(out_dim * in_dim, 1),
                random(rows * in_dim, 2),
                random(out_dim, 3),
            );
            let q = Int8Weight::quantize(&w, out_dim, in_dim).unwrap();
            let exact = f32_linear(&x, &w, &b, in_dim);
            let got = q.forward(&x, &b);
            let scale = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = exact
                .iter()
                .zip(&got)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // Two roundings of ≤ 1/254 relative each, summed over `in` terms of random sign.
            assert!(
                err <= 0.02 * scale,
                "{rows}x{out_dim}x{in_dim}: {err} vs {scale}"
            );
        }
    }

    #[test]
    fn kernel_and_portable_loop_give_the_same_integers() {
        for (rows, out_dim, in_dim) in SHAPES {
            let q = Int8Weight::quantize(&random(out_dim * in_dim, 4), out_dim, in_dim).unwrap();
            let (in_pad, out_pad) = (round_up(in_dim, QUAD), round_up(out_dim, GROUP));
            let mut rng = rand::rngs::StdRng::seed_from_u64(5);
            let xq: Vec<u8> = (0..rows * in_pad).map(|_| rng.random()).collect();
            let mut a = vec![0; rows * out_pad];
            let mut b = vec![0; rows * out_pad];
            dot_products(&xq, &q, in_pad, out_pad, &mut a);
            dot_products_portable(&xq, &q, in_pad, out_pad, &mut b);
            assert_eq!(a, b);
            // And both equal the plain product with the unpacked weights.
            for r in 0..rows {
                for o in 0..out_dim {
                    let w = &q.q[o * in_dim..][..in_dim];
                    let x = &xq[r * in_pad..][..in_dim];
                    let want: i32 = x.iter().zip(w).map(|(&x, &w)| x as i32 * w as i32).sum();
                    assert_eq!(a[r * out_pad + o], want);
                }
            }
        }
    }

    #[test]
    fn vector_and_scalar_activation_quantisation_agree() {
        for n in [1, 16, 50, 384] {
            let x = random(n, 7);
            let mut fast = vec![0u8; n];
            let s = quantize_row_unsigned(&x, &mut fast);
            let mut signed = vec![0i8; n];
            assert_eq!(quantize_row(&x, &mut signed), s);
            let slow: Vec<u8> = signed.iter().map(|&p| (p as i32 + 128) as u8).collect();
            assert_eq!(fast, slow, "n = {n}");
        }
        let mut zeros = vec![0u8; 20];
        assert_eq!(quantize_row_unsigned(&[0.0; 20], &mut zeros), 1.0);
        assert!(zeros.iter().all(|&b| b == 128));
    }

    #[test]
    fn stored_parts_round_trip_and_bad_parts_are_errors() {
        let w = random(6 * 5, 6);
        let q = Int8Weight::quantize(&w, 6, 5).unwrap();
        let (ints, scales) = q.parts();
        let again = Int8Weight::from_parts(ints.to_vec(), scales.to_vec(), 6, 5).unwrap();
        assert_eq!(again.dequantize(), q.dequantize());
        for (a, b) in w.iter().zip(q.dequantize()) {
            assert!((a - b).abs() <= 1.0 / 254.0 + 1e-6);
        }
        assert!(Int8Weight::from_parts(vec![0; 30], vec![1.0; 5], 6, 5).is_err());
        assert!(Int8Weight::from_parts(vec![0; 29], vec![1.0; 6], 6, 5).is_err());
    }
}
