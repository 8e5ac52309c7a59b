//! Distillation loss terms: each a small pure function returning a scalar (0-dim) tensor.
//!
//! Conventions shared by every function here:
//! - The student input is the one gradients flow to; every op used records a backward pass
//!   (no fused `softmax_last_dim` / `layer_norm`, which silently drop gradients).
//! - Teacher inputs are constants: they are detached here as well, so a caller that forgets
//!   cannot leak gradients into the teacher.
//! - The loss is computed in the student's dtype, half precision promoted to f32 (losses are
//!   reductions; f16/bf16 sums lose too much): the result is f32 unless the student is f64.
//!   The teacher is cast to that dtype, so e.g. an f16 teacher cache works with an f32 student.
//! - Masks are `[batch, seq]`, non-zero = real token, 0 = padding. Padded positions are
//!   *selected away* (`where_cond`) before any arithmetic, not multiplied by 0, so even NaN or
//!   huge values there change neither the loss nor the gradient (the student gets exactly 0 at
//!   padded positions). A batch with no real token gives a loss of 0 rather than 0/0.
//! - Shape mismatches are [`Error::Invalid`] naming the loss and the shapes; nothing panics.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};

/// Guard added to probabilities before `log` in [`attention_kl`]: `log(p + EPS_LOG)` is finite
/// for `p = 0`, and `0 · log(0 + EPS_LOG) = 0` exactly.
const EPS_LOG: f64 = 1e-12;

/// Guard on vector norms in [`cosine`]: `‖x‖` is computed as `sqrt(‖x‖² + EPS_NORM²)`, so an
/// all-zero vector has a finite norm *and* a finite gradient (a bare `sqrt(0)` has an infinite
/// derivative, which would turn into NaN in the backward pass).
const EPS_NORM: f64 = 1e-8;

/// Mean cross-entropy of `logits` (`[batch, classes]`) against integer `labels` (`[batch]`,
/// u32; u8 and i64 are accepted too): `mean_i −log softmax(logits_i)[labels_i]`.
///
/// The ordinary supervised ("hard label") term of Hinton et al. 2015, "Distilling the
/// Knowledge in a Neural Network". Labels are checked to lie in `0..classes` (this reads the
/// small label tensor back to the host), because an out-of-range index would otherwise be
/// undefined behaviour on some devices.
pub fn hard_ce(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    hard_ce_smoothed(logits, labels, 0.0)
}

/// [`hard_ce`] with label smoothing `epsilon`: the target puts 1 − ε on the gold class and
/// ε / classes on every class (Szegedy et al. 2016; what translators train with).
pub fn hard_ce_smoothed(logits: &Tensor, labels: &Tensor, epsilon: f64) -> Result<Tensor> {
    const NAME: &str = "hard_ce";
    let (batch, classes) = logits_dims(NAME, logits)?;
    if labels.dims() != [batch] {
        return Err(invalid(format!(
            "{NAME}: labels shape {:?} does not match logits shape {:?} (expected [{batch}])",
            labels.dims(),
            logits.dims()
        )));
    }
    if !matches!(labels.dtype(), DType::U8 | DType::U32 | DType::I64) {
        return Err(invalid(format!(
            "{NAME}: labels must be integers (u8, u32 or i64), got {:?}",
            labels.dtype()
        )));
    }
    let values = labels.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    if let Some(bad) = values.iter().find(|&&l| l < 0 || l as usize >= classes) {
        return Err(invalid(format!(
            "{NAME}: label {bad} out of range for {classes} classes"
        )));
    }
    // The fused kernel: no full-size log-probabilities and gathers, what a 10,000-word
    // vocabulary made costly.
    let labels: Vec<u32> = values.iter().map(|&l| l as u32).collect();
    let per_row = crate::model::kernels::cross_entropy(&promote(logits)?, &labels, epsilon as f32)?;
    Ok(per_row.sum_all()?.affine(1.0 / batch as f64, 0.0)?)
}

/// Hinton's soft-target term: `T² · mean_i KL(softmax(t_i/T) ‖ softmax(s_i/T))`.
///
/// Hinton et al. 2015, "Distilling the Knowledge in a Neural Network". The `T²` factor keeps
/// the gradient magnitude roughly independent of the temperature (the softened gradients
/// scale as `1/T²`), so the weight between hard and soft terms need not be retuned per `T`.
/// Both sides go through `log_softmax`, so no `log(0)` can appear; the teacher probabilities
/// are `exp` of the teacher log-probabilities.
pub fn soft_kl(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    Ok(soft_kl_rows(student_logits, teacher_logits, temperature)?.mean_all()?)
}

/// [`soft_kl`] of each row, `[batch]`: `T² · KL(softmax(t_i/T) ‖ softmax(s_i/T))`.
pub fn soft_kl_rows(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    const NAME: &str = "soft_kl";
    logit_pair(NAME, student_logits, teacher_logits)?;
    check_temperature(NAME, temperature)?;
    let (log_q, log_p) = tempered_log_probs(student_logits, teacher_logits, temperature)?;
    let kl = (log_p.exp()? * (log_p - log_q)?)?.sum(1)?;
    Ok(kl.affine(temperature * temperature, 0.0)?)
}

/// Soft cross-entropy: `T² · mean_i −Σ_c softmax(t_i/T)_c · log_softmax(s_i/T)_c`.
///
/// Same gradient as [`soft_kl`] (they differ by the teacher's entropy, a constant), but the
/// value does not reach 0 at a perfect match; some papers and codebases (e.g. DistilBERT's
/// original training script) report this form. Scaled by `T²` for the same reason.
pub fn soft_ce(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    Ok(soft_ce_rows(student_logits, teacher_logits, temperature)?.mean_all()?)
}

/// [`soft_ce`] of each row, `[batch]`.
pub fn soft_ce_rows(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    const NAME: &str = "soft_ce";
    logit_pair(NAME, student_logits, teacher_logits)?;
    check_temperature(NAME, temperature)?;
    let (log_q, log_p) = tempered_log_probs(student_logits, teacher_logits, temperature)?;
    let ce = (log_p.exp()? * log_q)?.sum(1)?;
    Ok(ce.affine(-temperature * temperature, 0.0)?)
}

/// Mean squared error between logits over all elements: `mean_{i,c} (s_ic − t_ic)²`.
///
/// Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?", and Tang et al. 2019,
/// "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks": matching raw
/// logits is the high-temperature limit of [`soft_kl`] and has no temperature to tune.
pub fn logit_mse(student_logits: &Tensor, teacher_logits: &Tensor) -> Result<Tensor> {
    Ok(logit_mse_rows(student_logits, teacher_logits)?.mean_all()?)
}

/// [`logit_mse`] of each row, `[batch]`: `mean_c (s_ic − t_ic)²`.
pub fn logit_mse_rows(student_logits: &Tensor, teacher_logits: &Tensor) -> Result<Tensor> {
    Ok(logit_mse_elements(student_logits, teacher_logits)?.mean(1)?)
}

/// [`logit_mse`] of each row and class, `[batch, classes]`: `(s_ic − t_ic)²`.
pub fn logit_mse_elements(student_logits: &Tensor, teacher_logits: &Tensor) -> Result<Tensor> {
    logit_pair("logit_mse", student_logits, teacher_logits)?;
    let (s, t) = operands(student_logits, teacher_logits)?;
    Ok((s - t)?.sqr()?)
}

