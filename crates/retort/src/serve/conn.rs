//! One HTTP/1.1 connection, served by hyper with the deadlines and answers axum's own server
//! does not give:
//!
//! - **read timeout**: a request's head must arrive within `read` of its first byte (its
//!   body within `read` of the handler starting to read it, see [`super::request::read_body`]);
//!   else the client gets `408` and the connection is closed. A half-sent request cannot hold
//!   a connection, or a shutdown, open;
//! - **idle timeout**: a connection with no request for `idle` is closed;
//! - **shutdown**: once the [`Shutdown`] signal is given, an idle connection is closed at
//!   once (unless a request's bytes are already waiting: that request is answered), a request
//!   in progress is answered with `Connection: close`, and a half-sent one gets its read
//!   timeout;
//! - **protocol errors**: hyper answers a request it cannot parse (bad request line, bad
//!   `Content-Length`, too many headers, too long a URI) itself, with an empty body; that
//!   answer is replaced here by the same status with the API's JSON error body.
//!
//! How: hyper reads and writes through [`GuardedIo`], which knows from [`Shared`] where the
//! connection is in its request / answer cycle ([`Phase`]). It ends input (a quiet close)
//! when an idle connection is due to close, fails the read of a late head, and replaces any
//! write made while a head is being read: before the service has seen a request, only
//! hyper's own error answer can be written. A second future on the connection's task,
//! [`wake_at_deadlines`], wakes it at each deadline: after an answer, hyper polls the socket
//! again only when it becomes readable, and so would never see an idle deadline pass.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Request headers hyper accepts (more: 431).
pub const MAX_HEADERS: usize = 100;

/// How often a connection whose deadline has passed looks again, should its reader not have
/// acted yet (an answer still being written).
const RECHECK: Duration = Duration::from_millis(10);

/// How long the server waits for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A request's head, and then its body, must arrive within this (else 408).
    pub read: Duration,
    /// A connection with no request for this long is closed.
    pub idle: Duration,
    /// After SIGINT / SIGTERM, requests in progress have this long to be answered; then the
    /// ones still waiting for the model get 503 and every connection is closed.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A signal every connection (or handler) can wait for: the server is stopping.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal not given yet, and the sender that gives it (`send(true)`).
    pub fn channel() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Completes once the signal is given (or its sender is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|given| *given).await;
    }
}

/// Where a connection is in its request / answer cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request (since then).
    Idle(Instant),
    /// The first bytes of a request's head arrived (then); the service has not seen it.
    Reading(Instant),
    /// The service is working on a request.
    Busy,
    /// The service has answered; the answer is being written. (Our answers have whole
    /// bodies, which hyper writes out in one flush.)
    Answering,
}

/// What the I/O wrapper, the service and the deadline watcher of one connection share.
struct Shared {
    phase: Mutex<Phase>,
    /// Told on every change of phase (the watcher then looks at the new deadline).
    changed: Notify,
    /// The server is stopping: an idle connection closes now.
    stopping: AtomicBool,
}

impl Shared {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
            stopping: AtomicBool::new(false),
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
        self.changed.notify_one();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The instant the current phase is out of time, if it has a limit.
    fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        match self.phase() {
            // Stopping: an idle connection closes now.
            Phase::Idle(_) if self.stopping() => Some(Instant::now()),
            Phase::Idle(since) => Some(since + timeouts.idle),
            Phase::Reading(since) => Some(since + timeouts.read),
            Phase::Busy | Phase::Answering => None,
        }
    }
}

