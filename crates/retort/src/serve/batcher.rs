//! Dynamic batching: classify requests that arrive together share one forward pass.
//!
//! The model runs on a dedicated thread, never on the async runtime, so a long forward
//! pass does not hold up accepting connections, `/health` or `/metrics`. The thread takes
//! the first waiting request, then keeps collecting until the batch holds `max_batch_size`
//! texts or `max_wait` has passed since that first request, and runs them all at once
//! (length-sorted, as `Classifier::predict` does). A request is never split. The model is any
//! [`Predictor`]: a classifier or a translator.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use super::predictor::Predictor;
use super::request::ApiError;

/// How the batcher groups requests.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Texts per forward pass (a batch is closed once it has this many).
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for others to join it.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 32,
            max_wait: Duration::from_millis(2),
        }
    }
}

/// Each text's prediction, shaped by the model's task.
type Reply = Result<Vec<serde_json::Value>, ApiError>;

/// One request's texts and where its answer goes.
struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Reply>,
}

/// The handle requests use to reach the model thread (cheap to clone).
#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the model thread. It ends when every handle is dropped.
    pub fn spawn(model: Box<dyn Predictor>, config: BatchConfig, metrics: Arc<Metrics>) -> Self {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("retort-model".into())
            .spawn(move || run(queue, model.as_ref(), config, &metrics))
            .expect("the OS can start a thread");
        Self { jobs }
    }

    /// Predictions for `texts`, in order, once their batch has run.
    pub async fn predict(&self, texts: Vec<String>) -> Reply {
        let (reply, answer) = oneshot::channel();
        let gone = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model is not running");
        self.jobs.send(Job { texts, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The model thread: collect a batch, run it, answer, repeat until the queue closes.
fn run(queue: mpsc::Receiver<Job>, model: &dyn Predictor, config: BatchConfig, metrics: &Metrics) {
    while let Ok(first) = queue.recv() {
        let deadline = Instant::now() + config.max_wait;
        let mut texts = first.texts.len();
        let mut jobs = vec![first];
        while texts < config.max_batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            match queue.recv_timeout(left) {
                Ok(job) => {
                    texts += job.texts.len();
                    jobs.push(job);
                }
                Err(_) => break, // waited long enough, or the server is shutting down
            }
        }
        run_batch(jobs, model, config.max_batch_size, metrics);
    }
}

fn run_batch(jobs: Vec<Job>, model: &dyn Predictor, batch_size: usize, metrics: &Metrics) {
    // A client that went away needs no answer.
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|j| j.texts.iter().map(String::as_str))
        .collect();
    if texts.is_empty() {
        return;
    }
    metrics.record_batch(texts.len());
    // A panic in the model must not take the server down with it: answer 500 and go on.
    let result = catch_unwind(AssertUnwindSafe(|| {
        model.predict(&texts, batch_size.max(1))
    }));
    let mut predictions = match result {
        Ok(Ok(p)) => p.into_iter(),
        Ok(Err(e)) => return fail_all(jobs, format!("the model failed: {e}")),
        Err(_) => return fail_all(jobs, "the model failed (internal error)".into()),
    };
    for job in jobs {
        let mine = predictions.by_ref().take(job.texts.len()).collect();
        let _ = job.reply.send(Ok(mine)); // the client may have gone meanwhile
    }
}

fn fail_all(jobs: Vec<Job>, message: String) {
    for job in jobs {
        let error = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message.clone());
        let _ = job.reply.send(Err(error));
    }
}