/// The logistic logit loss: `T² · mean_{i,c} log(1 + exp(−(s_ic/T)·(t_ic/T)))`.
///
/// Each logit is read as a one-vs-rest decision whose side the teacher's logit gives: the
/// loss falls as the student's logit agrees in sign with the teacher's and grows in size,
/// and pulls hardest where the teacher is most sure (the gradient on `s_ic` is
/// `−t_ic · σ(−s_ic·t_ic/T²)`). It treats classes independently, so it also fits multi-label
/// heads. `T²` scales it like the soft terms. The softplus is computed as
/// `max(x, 0) + log(1 + exp(−|x|))`, finite for any `x`.
pub fn logistic(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    Ok(logistic_rows(student_logits, teacher_logits, temperature)?.mean_all()?)
}

/// [`logistic`] of each row, `[batch]` (the mean over classes, × T²).
pub fn logistic_rows(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    Ok(logistic_elements(student_logits, teacher_logits, temperature)?.mean(1)?)
}

/// [`logistic`] of each row and class, `[batch, classes]`: `T² · log(1 + exp(−s_ic·t_ic/T²))`.
pub fn logistic_elements(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    const NAME: &str = "logistic";
    logit_pair(NAME, student_logits, teacher_logits)?;
    check_temperature(NAME, temperature)?;
    let (s, t) = operands(student_logits, teacher_logits)?;
    let x = (s * t)?.affine(-1.0 / (temperature * temperature), 0.0)?;
    let softplus = (x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok(softplus.affine(temperature * temperature, 0.0)?)
}

/// Binary cross-entropy of independent per-label decisions: `mean_{i,c} softplus(x_ic) − x_ic·y_ic`
/// for logits `x` and targets `y` in [0, 1] (both `[rows, labels]`): the hard term of a
/// multi-label head (y of 0 or 1), and, with the teacher's sigmoid probabilities as `y`, the
/// core of [`soft_bce_rows`]. The softplus is `max(x, 0) + log(1 + exp(−|x|))`, finite for any `x`.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(bce_rows(logits, targets)?.mean_all()?)
}

/// [`bce_with_logits`] of each row, `[rows]` (the mean over labels).
fn bce_rows(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(bce_elements(logits, targets)?.mean(1)?)
}

