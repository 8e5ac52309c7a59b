//! Attention: `softmax(q kᵀ / √d + bias)` and the context `probs · v` per head, read in place.

use super::gemm::gemm;
use super::softmax::{softmax_bwd_row, softmax_in_place};
use super::storage::{task_len, tensor, values, with_values, Mat};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Attention probabilities `softmax(q kᵀ / sqrt(d) + bias)` per head, `[batch, heads, seq,
/// seq]`. `q` and `k` are `[batch, seq, hidden]` projections: heads are read in place, with
/// no transposes or copies. `mask_bias` is either `batch × seq` additive key biases (0 for
/// real keys, a large negative number for padding: a constant, no gradient) or a whole
/// `batch × heads × seq × seq` bias on every score (MPNet's relative positions plus the
/// padding; its gradient is the scores'), in any shape.
pub fn attention_probs(q: &Tensor, k: &Tensor, mask_bias: &Tensor, heads: usize) -> Result<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &mask_bias.contiguous()?,
        AttnProbsOp { heads },
    )
}

/// `probs · v` per head, written straight into `[batch, seq, hidden]` (heads side by side,
/// as the output projection expects). `probs` is `[batch, heads, seq, seq]`.
pub fn attention_context(probs: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    probs
        .contiguous()?
        .apply_op2(&v.contiguous()?, AttnContextOp { heads })
}

/// Shapes of an attention block: `[batch, seq, hidden]` projections split into heads.
#[derive(Clone, Copy)]
struct Heads {
    batch: usize,
    seq: usize,
    hidden: usize,
    heads: usize,
    dim: usize,
}

impl Heads {
    fn new(shape: &Shape, heads: usize) -> Result<Self> {
        let (batch, seq, hidden) = shape.dims3()?;
        if heads == 0 || hidden % heads != 0 {
            bail!("attention: hidden size {hidden} is not a multiple of {heads} heads")
        }
        Ok(Self {
            batch,
            seq,
            hidden,
            heads,
            dim: hidden / heads,
        })
    }

    /// Values of one batch element of a projection.
    fn proj(&self) -> usize {
        self.seq * self.hidden
    }

    /// Batch element `b` of a projection.
    fn element<'a>(&self, proj: &'a [f32], b: usize) -> &'a [f32] {
        &proj[b * self.proj()..(b + 1) * self.proj()]
    }

    /// Values of one batch element's probabilities (all heads).
    fn probs(&self) -> usize {
        self.heads * self.seq * self.seq
    }

    fn probs_shape(&self) -> Shape {
        Shape::from((self.batch, self.heads, self.seq, self.seq))
    }

    /// Head `hd` of one batch element's projection, a `seq × dim` strided view.
    fn head<'a>(&self, proj: &'a [f32], hd: usize) -> Mat<'a> {
        Mat::rows(&proj[hd * self.dim..], self.seq, self.dim, self.hidden)
    }

    /// Head `hd`'s `seq × seq` block of one batch element's probabilities.
    fn block<'a>(&self, probs: &'a [f32], hd: usize) -> Mat<'a> {
        let n = self.seq * self.seq;
        Mat::rows(&probs[hd * n..(hd + 1) * n], self.seq, self.seq, self.seq)
    }

    /// The bias values per batch element: `seq` for a key mask, `heads × seq × seq` for a
    /// whole bias; `None` for any other count.
    fn bias_len(&self, len: usize) -> Option<usize> {
        if len == self.batch * self.seq {
            Some(self.seq)
        } else if len == self.batch * self.probs() {
            Some(self.probs())
        } else {
            None
        }
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dim as f32).sqrt()
    }
}

struct AttnProbsOp {
    heads: usize,
}

