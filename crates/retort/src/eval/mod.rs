//! Evaluation of a model on labelled data of its task.

use std::time::Instant;

use crate::error::Result;
use crate::infer::Classifier;
use crate::task::{predict_units, Corpus, Scores, Task};

/// The result of evaluating a model on a labelled corpus.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    pub task: Task,
    pub scores: Scores,
    pub count: usize,
    /// Examples per second over the whole run (tokenisation included).
    pub sequences_per_second: f64,
    pub seconds: f64,
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
        predictions,
    })
}
