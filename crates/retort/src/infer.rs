//! A ready-to-use classifier: model + tokenizer loaded from one directory.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::error::{Error, Result};
use crate::model::checkpoint::load_classifier;
use crate::model::{LoadReport, Outputs, Pass, SequenceClassifier};
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
    pub model: SequenceClassifier,
    pub tokenizer: TextTokenizer,
    pub report: LoadReport,
    pub dir: PathBuf,
    pub device: Device,
}

impl Classifier {
    /// Loads `config.json`, `model.safetensors` and the tokenizer from `dir`.
    pub fn load(dir: &Path, max_len: usize) -> Result<Self> {
        let device = Device::Cpu;
        let (model, report) = load_classifier(dir, &device)?;
        let tokenizer =
            TextTokenizer::from_dir(dir, max_len.min(model.config.max_position_embeddings))?;
        check_vocabulary(&tokenizer, model.config.vocab_size)?;
        Ok(Self {
            model,
            tokenizer,
            report,
            dir: dir.to_path_buf(),
            device,
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
        logits(&self.model, &encoded, batch_size, &self.device, &|_| {})
    }
}

/// Logits of every encoded text, in input order. Batches are formed from length-sorted
/// texts so that little work is spent on padding; `progress` is told how many texts are done.
pub fn logits(
    model: &SequenceClassifier,
    encoded: &[Encoded],
    batch_size: usize,
    device: &Device,
    progress: &dyn Fn(usize),
) -> Result<Vec<Vec<f32>>> {
    let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
    let mut out = vec![Vec::new(); encoded.len()];
    for batch in length_sorted_batches(&lengths, batch_size) {
        let items: Vec<_> = batch.iter().map(|&i| &encoded[i]).collect();
        let input = pad_batch(&items, model.config.pad_token_id, device)?;
        let rows = model
            .forward(&input, Pass::INFERENCE, Outputs::default())?
            .logits
            .to_vec2::<f32>()?;
        for (&i, row) in batch.iter().zip(rows) {
            out[i] = row;
        }
        progress(batch.len());
    }
    Ok(out)
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
        let labels = &self.model.config.labels;
        let p = softmax(logits);
        Prediction {
            label: labels[crate::eval::metrics::argmax(&p)].clone(),
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
