//! The training objective: a weighted sum of the run's loss terms ([`terms`]), with the
//! teacher's outputs (cached logits or an online no-grad pass) and learned projections for
//! hidden-state matching.
//!
//! Fine-tuning is the same objective with only `hard_ce` and no teacher. The trainer owns an
//! objective without knowing about distillation; `distill` builds one with a teacher.

pub mod loss;
pub mod mapping;
pub mod peers;
pub mod schedule;
pub mod terms;

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{DType, Tensor};

use self::mapping::LayerMap;
use self::peers::{GroupSettings, Peer};
use self::schedule::Scheduled;
use self::terms::{Needs, Term, TermKind, Weighting};
use crate::error::{Error, Result};
use crate::model::encoder::linear;
use crate::model::layers::Linear;
use crate::model::params::ParamBuilder;
use crate::model::{EncoderInput, Model, ModelOutput, Outputs, Params, Pass, RowAxis};
use crate::task::view::select_rows;

/// One training batch: its tensors and the rows of logits its terms compare.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    pub input: EncoderInput,
    /// The task's rows of the batch: (example in the batch, token position) per row along
    /// [`RowAxis::Labels`]; (example in the batch, output) along [`RowAxis::Positions`].
    pub rows: Vec<(u32, u32)>,
    /// How the rows cut the logits (the model's head says).
    pub axis: RowAxis,
    /// Gold class per row (a label, or a token position along [`RowAxis::Positions`]);
    /// `None` for unlabelled ones (augmented examples).
    pub labels: Vec<Option<usize>>,
    /// Per row, its index in the cached teacher logits (rows of the whole training set).
    pub cache_rows: Vec<u32>,
    /// The fraction of the run's optimiser steps done before this batch: where scheduled
    /// weights and temperatures are read.
    pub progress: f64,
    /// Each row's label is a set (a bit mask over the labels, see `task::multilabel`) that a
    /// sigmoid per label reads: hard_ce is then binary cross-entropy per label.
    pub multi_label: bool,
}

impl TrainBatch {
    /// A batch of one-label-per-text examples: one row per example (its first token), with
    /// `labels` per example; `indices` are the examples' places in the training set, which
    /// are their rows in the teacher cache.
    pub fn sentences(input: EncoderInput, labels: Vec<Option<usize>>, indices: &[usize]) -> Self {
        Self {
            input,
            rows: (0..labels.len() as u32).map(|b| (b, 0)).collect(),
            axis: RowAxis::Labels,
            labels,
            cache_rows: indices.iter().map(|&i| i as u32).collect(),
            progress: 0.0,
            multi_label: false,
        }
    }
}

impl TrainBatch {
    /// The batch's rows of `logits` (a student's or an online teacher's).
    pub fn select_rows(&self, logits: &Tensor) -> Result<Tensor> {
        select_rows(logits, &self.rows, self.axis, &self.input.attention_mask)
    }
}

/// Where the teacher's signal comes from.
pub struct Teacher {
    /// The teacher model, run without gradients when intermediate terms need it (or when no
    /// logits are cached).
    pub model: Option<Arc<dyn Model>>,
    /// `[rows, labels]` logits over the training set's rows, in example order.
    pub cached_logits: Option<Tensor>,
    /// Mutual learning: the teacher is the student's first peer and trains too, by its own
    /// optimiser with these settings. `None`: the teacher is fixed.
    pub learns: Option<GroupSettings>,
}

impl Teacher {
    /// A fixed teacher: a model run online, cached logits, or both.
    pub fn fixed(model: Option<Arc<dyn Model>>, cached_logits: Option<Tensor>) -> Self {
        Self {
            model,
            cached_logits,
            learns: None,
        }
    }
}

/// One term of the objective, its layer pairs resolved.
struct ActiveTerm {
    kind: TermKind,
    weight: Scheduled,
    /// How a logit term weights the batch's rows.
    weighting: Weighting,
    /// A logit term's weight per class (none: the plain mean over classes).
    class_weights: Option<Vec<f64>>,
    /// (student layer, teacher layer) pairs, 0-based: the intermediate kinds' only.
    pairs: Vec<(usize, usize)>,
    /// adversarial_kl's bound per token and its steps of ascent.
    perturbation: (f64, usize),
}

