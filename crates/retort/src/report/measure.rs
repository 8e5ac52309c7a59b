//! Measuring one model on the comparison data: predictions, the task's scores, latency,
//! throughput.
//!
//! Both timings include tokenisation, because that is what a user of the model pays:
//! latency is one example from its input to its predictions; throughput is the whole data set
//! in length-sorted batches (as `retort eval` runs it).

use std::time::Instant;

use crate::bench::Stats;
use crate::error::Result;
use crate::infer::Classifier;
use crate::task::{predict_units, Input, Scores, Task};

/// Throughput passes over the data continue until they add up to this many seconds...
const MIN_THROUGHPUT_SECONDS: f64 = 1.0;
/// ...or until there are this many.
const MAX_PASSES: usize = 20;

/// How much timing to do.
#[derive(Debug, Clone, Copy)]
pub struct MeasureOptions {
    /// Examples per forward pass for the throughput (and scoring) pass.
    pub batch_size: usize,
    /// Examples timed one at a time for the batch-1 latency (the first N of the data).
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
    /// Each example's predicted unit labels.
    pub predictions: Vec<Vec<usize>>,
    pub scores: Scores,
    /// Batch-1 latency over the sampled examples, milliseconds.
    pub latency_ms: Stats,
    /// Examples per second over the whole data set at `batch_size` (median of the passes).
    pub throughput: f64,
}

/// Runs `c` over `inputs` (scored against `gold`) and times it.
pub fn measure(
    c: &Classifier,
    inputs: &[&Input],
    gold: &[Vec<Option<usize>>],
    opts: &MeasureOptions,
) -> Result<Measured> {
    let (predictions, latency_ms, throughput) =
        timed(inputs, opts, &|inputs: &[&Input], batch| {
            predict_units(c, inputs, batch)
        })?;
    let task = Task::of(c.model.config());
    Ok(Measured {
        scores: task.score(&c.model.config().labels, inputs, &predictions, gold)?,
        predictions,
        latency_ms,
        throughput,
    })
}

/// Times `run` (a model from its inputs to its outputs) on `inputs`: its output on the whole
/// data in batches of `opts.batch_size`, the batch-1 latency in milliseconds over the first
/// `opts.latency_samples` inputs, and the throughput (inputs per second, the median of passes
/// adding up to a second or more).
pub fn timed<I, T>(
    inputs: &[I],
    opts: &MeasureOptions,
    run: &dyn Fn(&[I], usize) -> Result<T>,
) -> Result<(T, Stats, f64)> {
    // Warm-up (one batch is enough): the first batches pay for allocations and thread start-up.
    let warm = &inputs[..inputs.len().min(opts.batch_size)];
    if opts.warmup > 0 {
        run(warm, opts.batch_size)?;
    }
    let start = Instant::now();
    let output = run(inputs, opts.batch_size)?;
    let mut passes = vec![start.elapsed().as_secs_f64()];
    // A small data set takes milliseconds: pass over it again (up to a second in all) so
    // that the throughput is a median, not one noisy sample.
    while passes.iter().sum::<f64>() < MIN_THROUGHPUT_SECONDS && passes.len() < MAX_PASSES {
        let t = Instant::now();
        run(inputs, opts.batch_size)?;
        passes.push(t.elapsed().as_secs_f64());
    }
    let seconds = Stats::of(&passes).expect("one pass").median.max(1e-9);

    let sample = &inputs[..inputs.len().min(opts.latency_samples.max(1))];
    for input in sample.iter().cycle().take(opts.warmup) {
        run(std::slice::from_ref(input), 1)?;
    }
    let mut times = Vec::with_capacity(sample.len());
    for input in sample {
        let t = Instant::now();
        run(std::slice::from_ref(input), 1)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let latency_ms = Stats::of(&times).expect("at least one example");
    Ok((output, latency_ms, inputs.len() as f64 / seconds))
}
