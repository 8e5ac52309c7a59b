//! Cross-entropy of logits with integer labels, fused: one pass per row for the forward
//! (log-sum-exp, the label's logit, the row mean for label smoothing) and one for the
//! backward (softmax minus the smoothed one-hot target). Through generic tensor ops the same
//! loss over a translator's 10,000-word vocabulary built five full-size intermediates and
//! their gradients; this writes only the logits' gradient.

use super::math::{exp, max, sum};
use super::storage::{rows_cols, task_len, tensor, values, with_values};
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Per row of `logits` (`[rows, classes]`): `(1 - ε) · (lse - x[label]) + ε · (lse - mean x)`,
/// the cross-entropy with the target `(1 - ε) · one_hot(label) + ε / classes` (label
/// smoothing ε = `smoothing`; 0: plain cross-entropy). Returns `[rows]`.
pub fn cross_entropy(logits: &Tensor, labels: &[u32], smoothing: f32) -> Result<Tensor> {
    let (rows, classes) = logits.dims2()?;
    if labels.len() != rows {
        bail!("cross_entropy: {} labels for {rows} rows", labels.len())
    }
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
        bail!("cross_entropy: label {bad} out of range for {classes} classes")
    }
    if !(0.0..1.0).contains(&smoothing) {
        bail!("cross_entropy: label smoothing must be in [0, 1), got {smoothing}")
    }
    logits.contiguous()?.apply_op1(CrossEntropyOp {
        labels: labels.to_vec(),
        smoothing,
    })
}

struct CrossEntropyOp {
    labels: Vec<u32>,
    smoothing: f32,
}

impl CrossEntropyOp {
    /// The loss of one row.
    fn row_loss(&self, row: &[f32], label: u32) -> f32 {
        let m = max(row);
        let lse = m + row.iter().map(|&v| exp(v - m)).sum::<f32>().ln();
        let nll = lse - row[label as usize];
        match self.smoothing {
            0.0 => nll,
            e => (1.0 - e) * nll + e * (lse - sum(row) / row.len() as f32),
        }
    }
}

impl CustomOp1 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "retort-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(s, l)?;
        let (rows, n) = rows_cols(l.shape())?;
        let loss: Vec<f32> = x
            .par_chunks_exact(n)
            .zip(self.labels.par_iter())
            .map(|(row, &label)| self.row_loss(row, label))
            .collect();
        Ok((CpuStorage::F32(loss), Shape::from(rows)))
    }

    /// `dx = dloss · (softmax(x) - (1 - ε) · one_hot - ε / classes)`.
    fn bwd(&self, x: &Tensor, _loss: &Tensor, dloss: &Tensor) -> Result<Option<Tensor>> {
        let (_, n) = rows_cols(x.shape())?;
        let e = self.smoothing;
        let dx = with_values([x, dloss], |[x, dloss]| {
            let mut dx = x.to_vec();
            let t = task_len(n);
            let rows_per_task = t / n;
            dx.par_chunks_mut(t).enumerate().for_each(|(k, chunk)| {
                for (j, row) in chunk.chunks_exact_mut(n).enumerate() {
                    let r = k * rows_per_task + j;
                    let m = max(row);
                    for v in row.iter_mut() {
                        *v = exp(*v - m);
                    }
                    let scale = dloss[r] / sum(row);
                    let uniform = dloss[r] * e / n as f32;
                    for v in row.iter_mut() {
                        *v = *v * scale - uniform;
                    }
                    row[self.labels[r] as usize] -= dloss[r] * (1.0 - e);
                }
            });
            Ok(dx)
        })?;
        Ok(Some(tensor(dx, x.shape().clone())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{check_grads, max_diff, rand_tensor};
    use candle_core::{Device, D};

    /// The loss written with candle's ops, as the reference.
    fn reference(x: &Tensor, labels: &[u32], e: f64) -> Tensor {
        let log_p = candle_nn::ops::log_softmax(x, D::Minus1).unwrap();
        let index = Tensor::new(labels, &Device::Cpu)
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let nll = log_p
            .gather(&index, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .neg()
            .unwrap();
        let uniform = log_p.mean(D::Minus1).unwrap().neg().unwrap();
        ((nll * (1.0 - e)).unwrap() + (uniform * e).unwrap()).unwrap()
    }

    #[test]
    fn cross_entropy_matches_candle_and_finite_differences() {
        // 40 rows of 700 classes: several rows per rayon task, and tasks of several rows.
        let x = (rand_tensor(&[40, 700], 3) * 6.0).unwrap();
        let labels: Vec<u32> = (0..40).map(|i| (i * 37 % 700) as u32).collect();
        for e in [0.0, 0.1] {
            let got = cross_entropy(&x, &labels, e as f32).unwrap();
            assert!(
                max_diff(&got, &reference(&x, &labels, e)) < 1e-4,
                "smoothing {e}"
            );
        }
        let small = (rand_tensor(&[3, 5], 4) * 3.0).unwrap();
        check_grads(
            |t| cross_entropy(&t[0], &[4, 0, 2], 0.0).unwrap(),
            std::slice::from_ref(&small),
            &[0],
        );
        check_grads(
            |t| cross_entropy(&t[0], &[1, 3, 3], 0.1).unwrap(),
            &[small],
            &[0],
        );
    }

    #[test]
    fn bad_labels_are_errors() {
        let x = rand_tensor(&[2, 3], 1);
        assert!(cross_entropy(&x, &[0], 0.0).is_err());
        assert!(cross_entropy(&x, &[0, 3], 0.0).is_err());
        assert!(cross_entropy(&x, &[0, 1], 1.0).is_err());
    }
}
