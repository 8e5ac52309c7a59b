//! A soak test for `retort serve`: a steady, paced request rate plus periodic bursts for a
//! fixed time, summarised per interval (requests, errors, latency percentiles, the server's
//! resident memory), so that drift and leaks show over time. `examples/soak.rs` and
//! `scripts/soak_serve.sh` run it.
//!
//! - Steady load is open-loop: request `i` is due at `i / rate` seconds, spread round-robin
//!   over a few keep-alive connections. Its latency runs from when it was due, not from when
//!   it was sent, so a stall shows as the latency of the requests queued behind it.
//! - A burst every `burst_every` sends `burst_requests` requests as fast as
//!   `burst_concurrency` fresh connections allow (closed-loop; latency from sending).
//! - Bounded: nothing is sent after `duration`; every connect, write and read times out after
//!   `request_timeout`; requests still in flight then are given that long, after which they
//!   count as errors and [`run`] returns whatever the server does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::client::{quantile, Connection};
use crate::error::{Error, Result};

/// What to send, for how long, and how to report it.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub addr: SocketAddr,
    /// `POST` route, e.g. `/v1/classify`.
    pub route: String,
    pub duration: Duration,
    /// Steady requests per second (0: none).
    pub rate: f64,
    /// Keep-alive connections the steady requests are spread over.
    pub connections: usize,
    /// Time between bursts (zero: no bursts); the first starts at `burst_every`.
    pub burst_every: Duration,
    pub burst_requests: usize,
    pub burst_concurrency: usize,
    /// One [`IntervalReport`] per interval (and one for the rest at the end).
    pub interval: Duration,
    /// Bound on connecting and on each write and read of a request.
    pub request_timeout: Duration,
    /// The server's process id, whose resident memory is read at each interval's end.
    pub pid: Option<u32>,
}

impl SoakConfig {
    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid(format!("soak: {m}")));
        if self.duration.is_zero() {
            return bad("the duration must be positive");
        }
        if self.interval.is_zero() {
            return bad("the interval must be positive");
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return bad("the rate must be a number of requests per second, 0 or more");
        }
        if self.request_timeout.is_zero() {
            return bad("the request timeout must be positive");
        }
        Ok(())
    }
}

/// One interval: requests completed in it (answered or failed), how many failed, latency
/// percentiles (ms; `None` with no request) and the server's RSS at its end (MiB).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalReport {
    /// Seconds from the start to the interval's end.
    pub t_s: f64,
    pub requests: usize,
    pub errors: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub rss_mib: Option<f64>,
}

impl IntervalReport {
    fn of(t: Duration, samples: &[Sample], rss_mib: Option<f64>) -> Self {
        let latencies = sorted_latencies(samples);
        Self {
            t_s: t.as_secs_f64(),
            requests: samples.len(),
            errors: samples.iter().filter(|s| !s.ok).count(),
            p50_ms: micros(quantile(&latencies, 0.50)),
            p99_ms: micros(quantile(&latencies, 0.99)),
            max_ms: micros(quantile(&latencies, 1.0)),
            rss_mib,
        }
    }
}

/// The whole run: totals, overall percentiles, and the RSS trend ([`RssTrend`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakReport {
    /// Always true: tells this line from the interval lines.
    pub summary: bool,
    pub seconds: f64,
    pub requests: usize,
    /// Failed requests: refused or broken connections, timeouts, answers other than 200,
    /// steady requests not sent by the end, and requests unanswered at the end.
    pub errors: usize,
    pub requests_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    #[serde(flatten)]
    pub rss: RssTrend,
}

/// The server's RSS over the run: after warm-up (the end of the first interval after the
/// first burst: the first burst's bigger batches grow the allocator's pools once), at the
/// last interval's end, the largest, and the growth `last - warm` (a leak shows here), in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RssTrend {
    pub rss_warm_mib: Option<f64>,
    pub rss_last_mib: Option<f64>,
    pub rss_max_mib: Option<f64>,
    pub rss_growth_mib: Option<f64>,
}

impl RssTrend {
    /// From the intervals' readings in order (`None`: not read), the first `warm_up` of them
    /// counting as warm-up (but in the largest).
    pub fn of(readings: impl IntoIterator<Item = Option<f64>>, warm_up: usize) -> Self {
        let all: Vec<Option<f64>> = readings.into_iter().collect();
        let read: Vec<f64> = all.iter().skip(warm_up).copied().flatten().collect();
        let (warm, last) = (read.first().copied(), read.last().copied());
        Self {
            rss_warm_mib: warm,
            rss_last_mib: last,
            rss_max_mib: all.iter().copied().flatten().reduce(f64::max),
            rss_growth_mib: warm.zip(last).map(|(w, l)| l - w),
        }
    }
}

