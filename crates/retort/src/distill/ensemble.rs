//! Multi-teacher distillation: several teachers label the transfer set, each in its own
//! tokens and through its own cache, and their logits become one target per row.
//!
//! The combined logits replace the first teacher's in the objective, so every logit term
//! (soft_kl, soft_ce, logit_mse, logistic) learns from the ensemble with no change of its own.
//! Intermediate terms still compare with the first teacher, the one run online.

use std::path::PathBuf;

use candle_core::{DType, Tensor, D};

use super::teacher_cache::teacher_logits;
use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::task::{Input, Task, TaskData};
use crate::train::config::{Combine, TeacherSection};

/// What one extra teacher contributed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnsembleMember {
    pub dir: PathBuf,
    pub weight: f64,
    /// Its dev value of the task's primary metric.
    pub dev_score: f64,
    pub cache_hit: bool,
    pub cache_path: PathBuf,
}

/// Combines `[rows, labels]` logits of several teachers into one tensor of the same shape:
/// per row `Σ_k w_ik · logits_k / Σ_k w_ik`, where `w_ik` is teacher k's weight, times (with
/// [`Combine::Confidence`]) its largest probability on row i.
pub fn combine(logits: &[Tensor], weights: &[f64], how: Combine) -> Result<Tensor> {
    let first = logits
        .first()
        .ok_or_else(|| Error::Invalid("no teacher logits to combine".into()))?;
    if logits.len() != weights.len() || logits.iter().any(|l| l.dims() != first.dims()) {
        return Err(Error::Invalid(format!(
            "teacher logits to combine must all be {:?}, one weight each: got {:?} and {} weights",
            first.dims(),
            logits.iter().map(|l| l.dims().to_vec()).collect::<Vec<_>>(),
            weights.len()
        )));
    }
    let mut sum: Option<Tensor> = None;
    let mut total: Option<Tensor> = None;
    for (l, &w) in logits.iter().zip(weights) {
        let l = l.to_dtype(DType::F32)?;
        // [rows, 1]: the teacher's weight on each row.
        let row_weight = match how {
            Combine::Fixed => Tensor::full(w as f32, (l.dim(0)?, 1), l.device())?,
            Combine::Confidence => (candle_nn::ops::softmax(&l, D::Minus1)?.max_keepdim(1)? * w)?,
        };
        let weighted = l.broadcast_mul(&row_weight)?;
        sum = Some(match sum {
            Some(s) => (s + weighted)?,
            None => weighted,
        });
        total = Some(match total {
            Some(t) => (t + row_weight)?,
            None => row_weight,
        });
    }
    let (sum, total) = (sum.expect("one teacher"), total.expect("one teacher"));
    Ok(sum.broadcast_div(&total)?)
}