/// [`bce_with_logits`] of each row and label, `[rows, labels]`.
fn bce_elements(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    const NAME: &str = "bce";
    logit_pair(NAME, logits, targets)?;
    let (x, y) = operands(logits, targets)?;
    let softplus = (x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok((softplus - (x * y)?)?)
}

/// Sigmoid distillation for multi-label heads, per row: `T² · mean_c BCE(σ(s_c/T); σ(t_c/T))`,
/// each label's softened probability the target of the student's (the binary form of
/// soft_ce; its gradient on `s_c` is `T · (σ(s_c/T) − σ(t_c/T))`).
pub fn soft_bce_rows(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    Ok(soft_bce_elements(student_logits, teacher_logits, temperature)?.mean(1)?)
}

/// [`soft_bce_rows`] of each row and label, `[batch, labels]`.
pub fn soft_bce_elements(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    const NAME: &str = "soft_bce";
    logit_pair(NAME, student_logits, teacher_logits)?;
    check_temperature(NAME, temperature)?;
    let (s, t) = operands(student_logits, teacher_logits)?;
    let inv = 1.0 / temperature;
    let p = candle_nn::ops::sigmoid(&t.affine(inv, 0.0)?.detach())?;
    Ok(bce_elements(&s.affine(inv, 0.0)?, &p)?.affine(temperature * temperature, 0.0)?)
}

/// Per-class losses `[batch, classes]` reduced to rows, `[batch]`: the mean over classes, or
/// with a weight λ_c per class `mean_c λ_c · l_ic` (the logistic loss's `Σ λ·T²·log(1 +
/// exp(−s·t))` with λ per class, e.g. to count rare labels more). Weights of 1 give the mean.
pub fn class_mean(elements: &Tensor, class_weights: Option<&[f64]>) -> Result<Tensor> {
    let name = "class_weights";
    let (_, classes) = logits_dims(name, elements)?;
    let Some(class_weights) = class_weights else {
        return Ok(elements.mean(1)?);
    };
    if class_weights.len() != classes {
        return Err(invalid(format!(
            "{name}: {} weights given for {classes} classes (one per class, in the teacher's label order)",
            class_weights.len()
        )));
    }
    let w = Tensor::new(class_weights, elements.device())?
        .to_dtype(elements.dtype())?
        .unsqueeze(0)?;
    Ok(elements.broadcast_mul(&w)?.mean(1)?)
}

/// `Σ_i w_i · l_i / Σ_i w_i`: per-row losses `[batch]` averaged with per-row weights
/// `[batch]` (constants: detached; ≥ 0, not all 0). Weights that are all equal give the mean.
pub fn weighted_mean(per_row: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let name = "weighted_mean";
    if per_row.rank() != 1 || per_row.dims() != weights.dims() {
        return Err(invalid(format!(
            "{name}: per-row losses {:?} and weights {:?} must both be [batch]",
            per_row.dims(),
            weights.dims()
        )));
    }
    let w = weights.detach().to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let total: f64 = w.iter().sum();
    if w.iter().any(|v| !v.is_finite() || *v < 0.0) || total <= 0.0 {
        return Err(invalid(format!(
            "{name}: weights must be finite, >= 0 and not all 0, got {w:?}"
        )));
    }
    let w = weights.detach().to_dtype(per_row.dtype())?;
    Ok((per_row * w)?.sum_all()?.affine(1.0 / total, 0.0)?)
}

/// Each row's weight by the teacher's confidence: its largest class probability (at T = 1),
/// `[batch]`. Rows the teacher is unsure of count less.
pub fn teacher_confidence(teacher_logits: &Tensor) -> Result<Tensor> {
    logits_dims("teacher_confidence", teacher_logits)?;
    let t = promote(&teacher_logits.detach())?;
    Ok(candle_nn::ops::softmax(&t, D::Minus1)?.max(1)?)
}

/// [`teacher_confidence`] of a multi-label teacher, whose labels are each a yes or no: the
/// mean over labels of the probability of the side it chose, `mean_c σ(|t_c|)`, `[batch]`.
pub fn teacher_label_confidence(teacher_logits: &Tensor) -> Result<Tensor> {
    logits_dims("teacher_label_confidence", teacher_logits)?;
    let t = promote(&teacher_logits.detach())?;
    Ok(candle_nn::ops::sigmoid(&t.abs()?)?.mean(1)?)
}

/// Hidden-state MSE over real tokens:
/// `Σ_{real (b,i)} Σ_d (s_bid − t_bid)² / (n_real · hidden)`.
///
/// TinyBERT (Jiao et al. 2020, "TinyBERT: Distilling BERT for Natural Language Understanding")
/// hidden-state loss. The student states must already be projected to the teacher width (the
/// learned projection belongs to the objective, not to this pure function). Normalising by
/// real tokens, not `batch · seq`, keeps the loss independent of how much padding a batch has.
pub fn hidden_mse(
    student_hidden: &Tensor,
    teacher_hidden: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    const NAME: &str = "hidden_mse";
    let (keep, real) = hidden_pair(NAME, student_hidden, teacher_hidden, mask)?;
    let hidden = student_hidden.dim(2)?;
    let (s, t) = operands(student_hidden, teacher_hidden)?;
    let (s, t) = (select(&s, &keep)?, select(&t, &keep)?);
    let total = (s - t)?.sqr()?.sum_all()?;
    let count = (real.sum_all()? * hidden as f64)?.maximum(1.0)?;
    Ok(total.broadcast_div(&count.to_dtype(total.dtype())?)?)
}

/// Cosine embedding loss over real tokens: `mean_{real (b,i)} 1 − cos(s_bi, t_bi)`.
///
/// DistilBERT (Sanh et al. 2019, "DistilBERT, a distilled version of BERT") aligns the
/// directions of student and teacher hidden states; unlike [`hidden_mse`] it ignores their
/// scale. Both states must have the same shape (project first if the widths differ). Norms are
/// guarded as `sqrt(‖x‖² + ε²)`, ε = 1e-8, so a zero vector gives cos = 0 and finite gradients.
pub fn cosine(student_hidden: &Tensor, teacher_hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    const NAME: &str = "cosine";
    let (keep, real) = hidden_pair(NAME, student_hidden, teacher_hidden, mask)?;
    let (s, t) = operands(student_hidden, teacher_hidden)?;
    let (s, t) = (select(&s, &keep)?, select(&t, &keep)?);
    let eps2 = EPS_NORM * EPS_NORM;
    let dot = (&s * &t)?.sum(D::Minus1)?;
    let norm_s = (s.sqr()?.sum(D::Minus1)? + eps2)?.sqrt()?;
    let norm_t = (t.sqr()?.sum(D::Minus1)? + eps2)?.sqrt()?;
    let per_token = (dot / (norm_s * norm_t)?)?.affine(-1.0, 1.0)?;
    let per_token = select(&per_token, &keep.squeeze(2)?)?;
    let count = real.sum_all()?.maximum(1.0)?;
    let total = per_token.sum_all()?;
    Ok(total.broadcast_div(&count.to_dtype(total.dtype())?)?)
}

/// Attention-map MSE over real query rows × real key columns:
/// `Σ_{h, real i, real j} (s_hij − t_hij)² / (heads · Σ_b n_real_b²)`.
///
/// TinyBERT's attention loss (Jiao et al. 2020), applied here to attention *probabilities*
/// (what the encoder returns) rather than TinyBERT's pre-softmax scores. When the student and
/// teacher have different head counts there is no head-to-head correspondence, so both maps
/// are first averaged over the head axis and the averaged maps are compared (`heads = 1`).
pub fn attention_mse(
    student_attn: &Tensor,
    teacher_attn: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    let maps = attention_pair("attention_mse", student_attn, teacher_attn, mask)?;
    let total = (maps.student - maps.teacher)?.sqr()?.sum_all()?;
    let count = (maps.real_pairs * maps.heads as f64)?.maximum(1.0)?;
    Ok(total.broadcast_div(&count.to_dtype(total.dtype())?)?)
}

/// Attention-distribution KL over real query rows:
/// `mean_{h, real i} Σ_{real j} t_hij · (log(t_hij + ε) − log(s_hij + ε))`, ε = 1e-12.
///
/// MiniLM (Wang et al. 2020, "MiniLM: Deep Self-Attention Distillation for Task-Agnostic
/// Compression of Pre-Trained Transformers") matches each attention row as a distribution with
/// KL(teacher ‖ student). Padded keys are selected to 0 on both sides, so their `0 · log(ε)`
/// terms are exactly 0 and can never be NaN; ε keeps `log` finite where a probability
/// underflowed to 0. Different head counts are handled as in [`attention_mse`]: both maps are
/// averaged over heads (still row-stochastic) and compared with `heads = 1`.
pub fn attention_kl(student_attn: &Tensor, teacher_attn: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let maps = attention_pair("attention_kl", student_attn, teacher_attn, mask)?;
    let t = maps.teacher;
    let log_ratio = ((&t + EPS_LOG)?.log()? - (maps.student + EPS_LOG)?.log()?)?;
    let total = (t * log_ratio)?.sum_all()?;
    let count = (maps.real_tokens * maps.heads as f64)?.maximum(1.0)?;
    Ok(total.broadcast_div(&count.to_dtype(total.dtype())?)?)
}

// ---------------------------------------------------------------------------------------------
// Shape checks and masking helpers.

fn invalid(message: String) -> Error {
    Error::Invalid(message)
}

/// Promotes half-precision tensors to f32; f32 and f64 pass through unchanged.
fn promote(x: &Tensor) -> Result<Tensor> {
    Ok(match x.dtype() {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
        _ => x.clone(),
    })
}

/// The student promoted by [`promote`], and the teacher detached and cast to the same dtype.
fn operands(student: &Tensor, teacher: &Tensor) -> Result<(Tensor, Tensor)> {
    let s = promote(student)?;
    let t = teacher.detach().to_dtype(s.dtype())?;
    Ok((s, t))
}

/// `(batch, classes)` of a rank-2, non-empty logits tensor.
fn logits_dims(name: &str, logits: &Tensor) -> Result<(usize, usize)> {
    match *logits.dims() {
        [batch, classes] if batch > 0 && classes > 0 => Ok((batch, classes)),
        _ => Err(invalid(format!(
            "{name}: logits must be a non-empty [batch, classes] tensor, got shape {:?}",
            logits.dims()
        ))),
    }
}

/// Checks student and teacher logits agree and are `[batch, classes]`.
fn logit_pair(name: &str, student: &Tensor, teacher: &Tensor) -> Result<(usize, usize)> {
    let dims = logits_dims(name, student)?;
    if student.dims() != teacher.dims() {
        return Err(invalid(format!(
            "{name}: student logits {:?} and teacher logits {:?} differ in shape",
            student.dims(),
            teacher.dims()
        )));
    }
    Ok(dims)
}

fn check_temperature(name: &str, temperature: f64) -> Result<()> {
    if temperature.is_finite() && temperature > 0.0 {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name}: temperature must be a positive finite number, got {temperature}"
        )))
    }
}

/// `(log_softmax(s/T), log_softmax(t/T))`, the teacher detached.
fn tempered_log_probs(
    student: &Tensor,
    teacher: &Tensor,
    temperature: f64,
) -> Result<(Tensor, Tensor)> {
    let scale = 1.0 / temperature;
    let (s, t) = operands(student, teacher)?;
    let (s, t) = (s.affine(scale, 0.0)?, t.affine(scale, 0.0)?);
    Ok((
        candle_nn::ops::log_softmax(&s, D::Minus1)?,
        candle_nn::ops::log_softmax(&t, D::Minus1)?,
    ))
}

/// Validates a `[batch, seq]` mask and returns it as `(keep, real)`: `keep` a u8 predicate
/// (1 = real token) and `real` the same as 0/1 f32 weights.
fn token_mask(name: &str, mask: &Tensor, batch: usize, seq: usize) -> Result<(Tensor, Tensor)> {
    if mask.dims() != [batch, seq] {
        return Err(invalid(format!(
            "{name}: mask shape {:?} does not match [batch, seq] = [{batch}, {seq}]",
            mask.dims()
        )));
    }
    let keep = mask.ne(0.0)?;
    let real = keep.to_dtype(DType::F32)?;
    Ok((keep, real))
}

/// Checks `[batch, seq, hidden]` student/teacher states and the mask; returns the token mask
/// as a `[batch, seq, 1]` predicate and the `[batch, seq]` 0/1 weights.
fn hidden_pair(
    name: &str,
    student: &Tensor,
    teacher: &Tensor,
    mask: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (batch, seq) = match *student.dims() {
        [batch, seq, _] => (batch, seq),
        _ => {
            return Err(invalid(format!(
                "{name}: student hidden states must be [batch, seq, hidden], got {:?}",
                student.dims()
            )))
        }
    };
    if student.dims() != teacher.dims() {
        return Err(invalid(format!(
            "{name}: student hidden {:?} and teacher hidden {:?} differ in shape \
             (project the student to the teacher width first)",
            student.dims(),
            teacher.dims()
        )));
    }
    let (keep, real) = token_mask(name, mask, batch, seq)?;
    Ok((keep.unsqueeze(2)?, real))
}

