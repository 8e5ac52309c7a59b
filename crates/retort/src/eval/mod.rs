//! Evaluation of a model on labelled data of its task.

use std::time::Instant;

use crate::error::Result;
use crate::infer::Classifier;
use crate::model::generate::DecodeOptions;
use crate::model::Model;
use crate::task::translation;
use crate::task::{predict_units, Corpus, Scores, Task};
use crate::translate::Translator;

/// The result of evaluating a model on a labelled corpus.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    pub task: Task,
    pub scores: Scores,
    pub count: usize,
    /// Examples per second over the whole run (tokenisation included).
    pub sequences_per_second: f64,
    pub seconds: f64,
    /// A translator's output tokens per second (end tokens not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_tokens_per_second: Option<f64>,
    /// Each example's predicted unit labels, in input order.
    #[serde(skip)]
    pub predictions: Vec<Vec<usize>>,
}

/// Runs `classifier` over `data` and scores its predictions against the gold labels.
pub fn evaluate(classifier: &Classifier, data: &Corpus, batch_size: usize) -> Result<EvalReport> {
    let task = Task::of(classifier.model.config());
    let labels = &classifier.model.config().labels;
    let gold = task.gold(data, labels)?;
    let start = Instant::now();
    let inputs = data.inputs();
    let predictions = predict_units(classifier, &inputs, batch_size)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(EvalReport {
        task,
        scores: task.score(labels, &inputs, &predictions, &gold)?,
        count: data.len(),
        sequences_per_second: data.len() as f64 / seconds.max(1e-9),
        seconds,
        target_tokens_per_second: None,
        predictions,
    })
}

/// A translator's corpus BLEU on a parallel corpus (read by `Task::Translation`), decoding
/// as `opts` says in length-sorted batches of `batch_size` sentences; with its translations
/// in input order. Sentences and tokens per second count the decoding alone.
pub fn evaluate_translator(
    translator: &Translator,
    data: &Corpus,
    opts: &DecodeOptions,
    batch_size: usize,
) -> Result<(EvalReport, Vec<String>)> {
    let tokenizer = std::sync::Arc::new(translator.tokenizer.clone());
    let tokenised = translation::data(tokenizer, &translator.model.config, data)?.data;
    let start = Instant::now();
    let (hypotheses, tokens) =
        translation::translations(&translator.model, &tokenised, opts, batch_size)?;
    let seconds = start.elapsed().as_secs_f64();
    let (_, references) = translation::sides(data)?;
    let scores = translation::scores(&hypotheses, &references)?;
    let report = EvalReport {
        task: Task::of(translator.model.config()),
        scores,
        count: data.len(),
        sequences_per_second: data.len() as f64 / seconds.max(1e-9),
        seconds,
        target_tokens_per_second: Some(tokens as f64 / seconds.max(1e-9)),
        predictions: Vec::new(),
    };
    Ok((report, hypotheses))
}