impl CustomOp3 for AttnProbsOp {
    fn name(&self) -> &'static str {
        "retort-attention-probs"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, mask) = (values(qs, ql)?, values(ks, kl)?, values(ms, ml)?);
        let hs = Heads::new(ql.shape(), self.heads)?;
        let bias_len = hs.bias_len(mask.len());
        if kl.shape() != ql.shape() || bias_len.is_none() {
            bail!(
                "attention: q {:?}, k {:?}, mask {:?}",
                ql.shape(),
                kl.shape(),
                ml.shape()
            )
        }
        let (s, n) = (hs.seq, hs.seq * hs.seq);
        let bias_len = bias_len.expect("checked above");
        let mut probs = vec![0f32; hs.batch * hs.probs()];
        // One task per head of each batch element (grouped when they are small): a single
        // sentence's heads run on both threads too.
        probs
            .par_chunks_mut(n)
            .enumerate()
            .with_min_len(task_len(n) / n)
            .for_each(|(j, block)| {
                let (b, hd) = (j / hs.heads, j % hs.heads);
                let (q, k) = (hs.element(q, b), hs.element(k, b));
                let bias = &mask[b * bias_len..(b + 1) * bias_len];
                gemm(
                    block,
                    s,
                    hs.head(q, hd),
                    hs.head(k, hd).t(),
                    hs.scale(),
                    false,
                    false,
                );
                for (i, row) in block.chunks_exact_mut(s).enumerate() {
                    // The key mask, or this head's and query's row of a whole bias.
                    let bias = match bias_len == s {
                        true => bias,
                        false => &bias[hd * n + i * s..hd * n + (i + 1) * s],
                    };
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v += b;
                    }
                    softmax_in_place(row);
                }
            });
        Ok((CpuStorage::F32(probs), hs.probs_shape()))
    }

    /// With `ds = softmax-backward(p, dp)`, the gradient of the scores: `dq = scale · ds k`,
    /// `dk = scale · dsᵀ q`, and a whole bias gets `ds` itself. A key mask is an input, not a
    /// parameter: no gradient.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        bias: &Tensor,
        p: &Tensor,
        dp: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let hs = Heads::new(q.shape(), self.heads)?;
        let (s, n) = (hs.seq, hs.seq * hs.seq);
        let whole_bias = bias.elem_count() == hs.batch * hs.probs();
        let (dq, dk, dbias) = with_values([q, k, p, dp], |[q, k, p, dp]| {
            let mut dq = vec![0f32; q.len()];
            let mut dk = vec![0f32; k.len()];
            // The scores' gradient, kept only when the bias takes it.
            let mut dscores = vec![0f32; if whole_bias { p.len() } else { 0 }];
            let mut dscores_parts: Vec<&mut [f32]> = match whole_bias {
                true => dscores.chunks_mut(hs.probs()).collect(),
                false => (0..hs.batch).map(|_| &mut [][..]).collect(),
            };
            dq.par_chunks_mut(hs.proj())
                .zip(dk.par_chunks_mut(hs.proj()))
                .zip(q.par_chunks(hs.proj()).zip(k.par_chunks(hs.proj())))
                .zip(p.par_chunks(hs.probs()).zip(dp.par_chunks(hs.probs())))
                .zip(dscores_parts.par_iter_mut())
                .for_each(|((((dq, dk), (q, k)), (p, dp)), dscores)| {
                    let mut ds = vec![0f32; n];
                    for hd in 0..hs.heads {
                        let (p, dp) = (hs.block(p, hd).data, hs.block(dp, hd).data);
                        let rows = ds
                            .chunks_exact_mut(s)
                            .zip(p.chunks_exact(s))
                            .zip(dp.chunks_exact(s));
                        for ((ds, p), dp) in rows {
                            softmax_bwd_row(ds, p, dp, 1.0);
                        }
                        if !dscores.is_empty() {
                            dscores[hd * n..(hd + 1) * n].copy_from_slice(&ds);
                        }
                        let ds_m = Mat::rows(&ds, s, s, s);
                        let off = hd * hs.dim;
                        gemm(
                            &mut dq[off..],
                            hs.hidden,
                            ds_m,
                            hs.head(k, hd),
                            hs.scale(),
                            false,
                            false,
                        );
                        gemm(
                            &mut dk[off..],
                            hs.hidden,
                            ds_m.t(),
                            hs.head(q, hd),
                            hs.scale(),
                            false,
                            false,
                        );
                    }
                });
            drop(dscores_parts);
            Ok((dq, dk, dscores))
        })?;
        let dbias = match whole_bias {
            true => Some(tensor(dbias, bias.shape().clone())?),
            false => None,
        };
        Ok((
            Some(tensor(dq, q.shape().clone())?),
            Some(tensor(dk, k.shape().clone())?),
            dbias,
        ))
    }
}