/// Student and teacher attention maps made comparable by [`attention_pair`].
struct AttentionPair {
    /// Student map, padded rows and columns set to exactly 0.
    student: Tensor,
    /// Teacher map (detached), padded rows and columns set to exactly 0.
    teacher: Tensor,
    /// Heads compared: the common head count, or 1 after head-averaging.
    heads: usize,
    /// Scalar f32: number of real tokens (= real query rows per head).
    real_tokens: Tensor,
    /// Scalar f32: number of real (query, key) pairs per head, `Σ_b n_real_b²`.
    real_pairs: Tensor,
}

/// Checks `[batch, heads, seq, seq]` attention maps and the mask, averages heads when the
/// counts differ, and selects away padded query rows and key columns.
fn attention_pair(
    name: &str,
    student: &Tensor,
    teacher: &Tensor,
    mask: &Tensor,
) -> Result<AttentionPair> {
    let (batch, seq) = match (student.dims(), teacher.dims()) {
        (&[b, _, q, k], &[tb, _, tq, tk]) if b == tb && q == k && tq == tk && q == tq => (b, q),
        _ => {
            return Err(invalid(format!(
                "{name}: attention maps must be [batch, heads, seq, seq] with the same batch \
                 and seq; got student {:?}, teacher {:?}",
                student.dims(),
                teacher.dims()
            )))
        }
    };
    let (_, real) = token_mask(name, mask, batch, seq)?;
    let (mut s, mut t) = operands(student, teacher)?;
    let mut heads = s.dim(1)?;
    if heads != t.dim(1)? {
        s = s.mean_keepdim(1)?;
        t = t.mean_keepdim(1)?;
        heads = 1;
    }
    // A (query i, key j) pair is real when both tokens are: real[b, i] · real[b, j].
    let pair = real.unsqueeze(2)?.broadcast_mul(&real.unsqueeze(1)?)?;
    let pair_keep = pair.ne(0.0)?.unsqueeze(1)?;
    Ok(AttentionPair {
        student: select(&s, &pair_keep)?,
        teacher: select(&t, &pair_keep)?,
        heads,
        real_tokens: real.sum_all()?,
        real_pairs: pair.sum_all()?,
    })
}

/// `x` where `keep` (broadcast to `x`'s shape) is non-zero, exactly 0 elsewhere. Selection,
/// unlike multiplying by a 0/1 mask, also drops NaN/inf and passes exactly 0 gradient there.
fn select(x: &Tensor, keep: &Tensor) -> Result<Tensor> {
    let keep = keep.broadcast_as(x.shape())?;
    Ok(keep.where_cond(x, &x.zeros_like()?)?)
}

