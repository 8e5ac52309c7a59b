//! Linear layer (`x Wᵀ + b`) and its inference-only fusion with GELU.

use super::gelu::{bias_gelu_in_place, gelu_erf};
use super::gemm::{gemm, gemm_new, repeat_rows, small_m_linear, SMALL_M_ROWS};
use super::math::column_sums;
use super::packed::PackedWeight;
use super::storage::{rows_cols, tensor, values, with_values, Mat};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};

/// `x Wᵀ + b` over the last dimension of `x`, weights `[out, in]` as in PyTorch. One gemm
/// with the bias folded in; the backward pass is two gemms and a column sum.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LinearOp { gelu: false },
    )
}

/// `gelu(x Wᵀ + b)`, the feed-forward block's first half. When no input records a backward
/// pass (inference, see `Pass::grad`), GELU runs in place on the product, in the same op:
/// no second buffer of the block's widest activation. Otherwise it is [`linear`] then
/// [`gelu_erf`], each with its backward pass.
pub fn linear_gelu(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if x.track_op() || weight.track_op() || bias.track_op() {
        return gelu_erf(&linear(x, weight, bias)?);
    }
    x.contiguous()?.apply_op3_no_bwd(
        &weight.contiguous()?,
        &bias.contiguous()?,
        &LinearOp { gelu: true },
    )
}

/// `x Wᵀ + b`, or `gelu(x Wᵀ + b)` with `gelu`, on a weight packed for inference (see
/// [`PackedWeight`]). It records no backward pass: a packed weight is a frozen copy.
pub fn linear_packed(
    x: &Tensor,
    weight: &PackedWeight,
    bias: &[f32],
    gelu: bool,
) -> Result<Tensor> {
    if bias.len() != weight.dims().0 {
        bail!(
            "linear: packed weight {:?}, bias of {}",
            weight.dims(),
            bias.len()
        )
    }
    x.contiguous()?
        .apply_op1_no_bwd(&PackedLinearOp { weight, bias, gelu })
}

struct PackedLinearOp<'a> {
    weight: &'a PackedWeight,
    bias: &'a [f32],
    gelu: bool,
}

impl CustomOp1 for PackedLinearOp<'_> {
    fn name(&self) -> &'static str {
        "retort-linear-packed"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(xs, xl)?;
        let (rows, inp) = rows_cols(xl.shape())?;
        let (out, w_in) = self.weight.dims();
        if w_in != inp {
            bail!(
                "linear: x {:?}, packed weight {:?}",
                xl.shape(),
                (out, w_in)
            )
        }
        let y = if self.gelu {
            let mut y = self.weight.matmul_new(x, rows, None);
            bias_gelu_in_place(&mut y, self.bias);
            y
        } else {
            self.weight.matmul_new(x, rows, Some(self.bias))
        };
        let mut dims = xl.shape().dims().to_vec();
        *dims.last_mut().unwrap() = out;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }
}

struct LinearOp {
    /// Apply GELU to the output in place (inference only: the backward pass below is the
    /// plain linear map's).
    gelu: bool,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "retort-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (values(xs, xl)?, values(ws, wl)?, values(bs, bl)?);
        let (rows, inp) = rows_cols(xl.shape())?;
        let (out, w_in) = wl.shape().dims2()?;
        if w_in != inp || b.len() != out {
            bail!(
                "linear: x {:?}, weight {:?}, bias {:?}",
                xl.shape(),
                wl.shape(),
                bl.shape()
            )
        }
        let xm = Mat::rows(x, rows, inp, inp);
        let wt = Mat::rows(w, out, inp, inp).t();
        // Rows start from the bias and the product accumulates onto them; the GELU epilogue
        // adds the bias itself, which spares the big products a pass over their output.
        let mut y = if rows <= SMALL_M_ROWS {
            let mut y = match self.gelu {
                true => vec![0f32; rows * out],
                false => repeat_rows(b, rows),
            };
            small_m_linear(&mut y, x, w, rows, inp, out);
            y
        } else if self.gelu {
            gemm_new(xm, wt, 1.0, true)
        } else {
            let mut y = repeat_rows(b, rows);
            gemm(&mut y, out, xm, wt, 1.0, true, true);
            y
        };
        if self.gelu {
            bias_gelu_in_place(&mut y, b);
        }
        let mut dims = xl.shape().dims().to_vec();
        *dims.last_mut().unwrap() = out;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.gelu {
            bail!("linear + GELU is an inference-only op: it has no backward pass")
        }
        let (rows, inp) = rows_cols(x.shape())?;
        let out = w.dim(0)?;
        // Nothing upstream of x to train (e.g. frozen embeddings): skip its gemm.
        let want_dx = x.track_op();
        let (x_shape, b_shape) = (x.shape().clone(), b.shape().clone());
        with_values([x, w, dy], |[x, w, dy]| {
            let dy_m = Mat::rows(dy, rows, out, out);
            let dx = if want_dx {
                // dx = dy W
                let dx = gemm_new(dy_m, Mat::rows(w, out, inp, inp), 1.0, true);
                Some(tensor(dx, x_shape)?)
            } else {
                None
            };
            // dW = dyᵀ x
            let dw = gemm_new(dy_m.t(), Mat::rows(x, rows, inp, inp), 1.0, true);
            let db = column_sums(dy, out);
            Ok((
                dx,
                Some(tensor(dw, (out, inp))?),
                Some(tensor(db, b_shape)?),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{check_grads, max_diff, rand_tensor};
    use candle_core::Var;

    #[test]
    fn linear_forward_matches_matmul() {
        let x = rand_tensor(&[2, 5, 7], 1);
        let w = rand_tensor(&[3, 7], 2);
        let b = rand_tensor(&[3], 3);
        let want = x
            .broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        assert!(max_diff(&linear(&x, &w, &b).unwrap(), &want) < 1e-5);
    }

    #[test]
    fn fused_linear_gelu_matches_linear_then_gelu() {
        let (w, b) = (rand_tensor(&[40, 24], 2), rand_tensor(&[40], 3));
        // 5 rows run on the small-m kernel, 70 on gemm with the bias added by the epilogue.
        for rows in [5, 70] {
            let x = (rand_tensor(&[rows, 24], rows as u32) * 2.0).unwrap();
            let want = gelu_erf(&linear(&x, &w, &b).unwrap()).unwrap();
            let fused = linear_gelu(&x, &w, &b).unwrap();
            assert!(!fused.track_op());
            assert!(max_diff(&fused, &want) < 1e-5, "{rows} rows");
            // A variable input gets the differentiable pair, with its gradient.
            let v = Var::from_tensor(&x).unwrap();
            let y = linear_gelu(v.as_tensor(), &w, &b).unwrap();
            assert!(max_diff(&y, &want) < 1e-6);
            let grads = y.sum_all().unwrap().backward().unwrap();
            assert!(grads.get(v.as_tensor()).is_some());
        }
    }

    #[test]
    fn linear_backward_matches_finite_differences() {
        let inputs = [
            rand_tensor(&[2, 3, 5], 1),
            rand_tensor(&[4, 5], 2),
            rand_tensor(&[4], 3),
        ];
        check_grads(
            |t| linear(&t[0], &t[1], &t[2]).unwrap(),
            &inputs,
            &[0, 1, 2],
        );
    }
}
