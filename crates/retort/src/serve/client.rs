//! A minimal blocking HTTP/1.1 client (one keep-alive connection) and a load test built
//! on it: enough to test and measure `retort serve` without another dependency.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One keep-alive connection to a server.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Opens a connection on which connecting, and each write and read of a request, fail
    /// after `timeout` (a server that hangs cannot hold the client).
    pub fn open_with_timeout(addr: SocketAddr, timeout: Duration) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `method path` with `body` (as JSON when non-empty) and reads the answer.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: retort\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        self.read_response()
    }

    fn read_response(&mut self) -> std::io::Result<Response> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no HTTP status line"))?;
        let mut length = None;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok();
                }
            }
        }
        let length: usize = length.ok_or_else(|| bad("no Content-Length"))?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(Response { status, body })
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    Connection::open(addr)?.request(method, path, body)
}

/// What a load test measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub requests: usize,
    pub concurrency: usize,
    /// Requests that failed to connect, or were answered with a status other than 200.
    pub errors: usize,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One request body per text, `{"texts": [text]}`: what the load test and the soak send.
pub fn single_text_bodies(texts: &[&str]) -> Vec<Vec<u8>> {
    texts
        .iter()
        .map(|t| serde_json::json!({ "texts": [t] }).to_string().into_bytes())
        .collect()
}

/// Sends `requests` `POST path` requests with the given bodies (cycled) from `concurrency`
/// threads, each over its own keep-alive connection, and measures latency and throughput.
pub fn load_test(
    addr: SocketAddr,
    path: &str,
    bodies: &[Vec<u8>],
    requests: usize,
    concurrency: usize,
) -> LoadReport {
    let concurrency = concurrency.max(1);
    let start = Instant::now();
    let results: Vec<(usize, Vec<f64>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..concurrency)
            .map(|w| {
                // Worker w sends requests w, w + concurrency, ...
                let mine = (w..requests).step_by(concurrency);
                s.spawn(move || worker(addr, path, bodies, mine))
            })
            .collect();
        workers
            .into_iter()
            .map(|h| h.join().unwrap_or((0, Vec::new())))
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = results.iter().flat_map(|(_, l)| l.clone()).collect();
    latencies.sort_by(f64::total_cmp);
    let ok: usize = results.iter().map(|(ok, _)| ok).sum();
    let quantile = |q: f64| quantile(&latencies, q).unwrap_or(f64::NAN);
    LoadReport {
        requests,
        concurrency,
        errors: requests - ok,
        seconds,
        requests_per_second: ok as f64 / seconds.max(1e-9),
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        max_ms: quantile(1.0),
    }
}

/// The nearest-rank `q` quantile of `sorted` (ascending): the smallest value with at least
/// `q` of the values at or below it; `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n => Some(sorted[((n as f64 * q).ceil() as usize).clamp(1, n) - 1]),
    }
}

/// Sends the requests numbered `which`; returns how many got 200, and every latency (ms).
fn worker(
    addr: SocketAddr,
    path: &str,
    bodies: &[Vec<u8>],
    which: impl Iterator<Item = usize>,
) -> (usize, Vec<f64>) {
    let (mut ok, mut latencies) = (0, Vec::new());
    let mut conn = None;
    for i in which {
        let t = Instant::now();
        // Reconnect after a failure, so one broken connection costs one request, not all.
        let result = match conn.take().map_or_else(|| Connection::open(addr), Ok) {
            Ok(mut c) => c
                .request("POST", path, &bodies[i % bodies.len()])
                .map(|r| (c, r)),
            Err(e) => Err(e),
        };
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        if let Ok((c, r)) = result {
            ok += usize::from(r.status == 200);
            conn = Some(c);
        }
    }
    (ok, latencies)
}