/// A weighted sum of loss terms.
pub struct Objective {
    terms: Vec<ActiveTerm>,
    needs: Needs,
    temperature: Scheduled,
    teacher: Option<Teacher>,
    /// A projection from the student's width to the teacher's per (student, teacher) layer
    /// pair that a hidden-state term compares (none when the widths are equal).
    projections: BTreeMap<(usize, usize), Linear>,
    /// Mutual learning: the models that learn beside the student, the teacher first.
    peers: Vec<Peer>,
    /// hard_ce's label smoothing (0: none).
    label_smoothing: f64,
    /// Trainable parameters of the objective itself: the projections, and each peer's (under
    /// its [`Peer::prefix`]: its own names could clash with the student's, and `last/` saves
    /// them all).
    pub params: Params,
}

/// The teacher's outputs on a batch, as the student's terms read them (detached), and, for
/// a teacher that learns too, its logits with their gradient.
struct OnlineTeacher {
    detached: ModelOutput,
    live_logits: Option<Tensor>,
}

/// A computed loss and the (unweighted) value of each active term.
pub struct LossValue {
    pub total: Tensor,
    pub terms: Vec<(&'static str, f64)>,
}

impl Objective {
    /// Plain supervised fine-tuning: cross-entropy with the gold labels.
    pub fn fine_tune() -> Self {
        Self {
            terms: vec![ActiveTerm {
                kind: TermKind::HardCe,
                weight: Scheduled::Constant(1.0),
                weighting: Weighting::Uniform,
                class_weights: None,
                pairs: Vec::new(),
                perturbation: (0.0, 0),
            }],
            needs: Needs::default(),
            temperature: Scheduled::Constant(1.0),
            teacher: None,
            projections: BTreeMap::new(),
            peers: Vec::new(),
            label_smoothing: 0.0,
            params: Params::default(),
        }
    }

    /// The same objective with hard_ce's targets smoothed by `epsilon` (see
    /// [`loss::hard_ce_smoothed`]).
    pub fn with_label_smoothing(mut self, epsilon: f64) -> Self {
        self.label_smoothing = epsilon;
        self
    }