struct AttnContextOp {
    heads: usize,
}

impl CustomOp2 for AttnContextOp {
    fn name(&self) -> &'static str {
        "retort-attention-context"
    }

    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, v) = (values(ps, pl)?, values(vs, vl)?);
        let hs = Heads::new(vl.shape(), self.heads)?;
        if pl.shape() != &hs.probs_shape() {
            bail!("attention: probs {:?}, v {:?}", pl.shape(), vl.shape())
        }
        // One task per head of each batch element, each writing its own `seq × dim` block;
        // the blocks are then put side by side per token.
        let block = hs.seq * hs.dim;
        let mut per_head = vec![0f32; v.len()];
        per_head
            .par_chunks_mut(block)
            .enumerate()
            .with_min_len(task_len(block) / block)
            .for_each(|(j, out)| {
                let (b, hd) = (j / hs.heads, j % hs.heads);
                let p = &p[b * hs.probs()..(b + 1) * hs.probs()];
                let v = hs.head(hs.element(v, b), hd);
                gemm(out, hs.dim, hs.block(p, hd), v, 1.0, false, false);
            });
        let mut ctx = vec![0f32; v.len()];
        ctx.par_chunks_mut(hs.proj())
            .zip(per_head.par_chunks(hs.proj()))
            .for_each(|(ctx, heads)| {
                for (hd, head) in heads.chunks_exact(block).enumerate() {
                    for (t, row) in head.chunks_exact(hs.dim).enumerate() {
                        let at = t * hs.hidden + hd * hs.dim;
                        ctx[at..at + hs.dim].copy_from_slice(row);
                    }
                }
            });
        Ok((CpuStorage::F32(ctx), vl.shape().clone()))
    }

    /// `dp = dctx vᵀ`, `dv = pᵀ dctx`, per head.
    fn bwd(
        &self,
        p: &Tensor,
        v: &Tensor,
        _ctx: &Tensor,
        dctx: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let hs = Heads::new(v.shape(), self.heads)?;
        let n = hs.seq * hs.seq;
        let (dp, dv) = with_values([p, v, dctx], |[p, v, dctx]| {
            let mut dp = vec![0f32; p.len()];
            let mut dv = vec![0f32; v.len()];
            dp.par_chunks_mut(hs.probs())
                .zip(dv.par_chunks_mut(hs.proj()))
                .zip(p.par_chunks(hs.probs()))
                .zip(v.par_chunks(hs.proj()).zip(dctx.par_chunks(hs.proj())))
                .for_each(|(((dp, dv), p), (v, dctx))| {
                    for hd in 0..hs.heads {
                        let dc = hs.head(dctx, hd);
                        let block = &mut dp[hd * n..(hd + 1) * n];
                        gemm(block, hs.seq, dc, hs.head(v, hd).t(), 1.0, false, false);
                        let off = hd * hs.dim;
                        gemm(
                            &mut dv[off..],
                            hs.hidden,
                            hs.block(p, hd).t(),
                            dc,
                            1.0,
                            false,
                            false,
                        );
                    }
                });
            Ok((dp, dv))
        })?;
        Ok((
            Some(tensor(dp, p.shape().clone())?),
            Some(tensor(dv, v.shape().clone())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{check_grads, flat, max_diff, rand_tensor};
    use candle_core::{Device, D};

    /// Attention from candle ops: split heads, q kᵀ / √d + mask, softmax, · v, merge.
    fn naive_attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        heads: usize,
    ) -> (Tensor, Tensor) {
        let (b, s, h) = q.dims3().unwrap();
        let split = |t: &Tensor| {
            t.reshape((b, s, heads, h / heads))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (split(q), split(k), split(v));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() / ((h / heads) as f64).sqrt()).unwrap();
        let scores = scores
            .broadcast_add(&mask.reshape((b, 1, 1, s)).unwrap())
            .unwrap();
        let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        let ctx = probs
            .matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, s, h))
            .unwrap();
        (probs, ctx)
    }

    fn attention_inputs() -> [Tensor; 4] {
        let (b, s, h) = (2, 5, 8);
        let mut mask = vec![0f32; b * s];
        mask[b * s - 1] = -1e9; // the second sequence's last key is padding
        [
            rand_tensor(&[b, s, h], 11),
            rand_tensor(&[b, s, h], 12),
            rand_tensor(&[b, s, h], 13),
            Tensor::from_vec(mask, (b, s), &Device::Cpu).unwrap(),
        ]
    }

    #[test]
    fn attention_matches_naive() {
        let [q, k, v, mask] = attention_inputs();
        let (want_p, want_ctx) = naive_attention(&q, &k, &v, &mask, 2);
        let probs = attention_probs(&q, &k, &mask, 2).unwrap();
        assert!(max_diff(&probs, &want_p) < 1e-6);
        let masked = probs.narrow(0, 1, 1).unwrap().narrow(3, 4, 1).unwrap();
        assert_eq!(flat(&masked), vec![0.0; 2 * 5], "padding gets exactly 0");
        let ctx = attention_context(&probs, &v, 2).unwrap();
        assert!(max_diff(&ctx, &want_ctx) < 1e-6);
    }

    #[test]
    fn attention_backward_matches_finite_differences() {
        let [q, k, v, mask] = attention_inputs();
        let inputs = [q, k, v, mask];
        check_grads(
            |t| {
                let p = attention_probs(&t[0], &t[1], &t[3], 2).unwrap();
                attention_context(&p, &t[2], 2).unwrap()
            },
            &inputs,
            &[0, 1, 2],
        );
        // The probabilities themselves are an output too (attention distillation).
        check_grads(
            |t| attention_probs(&t[0], &t[1], &t[2], 2).unwrap(),
            &[inputs[0].clone(), inputs[1].clone(), inputs[3].clone()],
            &[0, 1],
        );
    }

    /// A whole `[batch, heads, seq, seq]` bias (MPNet's relative positions plus the mask).
    /// The padded key gets -30 rather than the mask's -1e9, so that finite differences on
    /// it stay finite.
    fn whole_bias(mask: &Tensor) -> Tensor {
        let finite = (mask.clamp(-30f32, 0f32)).unwrap();
        rand_tensor(&[2, 2, 5, 5], 14)
            .broadcast_add(&finite.reshape((2, 1, 1, 5)).unwrap())
            .unwrap()
    }

    #[test]
    fn a_whole_bias_adds_to_every_score_and_takes_their_gradient() {
        let [q, k, v, mask] = attention_inputs();
        let bias = whole_bias(&mask);
        // The naive form: the bias added to the scores of each head.
        let (b, s, h) = q.dims3().unwrap();
        let split = |t: &Tensor| {
            t.reshape((b, s, 2, h / 2))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let scores =
            (split(&q).matmul(&split(&k).t().unwrap()).unwrap() / ((h / 2) as f64).sqrt()).unwrap();
        let want = candle_nn::ops::softmax(&(scores + &bias).unwrap(), D::Minus1).unwrap();
        let probs = attention_probs(&q, &k, &bias, 2).unwrap();
        assert!(max_diff(&probs, &want) < 1e-6);
        check_grads(
            |t| {
                let p = attention_probs(&t[0], &t[1], &t[3], 2).unwrap();
                attention_context(&p, &t[2], 2).unwrap()
            },
            &[q, k, v, bias],
            &[0, 1, 2, 3],
        );
    }

    #[test]
    fn a_bias_of_another_size_is_refused() {
        let [q, k, _, _] = attention_inputs();
        let bias = rand_tensor(&[2, 7], 15);
        let err = attention_probs(&q, &k, &bias, 2).unwrap_err().to_string();
        assert!(err.contains("attention"), "{err}");
    }
}
