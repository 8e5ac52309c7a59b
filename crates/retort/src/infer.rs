//! A ready-to-use classifier: model + tokenizer loaded from one directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{load_model, LoadReport, Model, Outputs, Pass, RowAxis, Transformer};
use crate::text::batch::{length_sorted_batches, pad_batch};
use crate::text::{Encoded, TextTokenizer};

/// Default number of texts per forward pass.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Embedding rows beyond the tokenizer's vocabulary that still count as the same vocabulary
/// (some checkpoints round the table up for speed).
const VOCAB_SLACK: usize = 128;

/// A model and the tokenizer it was trained with.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// A transformer, or a BiLSTM or CNN student.
    pub model: Arc<dyn Model>,
    pub tokenizer: TextTokenizer,
    pub report: LoadReport,
    pub dir: PathBuf,
}

impl Classifier {
    /// Loads `config.json`, `model.safetensors` and the tokenizer from `dir`.
    pub fn load(dir: &Path, max_len: usize) -> Result<Self> {
        let (model, report) = load_model(dir)?;
        let config = model.config();
        if model.as_seq2seq().is_some() {
            return Err(Error::Invalid(format!(
                "{} holds a translator, not a classifier: use retort translate (retort eval, compare, serve and inspect take it too)",
                dir.display()
            )));
        }
        let tokenizer = TextTokenizer::from_dir(dir, max_len.min(config.max_tokens()))?;
        check_vocabulary(&tokenizer, config.vocab_size)?;
        Ok(Self {
            model,
            tokenizer,
            report,
            dir: dir.to_path_buf(),
        })
    }

    /// Packs the model's weights for inference ([`Model::packed_for_inference`]: a
    /// transformer's encoder, a BiLSTM's recurrent layer): faster passes, at the cost of a
    /// second copy of those weights. Only for a model that will not be trained (its packed
    /// weights would be stale); other kinds of model are left as they are.
    pub fn pack_for_inference(&mut self) -> Result<()> {
        if let Some(packed) = self.model.packed_for_inference()? {
            self.model = packed;
        }
        Ok(())
    }

    /// The transformer, for what only a transformer supports (`what`, in the error that
    /// names this model's kind otherwise).
    pub fn transformer(&self, what: &str) -> Result<&Transformer> {
        self.model.as_transformer().ok_or_else(|| {
            Error::Invalid(format!(
                "{what} needs a transformer (BERT, DistilBERT), but {} holds a {} model",
                self.dir.display(),
                self.model.config().architecture.model_type()
            ))
        })
    }

    /// Class probabilities for each text, in input order.
    pub fn probabilities(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let logits = self.logits(texts, batch_size)?;
        Ok(logits.iter().map(|l| softmax(l)).collect())
    }

    /// Unnormalised class scores for each text, in input order.
    pub fn logits(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(Error::Invalid("no input texts".into()));
        }
        let encoded = self.tokenizer.encode_batch(texts)?;
        logits(self.model.as_ref(), &encoded, batch_size, &|_| {})
    }
}

impl Classifier {
    /// Every logit the head gives for each text, in input order, as JSON: `[labels]` for a
    /// sequence head, `[tokens][labels]` (special tokens included) for a token head,
    /// `[tokens][start, end]` for a span head. For
    /// comparing with another implementation.
    pub fn raw_logits(&self, texts: &[&str], batch_size: usize) -> Result<Vec<serde_json::Value>> {
        let encoded = self.tokenizer.encode_batch(texts)?;
        let per_token = self.model.config().head != crate::model::HeadKind::SequenceClassification;
        let mut out = vec![serde_json::Value::Null; encoded.len()];
        each_text_logits(
            self.model.as_ref(),
            &encoded,
            batch_size,
            &|_| {},
            |i, rows| {
                out[i] = match per_token {
                    true => serde_json::json!(rows[..encoded[i].ids.len()]),
                    false => serde_json::json!(rows[0]),
                };
                Ok(())
            },
        )?;
        Ok(out)
    }
}

