//! Load test for `retort serve`: N requests of one text each (cycled through a data file)
//! from C concurrent keep-alive connections; prints requests/s and latency percentiles.
//!
//!     cargo run --release -p retort-cli --example load_test -- \
//!         --addr 127.0.0.1:8080 --data ../shared/data/sst2/dev.tsv --requests 2000 --concurrency 16

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use retort::serve::client::{load_test, single_text_bodies};
use retort::text::Dataset;

#[derive(Parser)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Texts to send (TSV/CSV/JSONL as `retort eval` reads them), one per request, cycled.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = Dataset::read(&args.data)?;
    let bodies = single_text_bodies(&data.texts());
    anyhow::ensure!(!bodies.is_empty(), "{} has no texts", args.data.display());
    let r = load_test(
        args.addr,
        "/v1/classify",
        &bodies,
        args.requests,
        args.concurrency,
    );
    println!("{}", serde_json::to_string(&r)?);
    anyhow::ensure!(
        r.errors == 0,
        "{} of {} requests failed",
        r.errors,
        r.requests
    );
    Ok(())
}