/// When the steady requests are due, as offsets from the start: `i / rate` for each `i`
/// whose offset is before `duration` (none when `rate` is 0).
pub fn steady_offsets(rate: f64, duration: Duration) -> impl Iterator<Item = Duration> {
    let end = duration.as_secs_f64();
    (0u64..)
        .map(move |i| i as f64 / rate)
        .take_while(move |&t| rate > 0.0 && t.is_finite() && t < end)
        .map(Duration::from_secs_f64)
}

/// When the bursts start: `every`, `2 every`, ... before `duration` (none when `every` is 0).
pub fn burst_offsets(every: Duration, duration: Duration) -> Vec<Duration> {
    if every.is_zero() {
        return Vec::new();
    }
    (1u32..)
        .map(|k| every * k)
        .take_while(|&t| t < duration)
        .collect()
}

/// The resident set size in a `/proc/PID/status` text, in MiB.
pub fn parse_vm_rss_mib(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib: f64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kib / 1024.0)
}

/// A process's resident set size in MiB (`None` if it cannot be read: gone, or not Linux).
pub fn rss_mib(pid: u32) -> Option<f64> {
    parse_vm_rss_mib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// One finished request: latency in ms (`None`: never sent), and whether it got a 200.
#[derive(Debug, Clone, Copy)]
struct Sample {
    latency_ms: Option<f64>,
    ok: bool,
}

/// Milliseconds rounded to the microsecond (the clock's noise below that is not worth printing).
fn micros(ms: Option<f64>) -> Option<f64> {
    ms.map(|ms| (ms * 1e3).round() / 1e3)
}

fn sorted_latencies(samples: &[Sample]) -> Vec<f64> {
    let mut l: Vec<f64> = samples.iter().filter_map(|s| s.latency_ms).collect();
    l.sort_by(f64::total_cmp);
    l
}

/// What the request threads share.
struct Shared {
    config: SoakConfig,
    bodies: Vec<Vec<u8>>,
    next_body: AtomicUsize,
    /// Requests sent so far, and those finished since the last interval's end.
    recorded: Mutex<(usize, Vec<Sample>)>,
}

impl Shared {
    /// Sends one request on `conn` (opened first if `None`; dropped after a failure) and
    /// records it, with its latency counted from `since`.
    fn send(&self, conn: &mut Option<Connection>, since: Instant) {
        self.recorded.lock().unwrap().0 += 1;
        let body = &self.bodies[self.next_body.fetch_add(1, Ordering::Relaxed) % self.bodies.len()];
        let c = &self.config;
        let result = match conn.take() {
            Some(open) => Ok(open),
            None => Connection::open_with_timeout(c.addr, c.request_timeout),
        }
        .and_then(|mut open| open.request("POST", &c.route, body).map(|r| (open, r)));
        let ok = match result {
            Ok((open, response)) => {
                *conn = Some(open);
                response.status == 200
            }
            Err(_) => false,
        };
        let latency_ms = Some(since.elapsed().as_secs_f64() * 1e3);
        self.recorded
            .lock()
            .unwrap()
            .1
            .push(Sample { latency_ms, ok });
    }

    /// Records `n` steady requests that were due but could not be sent before the end.
    fn not_sent(&self, n: usize) {
        let failed = Sample {
            latency_ms: None,
            ok: false,
        };
        let mut recorded = self.recorded.lock().unwrap();
        recorded.0 += n;
        recorded.1.extend(std::iter::repeat_n(failed, n));
    }

    /// Requests sent so far (or given up), and the samples since the last call.
    fn take(&self) -> (usize, Vec<Sample>) {
        let mut recorded = self.recorded.lock().unwrap();
        (recorded.0, std::mem::take(&mut recorded.1))
    }
}

/// Steady connection `w` of `k`: requests `w`, `w + k`, ... each when due (or at once when
/// late); at the end, the due requests it could not send count as errors.
fn steady_worker(shared: &Shared, start: Instant, w: usize, k: usize) {
    let c = &shared.config;
    let deadline = start + c.duration;
    let mut conn = None;
    let mut offsets = steady_offsets(c.rate, c.duration).skip(w).step_by(k);
    while let Some(offset) = offsets.next() {
        let due = start + offset;
        let now = Instant::now();
        if now >= deadline {
            shared.not_sent(1 + offsets.count());
            return;
        }
        std::thread::sleep(due.saturating_duration_since(now));
        shared.send(&mut conn, due);
    }
}

/// Each burst in turn: `burst_requests` requests over `burst_concurrency` fresh connections;
/// nothing is sent after the deadline (a burst cut short by the end is not an error).
fn burst_worker(shared: &Arc<Shared>, start: Instant) {
    let c = &shared.config;
    let deadline = start + c.duration;
    for offset in burst_offsets(c.burst_every, c.duration) {
        std::thread::sleep((start + offset).saturating_duration_since(Instant::now()));
        let left = Arc::new(AtomicUsize::new(c.burst_requests));
        let threads: Vec<_> = (0..c.burst_concurrency.max(1))
            .map(|_| {
                let (shared, left) = (shared.clone(), left.clone());
                std::thread::spawn(move || {
                    let mut conn = None;
                    while Instant::now() < deadline
                        && left
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_ok()
                    {
                        shared.send(&mut conn, Instant::now());
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Runs the soak: `bodies` (JSON, cycled) are sent to `config.route`; `on_interval` gets each
/// interval's report as it ends. Returns the summary; `errors` is 0 when all went well.
pub fn run(
    config: SoakConfig,
    bodies: Vec<Vec<u8>>,
    mut on_interval: impl FnMut(&IntervalReport),
) -> Result<SoakReport> {
    config.check()?;
    if bodies.is_empty() {
        return Err(Error::Invalid("soak: no request bodies".into()));
    }
    let start = Instant::now();
    let deadline = start + config.duration;
    let shared = Arc::new(Shared {
        config,
        bodies,
        next_body: AtomicUsize::new(0),
        recorded: Mutex::new((0, Vec::new())),
    });
    let c = &shared.config;

    // Each request thread says when it is done (or drops its sender if it panics).
    let (done_tx, done) = mpsc::channel::<()>();
    let mut threads = 0;
    let k = c.connections.max(1);
    for w in (0..k).filter(|_| c.rate > 0.0) {
        let (shared, done_tx) = (shared.clone(), done_tx.clone());
        std::thread::spawn(move || {
            steady_worker(&shared, start, w, k);
            let _ = done_tx.send(());
        });
        threads += 1;
    }
    if has_bursts(c) {
        let (shared, done_tx) = (shared.clone(), done_tx.clone());
        std::thread::spawn(move || {
            burst_worker(&shared, start);
            let _ = done_tx.send(());
        });
        threads += 1;
    }
    drop(done_tx);

    let rss = || c.pid.and_then(rss_mib);
    let mut intervals = Vec::new();
    let mut latencies = Vec::new();
    let mut finished = Vec::new();
    for end in (1u32..)
        .map(|k| c.interval * k)
        .take_while(|&t| t < c.duration)
    {
        std::thread::sleep((start + end).saturating_duration_since(Instant::now()));
        let (_, samples) = shared.take();
        let report = IntervalReport::of(end, &samples, rss());
        on_interval(&report);
        intervals.push(report);
        latencies.extend(samples.iter().filter_map(|s| s.latency_ms));
        finished.extend(samples);
    }
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    // Requests in flight at the deadline have one more request timeout to finish.
    let grace_end = deadline + c.request_timeout + Duration::from_millis(500);
    for _ in 0..threads {
        let left = grace_end.saturating_duration_since(Instant::now());
        if done.recv_timeout(left).is_err() {
            break;
        }
    }
    let (sent, mut samples) = shared.take();
    let unanswered = sent - (finished.len() + samples.len());
    samples.extend(std::iter::repeat_n(
        Sample {
            latency_ms: None,
            ok: false,
        },
        unanswered,
    ));
    let last = IntervalReport::of(c.duration, &samples, rss());
    on_interval(&last);
    intervals.push(last);
    latencies.extend(samples.iter().filter_map(|s| s.latency_ms));
    finished.extend(samples);

    latencies.sort_by(f64::total_cmp);
    let seconds = start.elapsed().as_secs_f64();
    let errors = finished.iter().filter(|s| !s.ok).count();
    Ok(SoakReport {
        summary: true,
        seconds,
        requests: finished.len(),
        errors,
        requests_per_second: (finished.len() - errors) as f64 / c.duration.as_secs_f64(),
        p50_ms: micros(quantile(&latencies, 0.50)),
        p99_ms: micros(quantile(&latencies, 0.99)),
        max_ms: micros(quantile(&latencies, 1.0)),
        rss: RssTrend::of(intervals.iter().map(|i| i.rss_mib), warm_up_intervals(c)),
    })
}

/// Whether the run sends any burst.
fn has_bursts(c: &SoakConfig) -> bool {
    c.burst_requests > 0 && !burst_offsets(c.burst_every, c.duration).is_empty()
}

/// Intervals that end before the first burst is over: warm-up for the RSS trend. An interval
/// ends at `(k + 1) · interval`; the first one to end after the first burst's start is
/// `k = ⌊burst_every / interval⌋` (none without bursts).
fn warm_up_intervals(c: &SoakConfig) -> usize {
    match has_bursts(c) && !c.interval.is_zero() {
        true => (c.burst_every.as_secs_f64() / c.interval.as_secs_f64()).floor() as usize,
        false => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steady_offsets_are_evenly_paced_and_end_before_the_duration() {
        let o: Vec<Duration> = steady_offsets(20.0, Duration::from_secs(3)).collect();
        assert_eq!(o.len(), 60);
        assert_eq!(o[0], Duration::ZERO);
        assert_eq!(o[1], ms(50));
        assert_eq!(o[59], ms(2950));
        // A rate that does not divide the duration: 2.5/s over 1.1 s is due at 0, 0.4, 0.8.
        assert_eq!(steady_offsets(2.5, ms(1100)).count(), 3);
        assert_eq!(steady_offsets(0.0, Duration::from_secs(10)).count(), 0);
        // Spread over connections: each gets every k-th request, all are covered once.
        let k = 3;
        let mut spread: Vec<Duration> = (0..k)
            .flat_map(|w| {
                steady_offsets(20.0, Duration::from_secs(3))
                    .skip(w)
                    .step_by(k)
            })
            .collect();
        spread.sort();
        assert_eq!(spread, o);
    }

    #[test]
    fn bursts_start_every_period_before_the_end() {
        assert_eq!(
            burst_offsets(Duration::from_secs(120), Duration::from_secs(1800)).len(),
            14
        );
        assert_eq!(burst_offsets(ms(500), ms(1200)), vec![ms(500), ms(1000)]);
        assert_eq!(burst_offsets(ms(500), ms(1000)), vec![ms(500)]);
        assert!(burst_offsets(Duration::ZERO, ms(1000)).is_empty());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.5), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn interval_report_counts_errors_and_ignores_unsent_latencies() {
        let s = |latency_ms, ok| Sample { latency_ms, ok };
        let samples = [
            s(Some(3.0), true),
            s(Some(1.0), true),
            s(Some(2.0), false),
            s(None, false),
        ];
        let r = IntervalReport::of(ms(5000), &samples, Some(100.0));
        assert_eq!((r.t_s, r.requests, r.errors), (5.0, 4, 2));
        assert_eq!((r.p50_ms, r.max_ms), (Some(2.0), Some(3.0)));
        let empty = IntervalReport::of(ms(1000), &[], None);
        assert_eq!((empty.requests, empty.p50_ms), (0, None));
        let line = serde_json::to_value(&empty).unwrap();
        assert_eq!(line["p99_ms"], serde_json::Value::Null);
    }

    #[test]
    fn rss_trend_is_measured_from_the_first_reading_after_warm_up() {
        let t = RssTrend::of([None, Some(100.0), Some(130.0), Some(120.0)], 0);
        assert_eq!(t.rss_warm_mib, Some(100.0));
        assert_eq!(t.rss_last_mib, Some(120.0));
        assert_eq!(t.rss_max_mib, Some(130.0));
        assert_eq!(t.rss_growth_mib, Some(20.0));
        assert_eq!(RssTrend::of([None, None], 0).rss_growth_mib, None);
        // Warm-up readings count in the largest only.
        let t = RssTrend::of([Some(150.0), Some(100.0), Some(130.0), Some(131.0)], 2);
        assert_eq!(t.rss_warm_mib, Some(130.0));
        assert_eq!(t.rss_max_mib, Some(150.0));
        assert_eq!(t.rss_growth_mib, Some(1.0));
    }

    #[test]
    fn warm_up_lasts_until_an_interval_ends_after_the_first_burst() {
        let config = |every: u64, interval: u64, burst_requests: usize| SoakConfig {
            addr: "127.0.0.1:1".parse().unwrap(),
            route: "/v1/classify".into(),
            duration: Duration::from_secs(1800),
            rate: 20.0,
            connections: 4,
            burst_every: Duration::from_secs(every),
            burst_requests,
            burst_concurrency: 16,
            interval: Duration::from_secs(interval),
            request_timeout: Duration::from_secs(10),
            pid: None,
        };
        // Bursts at 120 s, readings at 60, 120, 180 s: the one at 180 s is the first after it.
        assert_eq!(warm_up_intervals(&config(120, 60, 400)), 2);
        assert_eq!(warm_up_intervals(&config(90, 60, 400)), 1);
        assert_eq!(warm_up_intervals(&config(120, 60, 0)), 0);
        assert_eq!(warm_up_intervals(&config(0, 60, 400)), 0);
    }

    #[test]
    fn vm_rss_is_read_from_proc_status() {
        let status = "Name:\tretort\nVmPeak:\t  999 kB\nVmRSS:\t  204800 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss_mib(status), Some(200.0));
        assert_eq!(parse_vm_rss_mib("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss_mib("VmRSS:\tlots kB\n"), None);
        if cfg!(target_os = "linux") {
            let own = rss_mib(std::process::id()).unwrap();
            assert!(own > 0.0 && own < 1e6, "{own}");
        }
    }

    /// A loopback HTTP server answering every request with `status` (after `delay`), or
    /// reading requests and never answering when `status` is 0; returns its address and how
    /// many requests it read.
    fn fake_server(status: u16, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(|s| s.ok()) {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let (mut line, mut length) = (String::new(), 0);
                        while reader.read_line(&mut line).unwrap_or(0) > 0 {
                            let header = line.trim_end().to_ascii_lowercase();
                            if header.is_empty() {
                                break;
                            }
                            if let Some(v) = header.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap();
                            }
                            line.clear();
                        }
                        if line.is_empty() {
                            return; // closed
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        if status == 0 {
                            continue;
                        }
                        std::thread::sleep(delay);
                        let answer =
                            format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\n{{}}");
                        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    fn config(addr: SocketAddr) -> SoakConfig {
        SoakConfig {
            addr,
            route: "/v1/classify".into(),
            duration: ms(1200),
            rate: 50.0,
            connections: 2,
            burst_every: ms(500),
            burst_requests: 20,
            burst_concurrency: 4,
            interval: ms(400),
            request_timeout: ms(500),
            pid: Some(std::process::id()),
        }
    }

    fn bodies() -> Vec<Vec<u8>> {
        vec![
            br#"{"texts": ["a"]}"#.to_vec(),
            br#"{"texts": ["b"]}"#.to_vec(),
        ]
    }

    #[test]
    fn soak_sends_the_steady_rate_and_the_bursts_and_reports_each_interval() {
        let (addr, seen) = fake_server(200, ms(1));
        let mut lines = Vec::new();
        let r = run(config(addr), bodies(), |i| lines.push(i.clone())).unwrap();
        // 60 steady (50/s for 1.2 s) + 2 bursts of 20.
        assert_eq!(r.requests, 100, "{r:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 100);
        assert_eq!(r.errors, 0);
        assert!(r.seconds >= 1.2 && r.seconds < 3.0, "{r:?}");
        let ends: Vec<f64> = lines.iter().map(|i| i.t_s).collect();
        assert_eq!(ends, vec![0.4, 0.8, 1.2]);
        assert_eq!(lines.iter().map(|i| i.requests).sum::<usize>(), 100);
        assert!(lines
            .iter()
            .all(|i| i.rss_mib.is_some() && i.p99_ms.is_some()));
        assert!(r.rss.rss_growth_mib.is_some());
        assert!(r.p50_ms.unwrap() <= r.p99_ms.unwrap());
    }

    #[test]
    fn soak_counts_answers_other_than_200_as_errors() {
        let (addr, _) = fake_server(503, Duration::ZERO);
        let mut c = config(addr);
        c.duration = ms(400);
        c.burst_every = Duration::ZERO;
        let r = run(c, bodies(), |_| {}).unwrap();
        assert_eq!((r.requests, r.errors), (20, 20));
    }

    #[test]
    fn soak_is_bounded_when_the_server_never_answers() {
        let (addr, seen) = fake_server(0, Duration::ZERO);
        let mut c = config(addr);
        c.duration = ms(1000);
        c.burst_every = ms(300);
        c.request_timeout = ms(300);
        let t = Instant::now();
        let r = run(c, bodies(), |_| {}).unwrap();
        // Deadline + one request timeout + margin.
        assert!(t.elapsed() < ms(2500), "{:?}", t.elapsed());
        assert!(seen.load(Ordering::SeqCst) > 0);
        // Every steady request failed (timed out, unsent, or unanswered at the end).
        assert!(r.errors >= 50, "{r:?}");
        assert_eq!(r.errors, r.requests);
    }

    #[test]
    fn soak_refuses_nonsense_settings() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut c = config(addr);
        c.rate = f64::NAN;
        assert!(run(c, bodies(), |_| {}).is_err());
        let mut c = config(addr);
        c.interval = Duration::ZERO;
        assert!(run(c, bodies(), |_| {}).is_err());
        assert!(run(config(addr), Vec::new(), |_| {}).is_err());
    }
}
