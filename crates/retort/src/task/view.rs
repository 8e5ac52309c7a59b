//! The rows of logits a task's losses compare: TextBrewer's `select_logits_with_mask`.
//!
//! A sequence head gives `[batch, labels]`, a token head `[batch, seq, labels]`; along
//! [`RowAxis::Labels`] both become `[rows, labels]`, one row per (example, token position) the
//! task reads. A span head gives `[batch, seq, 2]`; along [`RowAxis::Positions`] each row is
//! one output (start or end) of one example over the batch's token positions, `[rows, seq]`,
//! with padding positions set to [`MASKED`]. Either way every logit term is one function of two
//! `[rows, classes]` tensors whatever the task. Padding and a word's non-first tokens are never
//! rows (or are masked), so they contribute nothing and get no gradient.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::model::RowAxis;

/// The score a masked position gets along [`RowAxis::Positions`]: its probability is 0 in f32
/// at any temperature Retort accepts, yet it is finite, so no term ever computes `0 · ∞`. The
/// teacher cache pads its position rows with the same value, so a cached and an online
/// teacher row are equal.
pub const MASKED: f32 = -1e4;

/// The rows of `logits` along `axis`: `(example in the batch, token position)` pairs for
/// [`RowAxis::Labels`], `(example, output)` pairs for [`RowAxis::Positions`] (whose
/// `attention_mask`, `[batch, seq]` with 1 for real tokens, says which positions to mask).
pub fn select_rows(
    logits: &Tensor,
    rows: &[(u32, u32)],
    axis: RowAxis,
    attention_mask: &Tensor,
) -> Result<Tensor> {
    match axis {
        RowAxis::Labels => label_rows(logits, rows),
        RowAxis::Positions => position_rows(logits, rows, attention_mask),
    }
}

/// `[batch, labels]` or `[batch, seq, labels]` → `[rows, labels]`.
fn label_rows(logits: &Tensor, rows: &[(u32, u32)]) -> Result<Tensor> {
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
    gather(&flat, rows, seq, logits.dims())
}

/// `[batch, seq, outputs]` → `[rows, seq]`: row (b, o) is output `o`'s scores over example
/// `b`'s positions, padding set to [`MASKED`] (by a product with the mask, so a masked
/// position gets no gradient).
fn position_rows(logits: &Tensor, rows: &[(u32, u32)], attention_mask: &Tensor) -> Result<Tensor> {
    let [b, s, outputs] = *logits.dims() else {
        return Err(Error::Invalid(format!(
            "span logits must be [batch, seq, outputs], got {:?}",
            logits.dims()
        )));
    };
    if attention_mask.dims() != [b, s] {
        return Err(Error::Invalid(format!(
            "attention mask {:?} does not match span logits {:?}",
            attention_mask.dims(),
            logits.dims()
        )));
    }
    let flat = logits
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * outputs, s))?;
    let selected = gather(&flat, rows, outputs, logits.dims())?;
    let examples: Vec<u32> = rows.iter().map(|&(e, _)| e).collect();
    let mask = attention_mask
        .to_dtype(DType::F32)?
        .index_select(&Tensor::new(examples.as_slice(), logits.device())?, 0)?;
    // logits · m + MASKED · (1 − m)
    let fill = mask.affine(-(MASKED as f64), MASKED as f64)?;
    Ok(selected
        .broadcast_mul(&mask.to_dtype(selected.dtype())?)?
        .broadcast_add(&fill.to_dtype(selected.dtype())?)?)
}

/// Rows `b · per_example + k` of `flat` for each `(b, k)`, checked against `dims` (the
/// original shape, for the message).
fn gather(
    flat: &Tensor,
    rows: &[(u32, u32)],
    per_example: usize,
    dims: &[usize],
) -> Result<Tensor> {
    let n = flat.dim(0)?;
    let index = rows
        .iter()
        .map(|&(b, k)| {
            let i = b as usize * per_example + k as usize;
            match (k as usize) < per_example && i < n {
                true => Ok(i as u32),
                false => Err(Error::Invalid(format!(
                    "row (example {b}, {k}) is outside logits of shape {dims:?}"
                ))),
            }
        })
        .collect::<Result<Vec<u32>>>()?;
    let index = Tensor::new(index.as_slice(), flat.device())?;
    Ok(flat.index_select(&index, 0)?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn no_mask() -> Tensor {
        Tensor::zeros((1, 1), DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn selects_label_rows_of_both_shapes() {
        let dev = Device::Cpu;
        let seq = Tensor::arange(0f32, 6., &dev)
            .unwrap()
            .reshape((3, 2))
            .unwrap();
        let r = select_rows(&seq, &[(2, 0), (0, 0)], RowAxis::Labels, &no_mask()).unwrap();
        assert_eq!(
            r.to_vec2::<f32>().unwrap(),
            vec![vec![4., 5.], vec![0., 1.]]
        );
        // [2 examples, 3 positions, 2 labels]: example 1 position 2 is flat row 5.
        let tok = Tensor::arange(0f32, 12., &dev)
            .unwrap()
            .reshape((2, 3, 2))
            .unwrap();
        let r = select_rows(&tok, &[(1, 2), (0, 1)], RowAxis::Labels, &no_mask()).unwrap();
        assert_eq!(
            r.to_vec2::<f32>().unwrap(),
            vec![vec![10., 11.], vec![2., 3.]]
        );
        assert!(select_rows(&tok, &[(0, 3)], RowAxis::Labels, &no_mask()).is_err());
        assert!(select_rows(&seq, &[(0, 1)], RowAxis::Labels, &no_mask()).is_err());
    }

    #[test]
    fn position_rows_read_each_output_over_the_positions_with_padding_masked() {
        let dev = Device::Cpu;
        // [2 examples, 3 positions, 2 outputs]; example 1 has 2 real tokens.
        let logits = Tensor::arange(0f32, 12., &dev)
            .unwrap()
            .reshape((2, 3, 2))
            .unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1.], [1., 1., 0.]], &dev).unwrap();
        let r = select_rows(
            &logits,
            &[(1, 1), (0, 0), (1, 0)],
            RowAxis::Positions,
            &mask,
        )
        .unwrap();
        assert_eq!(
            r.to_vec2::<f32>().unwrap(),
            vec![vec![7., 9., MASKED], vec![0., 2., 4.], vec![6., 8., MASKED]]
        );
        assert!(select_rows(&logits, &[(0, 2)], RowAxis::Positions, &mask).is_err());
        assert!(select_rows(&logits, &[(2, 0)], RowAxis::Positions, &mask).is_err());
        let wrong_mask = Tensor::ones((2, 4), DType::F32, &dev).unwrap();
        assert!(select_rows(&logits, &[(0, 0)], RowAxis::Positions, &wrong_mask).is_err());
        let flat = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        assert!(select_rows(&flat, &[(0, 0)], RowAxis::Positions, &mask).is_err());
    }

    #[test]
    fn a_masked_position_gets_no_gradient() {
        let dev = Device::Cpu;
        let var = Var::from_tensor(
            &Tensor::arange(0f32, 6., &dev)
                .unwrap()
                .reshape((1, 3, 2))
                .unwrap(),
        )
        .unwrap();
        let mask = Tensor::new(&[[1f32, 1., 0.]], &dev).unwrap();
        let r = select_rows(
            var.as_tensor(),
            &[(0, 0), (0, 1)],
            RowAxis::Positions,
            &mask,
        )
        .unwrap();
        let grads = r.sum_all().unwrap().backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        assert_eq!(g, vec![vec![vec![1., 1.], vec![1., 1.], vec![0., 0.]]]);
    }
}