/// Logits of every encoded text, in input order, for a model with a sequence head (one row
/// of logits per text). See [`row_logits`].
pub fn logits(
    model: &dyn Model,
    encoded: &[Encoded],
    batch_size: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<Vec<f32>>> {
    let first = vec![vec![0u32]; encoded.len()];
    row_logits(model, encoded, &first, batch_size, progress)
}

/// The rows `rows[i]` of every encoded text's logits (the rows a task reads), each text's rows
/// concatenated, in input order. Along the head's [`RowAxis::Labels`] a row is a token
/// position and reads that token's scores of every label (the one row of a sequence head, the
/// first token of each word for a token head); along [`RowAxis::Positions`] a row is an
/// output (a span head's start or end) and reads its score at each of the text's tokens, so
/// it is as wide as the text. Batches are formed from length-sorted texts so that little work
/// is spent on padding; `progress` is told how many texts are done.
pub fn row_logits(
    model: &dyn Model,
    encoded: &[Encoded],
    rows: &[Vec<u32>],
    batch_size: usize,
    progress: &dyn Fn(usize),
) -> Result<Vec<Vec<f32>>> {
    let axis = model.config().head.row_axis();
    let mut out = vec![Vec::new(); encoded.len()];
    each_text_logits(model, encoded, batch_size, progress, |i, per_token| {
        let len = encoded[i].ids.len();
        out[i] = rows[i]
            .iter()
            .map(|&r| match axis {
                RowAxis::Labels => per_token.get(r as usize).cloned().ok_or_else(|| {
                    Error::Invalid(format!(
                        "row position {r} is past the {} logit rows of text {i}",
                        per_token.len()
                    ))
                }),
                RowAxis::Positions => per_token[..len]
                    .iter()
                    .map(|scores| {
                        scores.get(r as usize).copied().ok_or_else(|| {
                            Error::Invalid(format!(
                                "row {r} is past the {} outputs of the span head",
                                scores.len()
                            ))
                        })
                    })
                    .collect(),
            })
            .collect::<Result<Vec<_>>>()?
            .concat();
        Ok(())
    })?;
    Ok(out)
}

/// Runs `model` over `encoded` in length-sorted batches (little work spent on padding) and
/// hands each text's logits, `[position][label]` (padding positions included), to `each` with
/// the text's index; `progress` is told how many texts each batch finished.
fn each_text_logits(
    model: &dyn Model,
    encoded: &[Encoded],
    batch_size: usize,
    progress: &dyn Fn(usize),
    mut each: impl FnMut(usize, &[Vec<f32>]) -> Result<()>,
) -> Result<()> {
    let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
    for batch in length_sorted_batches(&lengths, batch_size) {
        let items: Vec<_> = batch.iter().map(|&i| &encoded[i]).collect();
        let input = pad_batch(&items, model.config().pad_token_id)?;
        let logits = model
            .forward(&input, Pass::INFERENCE, Outputs::default())?
            .logits;
        for (rows, &i) in logit_rows(&logits)?.iter().zip(&batch) {
            each(i, rows)?;
        }
        progress(batch.len());
    }
    Ok(())
}

/// Logits as `[batch][position][label]`: a sequence head's `[batch, labels]` has one position.
pub fn logit_rows(logits: &candle_core::Tensor) -> Result<Vec<Vec<Vec<f32>>>> {
    Ok(match logits.rank() {
        2 => logits
            .to_vec2::<f32>()?
            .into_iter()
            .map(|r| vec![r])
            .collect(),
        _ => logits.to_vec3::<f32>()?,
    })
}

/// Index of the largest value (the first, on ties).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// Softmax of one row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// A text's predicted label and the probability of every label.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub label: String,
    pub probabilities: std::collections::BTreeMap<String, f32>,
}

impl Classifier {
    /// Predicted label and probabilities for each text, in input order.
    pub fn predict(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Prediction>> {
        let logits = self.logits(texts, batch_size)?;
        Ok(logits.iter().map(|l| self.prediction(l)).collect())
    }

    /// The label and probabilities that one text's logits stand for.
    pub fn prediction(&self, logits: &[f32]) -> Prediction {
        let labels = &self.model.config().labels;
        let p = softmax(logits);
        Prediction {
            label: labels[argmax(&p)].clone(),
            probabilities: labels.iter().cloned().zip(p).collect(),
        }
    }
}

/// The tokenizer must produce only ids the embedding table has, and be the vocabulary the
/// table was trained for (not merely a smaller one).
pub fn check_vocabulary(tokenizer: &TextTokenizer, embedding_rows: usize) -> Result<()> {
    let (bound, size) = (tokenizer.id_bound(), tokenizer.vocab_size());
    if bound > embedding_rows || embedding_rows.saturating_sub(size) >= VOCAB_SLACK {
        return Err(Error::Tokenizer(format!(
            "vocabulary mismatch: the tokenizer has {size} tokens (ids up to {}) but the model's embedding table has {embedding_rows} rows; use the tokenizer the model was trained with",
            bound.saturating_sub(1)
        )));
    }
    Ok(())
}
