//! Server metrics in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Request latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Texts per model batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A cumulative histogram: counts per upper bound, plus the sum and count of observations.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default, Clone)]
struct HistogramState {
    /// Observations ≤ each bound (not yet cumulative).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        let state = HistogramState {
            counts: vec![0; bounds.len()],
            ..Default::default()
        };
        Self {
            bounds,
            state: Mutex::new(state),
        }
    }

    fn observe(&self, v: f64) {
        // A poisoned lock only means another thread panicked mid-update: keep counting.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            s.counts[i] += 1;
        }
        s.sum += v;
        s.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&s.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum {}", s.sum);
        let _ = writeln!(out, "{name}_count {}", s.count);
    }
}

/// What `GET /metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    requests: AtomicU64,
    errors: AtomicU64,
    texts: AtomicU64,
    latency: Histogram,
    batch_size: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            texts: AtomicU64::new(0),
            latency: Histogram::new(LATENCY_BUCKETS),
            batch_size: Histogram::new(BATCH_BUCKETS),
        }
    }
}

impl Metrics {
    /// One answered classify request: its latency, whether it failed, how many texts it had.
    pub fn record_request(&self, seconds: f64, failed: bool, texts: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.texts.fetch_add(texts as u64, Ordering::Relaxed);
        self.latency.observe(seconds);
    }

    /// One forward pass of the model over `texts` texts.
    pub fn record_batch(&self, texts: usize) {
        self.batch_size.observe(texts as f64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let v = v.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "retort_requests_total",
            "Classify requests answered.",
            &self.requests,
        );
        counter(
            &mut out,
            "retort_request_errors_total",
            "Classify requests answered with an error status.",
            &self.errors,
        );
        counter(
            &mut out,
            "retort_texts_total",
            "Texts classified.",
            &self.texts,
        );
        self.latency.render(
            &mut out,
            "retort_request_duration_seconds",
            "Classify request latency, from the body read to the answer.",
        );
        self.batch_size.render(
            &mut out,
            "retort_batch_size",
            "Texts per forward pass of the model.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record_request(0.003, false, 2);
        m.record_request(0.2, true, 1);
        m.record_batch(3);
        let text = m.render();
        for line in [
            "retort_requests_total 2",
            "retort_request_errors_total 1",
            "retort_texts_total 3",
            "retort_request_duration_seconds_bucket{le=\"0.0025\"} 0",
            "retort_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "retort_request_duration_seconds_bucket{le=\"0.25\"} 2",
            "retort_request_duration_seconds_bucket{le=\"+Inf\"} 2",
            "retort_request_duration_seconds_count 2",
            "retort_batch_size_bucket{le=\"4\"} 1",
            "retort_batch_size_sum 3",
            "# TYPE retort_batch_size histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
