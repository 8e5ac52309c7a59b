//! Evaluation: metrics and dataset-level evaluation of a classifier.

pub mod metrics;

use std::time::Instant;

use crate::error::Result;
use crate::infer::Classifier;
use crate::text::Dataset;

/// The result of evaluating a classifier on a labelled dataset.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub count: usize,
    /// Sequences per second over the whole run (tokenisation included).
    pub sequences_per_second: f64,
    pub seconds: f64,
}

/// Runs `classifier` over `data` and scores its predictions against the gold labels.
pub fn evaluate(classifier: &Classifier, data: &Dataset, batch_size: usize) -> Result<EvalReport> {
    let gold = data.label_ids(&classifier.model.config.labels)?;
    let start = Instant::now();
    let probs = classifier.probabilities(&data.texts(), batch_size)?;
    let seconds = start.elapsed().as_secs_f64();
    let pred: Vec<usize> = probs.iter().map(|p| metrics::argmax(p)).collect();
    Ok(EvalReport {
        accuracy: metrics::accuracy(&pred, &gold),
        macro_f1: metrics::macro_f1(&pred, &gold, classifier.model.config.num_labels()),
        count: gold.len(),
        sequences_per_second: gold.len() as f64 / seconds.max(1e-9),
        seconds,
    })
}
