//! Turning a request body into texts, or into the JSON error that says what is wrong.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::StatusCode;
use serde_json::Value;

/// Limits on what one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Texts in one request.
    pub max_texts: usize,
    /// Characters (Unicode scalar values) in one text.
    pub max_chars: usize,
    /// Bytes of one request body.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_texts: 64,
            max_chars: 2_000,
            max_body_bytes: 1 << 20,
        }
    }
}

/// An error answered as `{"error": message}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// Reads a request body whole: 413 beyond `limit` bytes (refused from its Content-Length
/// before any byte is read, else as soon as it is exceeded), 408 when it has not arrived
/// within `timeout` of the start (a client that sends part of a body and stops cannot hold a
/// handler), 400 when the connection breaks off.
pub async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx));
        let frame = tokio::time::timeout_at(deadline, frame)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body was not received within {} s",
                        timeout.as_secs_f64()
                    ),
                )
            })?;
        match frame {
            None => return Ok(bytes),
            Some(Err(e)) => {
                return Err(ApiError::bad_request(format!(
                    "cannot read the request body: {e}"
                )))
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > limit {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&data);
                }
            }
        }
    }
}

/// What a prediction route reads from its body: texts (`{"texts": ["...", ...]}`), or
/// questions about contexts (`{"questions": [{"question": "...", "context": "..."}, ...]}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Texts,
    Questions,
}

/// The inputs of a prediction request, each as the string the task's `predict` reads: a
/// text, or a question as its `{"question", "context"}` JSON object. The same checks and
/// statuses as [`parse_texts`]; each of a question's two strings is held to `max_chars`.
pub fn parse_inputs(body: &[u8], limits: &Limits, kind: BodyKind) -> Result<Vec<String>, ApiError> {
    match kind {
        BodyKind::Texts => parse_texts(body, limits),
        BodyKind::Questions => parse_questions(body, limits),
    }
}

/// The questions of a `POST /v1/answer` body.
fn parse_questions(body: &[u8], limits: &Limits) -> Result<Vec<String>, ApiError> {
    let shape = r#"{"questions": [{"question": "...", "context": "..."}, ...]}"#;
    let items = body_list(body, limits, "questions", "objects", shape)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(map) = item else {
                return Err(ApiError::bad_request(format!(
                    r#"questions[{i}] must be an object {{"question": "...", "context": "..."}}, found {}"#,
                    kind(item)
                )));
            };
            for field in ["question", "context"] {
                match map.get(field) {
                    Some(Value::String(s)) if s.trim().is_empty() => {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!("questions[{i}].{field} is empty"),
                        ))
                    }
                    Some(Value::String(s)) if s.chars().count() > limits.max_chars => {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!(
                                "questions[{i}].{field} has {} characters (at most {})",
                                s.chars().count(),
                                limits.max_chars
                            ),
                        ))
                    }
                    Some(Value::String(_)) => {}
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "questions[{i}].{field} must be a string, found {}",
                            kind(other)
                        )))
                    }
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "questions[{i}] has no \"{field}\""
                        )))
                    }
                }
            }
            if let Some(extra) = map.keys().find(|k| *k != "question" && *k != "context") {
                return Err(ApiError::bad_request(format!(
                    "questions[{i}] has an unknown field \"{extra}\" (expected \"question\" and \"context\")"
                )));
            }
            Ok(item.to_string())
        })
        .collect()
}

/// The texts of a `POST /v1/classify` body `{"texts": ["...", ...]}`.
///
/// 400: not UTF-8, not JSON, not an object with a non-empty list of strings `texts`;
/// 413: more than `max_texts` texts; 422: a text longer than `max_chars` characters.
/// (The body size is checked while reading it, before this.)
pub fn parse_texts(body: &[u8], limits: &Limits) -> Result<Vec<String>, ApiError> {
    let items = body_list(
        body,
        limits,
        "texts",
        "strings",
        r#"{"texts": ["...", ...]}"#,
    )?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if s.chars().count() > limits.max_chars => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "texts[{i}] has {} characters (at most {})",
                    s.chars().count(),
                    limits.max_chars
                ),
            )),
            Value::String(s) => Ok(s.clone()),
            other => Err(ApiError::bad_request(format!(
                "texts[{i}] must be a string, found {}",
                kind(other)
            ))),
        })
        .collect()
}

