//! The HTTP routes: the task's prediction route (`POST /v1/classify` for a sequence
//! classifier, `POST /v1/entities` for a tagger), `GET /health`, `GET /metrics`. Every error is
//! `{"error": "..."}` with its status, unknown routes and methods included.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::batcher::Batcher;
use super::metrics::Metrics;
use super::request::{parse_texts, ApiError, Limits};

/// What every route shares.
pub struct AppState {
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Shown by `/health`: the model directory, its labels, whether it runs in int8.
    pub model_info: Value,
    /// The prediction route of the model's task.
    pub route: &'static str,
}

/// The server's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route(state.route, post(predict))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies beyond the limit are refused while being read (413), not buffered whole.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}

async fn predict(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let start = Instant::now();
    let mut count = 0;
    let result = async {
        let body = body.map_err(|r| body_error(&r, state.limits.max_body_bytes))?;
        let texts = parse_texts(&body, &state.limits)?;
        count = texts.len();
        state.batcher.predict(texts).await
    }
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    state
        .metrics
        .record_request(elapsed, result.is_err(), count);
    match result {
        Ok(predictions) => Json(json!({ "results": predictions })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A body that could not be read: too large (413) or broken off (400).
fn body_error(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes"),
        )
    } else {
        ApiError::new(
            rejection.status(),
            format!("cannot read the request body: {}", rejection.body_text()),
        )
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut v = json!({"status": "ok"});
    v["model"] = state.model_info.clone();
    Json(v)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(State(state): State<Arc<AppState>>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such route for this model (POST {}, GET /health, GET /metrics)",
            state.route
        ),
    )
}

async fn method_not_allowed(State(state): State<Arc<AppState>>) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method not allowed (POST {}, GET /health, GET /metrics)",
            state.route
        ),
    )
}
