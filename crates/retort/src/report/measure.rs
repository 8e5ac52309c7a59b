//! Measuring one model on the comparison data: predictions, accuracy, latency, throughput.
//!
//! Both timings include tokenisation, because that is what a user of the model pays:
//! latency is one sentence from text to probabilities; throughput is the whole data set in
//! length-sorted batches (as `retort eval` runs it).

use std::time::Instant;

use crate::bench::Stats;
use crate::error::Result;
use crate::eval::metrics;
use crate::infer::Classifier;

/// Throughput passes over the data continue until they add up to this many seconds...
const MIN_THROUGHPUT_SECONDS: f64 = 1.0;
/// ...or until there are this many.
const MAX_PASSES: usize = 20;

/// How much timing to do.
#[derive(Debug, Clone, Copy)]
pub struct MeasureOptions {
    /// Texts per forward pass for the throughput (and accuracy) pass.
    pub batch_size: usize,
    /// Sentences timed one at a time for the batch-1 latency (the first N of the data).
    pub latency_samples: usize,
    /// Untimed calls before each timing.
    pub warmup: usize,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            latency_samples: 100,
            warmup: 3,
        }
    }
}

/// What was measured for one model.
#[derive(Debug, Clone)]
pub struct Measured {
    pub predictions: Vec<usize>,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Batch-1 latency over the sampled sentences, milliseconds.
    pub latency_ms: Stats,
    /// Sequences per second over the whole data set at `batch_size` (median of the passes).
    pub throughput: f64,
}

/// Runs `c` over `texts` (scored against `gold`) and times it.
pub fn measure(
    c: &Classifier,
    texts: &[&str],
    gold: &[usize],
    opts: &MeasureOptions,
) -> Result<Measured> {
    // Warm-up (one batch is enough): the first batches pay for allocations and thread start-up.
    let warm = &texts[..texts.len().min(opts.batch_size)];
    if opts.warmup > 0 {
        c.probabilities(warm, opts.batch_size)?;
    }
    let start = Instant::now();
    let probs = c.probabilities(texts, opts.batch_size)?;
    let mut passes = vec![start.elapsed().as_secs_f64()];
    // A small data set takes milliseconds: pass over it again (up to a second in all) so
    // that the throughput is a median, not one noisy sample.
    while passes.iter().sum::<f64>() < MIN_THROUGHPUT_SECONDS && passes.len() < MAX_PASSES {
        let t = Instant::now();
        c.probabilities(texts, opts.batch_size)?;
        passes.push(t.elapsed().as_secs_f64());
    }
    let seconds = Stats::of(&passes).expect("one pass").median.max(1e-9);
    let predictions: Vec<usize> = probs.iter().map(|p| metrics::argmax(p)).collect();

    let sample = &texts[..texts.len().min(opts.latency_samples.max(1))];
    for text in sample.iter().cycle().take(opts.warmup) {
        c.probabilities(&[text], 1)?;
    }
    let mut times = Vec::with_capacity(sample.len());
    for text in sample {
        let t = Instant::now();
        c.probabilities(&[text], 1)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let latency_ms = Stats::of(&times).expect("at least one sentence");
    Ok(Measured {
        accuracy: metrics::accuracy(&predictions, gold),
        macro_f1: metrics::macro_f1(&predictions, gold, c.model.config.num_labels()),
        predictions,
        latency_ms,
        throughput: texts.len() as f64 / seconds,
    })
}

/// Fraction of `a`'s predictions equal to `b`'s.
pub fn agreement(a: &[usize], b: &[usize]) -> f64 {
    metrics::accuracy(a, b)
}
