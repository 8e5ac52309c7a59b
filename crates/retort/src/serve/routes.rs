//! The HTTP routes: the model's prediction route (`POST /v1/classify` for a sequence
//! classifier, `POST /v1/entities` for a tagger, `POST /v1/answer` for a reader, `POST
//! /v1/translate` for a translator), `GET /health`, `GET /metrics`. Every error is
//! `{"error": "..."}` with its status, unknown routes and methods included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::batcher::Batcher;
use super::conn::Shutdown;
use super::metrics::Metrics;
use super::request::{parse_inputs, read_body, ApiError, BodyKind, Limits};

/// What every route shares.
pub struct AppState {
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Shown by `/health`: the model directory, its labels, whether it runs in int8.
    pub model_info: Value,
    /// The prediction route of the model's task, and what its bodies hold.
    pub route: &'static str,
    pub body: BodyKind,
    /// A request body must arrive within this (else 408).
    pub read_timeout: Duration,
    /// Given when the shutdown grace period is over: requests still waiting get 503.
    pub out_of_time: Shutdown,
}

/// The server's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(state.route, post(predict))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"error": self.message}))).into_response();
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may never come: the connection is of no further use.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

async fn predict(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let start = Instant::now();
    let mut count = 0;
    let result = async {
        let body = read_body(body, state.limits.max_body_bytes, state.read_timeout).await?;
        let texts = parse_inputs(&body, &state.limits, state.body)?;
        count = texts.len();
        tokio::select! {
            answer = state.batcher.predict(texts) => answer,
            // The grace period is over: an answer now, rather than a closed connection.
            _ = state.out_of_time.clone().wait() => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down: retry the request",
            )),
        }
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
