//! Soak test for `retort serve` (issue 19): a steady paced request rate plus periodic bursts
//! for a fixed time. Prints one JSON line per interval (`t_s`, `requests`, `errors`, `p50_ms`,
//! `p99_ms`, `max_ms`, `rss_mib` of the server given by `--pid`) and a summary line at the
//! end; exits non-zero if any request failed. The logic is `retort::serve::soak`;
//! `scripts/soak_serve.sh` starts the server and runs this.
//!
//!     cargo run --release -p retort-cli --example soak -- --addr 127.0.0.1:8080 \
//!         --data ../shared/data/sst2/dev.tsv --pid "$(pgrep -n retort)" --duration-s 1800

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use retort::serve::client::single_text_bodies;
use retort::serve::soak::{run, SoakConfig};
use retort::text::Dataset;

#[derive(Parser)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Texts to send (TSV/CSV/JSONL as `retort eval` reads them), one per request, cycled.
    #[arg(long)]
    data: PathBuf,
    /// The route to POST `{"texts": [text]}` to (`/v1/entities` for a tagger).
    #[arg(long, default_value = "/v1/classify")]
    route: String,
    #[arg(long, default_value_t = 1800.0)]
    duration_s: f64,
    /// Steady requests per second, paced open-loop over `--connections` keep-alive connections.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds between bursts (0: none).
    #[arg(long, default_value_t = 120.0)]
    burst_every_s: f64,
    #[arg(long, default_value_t = 400)]
    burst_requests: usize,
    #[arg(long, default_value_t = 16)]
    burst_concurrency: usize,
    /// Seconds per reported interval.
    #[arg(long, default_value_t = 60.0)]
    interval_s: f64,
    /// Bound in seconds on connecting and on each write and read of a request.
    #[arg(long, default_value_t = 10.0)]
    timeout_s: f64,
    /// The server's process id: its VmRSS is read at each interval's end.
    #[arg(long)]
    pid: Option<u32>,
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("--{name}: {s} is not a duration"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = Dataset::read(&args.data)?;
    let bodies = single_text_bodies(&data.texts());
    anyhow::ensure!(!bodies.is_empty(), "{} has no texts", args.data.display());
    let config = SoakConfig {
        addr: args.addr,
        route: args.route,
        duration: seconds("duration-s", args.duration_s)?,
        rate: args.rate,
        connections: args.connections,
        burst_every: seconds("burst-every-s", args.burst_every_s)?,
        burst_requests: args.burst_requests,
        burst_concurrency: args.burst_concurrency,
        interval: seconds("interval-s", args.interval_s)?,
        request_timeout: seconds("timeout-s", args.timeout_s)?,
        pid: args.pid,
    };
    let r = run(config, bodies, |interval| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(interval).unwrap_or_default()
        );
        let _ = out.flush();
    })?;
    println!("{}", serde_json::to_string(&r)?);
    anyhow::ensure!(
        r.errors == 0,
        "{} of {} requests failed",
        r.errors,
        r.requests
    );
    Ok(())
}
