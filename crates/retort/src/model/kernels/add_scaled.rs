//! `a + s·b` in one multi-threaded pass, for sums of gradients (no backward pass).

use super::elementwise::map2;
use super::storage::{tensor, with_values};
use candle_core::{bail, Result, Tensor};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{flat, rand_tensor};

    #[test]
    fn add_scaled_matches_candle() {
        let (a, b) = (rand_tensor(&[300, 70], 1), rand_tensor(&[300, 70], 2));
        let scaled = (&b * 0.25).unwrap();
        let want = (&a + &scaled).unwrap();
        assert_eq!(flat(&add_scaled(Some(&a), &b, 0.25).unwrap()), flat(&want));
        assert_eq!(flat(&add_scaled(None, &b, 0.25).unwrap()), flat(&scaled));
        assert!(add_scaled(Some(&a), &rand_tensor(&[3], 1), 1.0).is_err());
    }
}
