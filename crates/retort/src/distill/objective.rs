//! The training objective: a weighted sum of loss terms, with the teacher's outputs (cached
//! logits or an online no-grad pass) and learned projections for hidden-state matching.
//!
//! Fine-tuning is the same objective with only `hard_ce` and no teacher.

use candle_core::{DType, Device, Tensor};

use super::loss;
use crate::error::{Error, Result};
use crate::model::encoder::linear;
use crate::model::layers::Linear;
use crate::model::params::ParamBuilder;
use crate::model::{ClassifierOutput, EncoderInput, Outputs, Params, Pass, SequenceClassifier};
use crate::task::view::select_rows;
use crate::train::config::LossWeights;

/// One training batch: its tensors and the rows of logits its terms compare.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    pub input: EncoderInput,
    /// The task's rows of the batch: (example in the batch, token position) per row.
    pub rows: Vec<(u32, u32)>,
    /// Gold class per row; `None` for unlabelled ones (augmented examples).
    pub labels: Vec<Option<usize>>,
    /// Per row, its index in the cached teacher logits (rows of the whole training set).
    pub cache_rows: Vec<u32>,
}

impl TrainBatch {
    /// A batch of one-label-per-text examples: one row per example (its first token), with
    /// `labels` per example; `indices` are the examples' places in the training set, which
    /// are their rows in the teacher cache.
    pub fn sentences(input: EncoderInput, labels: Vec<Option<usize>>, indices: &[usize]) -> Self {
        Self {
            input,
            rows: (0..labels.len() as u32).map(|b| (b, 0)).collect(),
            labels,
            cache_rows: indices.iter().map(|&i| i as u32).collect(),
        }
    }
}

/// Where the teacher's signal comes from.
pub struct Teacher {
    /// The teacher model, run without gradients when intermediate terms need it (or when no
    /// logits are cached).
    pub model: Option<SequenceClassifier>,
    /// `[rows, labels]` logits over the training set's rows, in example order.
    pub cached_logits: Option<Tensor>,
}

/// A weighted sum of loss terms.
pub struct Objective {
    weights: LossWeights,
    temperature: f64,
    teacher: Option<Teacher>,
    /// (student layer, teacher layer) pairs for the intermediate terms, 0-based.
    pairs: Vec<(usize, usize)>,
    /// One projection per pair from the student's width to the teacher's (None: same width).
    projections: Vec<Option<Linear>>,
    /// Trainable parameters of the objective itself (the projections).
    pub params: Params,
}

/// A computed loss and the (unweighted) value of each active term.
pub struct LossValue {
    pub total: Tensor,
    pub terms: Vec<(&'static str, f64)>,
}

impl Objective {
    /// Plain supervised fine-tuning: cross-entropy with the gold labels.
    pub fn fine_tune() -> Self {
        let weights = LossWeights {
            hard_ce: 1.0,
            soft_kl: 0.0,
            ..LossWeights::default()
        };
        Self {
            weights,
            temperature: 1.0,
            teacher: None,
            pairs: Vec::new(),
            projections: Vec::new(),
            params: Params::default(),
        }
    }

    /// Distillation from `teacher` into a student of width `student_hidden`.
    pub fn distill(
        weights: LossWeights,
        temperature: f64,
        teacher: Teacher,
        pairs: Vec<(usize, usize)>,
        student_hidden: usize,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        // hard_ce alone (the "no teacher" baseline of an ablation) needs no teacher at all.
        let uses_teacher = weights.needs_logits() || weights.needs_intermediate();
        let needs_model = weights.needs_intermediate()
            || (weights.needs_logits() && teacher.cached_logits.is_none());
        let teacher_hidden = match (&teacher.model, needs_model) {
            (Some(m), _) => m.config.hidden_size,
            (None, true) => {
                return Err(Error::Invalid(
                    "these loss terms need the teacher model online, but none was given".into(),
                ))
            }
            (None, false) => student_hidden,
        };
        let project = weights.hidden_mse > 0.0 || weights.cosine > 0.0;
        let mut b = ParamBuilder::fresh(device, seed ^ 0x5eed);
        let projections = pairs
            .iter()
            .enumerate()
            .map(|(i, _)| match project && student_hidden != teacher_hidden {
                true => linear(
                    &mut b,
                    &format!("projection.{i}"),
                    student_hidden,
                    teacher_hidden,
                )
                .map(Some),
                false => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            weights,
            temperature,
            teacher: uses_teacher.then_some(teacher),
            pairs,
            projections,
            params: b.take_params(),
        })
    }