    /// Distillation from `teacher` into a student with `student_layers` layers of width
    /// `student_hidden`, by `terms`; intermediate terms without a layer map of their own use
    /// `layer_map`.
    #[allow(clippy::too_many_arguments)]
    pub fn distill(
        terms: &[Term],
        layer_map: &LayerMap,
        temperature: impl Into<Scheduled>,
        teacher: Teacher,
        student_layers: usize,
        student_hidden: usize,
        seed: u64,
    ) -> Result<Self> {
        for t in terms {
            t.check()?;
        }
        let needs = Needs::of(terms);
        let learns = teacher.learns.is_some();
        if learns && (teacher.model.is_none() || teacher.cached_logits.is_some()) {
            return Err(Error::Invalid(
                "a teacher that learns (mutual learning) runs online: give its model and no cached logits".into(),
            ));
        }
        if learns && !needs.teacher_logits {
            return Err(Error::Invalid(
                "mutual learning needs a term that compares logits (soft_kl, soft_ce, logit_mse or logistic)".into(),
            ));
        }
        let needs_model = needs.teacher_online()
            || needs.perturbed_inputs
            || (needs.teacher_logits && teacher.cached_logits.is_none());
        let (teacher_layers, teacher_hidden) = match (teacher.model.as_ref(), needs_model) {
            (Some(m), _) => (m.config().num_layers, m.config().hidden_size),
            (None, true) => {
                return Err(Error::Invalid(
                    "these loss terms need the teacher model online, but none was given".into(),
                ))
            }
            (None, false) => (0, student_hidden),
        };
        let terms = terms
            .iter()
            .map(|t| {
                let pairs = match t.kind.is_intermediate() {
                    true => t
                        .layer_map
                        .as_ref()
                        .unwrap_or(layer_map)
                        .pairs(student_layers, teacher_layers)?,
                    false => Vec::new(),
                };
                Ok(ActiveTerm {
                    kind: t.kind,
                    weight: t.weight,
                    weighting: t.weighting,
                    class_weights: t.class_weights.clone(),
                    pairs,
                    perturbation: t.perturbation(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut b = ParamBuilder::fresh(seed ^ 0x5eed);
        let mut projections = BTreeMap::new();
        if student_hidden != teacher_hidden {
            for t in terms.iter().filter(|t| t.kind.needs().hidden_states) {
                for &(s, te) in &t.pairs {
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        projections.entry((s, te))
                    {
                        let name = format!("projection.{s}.{te}");
                        slot.insert(linear(&mut b, &name, student_hidden, teacher_hidden)?);
                    }
                }
            }
        }
        let params = b.take_params();
        let learning_teacher = match (teacher.learns, teacher.model.as_ref()) {
            (Some(settings), Some(model)) => Some((model.clone(), settings)),
            _ => None,
        };
        // hard_ce alone (the "no teacher" baseline of an ablation) needs no teacher at all.
        let uses_teacher = needs.teacher_logits || needs.teacher_online() || needs.perturbed_inputs;
        let objective = Self {
            terms,
            needs,
            temperature: temperature.into(),
            teacher: uses_teacher.then_some(teacher),
            projections,
            peers: Vec::new(),
            label_smoothing: 0.0,
            params,
        };
        objective.with_peers(learning_teacher)
    }

    /// Adds models that learn beside the student (mutual learning), each by its own settings,
    /// named after those already here. The first peer must be the teacher (see
    /// [`Teacher::learns`]): it is the one intermediate terms read.
    pub fn with_peers(
        mut self,
        peers: impl IntoIterator<Item = (Arc<dyn Model>, GroupSettings)>,
    ) -> Result<Self> {
        let teacher_learns = self.teacher.as_ref().is_some_and(|t| t.learns.is_some());
        for (model, settings) in peers {
            if !teacher_learns {
                return Err(Error::Invalid(
                    "peers learn beside a teacher that learns too (mutual learning)".into(),
                ));
            }
            let peer = Peer {
                name: Peer::name_of(self.peers.len()),
                model,
                settings,
            };
            self.params =
                Params::merged(&self.params, &peer.model.params().prefixed(&peer.prefix()));
            self.peers.push(peer);
        }
        Ok(self)
    }

    /// Mutual learning's peers, the teacher first (empty otherwise).
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The scheduled values at `progress`, by name (`temperature`, `weight.<term>`): what
    /// the training log records. Empty when nothing changes over the run.
    pub fn schedule_at(&self, progress: f64) -> Vec<(String, f64)> {
        let mut values = Vec::new();
        let logit_terms = self.terms.iter().any(|t| t.kind.needs().teacher_logits);
        if self.temperature.varies() && logit_terms {
            values.push(("temperature".to_string(), self.temperature.at(progress)));
        }
        for t in self.terms.iter().filter(|t| t.weight.varies()) {
            values.push((format!("weight.{}", t.kind.name()), t.weight.at(progress)));
        }
        values
    }

    /// What the student's forward pass must return for this objective.
    pub fn student_outputs(&self) -> Outputs {
        Outputs {
            hidden_states: self.needs.hidden_states,
            attentions: self.needs.attentions,
            last_hidden_state: false,
        }
    }

    /// The weighted loss of the student's output on `batch`.
    pub fn loss(&self, batch: &TrainBatch, student: &ModelOutput) -> Result<LossValue> {
        // General distillation's batches have no rows (no labels, no head): only intermediate
        // terms apply to them.
        let rows = match batch.rows.is_empty() {
            true => None,
            false => Some(batch.select_rows(&student.logits)?),
        };
        let online = match &self.teacher {
            Some(teacher) => self.teacher_online(teacher, &batch.input)?,
            None => None,
        };
        // Mutual learning: each peer's rows with their gradient, the teacher's first.
        let peer_rows = match &rows {
            Some(_) if !self.peers.is_empty() => self.peer_rows(batch, online.as_ref())?,
            _ => Vec::new(),
        };
        // What the student's logit terms compare its rows with (their mean over several).
        let targets = match self.needs.teacher_logits && !batch.rows.is_empty() {
            true if !peer_rows.is_empty() => peer_rows.iter().map(Tensor::detach).collect(),
            true => vec![self.teacher_rows(batch, online.as_ref().map(|o| &o.detached))?],
            false => Vec::new(),
        };
        let mut total: Option<Tensor> = None;
        let mut values = Vec::new();
        for term in &self.terms {
            let value = match (term.kind, &rows) {
                // Computed on other inputs, by `add_adversarial`.
                (TermKind::AdversarialKl, _) => None,
                (_, None) if !term.kind.is_intermediate() => None,
                (TermKind::HardCe, Some(rows)) => self.hard_ce(batch, rows)?,
                (_, Some(rows)) if term.kind.needs().teacher_logits => {
                    self.mean_logit_term(term, rows, &targets, batch)?
                }
                _ => {
                    let out = online.as_ref().expect("intermediate terms run the teacher");
                    Some(self.intermediate_term(term, batch, student, &out.detached)?)
                }
            };
            let Some(value) = value else { continue };
            add_term(
                &mut total,
                &mut values,
                term.kind.name(),
                value,
                term,
                batch,
            )?;
        }
        // Mutual learning: each peer's own loss, toward the other models' detached rows (the
        // student's among them). The losses share no parameter through the detached targets,
        // so one backward pass of their sum gives each model the gradient of its own loss.
        if let Some(rows) = &rows {
            for (k, (peer, mine)) in self.peers.iter().zip(&peer_rows).enumerate() {
                let others: Vec<Tensor> = std::iter::once(rows)
                    .chain(peer_rows.iter().take(k))
                    .chain(peer_rows.iter().skip(k + 1))
                    .map(Tensor::detach)
                    .collect();
                for term in &self.terms {
                    let value = match term.kind {
                        TermKind::HardCe => self.hard_ce(batch, mine)?,
                        k if k.needs().teacher_logits => {
                            self.mean_logit_term(term, mine, &others, batch)?
                        }
                        _ => None,
                    };
                    let Some(value) = value else { continue };
                    let name = peers::term_name(&peer.name, term.kind);
                    add_term(&mut total, &mut values, name, value, term, batch)?;
                }
            }
        }
        let total = total.ok_or_else(|| {
            Error::Invalid(
                "no loss term applies to this batch (no labelled row and no teacher term)".into(),
            )
        })?;
        Ok(LossValue {
            total,
            terms: values,
        })
    }

    /// Adds each adversarial_kl term of the objective to `loss`: the student's soft_kl toward
    /// the teacher on the batch with its word embeddings perturbed to maximise that divergence
    /// ([`adversarial_noise`]). `student` runs again, in training mode, on the perturbed
    /// inputs; the teacher runs without gradients there. Batches without rows are left alone.
    pub fn add_adversarial(
        &self,
        student: &dyn Model,
        batch: &TrainBatch,
        loss: &mut LossValue,
    ) -> Result<()> {
        let adversarial = self
            .terms
            .iter()
            .filter(|t| t.kind == TermKind::AdversarialKl);
        for term in adversarial {
            if batch.rows.is_empty() {
                continue;
            }
            let teacher = self.online_teacher_model()?;
            let temp = self.temperature.at(batch.progress);
            let (epsilon, steps) = term.perturbation;
            let noise = adversarial_noise(student, teacher, batch, epsilon, steps, temp)?;
            let input = EncoderInput {
                word_noise: Some(noise),
                ..batch.input.clone()
            };
            let none = Outputs::default();
            let t = teacher.forward(&input, Pass::INFERENCE, none)?;
            let t_rows = batch.select_rows(&t.logits)?.detach();
            let s = student.forward(&input, Pass::TRAIN, none)?;
            let value = loss::soft_kl(&batch.select_rows(&s.logits)?, &t_rows, temp)?;
            let mut total = Some(loss.total.clone());
            add_term(
                &mut total,
                &mut loss.terms,
                term.kind.name(),
                value,
                term,
                batch,
            )?;
            loss.total = total.expect("just added");
        }
        Ok(())
    }

    /// The teacher model the online terms run.
    fn online_teacher_model(&self) -> Result<&dyn Model> {
        self.teacher
            .as_ref()
            .and_then(|t| t.model.as_deref())
            .ok_or_else(|| {
                Error::Invalid("adversarial_kl runs the teacher online, but none was given".into())
            })
    }

    /// The teacher's logits at the batch's rows: cached, or from the online pass.
    fn teacher_rows(&self, batch: &TrainBatch, online: Option<&ModelOutput>) -> Result<Tensor> {
        let cached = self.teacher.as_ref().and_then(|t| t.cached_logits.as_ref());
        match (cached, online) {
            (Some(cache), _) => {
                let rows = cache.index_select(
                    &Tensor::new(batch.cache_rows.as_slice(), cache.device())?,
                    0,
                )?;
                match batch.axis {
                    RowAxis::Labels => Ok(rows),
                    // Cached position rows span the longest example, padded with MASKED;
                    // this batch's rows are as wide as its longest example.
                    RowAxis::Positions => Ok(rows.narrow(1, 0, batch.input.input_ids.dim(1)?)?),
                }
            }
            (None, Some(out)) => batch.select_rows(&out.logits),
            (None, None) => Err(Error::Invalid(
                "soft terms need the teacher's logits: neither cached nor online".into(),
            )),
        }
    }

    /// Each peer's rows of `batch`, live (with their gradient): the teacher's from its online
    /// pass, the others' from a training pass of their own.
    fn peer_rows(&self, batch: &TrainBatch, online: Option<&OnlineTeacher>) -> Result<Vec<Tensor>> {
        let teacher = online
            .and_then(|o| o.live_logits.as_ref())
            .ok_or_else(|| Error::Invalid("mutual learning runs the teacher online".into()))?;
        let mut rows = vec![batch.select_rows(teacher)?];
        for peer in &self.peers[1..] {
            let out = peer
                .model
                .forward(&batch.input, Pass::TRAIN, Outputs::default())?;
            rows.push(batch.select_rows(&out.logits)?);
        }
        Ok(rows)
    }

    /// A logit term of `rows` toward each of `targets`, averaged over them (None when there is
    /// no target: a batch without rows).
    fn mean_logit_term(
        &self,
        term: &ActiveTerm,
        rows: &Tensor,
        targets: &[Tensor],
        batch: &TrainBatch,
    ) -> Result<Option<Tensor>> {
        let mut sum: Option<Tensor> = None;
        for t in targets {
            let value = self.logit_term(term, rows, t, batch)?;
            sum = Some(match sum {
                Some(acc) => (acc + value)?,
                None => value,
            });
        }
        match (sum, targets.len()) {
            (Some(sum), 1) => Ok(Some(sum)),
            (Some(sum), n) => Ok(Some((sum / n as f64)?)),
            (None, _) => Ok(None),
        }
    }

    /// soft_kl, soft_ce, logit_mse, logistic or soft_bce between the student's and the
    /// teacher's rows of `batch`, averaged over the rows as the term's weighting says.
    fn logit_term(
        &self,
        term: &ActiveTerm,
        student: &Tensor,
        teacher: &Tensor,
        batch: &TrainBatch,
    ) -> Result<Tensor> {
        let temp = self.temperature.at(batch.progress);
        let weights = term.class_weights.as_deref();
        let per_row = match term.kind {
            TermKind::SoftKl => loss::soft_kl_rows(student, teacher, temp)?,
            TermKind::SoftCe => loss::soft_ce_rows(student, teacher, temp)?,
            TermKind::LogitMse => {
                loss::class_mean(&loss::logit_mse_elements(student, teacher)?, weights)?
            }
            TermKind::Logistic => {
                loss::class_mean(&loss::logistic_elements(student, teacher, temp)?, weights)?
            }
            TermKind::SoftBce => {
                loss::class_mean(&loss::soft_bce_elements(student, teacher, temp)?, weights)?
            }
            other => unreachable!("{} is not a logit term", other.name()),
        };
        match term.weighting {
            Weighting::Uniform => Ok(per_row.mean_all()?),
            Weighting::TeacherConfidence => {
                let confidence = match batch.multi_label {
                    true => loss::teacher_label_confidence(teacher)?,
                    false => loss::teacher_confidence(teacher)?,
                };
                loss::weighted_mean(&per_row, &confidence)
            }
        }
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
        let logits = if rows.len() == batch.labels.len() {
            logits.clone()
        } else {
            logits.index_select(
                &Tensor::new(rows.iter().map(|r| r.0).collect::<Vec<_>>(), device)?,
                0,
            )?
        };
        if batch.multi_label {
            let masks: Vec<usize> = batch.labels.iter().flatten().copied().collect();
            let targets = crate::task::multilabel::multi_hot(&masks, logits.dim(1)?, device)?;
            return Ok(Some(loss::bce_with_logits(&logits, &targets)?));
        }
        let labels = Tensor::new(rows.iter().map(|r| r.1).collect::<Vec<_>>(), device)?;
        Ok(Some(loss::hard_ce_smoothed(
            &logits,
            &labels,
            self.label_smoothing,
        )?))
    }

    /// The teacher's outputs on the batch, when a term needs the model; detached for the
    /// student's terms, so no gradient flows into the teacher through them. A learning
    /// teacher runs as in training (dropout, gradients) and keeps its live logits too.
    fn teacher_online(
        &self,
        teacher: &Teacher,
        input: &EncoderInput,
    ) -> Result<Option<OnlineTeacher>> {
        let needs = self.needs.teacher_online()
            || (self.needs.teacher_logits && teacher.cached_logits.is_none());
        let Some(model) = teacher.model.as_ref().filter(|_| needs) else {
            return Ok(None);
        };
        let pass = match teacher.learns {
            Some(_) => Pass::TRAIN,
            None => Pass::INFERENCE,
        };
        let out = model.forward(input, pass, self.student_outputs())?;
        let live_logits = teacher.learns.map(|_| out.logits.clone());
        let detach = |v: Vec<Tensor>| v.into_iter().map(|t| t.detach()).collect();
        Ok(Some(OnlineTeacher {
            detached: ModelOutput {
                logits: out.logits.detach(),
                last_hidden_state: out.last_hidden_state.detach(),
                hidden_states: detach(out.hidden_states),
                attentions: detach(out.attentions),
                word_rows: None,
            },
            live_logits,
        }))
    }

    /// A hidden-state or attention term over its layer pairs, averaged over the pairs.
    fn intermediate_term(
        &self,
        term: &ActiveTerm,
        batch: &TrainBatch,
        student: &ModelOutput,
        teacher: &ModelOutput,
    ) -> Result<Tensor> {
        let mask = &batch.input.attention_mask;
        let mut sum: Option<Tensor> = None;
        for &(s, t) in &term.pairs {
            let value = match term.kind {
                TermKind::HiddenMse | TermKind::Cosine => {
                    let hs = &student.hidden_states[s + 1];
                    let hs = match self.projections.get(&(s, t)) {
                        Some(p) => p.forward(hs)?,
                        None => hs.clone(),
                    };
                    let ht = &teacher.hidden_states[t + 1];
                    match term.kind {
                        TermKind::HiddenMse => loss::hidden_mse(&hs, ht, mask)?,
                        _ => loss::cosine(&hs, ht, mask)?,
                    }
                }
                TermKind::AttentionMse => {
                    loss::attention_mse(&student.attentions[s], &teacher.attentions[t], mask)?
                }
                TermKind::AttentionKl => {
                    loss::attention_kl(&student.attentions[s], &teacher.attentions[t], mask)?
                }
                other => unreachable!("{} is not an intermediate term", other.name()),
            };
            sum = Some(match sum {
                Some(acc) => (acc + value)?,
                None => value,
            });
        }
        let sum =
            sum.ok_or_else(|| Error::Invalid(format!("{}: no layer pairs", term.kind.name())))?;
        Ok((sum / term.pairs.len() as f64)?)
    }
}

/// Adds `value` × the term's weight at this batch to `total`, and records the unweighted value
/// under `name`.
fn add_term(
    total: &mut Option<Tensor>,
    values: &mut Vec<(&'static str, f64)>,
    name: &'static str,
    value: Tensor,
    term: &ActiveTerm,
    batch: &TrainBatch,
) -> Result<()> {
    values.push((name, value.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64));
    let weighted = (value * term.weight.at(batch.progress))?;
    *total = Some(match total.take() {
        Some(t) => (t + weighted)?,
        None => weighted,
    });
    Ok(())
}

/// Each token's vector of `x` (`[batch, seq, width]`) scaled to L2 norm `norm` (zero vectors,
/// padding's, stay zero).
fn per_token_scaled(x: &Tensor, norm: f64) -> Result<Tensor> {
    let lengths = x.sqr()?.sum_keepdim(2)?.sqrt()?;
    Ok(x.broadcast_div(&(lengths + 1e-12)?)?.affine(norm, 0.0)?)
}

/// `x` with each token's vector shortened to L2 norm `max` where it is longer.
fn clipped(x: &Tensor, max: f64) -> Result<Tensor> {
    let lengths = x.sqr()?.sum_keepdim(2)?.sqrt()?;
    let scale = (lengths + 1e-12)?
        .recip()?
        .affine(max, 0.0)?
        .clamp(0.0, 1.0)?;
    Ok(x.broadcast_mul(&scale)?)
}

/// The perturbation of the batch's word embeddings (`[batch, seq, width]`, zero at padding)
/// that raises the divergence between teacher and student most: `steps` steps of gradient
/// ascent on soft_kl, each moving every token by `epsilon / steps` along its own gradient,
/// the token's whole perturbation kept within `epsilon` (Miyato et al. 2017's adversarial
/// training on embeddings, with the teacher–student divergence as the objective). Both
/// models run with gradients (the fused inference kernels have no backward pass) and
/// without dropout; only the perturbation's gradient is used.
pub fn adversarial_noise(
    student: &dyn Model,
    teacher: &dyn Model,
    batch: &TrainBatch,
    epsilon: f64,
    steps: usize,
    temp: f64,
) -> Result<Tensor> {
    let ids = &batch.input.input_ids;
    let (b, seq) = ids.dims2()?;
    let width = teacher.config().hidden_size;
    let mask = batch.input.attention_mask.unsqueeze(2)?;
    let mut noise = Tensor::zeros((b, seq, width), DType::F32, ids.device())?;
    let none = Outputs::default();
    for _ in 0..steps {
        let var = candle_core::Var::from_tensor(&noise)?;
        let input = EncoderInput {
            word_noise: Some(var.as_tensor().clone()),
            ..batch.input.clone()
        };
        let t = teacher.forward(&input, Pass::GRAD_NO_DROPOUT, none)?;
        let s = student.forward(&input, Pass::GRAD_NO_DROPOUT, none)?;
        let kl = loss::soft_kl(
            &batch.select_rows(&s.logits)?,
            &batch.select_rows(&t.logits)?,
            temp,
        )?;
        let Some(grad) = kl.backward()?.remove(var.as_tensor()) else {
            break; // the divergence does not depend on the inputs: nothing to ascend
        };
        let step = per_token_scaled(&grad.broadcast_mul(&mask)?, epsilon / steps as f64)?;
        noise = clipped(&(noise + step)?, epsilon)?;
    }
    Ok(noise.broadcast_mul(&mask)?.detach())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{batch::pad_batch, Encoded};

    fn batch(labels: Vec<Option<usize>>, multi_label: bool) -> TrainBatch {
        let encoded = Encoded {
            ids: vec![2, 5, 3],
            type_ids: vec![0; 3],
        };
        let items = vec![&encoded; labels.len()];
        let indices: Vec<usize> = (0..labels.len()).collect();
        let mut b = TrainBatch::sentences(pad_batch(&items, 0).unwrap(), labels, &indices);
        b.multi_label = multi_label;
        b
    }

    /// A row without a gold label set (an augmented or unlabelled text) adds nothing to a
    /// multi-label head's hard term: the loss is that of the labelled rows alone.
    #[test]
    fn multi_label_hard_ce_skips_rows_without_labels() {
        let dev = candle_core::Device::Cpu;
        let rows = [[1.5f32, -0.5, 0.25], [9.0, -9.0, 4.0], [-1.0, 2.0, 0.5]];
        let logits = Tensor::new(&rows, &dev).unwrap();
        let objective = Objective::fine_tune();
        let all = objective
            .hard_ce(&batch(vec![Some(0b101), None, Some(0b010)], true), &logits)
            .unwrap()
            .unwrap();
        let labelled = Tensor::new(&[rows[0], rows[2]], &dev).unwrap();
        let targets = Tensor::new(&[[1f32, 0., 1.], [0., 1., 0.]], &dev).unwrap();
        let want = loss::bce_with_logits(&labelled, &targets).unwrap();
        let (all, want) = (
            all.to_scalar::<f32>().unwrap(),
            want.to_scalar::<f32>().unwrap(),
        );
        assert!((all - want).abs() < 1e-6, "{all} vs {want}");
        // No labelled row at all: no hard term.
        let none = objective.hard_ce(&batch(vec![None, None, None], true), &logits);
        assert!(none.unwrap().is_none());
    }
}
