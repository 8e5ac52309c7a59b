//! Whole-model timing: what `retort bench` measures and prints.
//!
//! The inputs are synthetic token ids (every token real, no padding), so that the same work
//! can be reproduced exactly by another tool (`scripts/bench_pytorch.py` builds the same ids
//! with [`synthetic_id`]). Only the forward pass is timed: tokenisation is not part of it.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{EncoderInput, Model, Outputs, Pass};

/// How to time: iterations thrown away first, then timed repetitions.
#[derive(Debug, Clone, Copy)]
pub struct Repetitions {
    pub warmup: usize,
    pub reps: usize,
}

/// Distribution of repeated wall-clock times, in seconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stats {
    pub median: f64,
    /// 5th and 95th percentiles (nearest rank): the spread without one-off outliers.
    pub p5: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
    pub samples: usize,
}

impl Stats {
    /// Summarises samples (seconds); `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        Some(Self {
            median: percentile(&s, 50.0),
            p5: percentile(&s, 5.0),
            p95: percentile(&s, 95.0),
            min: s[0],
            max: s[s.len() - 1],
            samples: s.len(),
        })
    }
}

/// Nearest-rank percentile of sorted values (the median of an even count is the mean of the
/// two middle values).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if p == 50.0 && n.is_multiple_of(2) {
        return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Times `f`: `warmup` untimed calls, then `reps` timed ones.
pub fn time<F: FnMut() -> Result<()>>(r: Repetitions, mut f: F) -> Result<Stats> {
    if r.reps == 0 {
        return Err(Error::Invalid("repetitions must be at least 1".into()));
    }
    for _ in 0..r.warmup {
        f()?;
    }
    let mut samples = Vec::with_capacity(r.reps);
    for _ in 0..r.reps {
        let start = Instant::now();
        f()?;
        samples.push(start.elapsed().as_secs_f64());
    }
    Ok(Stats::of(&samples).expect("reps >= 1"))
}

/// The `i`-th synthetic token id for a vocabulary of `vocab` entries: spread over the table,
/// avoiding the first 100 ids (special tokens in BERT vocabularies) where the table is big
/// enough. `scripts/bench_pytorch.py` uses the same formula.
pub fn synthetic_id(i: usize, vocab: usize) -> u32 {
    let skip = if vocab > 200 { 100 } else { 0 };
    (skip + (i * 7919) % (vocab - skip).max(1)) as u32
}

/// A `[batch, seq_len]` batch of synthetic ids, every position a real token.
pub fn synthetic_input(batch: usize, seq_len: usize, vocab: usize) -> Result<EncoderInput> {
    let device = &Device::Cpu;
    let ids: Vec<u32> = (0..batch * seq_len)
        .map(|i| synthetic_id(i, vocab))
        .collect();
    Ok(EncoderInput {
        input_ids: Tensor::from_vec(ids, (batch, seq_len), device)?,
        token_type_ids: Tensor::zeros((batch, seq_len), DType::U32, device)?,
        attention_mask: Tensor::ones((batch, seq_len), DType::F32, device)?,
        word_noise: None,
        target_ids: None,
    })
}

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    pub batch_size: usize,
    pub seq_len: usize,
    pub reps: Repetitions,
    pub latency: bool,
    pub throughput: bool,
}

/// Batch-1 latency, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub seq_len: usize,
    pub ms: Stats,
}

/// Sequences per second at a batch size; `seconds_per_batch` is the raw timing.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub batch_size: usize,
    pub seq_len: usize,
    /// Median, and the spread from the slowest (p95) and fastest (p5) batches.
    pub sequences_per_second: f64,
    pub sequences_per_second_p5: f64,
    pub sequences_per_second_p95: f64,
    pub seconds_per_batch: Stats,
}

/// What `retort bench` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    /// "f32", or "int8" for a quantised export (its linear maps run in int8).
    pub precision: &'static str,
    pub threads: usize,
    pub warmup: usize,
    pub reps: usize,
    pub latency: Option<Latency>,
    pub throughput: Option<Throughput>,
}

/// Number of threads the parallel work (rayon's pool, gemm and candle) runs on.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Sets the thread count of all parallel work. rayon's global pool and candle both read
/// `RAYON_NUM_THREADS` when they first start, so call it first thing in `main`, before any
/// other thread exists and before any tensor op.
pub fn set_threads(n: usize) {
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
}