/// Serves one accepted connection with `router` until it closes; `shutdown` starts the
/// graceful close described in the module docs.
pub async fn serve_connection(
    stream: TcpStream,
    router: Router,
    timeouts: Timeouts,
    shutdown: Shutdown,
) {
    // Answers are small JSON bodies: send them now rather than wait to fill a packet.
    let _ = stream.set_nodelay(true);
    let shared = Arc::new(Shared::new());
    let io = TokioIo::new(GuardedIo::new(stream, shared.clone(), timeouts));
    let service = {
        let shared = shared.clone();
        let inner = TowerToHyperService::new(router);
        service_fn(move |request: axum::http::Request<Incoming>| {
            let shared = shared.clone();
            shared.set(Phase::Busy);
            let answer = hyper::service::Service::call(&inner, request);
            async move {
                let mut response = answer.await?;
                if shared.stopping() {
                    // This answer is the connection's last.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                shared.set(Phase::Answering);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    // The read and idle deadlines are GuardedIo's: hyper's header timer starts whenever it
    // waits for a request, so it would close idle keep-alive connections at the read timeout.
    builder.header_read_timeout(None).max_headers(MAX_HEADERS);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let watcher = wake_at_deadlines(shared.clone(), timeouts);
    tokio::pin!(watcher);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = shutdown.wait() => {}
        _ = watcher.as_mut() => {}
    }
    shared.stopping.store(true, Ordering::SeqCst);
    tokio::select! {
        _ = connection => {}
        _ = watcher => {}
    }
}

/// Wakes the connection's task at the deadline of its current phase (looked at again on
/// every change), so that [`GuardedIo`] checks it even while hyper is not reading. Never
/// completes.
async fn wake_at_deadlines(shared: Arc<Shared>, timeouts: Timeouts) {
    loop {
        // Created before the deadline is read: a change in between is not missed.
        let changed = shared.changed.notified();
        match shared.deadline(&timeouts) {
            None => changed.await,
            Some(deadline) => {
                let at = deadline.max(Instant::now() + RECHECK);
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = changed => {}
                }
            }
        }
    }
}

/// The socket as hyper sees it: enforces the read and idle deadlines, closes an idle
/// connection on shutdown, and gives hyper's own error answers a JSON body.
struct GuardedIo {
    inner: TcpStream,
    shared: Arc<Shared>,
    timeouts: Timeouts,
    /// Our answer in place of hyper's (bytes not yet sent); `replacing` once it is chosen.
    replacement: Vec<u8>,
    replacing: bool,
    /// Bytes of an answer written since the last flush.
    written: bool,
}

impl GuardedIo {
    fn new(inner: TcpStream, shared: Arc<Shared>, timeouts: Timeouts) -> Self {
        Self {
            inner,
            shared,
            timeouts,
            replacement: Vec::new(),
            replacing: false,
            written: false,
        }
    }

    /// Sends what is left of the replacement answer.
    fn send_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.replacement.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.replacement))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.replacement.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// The read of a head that did not arrive in time: a 408 (best effort: a client that does
    /// not send may not read either), then an error that makes hyper drop the connection.
    fn read_timed_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let answer = json_answer(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request was not received within {} s",
                self.timeouts.read.as_secs_f64()
            ),
        );
        let _ = Pin::new(&mut self.inner).poll_write(cx, &answer);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received in time",
        )))
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if let Poll::Ready(result) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            if buf.filled().len() > before {
                if let Phase::Idle(_) = this.shared.phase() {
                    this.shared.set(Phase::Reading(Instant::now()));
                }
            }
            return Poll::Ready(result);
        }
        // Nothing to read now (the socket will wake the task when there is): is a deadline due?
        let now = Instant::now();
        match this.shared.phase() {
            // End of input while idle: hyper closes the connection quietly.
            Phase::Idle(since) if this.shared.stopping() || now >= since + this.timeouts.idle => {
                Poll::Ready(Ok(()))
            }
            Phase::Reading(since) if now >= since + this.timeouts.read => this.read_timed_out(cx),
            _ => Poll::Pending,
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.replacing && !matches!(this.shared.phase(), Phase::Reading(_)) {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
            this.written = true;
            return Poll::Ready(Ok(n));
        }
        // hyper answers a request the service never saw: a parse error. Same status, our body.
        if !this.replacing {
            this.replacing = true;
            this.replacement = replacement_for(buf);
        }
        // hyper's bytes are dropped; ours go out now, or when hyper flushes.
        if let Poll::Ready(Err(e)) = this.send_replacement(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.send_replacement(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // An answer is out: the connection waits for the next request from now on.
        if std::mem::take(&mut this.written) && this.shared.phase() == Phase::Answering {
            this.shared.set(Phase::Idle(Instant::now()));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.send_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The answer that replaces hyper's own to a request it could not parse (`head` is the
/// start of hyper's answer, `HTTP/1.1 400 Bad Request\r\n...`).
fn replacement_for(head: &[u8]) -> Vec<u8> {
    let status = std::str::from_utf8(head)
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    let message = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            format!("the request headers are too large or too many (at most {MAX_HEADERS} headers)")
        }
        StatusCode::URI_TOO_LONG => "the request target (URI) is too long".to_string(),
        _ => "the request is not valid HTTP/1.1 (request line, a header, or Content-Length)"
            .to_string(),
    };
    json_answer(status, &message)
}

/// A whole HTTP/1.1 response with the API's JSON error body, closing the connection.
fn json_answer(status: StatusCode, message: &str) -> Vec<u8> {
    let body = json!({ "error": message }).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_answers_get_a_json_body_with_their_status() {
        let answer = replacement_for(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n");
        let text = String::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(body["error"].as_str().unwrap().contains("too many"));
        assert!(String::from_utf8(replacement_for(b"garbage"))
            .unwrap()
            .starts_with("HTTP/1.1 400 "));
    }
}