#[cfg(test)]
// The f64 references index tensors the way the formulas do (b, h, i, j); iterator chains
// would hide the arithmetic the tests exist to spell out.
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    // ---- Shared fixtures and independent f64 references. ------------------------------------

    const S_LOGITS: [[f32; 3]; 2] = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]];
    const T_LOGITS: [[f32; 3]; 2] = [[0.5, 1.5, -0.5], [2.0, 0.0, 1.0]];
    /// b = 2, s = 3; the last token of the second sequence is padding.
    const MASK: [[f32; 3]; 2] = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]];

    fn t2(rows: &[[f32; 3]; 2]) -> Tensor {
        Tensor::new(rows, &Device::Cpu).unwrap()
    }

    fn mask() -> Tensor {
        t2(&MASK)
    }

    fn scalar(t: &Tensor) -> f64 {
        assert_eq!(t.dims(), &[] as &[usize], "loss must be a 0-dim tensor");
        t.to_scalar::<f32>().unwrap() as f64
    }

    /// Deterministic pseudo-random values in [-1, 1].
    fn values(n: usize, seed: f64) -> Vec<f32> {
        (0..n)
            .map(|k| ((k as f64 * 1.7 + seed).sin()) as f32)
            .collect()
    }

    fn log_softmax_ref(row: &[f32], temperature: f64) -> Vec<f64> {
        let z: Vec<f64> = row.iter().map(|&v| v as f64 / temperature).collect();
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        z.iter().map(|v| v - lse).collect()
    }

    /// Attention probabilities `[b, h, s, s]` (flattened): each row a softmax over the real keys
    /// of its sequence, padded keys exactly 0, like the encoder produces.
    fn attn_probs(b: usize, h: usize, s: usize, seed: f64) -> Vec<f32> {
        let logits = values(b * h * s * s, seed);
        let mut out = vec![0.0f32; logits.len()];
        for bi in 0..b {
            for row in 0..h * s {
                let base = (bi * h * s + row) * s;
                let real: Vec<usize> = (0..s).filter(|&j| MASK[bi][j] != 0.0).collect();
                let z: f64 = real
                    .iter()
                    .map(|&j| (2.0 * logits[base + j] as f64).exp())
                    .sum();
                for &j in &real {
                    out[base + j] = ((2.0 * logits[base + j] as f64).exp() / z) as f32;
                }
            }
        }
        out
    }

    /// Averages a flattened `[b, h, s, s]` map over heads into `[b, 1, s, s]`.
    fn head_mean(x: &[f32], b: usize, h: usize, s: usize) -> Vec<f64> {
        let mut out = vec![0.0; b * s * s];
        for bi in 0..b {
            for hi in 0..h {
                for k in 0..s * s {
                    out[bi * s * s + k] += x[(bi * h + hi) * s * s + k] as f64 / h as f64;
                }
            }
        }
        out
    }

    fn assert_close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= 1e-5 + 1e-5 * want.abs(),
            "{what}: got {got}, want {want}"
        );
    }

    fn assert_invalid(result: Result<Tensor>, needle: &str) {
        match result {
            Err(Error::Invalid(msg)) => {
                assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}")
            }
            other => panic!("expected Error::Invalid containing {needle:?}, got {other:?}"),
        }
    }

    /// Central-difference gradient check: perturbs each element of `input` by ±1e-3 (f32) and
    /// compares with the gradient `loss.backward()` gives. Returns the analytic gradient.
    fn check_gradient(input: &Tensor, loss: impl Fn(&Tensor) -> Result<Tensor>) -> Vec<f32> {
        const H: f32 = 1e-3;
        let var = Var::from_tensor(input).unwrap();
        let grads = loss(var.as_tensor()).unwrap().backward().unwrap();
        let analytic = grads
            .get(var.as_tensor())
            .expect("no gradient reached the student input")
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let x = input.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let eval = |x: Vec<f32>| {
            let t = Tensor::from_vec(x, input.shape(), input.device()).unwrap();
            scalar(&loss(&t).unwrap())
        };
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += H;
            down[i] -= H;
            let numeric = (eval(up) - eval(down)) / (2.0 * H as f64);
            let g = analytic[i] as f64;
            assert!(
                (numeric - g).abs() <= 1e-3 + 1e-2 * numeric.abs(),
                "element {i}: finite difference {numeric}, backward {g}"
            );
        }
        analytic
    }

    // ---- hard_ce -----------------------------------------------------------------------------

    #[test]
    fn hard_ce_matches_hand_computation() {
        let labels = [1u32, 0];
        let want = (0..2)
            .map(|i| -log_softmax_ref(&S_LOGITS[i], 1.0)[labels[i] as usize])
            .sum::<f64>()
            / 2.0;
        let labels = Tensor::new(&labels, &Device::Cpu).unwrap();
        assert_close(
            scalar(&hard_ce(&t2(&S_LOGITS), &labels).unwrap()),
            want,
            "hard_ce",
        );
        // i64 labels are accepted too.
        let labels64 = labels.to_dtype(DType::I64).unwrap();
        assert_close(
            scalar(&hard_ce(&t2(&S_LOGITS), &labels64).unwrap()),
            want,
            "hard_ce i64",
        );
    }

    #[test]
    fn hard_ce_gradient_matches_finite_differences() {
        let labels = Tensor::new(&[2u32, 1], &Device::Cpu).unwrap();
        check_gradient(&t2(&S_LOGITS), |x| hard_ce(x, &labels));
    }

    #[test]
    fn hard_ce_rejects_bad_labels() {
        let logits = t2(&S_LOGITS);
        let dev = Device::Cpu;
        assert_invalid(
            hard_ce(&logits, &Tensor::new(&[0u32, 3], &dev).unwrap()),
            "out of range",
        );
        assert_invalid(
            hard_ce(&logits, &Tensor::new(&[0u32], &dev).unwrap()),
            "hard_ce",
        );
        assert_invalid(
            hard_ce(&logits, &Tensor::new(&[0f32, 1.0], &dev).unwrap()),
            "integers",
        );
        assert_invalid(
            hard_ce(&logits, &Tensor::new(&[-1i64, 0], &dev).unwrap()),
            "out of range",
        );
    }

    // ---- soft_kl / soft_ce -------------------------------------------------------------------

    /// Unscaled mean-over-batch KL(softmax(t/T) ‖ softmax(s/T)), no T² factor.
    fn mean_kl_ref(temperature: f64) -> f64 {
        let mut total = 0.0;
        for i in 0..2 {
            let (log_q, log_p) = (
                log_softmax_ref(&S_LOGITS[i], temperature),
                log_softmax_ref(&T_LOGITS[i], temperature),
            );
            for c in 0..3 {
                total += log_p[c].exp() * (log_p[c] - log_q[c]);
            }
        }
        total / 2.0
    }

    fn soft_ce_ref(temperature: f64) -> f64 {
        let mut total = 0.0;
        for i in 0..2 {
            let (log_q, log_p) = (
                log_softmax_ref(&S_LOGITS[i], temperature),
                log_softmax_ref(&T_LOGITS[i], temperature),
            );
            for c in 0..3 {
                total -= log_p[c].exp() * log_q[c];
            }
        }
        total / 2.0 * temperature * temperature
    }

    #[test]
    fn soft_kl_matches_hand_computation_with_t_squared_scaling() {
        let (s, t) = (t2(&S_LOGITS), t2(&T_LOGITS));
        let at1 = scalar(&soft_kl(&s, &t, 1.0).unwrap());
        let at4 = scalar(&soft_kl(&s, &t, 4.0).unwrap());
        assert_close(at1, mean_kl_ref(1.0), "soft_kl T=1 (T² = 1)");
        assert_close(at4, 16.0 * mean_kl_ref(4.0), "soft_kl T=4 (T² = 16)");
        // Without the factor the softened KL would be much smaller than at T=1.
        assert!(mean_kl_ref(4.0) < 0.5 * mean_kl_ref(1.0));
    }

    #[test]
    fn soft_kl_is_zero_when_student_equals_teacher() {
        let s = t2(&S_LOGITS);
        for temperature in [1.0, 4.0] {
            assert!(scalar(&soft_kl(&s, &s, temperature).unwrap()).abs() < 1e-6);
        }
    }

    #[test]
    fn soft_kl_gradient_matches_finite_differences() {
        let t = t2(&T_LOGITS);
        check_gradient(&t2(&S_LOGITS), |x| soft_kl(x, &t, 2.0));
    }

    #[test]
    fn soft_ce_matches_hand_computation() {
        let (s, t) = (t2(&S_LOGITS), t2(&T_LOGITS));
        for temperature in [1.0, 4.0] {
            let got = scalar(&soft_ce(&s, &t, temperature).unwrap());
            assert_close(got, soft_ce_ref(temperature), "soft_ce");
        }
    }

    #[test]
    fn soft_ce_gradient_matches_finite_differences() {
        let t = t2(&T_LOGITS);
        check_gradient(&t2(&S_LOGITS), |x| soft_ce(x, &t, 2.0));
    }

    #[test]
    fn soft_losses_reject_bad_inputs() {
        let s = t2(&S_LOGITS);
        let wide = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
        assert_invalid(soft_kl(&s, &wide, 2.0), "soft_kl");
        assert_invalid(soft_ce(&s, &wide, 2.0), "[2, 4]");
        assert_invalid(soft_kl(&s, &s, 0.0), "temperature");
        assert_invalid(soft_ce(&s, &s, f64::NAN), "temperature");
        assert_invalid(
            soft_kl(&s.flatten_all().unwrap(), &s, 1.0),
            "[batch, classes]",
        );
    }

    // ---- logit_mse ---------------------------------------------------------------------------

    #[test]
    fn logit_mse_matches_hand_computation() {
        let mut total = 0.0;
        for i in 0..2 {
            for c in 0..3 {
                total += ((S_LOGITS[i][c] - T_LOGITS[i][c]) as f64).powi(2);
            }
        }
        let got = scalar(&logit_mse(&t2(&S_LOGITS), &t2(&T_LOGITS)).unwrap());
        assert_close(got, total / 6.0, "logit_mse");
    }

    #[test]
    fn logit_mse_gradient_matches_finite_differences() {
        let t = t2(&T_LOGITS);
        check_gradient(&t2(&S_LOGITS), |x| logit_mse(x, &t));
    }

    #[test]
    fn logit_mse_rejects_shape_mismatch() {
        let other = Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap();
        assert_invalid(logit_mse(&t2(&S_LOGITS), &other), "logit_mse");
    }

    // ---- logistic, per-row weighting --------------------------------------------------------

    fn logistic_ref(temperature: f64) -> f64 {
        let mut total = 0.0;
        for i in 0..2 {
            for c in 0..3 {
                let x = -(S_LOGITS[i][c] as f64) * (T_LOGITS[i][c] as f64)
                    / (temperature * temperature);
                total += (1.0 + x.exp()).ln();
            }
        }
        total / 6.0 * temperature * temperature
    }

    #[test]
    fn logistic_matches_hand_computation() {
        let (s, t) = (t2(&S_LOGITS), t2(&T_LOGITS));
        for temperature in [1.0, 2.0] {
            let got = scalar(&logistic(&s, &t, temperature).unwrap());
            assert_close(got, logistic_ref(temperature), "logistic");
        }
        // Agreeing in sign lowers it, disagreeing raises it; huge products stay finite.
        let agree = t2(&[[10.0, 10.0, -10.0], [10.0, 0.0, 10.0]]);
        let disagree = agree.neg().unwrap();
        let (a, d) = (
            scalar(&logistic(&agree, &t, 1.0).unwrap()),
            scalar(&logistic(&disagree, &t, 1.0).unwrap()),
        );
        assert!(a < logistic_ref(1.0) && d > logistic_ref(1.0), "{a} {d}");
        let huge = t2(&[[1e6, -1e6, 1e6], [-1e6, 1e6, 1e6]]);
        assert!(scalar(&logistic(&huge, &t, 1.0).unwrap()).is_finite());
    }

    #[test]
    fn logistic_gradient_matches_finite_differences() {
        let t = t2(&T_LOGITS);
        let g = check_gradient(&t2(&S_LOGITS), |x| logistic(x, &t, 2.0));
        // Where the teacher's logit is 0 the term has no opinion: no gradient.
        assert_eq!(g[4], 0.0);
    }

    // ---- a weight per class ------------------------------------------------------------------

    const CLASS_WEIGHTS: [f64; 3] = [2.0, 0.0, 0.5];

    #[test]
    fn class_weights_scale_each_class_of_the_logistic_loss() {
        let (s, t, temperature) = (t2(&S_LOGITS), t2(&T_LOGITS), 2.0);
        let elements = logistic_elements(&s, &t, temperature).unwrap();
        let rows = class_mean(&elements, Some(&CLASS_WEIGHTS)).unwrap();
        // By hand: Σ_c λ_c · T² · log(1 + exp(−s·t/T²)) / classes, per row.
        let got = rows.to_vec1::<f32>().unwrap();
        for (i, got) in got.iter().enumerate() {
            let want: f64 = (0..3)
                .map(|c| {
                    let x = -(S_LOGITS[i][c] as f64) * (T_LOGITS[i][c] as f64)
                        / (temperature * temperature);
                    CLASS_WEIGHTS[c] * (1.0 + x.exp()).ln() * temperature * temperature
                })
                .sum::<f64>()
                / 3.0;
            assert_close(*got as f64, want, "class-weighted logistic");
        }
        // Weights of 1 are the plain per-row mean.
        let ones = class_mean(&elements, Some(&[1.0; 3])).unwrap();
        let plain = logistic_rows(&s, &t, temperature).unwrap();
        let diff = (ones - plain).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        assert_invalid(
            class_mean(&elements, Some(&[1.0, 1.0])),
            "2 weights given for 3 classes",
        );
    }

    #[test]
    fn class_weighted_gradients_match_finite_differences() {
        let t = t2(&T_LOGITS);
        let weighted = |e: Tensor| Ok(class_mean(&e, Some(&CLASS_WEIGHTS))?.mean_all()?);
        let g = check_gradient(&t2(&S_LOGITS), |x| weighted(logistic_elements(x, &t, 2.0)?));
        // A class of weight 0 gets no gradient.
        assert_eq!((g[1], g[4]), (0.0, 0.0));
        check_gradient(&t2(&S_LOGITS), |x| weighted(logit_mse_elements(x, &t)?));
        check_gradient(&t2(&S_LOGITS), |x| weighted(soft_bce_elements(x, &t, 2.0)?));
    }

    // ---- binary cross-entropy (multi-label) --------------------------------------------------

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// mean over rows and labels of −(y log σ(x) + (1 − y) log(1 − σ(x))).
    fn bce_ref(x: &[[f32; 3]; 2], y: impl Fn(usize, usize) -> f64) -> f64 {
        let mut total = 0.0;
        for i in 0..2 {
            for c in 0..3 {
                let (p, y) = (sigmoid(x[i][c] as f64), y(i, c));
                total -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
            }
        }
        total / 6.0
    }

    const MULTI_HOT: [[f32; 3]; 2] = [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]];

    #[test]
    fn bce_and_soft_bce_match_hand_computation() {
        let (s, y) = (t2(&S_LOGITS), t2(&MULTI_HOT));
        let want = bce_ref(&S_LOGITS, |i, c| MULTI_HOT[i][c] as f64);
        assert_close(scalar(&bce_with_logits(&s, &y).unwrap()), want, "bce");
        for temperature in [1.0, 2.0] {
            let soft = soft_bce_rows(&s, &t2(&T_LOGITS), temperature).unwrap();
            let scaled = S_LOGITS.map(|r| r.map(|v| v / temperature as f32));
            let p = |i: usize, c: usize| sigmoid(T_LOGITS[i][c] as f64 / temperature);
            let want = bce_ref(&scaled, p) * temperature * temperature;
            assert_close(scalar(&soft.mean_all().unwrap()), want, "soft_bce");
        }
        let huge = t2(&[[1e6, -1e6, 1e6], [-1e6, 1e6, 1e6]]);
        assert!(scalar(&bce_with_logits(&huge, &y).unwrap()).is_finite());
    }

    #[test]
    fn a_multi_label_teachers_confidence_is_the_mean_probability_of_its_choices() {
        // Row 0: σ(2) = 0.881, σ(0) = 0.5, σ(3) = 0.953 (the "no" side of -3).
        let t = t2(&[[2.0, 0.0, -3.0], [0.0, 0.0, 0.0]]);
        let c = teacher_label_confidence(&t)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want = (sigmoid(2.0) + 0.5 + sigmoid(3.0)) / 3.0;
        assert!((c[0] as f64 - want).abs() < 1e-6, "{c:?}");
        assert!((c[1] - 0.5).abs() < 1e-6, "{c:?}");
    }

    #[test]
    fn bce_and_soft_bce_gradients_match_finite_differences() {
        let y = t2(&MULTI_HOT);
        check_gradient(&t2(&S_LOGITS), |x| bce_with_logits(x, &y));
        let t = t2(&T_LOGITS);
        check_gradient(&t2(&S_LOGITS), |x| {
            Ok(soft_bce_rows(x, &t, 2.0)?.mean_all()?)
        });
    }

    #[test]
    fn rows_average_to_the_terms_and_weights_select_rows() {
        let (s, t) = (t2(&S_LOGITS), t2(&T_LOGITS));
        type Pair = (
            fn(&Tensor, &Tensor) -> Result<Tensor>,
            fn(&Tensor, &Tensor) -> Result<Tensor>,
        );
        let pairs: [Pair; 4] = [
            (|s, t| soft_kl(s, t, 2.0), |s, t| soft_kl_rows(s, t, 2.0)),
            (|s, t| soft_ce(s, t, 2.0), |s, t| soft_ce_rows(s, t, 2.0)),
            (logit_mse, logit_mse_rows),
            (|s, t| logistic(s, t, 2.0), |s, t| logistic_rows(s, t, 2.0)),
        ];
        let dev = &Device::Cpu;
        for (whole, rows) in pairs {
            let per_row = rows(&s, &t).unwrap();
            assert_eq!(per_row.dims(), [2]);
            let r = per_row.to_vec1::<f32>().unwrap();
            assert_close(
                scalar(&whole(&s, &t).unwrap()),
                (r[0] + r[1]) as f64 / 2.0,
                "mean",
            );
            // Equal weights: the mean. Weight 0 on a row: that row alone, and no gradient
            // reaches the other row.
            let even = Tensor::new(&[3f32, 3.0], dev).unwrap();
            assert_close(
                scalar(&weighted_mean(&per_row, &even).unwrap()),
                (r[0] + r[1]) as f64 / 2.0,
                "equal weights",
            );
            let first = Tensor::new(&[1f32, 0.0], dev).unwrap();
            assert_close(
                scalar(&weighted_mean(&per_row, &first).unwrap()),
                r[0] as f64,
                "row 0",
            );
            let g = check_gradient(&s, |x| weighted_mean(&rows(x, &t)?, &first));
            assert!(g[3..].iter().all(|&v| v == 0.0), "{g:?}");
        }
        let per_row = logit_mse_rows(&s, &t).unwrap();
        for bad in [[0f32, 0.0], [1.0, -1.0], [f32::NAN, 1.0]] {
            assert_invalid(
                weighted_mean(&per_row, &Tensor::new(&bad, dev).unwrap()),
                "weights",
            );
        }
        assert_invalid(
            weighted_mean(&per_row, &Tensor::new(&[1f32], dev).unwrap()),
            "[batch]",
        );
    }

    #[test]
    fn teacher_confidence_is_the_largest_probability() {
        let c = teacher_confidence(&t2(&T_LOGITS))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for i in 0..2 {
            let want = log_softmax_ref(&T_LOGITS[i], 1.0)
                .into_iter()
                .fold(f64::NEG_INFINITY, f64::max)
                .exp();
            assert_close(c[i] as f64, want, "confidence");
        }
    }

    // ---- hidden_mse / cosine -----------------------------------------------------------------

    const H: usize = 4;

    /// Student and teacher hidden states `[2, 3, H]` as flat vectors and tensors.
    fn hidden() -> (Vec<f32>, Vec<f32>, Tensor, Tensor) {
        let (s, t) = (values(2 * 3 * H, 0.3), values(2 * 3 * H, 2.1));
        let dev = &Device::Cpu;
        let st = Tensor::from_vec(s.clone(), (2, 3, H), dev).unwrap();
        let tt = Tensor::from_vec(t.clone(), (2, 3, H), dev).unwrap();
        (s, t, st, tt)
    }

    /// Overwrites the padded token (batch 1, position 2) with `value` in a `[2, 3, H]` tensor.
    fn poison_padded_token(x: &Tensor, value: f32) -> Tensor {
        let mut v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for d in 0..H {
            v[(3 + 2) * H + d] = value;
        }
        Tensor::from_vec(v, x.shape(), x.device()).unwrap()
    }

    #[test]
    fn hidden_mse_matches_hand_computation() {
        let (s, t, st, tt) = hidden();
        let (mut total, mut real) = (0.0, 0.0);
        for b in 0..2 {
            for i in 0..3 {
                if MASK[b][i] == 0.0 {
                    continue;
                }
                real += 1.0;
                for d in 0..H {
                    let k = (b * 3 + i) * H + d;
                    total += ((s[k] - t[k]) as f64).powi(2);
                }
            }
        }
        let got = scalar(&hidden_mse(&st, &tt, &mask()).unwrap());
        assert_close(got, total / (real * H as f64), "hidden_mse");
    }

    #[test]
    fn hidden_mse_ignores_padding() {
        let (_, _, st, tt) = hidden();
        let base = scalar(&hidden_mse(&st, &tt, &mask()).unwrap());
        let (sp, tp) = (
            poison_padded_token(&st, 1e3),
            poison_padded_token(&tt, f32::NAN),
        );
        assert_eq!(scalar(&hidden_mse(&sp, &tp, &mask()).unwrap()), base);
        // And the student gets exactly zero gradient there.
        let grad = check_gradient(&sp, |x| hidden_mse(x, &tp, &mask()));
        assert!(grad[5 * H..6 * H].iter().all(|&g| g == 0.0));
    }

    #[test]
    fn hidden_mse_gradient_matches_finite_differences() {
        let (_, _, st, tt) = hidden();
        check_gradient(&st, |x| hidden_mse(x, &tt, &mask()));
    }

    #[test]
    fn hidden_losses_reject_bad_shapes() {
        let (_, _, st, _) = hidden();
        let narrow = Tensor::zeros((2, 3, H - 1), DType::F32, &Device::Cpu).unwrap();
        assert_invalid(hidden_mse(&st, &narrow, &mask()), "hidden_mse");
        assert_invalid(cosine(&st, &narrow, &mask()), "cosine");
        let short_mask = Tensor::ones((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert_invalid(hidden_mse(&st, &st, &short_mask), "mask shape [2, 2]");
        assert_invalid(cosine(&mask(), &mask(), &mask()), "[batch, seq, hidden]");
    }

    #[test]
    fn cosine_matches_hand_computation() {
        let (s, t, st, tt) = hidden();
        let (mut total, mut real) = (0.0, 0.0);
        for b in 0..2 {
            for i in 0..3 {
                if MASK[b][i] == 0.0 {
                    continue;
                }
                let k = (b * 3 + i) * H;
                let (mut dot, mut ns, mut nt) = (0.0, 0.0, 0.0);
                for d in 0..H {
                    let (x, y) = (s[k + d] as f64, t[k + d] as f64);
                    dot += x * y;
                    ns += x * x;
                    nt += y * y;
                }
                total += 1.0 - dot / (ns.sqrt() * nt.sqrt());
                real += 1.0;
            }
        }
        let got = scalar(&cosine(&st, &tt, &mask()).unwrap());
        assert_close(got, total / real, "cosine");
        // Parallel vectors of different length: cosine loss 0.
        let scaled = (&st * 3.0).unwrap();
        assert!(scalar(&cosine(&scaled, &st, &mask()).unwrap()).abs() < 1e-6);
    }

    #[test]
    fn cosine_ignores_padding() {
        let (_, _, st, tt) = hidden();
        let base = scalar(&cosine(&st, &tt, &mask()).unwrap());
        let (sp, tp) = (
            poison_padded_token(&st, -7.0),
            poison_padded_token(&tt, f32::NAN),
        );
        assert_eq!(scalar(&cosine(&sp, &tp, &mask()).unwrap()), base);
        let grad = check_gradient(&sp, |x| cosine(x, &tp, &mask()));
        assert!(grad[5 * H..6 * H].iter().all(|&g| g == 0.0));
    }

    #[test]
    fn cosine_gradient_matches_finite_differences() {
        let (_, _, st, tt) = hidden();
        check_gradient(&st, |x| cosine(x, &tt, &mask()));
        // A zero student vector stays finite (guarded norm).
        let zero = Tensor::zeros((2, 3, H), DType::F32, &Device::Cpu).unwrap();
        let var = Var::from_tensor(&zero).unwrap();
        let loss = cosine(var.as_tensor(), &tt, &mask()).unwrap();
        assert_close(scalar(&loss), 1.0, "cosine of zero vectors");
        let grads = loss.backward().unwrap();
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
        assert!(g.to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite()));
    }

    // ---- attention_mse / attention_kl --------------------------------------------------------

    const S: usize = 3;

    fn attn(h: usize, seed: f64) -> (Vec<f32>, Tensor) {
        let v = attn_probs(2, h, S, seed);
        let t = Tensor::from_vec(v.clone(), (2, h, S, S), &Device::Cpu).unwrap();
        (v, t)
    }

    /// Overwrites padded query row 2 and padded key column 2 of batch 1 with `value`.
    fn poison_padded_attention(x: &Tensor, value: f32) -> Tensor {
        let h = x.dim(1).unwrap();
        let mut v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for hi in 0..h {
            for i in 0..S {
                for j in 0..S {
                    if i == 2 || j == 2 {
                        v[((h + hi) * S + i) * S + j] = value;
                    }
                }
            }
        }
        Tensor::from_vec(v, x.shape(), x.device()).unwrap()
    }

    /// Reference MSE over real pairs of `[b, h, s, s]` maps given as f64.
    fn attention_mse_ref(s: &[f64], t: &[f64], h: usize) -> f64 {
        let (mut total, mut count) = (0.0, 0.0);
        for b in 0..2 {
            for hi in 0..h {
                for i in 0..S {
                    for j in 0..S {
                        if MASK[b][i] == 0.0 || MASK[b][j] == 0.0 {
                            continue;
                        }
                        let k = ((b * h + hi) * S + i) * S + j;
                        total += (s[k] - t[k]).powi(2);
                        count += 1.0;
                    }
                }
            }
        }
        total / count
    }

    /// Reference mean-over-real-rows KL(t ‖ s) of `[b, h, s, s]` maps given as f64.
    fn attention_kl_ref(s: &[f64], t: &[f64], h: usize) -> f64 {
        let (mut total, mut rows) = (0.0, 0.0);
        for b in 0..2 {
            for hi in 0..h {
                for i in 0..S {
                    if MASK[b][i] == 0.0 {
                        continue;
                    }
                    rows += 1.0;
                    for j in 0..S {
                        let k = ((b * h + hi) * S + i) * S + j;
                        if MASK[b][j] != 0.0 && t[k] > 0.0 {
                            total += t[k] * (t[k] / s[k]).ln();
                        }
                    }
                }
            }
        }
        total / rows
    }

    fn to_f64(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    #[test]
    fn attention_mse_matches_hand_computation() {
        let ((s, st), (t, tt)) = (attn(2, 0.5), attn(2, 1.9));
        let got = scalar(&attention_mse(&st, &tt, &mask()).unwrap());
        assert_close(
            got,
            attention_mse_ref(&to_f64(&s), &to_f64(&t), 2),
            "attention_mse",
        );
    }

    #[test]
    fn attention_mse_averages_heads_when_counts_differ() {
        let ((s, st), (t, tt)) = (attn(2, 0.5), attn(3, 1.9));
        let (sm, tm) = (head_mean(&s, 2, 2, S), head_mean(&t, 2, 3, S));
        let got = scalar(&attention_mse(&st, &tt, &mask()).unwrap());
        assert_close(
            got,
            attention_mse_ref(&sm, &tm, 1),
            "attention_mse head-averaged",
        );
    }

    #[test]
    fn attention_mse_ignores_padding() {
        let ((_, st), (_, tt)) = (attn(2, 0.5), attn(3, 1.9));
        let base = scalar(&attention_mse(&st, &tt, &mask()).unwrap());
        let (sp, tp) = (
            poison_padded_attention(&st, 0.9),
            poison_padded_attention(&tt, f32::NAN),
        );
        assert_eq!(scalar(&attention_mse(&sp, &tp, &mask()).unwrap()), base);
    }

    #[test]
    fn attention_mse_gradient_matches_finite_differences() {
        let (_, st) = attn(2, 0.5);
        for teacher_heads in [2, 3] {
            let (_, tt) = attn(teacher_heads, 1.9);
            check_gradient(&st, |x| attention_mse(x, &tt, &mask()));
        }
    }

    #[test]
    fn attention_kl_matches_hand_computation() {
        let ((s, st), (t, tt)) = (attn(2, 0.5), attn(2, 1.9));
        let got = scalar(&attention_kl(&st, &tt, &mask()).unwrap());
        assert_close(
            got,
            attention_kl_ref(&to_f64(&s), &to_f64(&t), 2),
            "attention_kl",
        );
        let (t3, tt3) = attn(3, 1.9);
        let (sm, tm) = (head_mean(&s, 2, 2, S), head_mean(&t3, 2, 3, S));
        let got = scalar(&attention_kl(&st, &tt3, &mask()).unwrap());
        assert_close(
            got,
            attention_kl_ref(&sm, &tm, 1),
            "attention_kl head-averaged",
        );
    }

    #[test]
    fn attention_kl_is_zero_when_student_equals_teacher() {
        let (_, st) = attn(2, 0.5);
        let loss = scalar(&attention_kl(&st, &st, &mask()).unwrap());
        assert!(loss.abs() < 1e-6, "KL(p ‖ p) = {loss}");
    }

    #[test]
    fn attention_kl_ignores_padding_without_nan() {
        let ((_, st), (_, tt)) = (attn(2, 0.5), attn(2, 1.9));
        let base = scalar(&attention_kl(&st, &tt, &mask()).unwrap());
        assert!(base.is_finite() && base > 0.0);
        // The padded key columns are exactly 0 on both sides (0·log 0 terms) and stay finite.
        let (sp, tp) = (
            poison_padded_attention(&st, 0.0),
            poison_padded_attention(&tt, 0.0),
        );
        assert_eq!(scalar(&attention_kl(&sp, &tp, &mask()).unwrap()), base);
        let (sp, tp) = (
            poison_padded_attention(&st, 0.7),
            poison_padded_attention(&tt, f32::NAN),
        );
        assert_eq!(scalar(&attention_kl(&sp, &tp, &mask()).unwrap()), base);
        let grad = check_gradient(&sp, |x| attention_kl(x, &tp, &mask()));
        assert!(grad.iter().all(|g| g.is_finite()));
    }

    #[test]
    fn attention_kl_gradient_matches_finite_differences() {
        let (_, st) = attn(2, 0.5);
        for teacher_heads in [2, 3] {
            let (_, tt) = attn(teacher_heads, 1.9);
            check_gradient(&st, |x| attention_kl(x, &tt, &mask()));
        }
    }

    #[test]
    fn attention_losses_reject_bad_shapes() {
        let (_, st) = attn(2, 0.5);
        let longer = Tensor::zeros((2, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert_invalid(attention_mse(&st, &longer, &mask()), "attention_mse");
        assert_invalid(attention_kl(&st, &longer, &mask()), "[2, 2, 4, 4]");
        let other_batch = Tensor::zeros((1, 2, S, S), DType::F32, &Device::Cpu).unwrap();
        assert_invalid(attention_kl(&st, &other_batch, &mask()), "attention_kl");
        let bad_mask = Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap();
        assert_invalid(attention_mse(&st, &st, &bad_mask), "mask shape");
    }

    #[test]
    fn half_precision_teacher_works_with_f32_student() {
        let (_, _, st, tt) = hidden();
        let want = scalar(&hidden_mse(&st, &tt, &mask()).unwrap());
        let tt16 = tt.to_dtype(DType::F16).unwrap();
        let got = hidden_mse(&st, &tt16, &mask()).unwrap();
        assert_eq!(got.dtype(), DType::F32);
        assert!((scalar(&got) - want).abs() < 1e-3);
        let got = soft_kl(
            &t2(&S_LOGITS),
            &t2(&T_LOGITS).to_dtype(DType::BF16).unwrap(),
            2.0,
        );
        assert_eq!(got.unwrap().dtype(), DType::F32);
    }

    #[test]
    #[should_panic(expected = "finite difference")]
    fn gradient_check_catches_a_missing_gradient() {
        // The squared term is detached, so backward misses its 2x contribution.
        check_gradient(&t2(&S_LOGITS), |x| {
            Ok((x.detach().sqr()?.sum_all()? + x.sum_all()?)?)
        });
    }

    #[test]
    fn fully_padded_batch_gives_zero_not_nan() {
        let none = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let (_, _, st, tt) = hidden();
        let ((_, sa), (_, ta)) = (attn(2, 0.5), attn(2, 1.9));
        assert_eq!(scalar(&hidden_mse(&st, &tt, &none).unwrap()), 0.0);
        assert_eq!(scalar(&cosine(&st, &tt, &none).unwrap()), 0.0);
        assert_eq!(scalar(&attention_mse(&sa, &ta, &none).unwrap()), 0.0);
        assert_eq!(scalar(&attention_kl(&sa, &ta, &none).unwrap()), 0.0);
    }
}