    /// What the student's forward pass must return for this objective.
    pub fn student_outputs(&self) -> Outputs {
        let w = &self.weights;
        Outputs {
            hidden_states: w.hidden_mse > 0.0 || w.cosine > 0.0,
            attentions: w.attention_mse > 0.0 || w.attention_kl > 0.0,
        }
    }

    /// The weighted loss of the student's output on `batch`.
    pub fn loss(&self, batch: &TrainBatch, student: &ClassifierOutput) -> Result<LossValue> {
        let w = &self.weights;
        let mut parts: Vec<(&'static str, f64, Tensor)> = Vec::new();
        let rows = select_rows(&student.logits, &batch.rows)?;
        if w.hard_ce > 0.0 {
            if let Some(ce) = self.hard_ce(batch, &rows)? {
                parts.push(("hard_ce", w.hard_ce, ce));
            }
        }
        if let Some(teacher) = &self.teacher {
            let online = self.teacher_online(teacher, &batch.input)?;
            if w.needs_logits() && !batch.rows.is_empty() {
                parts.extend(self.logit_terms(batch, teacher, online.as_ref(), &rows)?);
            }
            if let Some(out) = &online {
                parts.extend(self.intermediate_terms(batch, student, out)?);
            }
        }
        let mut total: Option<Tensor> = None;
        let mut terms = Vec::new();
        for (name, weight, value) in parts {
            terms.push((name, value.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64));
            let weighted = (value * weight)?;
            total = Some(match total {
                Some(t) => (t + weighted)?,
                None => weighted,
            });
        }
        let total = total.ok_or_else(|| {
            Error::Invalid("every loss term is switched off (all weights 0)".into())
        })?;
        Ok(LossValue { total, terms })
    }

    /// soft_kl, soft_ce and logit_mse against the teacher's cached (or online) logits.
    fn logit_terms(
        &self,
        batch: &TrainBatch,
        teacher: &Teacher,
        online: Option<&ClassifierOutput>,
        student_rows: &Tensor,
    ) -> Result<Vec<(&'static str, f64, Tensor)>> {
        let t_logits = match (&teacher.cached_logits, online) {
            (Some(cache), _) => cache.index_select(
                &Tensor::new(batch.cache_rows.as_slice(), cache.device())?,
                0,
            )?,
            (None, Some(out)) => select_rows(&out.logits, &batch.rows)?,
            (None, None) => {
                return Err(Error::Invalid(
                    "soft terms need the teacher's logits: neither cached nor online".into(),
                ))
            }
        };
        let (w, s, t, temp) = (&self.weights, student_rows, &t_logits, self.temperature);
        let mut parts = Vec::new();
        if w.soft_kl > 0.0 {
            parts.push(("soft_kl", w.soft_kl, loss::soft_kl(s, t, temp)?));
        }
        if w.soft_ce > 0.0 {
            parts.push(("soft_ce", w.soft_ce, loss::soft_ce(s, t, temp)?));
        }
        if w.logit_mse > 0.0 {
            parts.push(("logit_mse", w.logit_mse, loss::logit_mse(s, t)?));
        }
        Ok(parts)
    }

    /// Cross-entropy over the labelled rows of the batch (None when no row has a label).
    /// `logits`: the batch's rows, `[rows, labels]`.
    fn hard_ce(&self, batch: &TrainBatch, logits: &Tensor) -> Result<Option<Tensor>> {
        let rows: Vec<(u32, u32)> = batch
            .labels
            .iter()
            .enumerate()
            .filter_map(|(r, l)| l.map(|l| (r as u32, l as u32)))
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        let device = logits.device();
        let labels = Tensor::new(rows.iter().map(|r| r.1).collect::<Vec<_>>(), device)?;
        let logits = if rows.len() == batch.labels.len() {
            logits.clone()
        } else {
            logits.index_select(
                &Tensor::new(rows.iter().map(|r| r.0).collect::<Vec<_>>(), device)?,
                0,
            )?
        };
        Ok(Some(loss::hard_ce(&logits, &labels)?))
    }

    /// The teacher's outputs on the batch, when a term needs the model; detached, so no
    /// gradient flows into the teacher.
    fn teacher_online(
        &self,
        teacher: &Teacher,
        input: &EncoderInput,
    ) -> Result<Option<ClassifierOutput>> {
        let needs = self.weights.needs_intermediate()
            || (self.weights.needs_logits() && teacher.cached_logits.is_none());
        let Some(model) = teacher.model.as_ref().filter(|_| needs) else {
            return Ok(None);
        };
        let out = model.forward(input, Pass::INFERENCE, self.student_outputs())?;
        let detach = |v: Vec<Tensor>| v.into_iter().map(|t| t.detach()).collect();
        Ok(Some(ClassifierOutput {
            logits: out.logits.detach(),
            last_hidden_state: out.last_hidden_state.detach(),
            hidden_states: detach(out.hidden_states),
            attentions: detach(out.attentions),
            word_rows: None,
        }))
    }

    /// Hidden-state and attention terms over the mapped layer pairs, averaged over pairs.
    fn intermediate_terms(
        &self,
        batch: &TrainBatch,
        student: &ClassifierOutput,
        teacher: &ClassifierOutput,
    ) -> Result<Vec<(&'static str, f64, Tensor)>> {
        let w = &self.weights;
        let mask = &batch.input.attention_mask;
        let n = self.pairs.len() as f64;
        let mut sums: [Option<Tensor>; 4] = [None, None, None, None];
        let mut add = |slot: usize, t: Tensor| -> Result<()> {
            sums[slot] = Some(match sums[slot].take() {
                Some(acc) => (acc + t)?,
                None => t,
            });
            Ok(())
        };
        for (k, &(s, t)) in self.pairs.iter().enumerate() {
            if w.hidden_mse > 0.0 || w.cosine > 0.0 {
                let hs = &student.hidden_states[s + 1];
                let hs = match &self.projections[k] {
                    Some(p) => p.forward(hs)?,
                    None => hs.clone(),
                };
                let ht = &teacher.hidden_states[t + 1];
                if w.hidden_mse > 0.0 {
                    add(0, loss::hidden_mse(&hs, ht, mask)?)?;
                }
                if w.cosine > 0.0 {
                    add(1, loss::cosine(&hs, ht, mask)?)?;
                }
            }
            if w.attention_mse > 0.0 {
                add(
                    2,
                    loss::attention_mse(&student.attentions[s], &teacher.attentions[t], mask)?,
                )?;
            }
            if w.attention_kl > 0.0 {
                add(
                    3,
                    loss::attention_kl(&student.attentions[s], &teacher.attentions[t], mask)?,
                )?;
            }
        }
        let names = ["hidden_mse", "cosine", "attention_mse", "attention_kl"];
        let weights = [w.hidden_mse, w.cosine, w.attention_mse, w.attention_kl];
        let mut out = Vec::new();
        for ((name, weight), sum) in names.into_iter().zip(weights).zip(sums) {
            if let Some(sum) = sum {
                out.push((name, weight, (sum / n)?));
            }
        }
        Ok(out)
    }
}
