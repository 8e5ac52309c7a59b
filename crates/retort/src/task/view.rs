//! The rows of logits a task's losses compare: TextBrewer's `select_logits_with_mask`.
//!
//! A sequence head gives `[batch, labels]`, a token head `[batch, seq, labels]`; both become
//! `[rows, labels]` here, one row per (example, token position) the task reads, so every
//! logit term is one function of two `[rows, labels]` tensors whatever the task. Padding and
//! a word's non-first tokens are never rows, so they contribute nothing, and get no gradient.

use candle_core::Tensor;

use crate::error::{Error, Result};

/// The rows `(example in the batch, token position)` of `logits`, as `[rows, labels]`.
pub fn select_rows(logits: &Tensor, rows: &[(u32, u32)]) -> Result<Tensor> {
    let (flat, seq) = match *logits.dims() {
        [_, _] => (logits.clone(), 1),
        [b, s, c] => (logits.reshape((b * s, c))?, s),
        _ => {
            return Err(Error::Invalid(format!(
                "logits must be [batch, labels] or [batch, seq, labels], got {:?}",
                logits.dims()
            )))
        }
    };
    let n = flat.dim(0)?;
    let index = rows
        .iter()
        .map(|&(b, p)| {
            let i = b as usize * seq + p as usize;
            match (p as usize) < seq && i < n {
                true => Ok(i as u32),
                false => Err(Error::Invalid(format!(
                    "row (example {b}, position {p}) is outside logits of shape {:?}",
                    logits.dims()
                ))),
            }
        })
        .collect::<Result<Vec<u32>>>()?;
    let index = Tensor::new(index.as_slice(), logits.device())?;
    Ok(flat.index_select(&index, 0)?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn selects_rows_of_both_shapes() {
        let dev = Device::Cpu;
        let seq = Tensor::arange(0f32, 6., &dev)
            .unwrap()
            .reshape((3, 2))
            .unwrap();
        let r = select_rows(&seq, &[(2, 0), (0, 0)]).unwrap();
        assert_eq!(
            r.to_vec2::<f32>().unwrap(),
            vec![vec![4., 5.], vec![0., 1.]]
        );
        // [2 examples, 3 positions, 2 labels]: example 1 position 2 is flat row 5.
        let tok = Tensor::arange(0f32, 12., &dev)
            .unwrap()
            .reshape((2, 3, 2))
            .unwrap();
        let r = select_rows(&tok, &[(1, 2), (0, 1)]).unwrap();
        assert_eq!(
            r.to_vec2::<f32>().unwrap(),
            vec![vec![10., 11.], vec![2., 3.]]
        );
        assert!(select_rows(&tok, &[(0, 3)]).is_err());
        assert!(select_rows(&seq, &[(0, 1)]).is_err());
    }
}