/// The logits of `section.extra`'s teachers over the transfer set, combined with `first`'s
/// (the first teacher's cached logits over `train`). `inputs` are the transfer set's raw
/// inputs in example order, re-tokenised for a teacher whose tokenizer gives other ids.
pub fn ensemble_logits(
    section: &TeacherSection,
    first_teacher: &Classifier,
    first: &Tensor,
    train: &TaskData,
    dev: &crate::task::Corpus,
    inputs: &[&Input],
    cache_dir: &std::path::Path,
) -> Result<(Tensor, Vec<EnsembleMember>)> {
    let config = first_teacher.model.config();
    let task = Task::of(config);
    if task.reads_questions() {
        return Err(Error::Invalid(
            "several teachers cut a question's context into windows of their own: multi-teacher distillation is not supported for question answering yet; remove teacher.extra".into(),
        ));
    }
    let mut logits = vec![first.clone()];
    let mut weights = vec![section.weight];
    let mut members = Vec::new();
    for extra in &section.extra {
        let mut teacher = Classifier::load(&extra.dir, section.max_len)?;
        teacher.pack_for_inference()?;
        let c = teacher.model.config();
        if teacher.report.fresh_head || c.head != config.head || c.labels != config.labels {
            return Err(Error::Invalid(format!(
                "teacher.extra {} must be a trained {:?} model with the first teacher's labels {:?} (it has {:?})",
                extra.dir.display(),
                config.head,
                config.labels,
                c.labels
            )));
        }
        let own;
        let data = match teacher.tokenizer.same_tokens_as(&first_teacher.tokenizer) {
            true => train,
            false => {
                own = super::run::encoded_like(task, train, &teacher.tokenizer, inputs)?;
                &own
            }
        };
        let cached = teacher_logits(
            teacher.model.as_ref(),
            &extra.dir,
            data,
            cache_dir,
            64,
            &|_| {},
        )?;
        let dev_data = crate::train::finetune::task_data(task, &teacher.tokenizer, dev, &c.labels)?;
        let dev_score = crate::train::trainer::dev_metrics(teacher.model.as_ref(), &dev_data, 64)?
            .primary_value();
        eprintln!(
            "teacher {} (weight {}): dev {} {dev_score:.4}; logits {} in {:.1} s",
            extra.dir.display(),
            extra.weight,
            task.primary_metric(),
            if cached.hit {
                "reused"
            } else {
                "computed and cached"
            },
            cached.seconds
        );
        logits.push(cached.logits);
        weights.push(extra.weight);
        members.push(EnsembleMember {
            dir: extra.dir.clone(),
            weight: extra.weight,
            dev_score,
            cache_hit: cached.hit,
            cache_path: cached.path,
        });
    }
    Ok((combine(&logits, &weights, section.combine)?, members))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(rows: &[[f32; 2]]) -> Tensor {
        Tensor::new(rows.concat(), &Device::Cpu)
            .unwrap()
            .reshape((rows.len(), 2))
            .unwrap()
    }

    #[test]
    fn fixed_weights_give_the_weighted_mean_of_logits() {
        let a = t(&[[1.0, -1.0], [0.0, 2.0]]);
        let b = t(&[[3.0, 1.0], [4.0, -2.0]]);
        let c = combine(&[a.clone(), b], &[1.0, 3.0], Combine::Fixed).unwrap();
        assert_eq!(
            c.to_vec2::<f32>().unwrap(),
            vec![vec![2.5, 0.5], vec![3.0, -1.0]]
        );
        // One teacher: its own logits.
        let alone = combine(std::slice::from_ref(&a), &[2.0], Combine::Fixed).unwrap();
        assert_eq!(alone.to_vec2::<f32>().unwrap(), a.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn confidence_lets_the_surer_teacher_lead_on_each_row() {
        // Row 0: teacher a is sure (logit gap 4), b unsure (gap 0); row 1 the other way.
        let a = t(&[[4.0, 0.0], [0.0, 0.0]]);
        let b = t(&[[0.0, 0.0], [0.0, 4.0]]);
        let c = combine(&[a, b], &[1.0, 1.0], Combine::Confidence)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let sure = 1.0 / (1.0 + (-4.0f32).exp());
        // Row 0: (sure·[4, 0] + 0.5·[0, 0]) / (sure + 0.5).
        let w = sure / (sure + 0.5);
        assert!(
            (c[0][0] - 4.0 * w).abs() < 1e-6 && c[0][1].abs() < 1e-6,
            "{c:?}"
        );
        assert!(
            (c[1][1] - 4.0 * w).abs() < 1e-6 && c[1][0].abs() < 1e-6,
            "{c:?}"
        );
    }

    #[test]
    fn mismatched_teachers_are_refused() {
        let a = t(&[[1.0, 0.0]]);
        let wide = Tensor::zeros((1, 3), DType::F32, &Device::Cpu).unwrap();
        let err = combine(&[a.clone(), wide], &[1.0, 1.0], Combine::Fixed).unwrap_err();
        assert!(err.to_string().contains("[1, 2]"), "{err}");
        assert!(combine(&[a], &[1.0, 1.0], Combine::Fixed).is_err());
        assert!(combine(&[], &[], Combine::Fixed).is_err());
    }
}