/// The non-empty list `field` (of `items`, for messages) of a JSON object body `shape`, at
/// most `max_texts` long.
fn body_list(
    body: &[u8],
    limits: &Limits,
    field: &str,
    items: &str,
    shape: &str,
) -> Result<Vec<Value>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    let list = match &mut value {
        Value::Object(map) => map.remove(field).ok_or_else(|| {
            ApiError::bad_request(format!(r#"missing field "{field}" (expected {shape})"#))
        })?,
        other => {
            return Err(ApiError::bad_request(format!(
                "expected a JSON object {shape}, found {}",
                kind(other)
            )))
        }
    };
    let Value::Array(items) = list else {
        return Err(ApiError::bad_request(format!(
            r#""{field}" must be a list of {items}, found {}"#,
            kind(&list)
        )));
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(format!(
            r#""{field}" is empty: send at least one"#
        )));
    }
    if items.len() > limits.max_texts {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "too many {field}: {} (at most {} per request)",
                items.len(),
                limits.max_texts
            ),
        ));
    }
    Ok(items)
}

/// The JSON type of a value, for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<Vec<String>, ApiError> {
        let limits = Limits {
            max_texts: 2,
            max_chars: 5,
            max_body_bytes: 100,
        };
        parse_texts(body, &limits)
    }

    fn status(body: &[u8]) -> (u16, String) {
        let e = parse(body).unwrap_err();
        (e.status.as_u16(), e.message)
    }

    #[test]
    fn accepts_a_list_of_strings() {
        assert_eq!(
            parse(r#"{"texts": ["ab", "héllo"]}"#.as_bytes()).unwrap(),
            ["ab", "héllo"]
        );
    }

    #[test]
    fn says_what_is_wrong() {
        let cases: &[(&[u8], u16, &str)] = &[
            (b"\xff\xfe{}", 400, "not valid UTF-8"),
            (b"{\"texts\": [", 400, "not valid JSON"),
            (b"[\"a\"]", 400, "expected a JSON object"),
            (b"{\"text\": [\"a\"]}", 400, "missing field \"texts\""),
            (
                b"{\"texts\": \"a\"}",
                400,
                "\"texts\" must be a list of strings, found a string",
            ),
            (
                b"{\"texts\": [\"a\", 3]}",
                400,
                "texts[1] must be a string, found a number",
            ),
            (b"{\"texts\": []}", 400, "is empty"),
            (
                b"{\"texts\": [\"a\", \"b\", \"c\"]}",
                413,
                "too many texts: 3",
            ),
            (
                b"{\"texts\": [\"a\", \"abcdef\"]}",
                422,
                "texts[1] has 6 characters",
            ),
        ];
        for (body, code, needle) in cases {
            let (got, message) = status(body);
            assert_eq!(got, *code, "{message}");
            assert!(message.contains(needle), "{message} lacks {needle}");
        }
    }

    #[test]
    fn questions_are_objects_with_a_question_and_a_context() {
        let limits = Limits {
            max_texts: 2,
            max_chars: 5,
            max_body_bytes: 100,
        };
        let parse = |b: &str| parse_inputs(b.as_bytes(), &limits, BodyKind::Questions);
        let ok = parse(r#"{"questions": [{"question": "who", "context": "me"}]}"#).unwrap();
        let back: Value = serde_json::from_str(&ok[0]).unwrap();
        assert_eq!(back["question"], "who");
        assert_eq!(back["context"], "me");
        let cases: &[(&str, u16, &str)] = &[
            (r#"{"texts": ["a"]}"#, 400, "missing field \"questions\""),
            (
                r#"{"questions": ["a"]}"#,
                400,
                "questions[0] must be an object",
            ),
            (
                r#"{"questions": [{"question": "a"}]}"#,
                400,
                "has no \"context\"",
            ),
            (
                r#"{"questions": [{"question": "a", "context": 1}]}"#,
                400,
                "must be a string",
            ),
            (
                r#"{"questions": [{"question": "a", "context": "b", "x": 1}]}"#,
                400,
                "unknown field",
            ),
            (
                r#"{"questions": [{"question": " ", "context": "b"}]}"#,
                422,
                "question is empty",
            ),
            (
                r#"{"questions": [{"question": "a", "context": "abcdef"}]}"#,
                422,
                "context has 6 characters",
            ),
            (
                r#"{"questions": [{}, {}, {}]}"#,
                413,
                "too many questions: 3",
            ),
        ];
        for (body, code, needle) in cases {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status.as_u16(), *code, "{}", e.message);
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        }
    }
}
