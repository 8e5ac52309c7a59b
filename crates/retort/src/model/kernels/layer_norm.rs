//! LayerNorm, alone and fused with the residual add before it.

use super::math::{add_into, dot, sum, sum_zip};
use super::storage::{rows_cols, task_len, tensor, values, with_values};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Layer normalisation over the last dimension: `(x - mean) / sqrt(var + eps) * w + b`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps: eps as f32 },
    )
}

/// Layer normalisation of `x + residual` (the post-LN residual block) in one op: the sum
/// is never a tensor of its own, in either pass.
pub fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let weight_bias = Tensor::stack(&[weight, bias], 0)?;
    x.contiguous()?.apply_op3(
        &residual.contiguous()?,
        &weight_bias,
        AddLayerNormOp { eps: eps as f32 },
    )
}

struct LayerNormOp {
    eps: f32,
}

/// LayerNorm of `x + residual`; weight and bias come stacked as `[2, hidden]` (a custom op
/// takes at most three inputs).
struct AddLayerNormOp {
    eps: f32,
}

/// Mean and `1 / sqrt(var + eps)` of one row (two passes: no cancellation).
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let var = sum_zip(x, x, |v, _| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm forward over `len` values in rows of `w.len()`: `fill(i, rows)` writes the
/// input of task `i`'s rows, which are then normalised in place.
fn ln_forward(
    len: usize,
    w: &[f32],
    b: &[f32],
    eps: f32,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let h = w.len();
    let mut y = vec![0f32; len];
    y.par_chunks_mut(task_len(h))
        .enumerate()
        .for_each(|(i, y)| {
            fill(i, y);
            for y in y.chunks_exact_mut(h) {
                let (mean, rstd) = row_stats(y, eps);
                for ((y, &w), &b) in y.iter_mut().zip(w).zip(b) {
                    *y = (*y - mean) * rstd * w + b;
                }
            }
        });
    y
}

/// LayerNorm backward for upstream gradient `dy`; `fill(i, rows)` writes the forward input
/// of task `i`'s rows (recomputed rather than stored). With `x̂ = (x - mean) · rstd` and
/// `g = dy ⊙ w`: `dx = rstd · (g - mean(g) - x̂ · mean(g ⊙ x̂))`, `dw = Σ dy ⊙ x̂`,
/// `db = Σ dy` (sums over rows). Returns `dx` and `[dw, db]` side by side.
fn ln_backward(
    dy: &[f32],
    w: &[f32],
    eps: f32,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> (Vec<f32>, Vec<f32>) {
    let h = w.len();
    let task = task_len(h);
    let mut dx = vec![0f32; dy.len()];
    let dw_db = dx
        .par_chunks_mut(task)
        .zip(dy.par_chunks(task))
        .enumerate()
        .map(|(i, (dx, dy))| {
            let mut x = vec![0f32; dx.len()];
            fill(i, &mut x);
            let mut dw_db = vec![0f32; 2 * h];
            let (dw, db) = dw_db.split_at_mut(h);
            let (mut xhat, mut g) = (vec![0f32; h], vec![0f32; h]);
            let rows = dx
                .chunks_exact_mut(h)
                .zip(x.chunks_exact(h))
                .zip(dy.chunks_exact(h));
            for ((dx, x), dy) in rows {
                let (mean, rstd) = row_stats(x, eps);
                for i in 0..h {
                    xhat[i] = (x[i] - mean) * rstd;
                    g[i] = dy[i] * w[i];
                    dw[i] += dy[i] * xhat[i];
                    db[i] += dy[i];
                }
                let mean_g = sum(&g) / h as f32;
                let mean_gx = dot(&g, &xhat) / h as f32;
                for ((dx, &g), &xh) in dx.iter_mut().zip(&g).zip(&xhat) {
                    *dx = rstd * (g - mean_g - xh * mean_gx);
                }
            }
            dw_db
        })
        .reduce(|| vec![0f32; 2 * h], add_into);
    (dx, dw_db)
}

/// Copies task `i`'s rows of `x` (tasks of `task_len(h)` values).
fn copy_rows(x: &[f32], h: usize) -> impl Fn(usize, &mut [f32]) + Sync + '_ {
    move |i, out| out.copy_from_slice(&x[i * task_len(h)..][..out.len()])
}

/// Writes task `i`'s rows of `x + r`.
fn sum_rows<'a>(x: &'a [f32], r: &'a [f32], h: usize) -> impl Fn(usize, &mut [f32]) + Sync + 'a {
    move |i, out| {
        let start = i * task_len(h);
        let (x, r) = (&x[start..][..out.len()], &r[start..][..out.len()]);
        for ((o, &x), &r) in out.iter_mut().zip(x).zip(r) {
            *o = x + r;
        }
    }
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "retort-layer-norm"
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
        let (_, h) = rows_cols(xl.shape())?;
        if w.len() != h || b.len() != h {
            bail!(
                "layer_norm: x {:?}, weight {:?}, bias {:?}",
                xl.shape(),
                wl.shape(),
                bl.shape()
            )
        }
        let y = ln_forward(x.len(), w, b, self.eps, copy_rows(x, h));
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, h) = rows_cols(x.shape())?;
        let (dx, dw_db) = with_values([x, w, dy], |[x, w, dy]| {
            Ok(ln_backward(dy, w, self.eps, copy_rows(x, h)))
        })?;
        let (dw, db) = dw_db.split_at(h);
        Ok((
            Some(tensor(dx, x.shape().clone())?),
            Some(tensor(dw.to_vec(), h)?),
            Some(tensor(db.to_vec(), h)?),
        ))
    }
}

