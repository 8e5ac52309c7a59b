//! `retort serve`: an HTTP server that classifies texts with a loaded model.
//!
//! - [`routes`]: `POST /v1/classify`, `GET /health`, `GET /metrics`, JSON errors;
//! - [`request`]: body → texts, with the limits and the 400 / 413 / 422 answers;
//! - [`batcher`]: the model thread and dynamic batching;
//! - [`metrics`]: counters and histograms in Prometheus text format;
//! - [`client`]: a minimal blocking HTTP client and the load test built on it.
//!
//! SIGINT and SIGTERM stop accepting connections, let in-flight requests finish, then
//! [`serve`] returns.

pub mod batcher;
pub mod client;
pub mod metrics;
pub mod request;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;

pub use batcher::BatchConfig;
pub use request::Limits;

use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::task::Task;

/// Where to listen and how to batch and limit requests.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    /// 0 picks a free port (the chosen address is passed to `on_ready`).
    pub port: u16,
    pub batch: BatchConfig,
    pub limits: Limits,
}

/// Serves `classifier` until SIGINT or SIGTERM; `on_ready` gets the bound address once the
/// server accepts connections.
pub fn serve(
    classifier: Classifier,
    options: &ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("retort-http")
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(classifier, options, on_ready))
}

async fn run(
    classifier: Classifier,
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

    let metrics = Arc::new(metrics::Metrics::default());
    let model_info = json!({
        "dir": classifier.dir.display().to_string(),
        "architecture": classifier.model.config.architecture.class(classifier.model.config.head),
        "task": Task::of(&classifier.model.config).name(),
        "route": Task::of(&classifier.model.config).route(),
        "labels": classifier.model.config.labels,
        "int8": classifier.model.is_int8(),
    });
    let route = Task::of(&classifier.model.config).route();
    let state = Arc::new(routes::AppState {
        route,
        batcher: batcher::Batcher::spawn(classifier, options.batch, metrics.clone()),
        metrics,
        limits: options.limits,
        model_info,
    });
    on_ready(local);
    // Graceful: after the signal no new connections are accepted, idle keep-alive
    // connections are closed, and requests in flight are answered before this returns.
    // The model thread ends when the last handle to it (in `state`) is dropped.
    axum::serve(listener, routes::router(state))
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| Error::Invalid(format!("the server failed: {e}")))
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
