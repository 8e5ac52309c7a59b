//! Inverted dropout with a hash-based mask, regenerated (not stored) for the backward pass.

use super::elementwise::map2;
use super::storage::{tensor, values, with_values};
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Inverted dropout: zeroes each value with probability `p` and scales the rest by
/// `1 / (1 - p)`. The mask is a pure function of `(seed, index)`, so the backward pass
/// regenerates it instead of storing it, and a run is reproducible from its seeds.
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        bail!("dropout probability must be in [0, 1), got {p}")
    }
    x.contiguous()?.apply_op1(DropoutOp::new(p, seed))
}

struct DropoutOp {
    /// A value is dropped when its 32-bit hash falls below this.
    threshold: u32,
    scale: f32,
    keys: [u32; 2],
}

/// A 32-bit integer hash with good avalanche ("lowbias32", C. Wellons).
#[inline(always)]
pub(super) fn mix32(mut x: u32) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{check_grads, flat, rand_tensor};
    use candle_core::{DType, Device, Var};

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
}