/// Times the model's inference forward pass on synthetic input.
pub fn bench_model(model: &dyn Model, name: &str, cfg: &BenchConfig) -> Result<BenchReport> {
    if cfg.batch_size == 0 || cfg.seq_len == 0 {
        return Err(Error::Invalid(
            "batch size and sequence length must be at least 1".into(),
        ));
    }
    let max = model.config().max_tokens();
    if cfg.seq_len > max {
        return Err(Error::Invalid(format!(
            "sequence length {} exceeds the model's {max} positions",
            cfg.seq_len
        )));
    }
    let forward = |input: &EncoderInput| -> Result<()> {
        model.forward(input, Pass::INFERENCE, Outputs::default())?;
        Ok(())
    };
    let vocab = model.config().vocab_size;
    let latency = if cfg.latency {
        let input = synthetic_input(1, cfg.seq_len, vocab)?;
        let s = time(cfg.reps, || forward(&input))?;
        Some(Latency {
            seq_len: cfg.seq_len,
            ms: scale(s, 1e3),
        })
    } else {
        None
    };
    let throughput = if cfg.throughput {
        let input = synthetic_input(cfg.batch_size, cfg.seq_len, vocab)?;
        let s = time(cfg.reps, || forward(&input))?;
        let per_s = |t: f64| cfg.batch_size as f64 / t;
        Some(Throughput {
            batch_size: cfg.batch_size,
            seq_len: cfg.seq_len,
            sequences_per_second: per_s(s.median),
            sequences_per_second_p5: per_s(s.p95),
            sequences_per_second_p95: per_s(s.p5),
            seconds_per_batch: s,
        })
    } else {
        None
    };
    Ok(BenchReport {
        model: name.to_string(),
        precision: if model.is_int8() { "int8" } else { "f32" },
        threads: threads(),
        warmup: cfg.reps.warmup,
        reps: cfg.reps.reps,
        latency,
        throughput,
    })
}

/// Stats with every time multiplied by `k` (seconds → milliseconds).
pub fn scale(s: Stats, k: f64) -> Stats {
    Stats {
        median: s.median * k,
        p5: s.p5 * k,
        p95: s.p95 * k,
        min: s.min * k,
        max: s.max * k,
        samples: s.samples,
    }
}

impl BenchReport {
    /// A small aligned table.
    pub fn to_text(&self) -> String {
        let mut lines = vec![
            format!("model       {} ({})", self.model, self.precision),
            format!(
                "threads     {}   (warm-up {}, repetitions {})",
                self.threads, self.warmup, self.reps
            ),
        ];
        if let Some(l) = &self.latency {
            lines.push(format!(
                "latency     batch 1 × {} tokens: median {:.2} ms (p5 {:.2}, p95 {:.2}, min {:.2}, max {:.2})",
                l.seq_len, l.ms.median, l.ms.p5, l.ms.p95, l.ms.min, l.ms.max
            ));
        }
        if let Some(t) = &self.throughput {
            lines.push(format!(
                "throughput  batch {} × {} tokens: median {:.1} sequences/s (p5 {:.1}, p95 {:.1}); {:.1} ms per batch",
                t.batch_size,
                t.seq_len,
                t.sequences_per_second,
                t.sequences_per_second_p5,
                t.sequences_per_second_p95,
                t.seconds_per_batch.median * 1e3
            ));
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        let s = Stats::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.samples), (3.0, 1.0, 5.0, 5));
        assert_eq!((s.p5, s.p95), (1.0, 5.0));
        let even = Stats::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(even.median, 2.5);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn timing_runs_warmup_and_reps() {
        let mut calls = 0;
        let s = time(Repetitions { warmup: 2, reps: 3 }, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, s.samples), (5, 3));
        assert!(time(Repetitions { warmup: 0, reps: 0 }, || Ok(())).is_err());
    }

    #[test]
    fn synthetic_ids_stay_in_the_vocabulary() {
        assert_eq!(synthetic_id(1, 30522), 100 + 7919);
        assert!((0..5000).all(|i| synthetic_id(i, 316) < 316));
        assert!((0..50).all(|i| synthetic_id(i, 10) < 10));
    }
}