impl CustomOp3 for AddLayerNormOp {
    fn name(&self) -> &'static str {
        "retort-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, r, wb) = (values(xs, xl)?, values(rs, rl)?, values(ps, pl)?);
        let (_, h) = rows_cols(xl.shape())?;
        if rl.shape() != xl.shape() || wb.len() != 2 * h {
            bail!(
                "add_layer_norm: x {:?}, residual {:?}, weight and bias {:?}",
                xl.shape(),
                rl.shape(),
                pl.shape()
            )
        }
        let (w, b) = wb.split_at(h);
        let y = ln_forward(x.len(), w, b, self.eps, sum_rows(x, r, h));
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    /// Both addends get the gradient of their sum.
    fn bwd(
        &self,
        x: &Tensor,
        r: &Tensor,
        wb: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, h) = rows_cols(x.shape())?;
        let (dx, dw_db) = with_values([x, r, wb, dy], |[x, r, wb, dy]| {
            Ok(ln_backward(dy, &wb[..h], self.eps, sum_rows(x, r, h)))
        })?;
        let dx = tensor(dx, x.shape().clone())?;
        Ok((Some(dx.clone()), Some(dx), Some(tensor(dw_db, (2, h))?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{check_grads, max_diff, naive_layer_norm, rand_tensor};

    #[test]
    fn layer_norm_forward_matches_naive() {
        // Rows longer than 8 exercise the vectorised sums and their tails.
        let x = (rand_tensor(&[3, 4, 21], 4) * 3.0).unwrap();
        let (w, b) = (rand_tensor(&[21], 5), rand_tensor(&[21], 6));
        let want = naive_layer_norm(&x, &w, &b, 1e-12);
        assert!(max_diff(&layer_norm(&x, &w, &b, 1e-12).unwrap(), &want) < 1e-5);
    }

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let inputs = [
            rand_tensor(&[3, 11], 4),
            rand_tensor(&[11], 5),
            rand_tensor(&[11], 6),
        ];
        check_grads(
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap(),
            &inputs,
            &[0, 1, 2],
        );
    }

    #[test]
    fn add_layer_norm_matches_naive_and_finite_differences() {
        let (x, r) = (rand_tensor(&[2, 3, 19], 30), rand_tensor(&[2, 3, 19], 31));
        let (w, b) = (rand_tensor(&[19], 32), rand_tensor(&[19], 33));
        let want = naive_layer_norm(&(&x + &r).unwrap(), &w, &b, 1e-12);
        assert!(max_diff(&add_layer_norm(&x, &r, &w, &b, 1e-12).unwrap(), &want) < 1e-5);
        let inputs = [
            rand_tensor(&[3, 11], 34),
            rand_tensor(&[3, 11], 35),
            w.narrow(0, 0, 11).unwrap(),
            b.narrow(0, 0, 11).unwrap(),
        ];
        check_grads(
            |t| add_layer_norm(&t[0], &t[1], &t[2], &t[3], 1e-5).unwrap(),
            &inputs,
            &[0, 1, 2, 3],
        );
    }
}
