//! `retort serve`: an HTTP server that answers with a loaded model (a classifier, tagger or
//! reader, or a translator).
//!
//! - [`predictor`]: what runs on each batch, and its route;
//! - [`routes`]: the model's `POST` route, `GET /health`, `GET /metrics`, JSON errors;
//! - [`request`]: body → texts, with the limits and the 400 / 413 / 422 answers;
//! - [`batcher`]: the model thread and dynamic batching;
//! - [`metrics`]: counters and histograms in Prometheus text format;
//! - [`client`]: a minimal blocking HTTP client and the load test built on it;
//! - [`soak`]: the soak test built on it (steady rate plus bursts, per-interval latency and
//!   the server's RSS);
//! - [`conn`]: each connection: read and idle timeouts, graceful close, JSON bodies for
//!   protocol errors.
//!
//! SIGINT and SIGTERM stop accepting connections; idle connections close at once, requests in
//! progress are answered. After `shutdown_grace` the requests still waiting for the model get
//! 503, every connection is closed, and [`serve`] returns.

pub mod batcher;
pub mod client;
pub mod conn;
pub mod metrics;
pub mod predictor;
pub mod request;
pub mod routes;
pub mod soak;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

pub use batcher::BatchConfig;
pub use conn::Timeouts;
pub use predictor::{Predictor, TranslationService};
pub use request::Limits;

use crate::error::{Error, Result};

/// Where to listen and how to batch and limit requests.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    /// 0 picks a free port (the chosen address is passed to `on_ready`).
    pub port: u16,
    pub batch: BatchConfig,
    pub limits: Limits,
    pub timeouts: Timeouts,
}

/// How long answers given at the end of the shutdown grace period (503s) have to go out
/// before the remaining connections are closed.
const LAST_WRITES: Duration = Duration::from_secs(1);

/// Serves `model` until SIGINT or SIGTERM; `on_ready` gets the bound address once the
/// server accepts connections.
pub fn serve(
    model: Box<dyn Predictor>,
    options: &ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("retort-http")
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(run(model, options, on_ready));
    // Connections still open were aborted: drop them now rather than wait for their tasks.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn run(
    model: Box<dyn Predictor>,
    options: &ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let addr = format!("{}:{}", options.host, options.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Invalid(format!("cannot read the listening address: {e}")))?;
    let stop = shutdown_signal()?;
    // `stopping`: connections close once idle; `out_of_time`: handlers answer 503 now.
    let (stopping_tx, stopping) = conn::Shutdown::channel();
    let (out_of_time_tx, out_of_time) = conn::Shutdown::channel();

    let metrics = Arc::new(metrics::Metrics::default());
    let (model_info, route, body) = (model.info(), model.route(), model.body());
    let state = Arc::new(routes::AppState {
        route,
        body,
        batcher: batcher::Batcher::spawn(model, options.batch, metrics.clone()),
        metrics,
        limits: options.limits,
        model_info,
        read_timeout: options.timeouts.read,
        out_of_time,
    });
    let router = routes::router(state);
    on_ready(local);
    let mut connections = JoinSet::new();
    let serve_one =
        |stream| conn::serve_connection(stream, router.clone(), options.timeouts, stopping.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_one(stream));
                }
                // Out of file descriptors, or a connection reset before it was accepted:
                // wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stopping_tx.send(true);
    // Connections the kernel completed before the signal may carry a request already: they
    // are served too (each closes at once if no request is waiting on it).
    while let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::ZERO, listener.accept()).await {
        connections.spawn(serve_one(stream));
    }
    drop(listener);
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(options.timeouts.shutdown_grace, all_closed)
        .await
        .is_err()
    {
        let _ = out_of_time_tx.send(true);
        let last_answers = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(LAST_WRITES, last_answers).await;
        connections.abort_all();
    }
    Ok(())
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed now,
/// so a signal that arrives before the future is polled is not lost.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    let signal_error = |e: std::io::Error| Error::Invalid(format!("cannot handle signals: {e}"));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
        let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = signal_error;
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
