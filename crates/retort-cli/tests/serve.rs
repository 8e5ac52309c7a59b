//! `retort serve` end to end: the real binary on a loopback port, good and bad requests,
//! a bounded load test from this (second) process, graceful shutdown on SIGTERM, and clients
//! that send half a request or nothing at all.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use retort::serve::client::{load_test, request, single_text_bodies, Connection, Response};
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    p.to_str().unwrap().to_string()
}

/// A running `retort serve`; killed when dropped (if still running).
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server on a free port with the tiny BERT fixture and waits until it listens.
    fn start(extra: &[&str]) -> Server {
        Self::start_model(&fixture("tiny-bert"), extra)
    }

    /// Starts the server on `model`.
    fn start_model(model: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_retort"))
            .args(["serve", "--model", model, "--port", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let addr = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("server exited: {seen}"))
                .unwrap();
            seen += &line;
            if let Some(url) = line.split("listening on http://").nth(1) {
                break url.trim().parse().unwrap();
            }
        };
        // Keep reading stderr so the server never blocks on a full pipe; keep it to check.
        let stderr = Arc::new(Mutex::new(seen));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                *sink.lock().unwrap() += &(line + "\n");
            }
        });
        Server {
            child,
            addr,
            stderr,
        }
    }

    fn post(&self, body: &[u8]) -> Response {
        request(self.addr, "POST", "/v1/classify", body).unwrap()
    }

    fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, b"").unwrap()
    }

    fn assert_healthy(&self) {
        let r = self.get("/health");
        assert_eq!((r.status, &r.json()["status"]), (200, &json!("ok")));
        assert!(!self.stderr.lock().unwrap().contains("panicked"));
    }

    fn terminate(&self) {
        // SAFETY: sends a signal to the child process this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn classifies_texts_and_reports_health() {
    let server = Server::start(&[]);
    let r = server.post(br#"{"texts": ["The music was surprisingly good!", "bad"]}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    for result in &results {
        let probs = result["probabilities"].as_object().unwrap();
        let labels: Vec<&str> = probs.keys().map(String::as_str).collect();
        assert_eq!(labels, ["negative", "neutral", "positive"]);
        assert!(probs.contains_key(result["label"].as_str().unwrap()));
        let sum: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }
    let health = server.get("/health").json();
    assert_eq!(
        health["model"]["labels"],
        json!(["negative", "neutral", "positive"])
    );
    assert_eq!(health["model"]["int8"], json!(false));
}

/// The tiny BERT fixture turned into a tagger: its config names a token-classification head
/// (the classifier's shape is the same) with three tags.
fn tiny_tagger(dir: &std::path::Path) -> String {
    let src = PathBuf::from(fixture("tiny-bert"));
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let config_path = dir.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["architectures"] = json!(["BertForTokenClassification"]);
    config["id2label"] = json!({"0": "O", "1": "B-PER", "2": "I-PER"});
    config["label2id"] = json!({"O": 0, "B-PER": 1, "I-PER": 2});
    std::fs::write(&config_path, config.to_string()).unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn a_tagger_answers_on_the_entities_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_model(&tiny_tagger(dir.path()), &[]);
    let text = "Élan and the actress kid";
    let body = json!({"texts": [text, "bad"]}).to_string();
    let r = request(server.addr, "POST", "/v1/entities", body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    for e in results[0]["entities"].as_array().unwrap() {
        assert_eq!(e["type"], "PER");
        let (start, end) = (
            e["start"].as_u64().unwrap() as usize,
            e["end"].as_u64().unwrap() as usize,
        );
        let cut: String = text.chars().skip(start).take(end - start).collect();
        assert_eq!(e["text"], cut.as_str());
    }
    // A tagger has no sentence route: the error names the one it has.
    let r = request(server.addr, "POST", "/v1/classify", body.as_bytes()).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("/v1/entities"));
    let health = server.get("/health").json();
    assert_eq!(health["model"]["task"], "token-classification");
    // The same limits as the sentence route.
    let r = request(server.addr, "POST", "/v1/entities", br#"{"texts": []}"#).unwrap();
    assert_eq!(r.status, 400);
    server.assert_healthy();
}

#[test]
fn a_reader_answers_questions_on_the_answer_route() {
    let server = Server::start_model(&fixture("tiny-bert-qa"), &[]);
    let context = "Élan — the actor was in paris at night";
    let body = json!({"questions": [
        {"question": "where was the actor ?", "context": context},
        {"question": "when ?", "context": "the film was good"}
    ]})
    .to_string();
    let r = request(server.addr, "POST", "/v1/answer", body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    // The (untrained) fixture's answer is still cut from the context by its offsets.
    let (start, end) = (
        results[0]["start"].as_u64().unwrap() as usize,
        results[0]["end"].as_u64().unwrap() as usize,
    );
    let cut: String = context.chars().skip(start).take(end - start).collect();
    assert_eq!(results[0]["answer"], cut.as_str());
    assert!(results[0]["score"].as_f64().unwrap() <= 1.0);
    let health = server.get("/health").json();
    assert_eq!(health["model"]["task"], "question-answering");
    assert_eq!(health["model"]["route"], "/v1/answer");
    // Texts are not questions; the error says what the route takes.
    let r = request(server.addr, "POST", "/v1/answer", br#"{"texts": ["a"]}"#).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("questions"));
    let r = request(
        server.addr,
        "POST",
        "/v1/answer",
        br#"{"questions": [{"question": "a", "context": ""}]}"#,
    )
    .unwrap();
    assert_eq!(r.status, 422);
}

#[test]
fn a_translator_translates_on_the_translate_route() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = ["A man rides a bike.", "Zwei Hunde spielen im Schnee."]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let model = dir.path().join("mt");
    common::tiny_translator(&model, &lines);
    let server = Server::start_model(model.to_str().unwrap(), &["--beam", "2"]);
    let body = json!({"texts": [lines[0], lines[1]]}).to_string();
    let r = request(server.addr, "POST", "/v1/translate", body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got: Vec<String> = r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["translation"].as_str().unwrap().to_string())
        .collect();
    // The same translations as the library's with the same beam.
    let translator = retort::translate::Translator::load(&model).unwrap();
    let opts = retort::model::generate::DecodeOptions {
        beam: 2,
        ..Default::default()
    };
    let want = translator.translate(&lines, &opts, 32, false).unwrap();
    assert_eq!(got, want.lines);
    let health = server.get("/health").json();
    assert_eq!(health["model"]["task"], "translation");
    assert_eq!(health["model"]["route"], "/v1/translate");
    // The limits and errors of the other routes.
    let r = request(server.addr, "POST", "/v1/translate", br#"{"texts": []}"#).unwrap();
    assert!(r.status >= 400, "{}", r.status);
    assert!(r.json()["error"].is_string());
    let r = request(server.addr, "POST", "/v1/classify", body.as_bytes()).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("/v1/translate"));
    server.assert_healthy();
}

#[test]
fn bad_requests_get_json_errors_and_the_server_stays_up() {
    let limits = [
        "--max-texts",
        "4",
        "--max-chars",
        "50",
        "--max-body-bytes",
        "4096",
    ];
    let server = Server::start(&limits);
    let long_text = format!(r#"{{"texts": ["{}"]}}"#, "a".repeat(51));
    let big_body = format!(r#"{{"texts": ["{}"]}}"#, "a".repeat(5000));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/v1/classify",
            b"{\"texts\": [".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "POST",
            "/v1/classify",
            b"\xff\xfe\x00".to_vec(),
            400,
            "not valid UTF-8",
        ),
        (
            "POST",
            "/v1/classify",
            b"{\"texts\": \"a\"}".to_vec(),
            400,
            "list of strings",
        ),
        (
            "POST",
            "/v1/classify",
            b"{\"texts\": [1, 2]}".to_vec(),
            400,
            "texts[0] must be a string",
        ),
        (
            "POST",
            "/v1/classify",
            b"{\"texts\": []}".to_vec(),
            400,
            "is empty",
        ),
        ("POST", "/v1/classify", b"{}".to_vec(), 400, "missing field"),
        (
            "POST",
            "/v1/classify",
            br#"{"texts": ["a","b","c","d","e"]}"#.to_vec(),
            413,
            "too many texts",
        ),
        (
            "POST",
            "/v1/classify",
            long_text.into_bytes(),
            422,
            "at most 50",
        ),
        (
            "POST",
            "/v1/classify",
            big_body.into_bytes(),
            413,
            "larger than 4096 bytes",
        ),
        ("GET", "/v1/classify", Vec::new(), 405, "method not allowed"),
        ("GET", "/nowhere", Vec::new(), 404, "no such route"),
    ];
    for (method, path, body, status, needle) in &cases {
        let r = request(server.addr, method, path, body).unwrap();
        let error = r.json()["error"].as_str().map(str::to_string);
        assert_eq!(r.status, *status, "{method} {path}: {error:?}");
        let error = error.unwrap_or_else(|| panic!("{method} {path}: no JSON error"));
        assert!(error.contains(needle), "{error:?} lacks {needle:?}");
        server.assert_healthy();
    }
    // Still classifying after all that.
    assert_eq!(server.post(br#"{"texts": ["still here"]}"#).status, 200);

    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    // 9 classify requests failed above (the 405 and 404 never reached the route), 1 succeeded.
    for line in [
        "retort_requests_total 10",
        "retort_request_errors_total 9",
        "retort_texts_total 1",
        "retort_request_duration_seconds_bucket{le=\"+Inf\"} 10",
        "retort_request_duration_seconds_count 10",
        "retort_batch_size_count 1",
        "# TYPE retort_batch_size histogram",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line:?} not in\n{metrics}"
        );
    }
}

#[test]
fn ten_thousand_requests_at_concurrency_16_without_errors() {
    let server = Server::start(&[]);
    let bodies = single_text_bodies(&[
        "a fine film",
        "bad",
        "the cat sat on the mat and did not move",
    ]);
    let report = load_test(server.addr, "/v1/classify", &bodies, 10_000, 16);
    eprintln!("{report:?}");
    assert_eq!(report.errors, 0, "{report:?}");
    server.assert_healthy();
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(metrics.contains("retort_requests_total 10000\n"));
    // Concurrent requests were batched: fewer forward passes than requests.
    let passes: Value = metrics
        .lines()
        .find_map(|l| l.strip_prefix("retort_batch_size_count "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(passes.as_u64().unwrap() < 10_000, "{passes}");
}

#[test]
fn a_waiting_request_does_not_block_others() {
    // The batcher holds the first request up to 1.5 s for company.
    let server = Server::start(&["--max-wait-ms", "1500", "--max-batch-size", "64"]);
    let addr = server.addr;
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        let r = request(addr, "POST", "/v1/classify", br#"{"texts": ["slow"]}"#).unwrap();
        (r.status, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    server.assert_healthy();
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    let (status, waited) = slow.join().unwrap();
    assert_eq!(status, 200);
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let mut server = Server::start(&["--max-wait-ms", "1000", "--max-batch-size", "64"]);
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || {
        request(addr, "POST", "/v1/classify", br#"{"texts": ["answer me"]}"#).unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    server.terminate();
    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 1);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(100)); // let the stderr reader catch up
    assert!(server
        .stderr
        .lock()
        .unwrap()
        .contains("retort serve: stopped"));
}

#[test]
fn a_taken_port_or_a_bad_model_is_a_clear_error() {
    let first = Server::start(&[]);
    let port = first.addr.port().to_string();
    let model = fixture("tiny-bert");
    for args in [
        vec!["serve", "--model", &model, "--port", &port],
        vec!["serve", "--model", "/nonexistent", "--port", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_retort"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.starts_with("error: ") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

/// Sends `bytes` on a fresh connection and reads until the server closes it (at most 10 s):
/// the status (None when nothing came back), the JSON body, and how long it took.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> (Option<u16>, Value, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply); // what came before a reset counts too
    let text = String::from_utf8_lossy(&reply);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body, start.elapsed())
}

/// Waits up to `limit` for the server to exit; its exit status, or None if it is still up.
fn wait_exit(server: &mut Server, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn protocol_errors_get_the_json_error_body() {
    let server = Server::start(&[]);
    let many_headers: String = (0..150).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    let cases = [
        ("GARBAGE\r\n\r\n".to_string(), 400),
        (
            "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_string(),
            400,
        ),
        (
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
        ),
    ];
    for (request, status) in &cases {
        let (got, body, _) = exchange(server.addr, request.as_bytes());
        let shown = &request[..request.len().min(40)];
        assert_eq!(got, Some(*status), "{shown:?}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{shown:?}: no JSON error in {body}");
        server.assert_healthy();
    }
}

#[test]
fn a_half_sent_request_gets_408_after_the_read_timeout() {
    let server = Server::start(&["--read-timeout", "0.5"]);
    for partial in [
        // The head cut off, then the body cut off.
        "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Le",
        "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"texts\"",
    ] {
        let (status, body, took) = exchange(server.addr, partial.as_bytes());
        assert_eq!(status, Some(408), "{partial:?}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("not received within 0.5 s"), "{body}");
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(5),
            "{partial:?}: answered after {took:?}"
        );
    }
    server.assert_healthy();
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "0.5"]);
    // A connection that never sends anything...
    let (status, _, took) = exchange(server.addr, b"");
    assert_eq!(status, None);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // ...and one kept alive after its request.
    let (status, body, took) = exchange(server.addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status, &body["status"]), (Some(200), &json!("ok")));
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn a_half_sent_request_cannot_hold_a_shutdown_open() {
    let mut server = Server::start(&["--shutdown-grace", "1"]);
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled
        .write_all(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();
    let _idle = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.terminate();
    let status =
        wait_exit(&mut server, Duration::from_secs(8)).expect("still running 8 s after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_request_still_waiting_when_the_grace_period_ends_gets_503() {
    // The batcher holds the request 5 s for company; the grace period is half a second.
    let mut server = Server::start(&[
        "--max-wait-ms",
        "5000",
        "--max-batch-size",
        "64",
        "--shutdown-grace",
        "0.5",
    ]);
    let addr = server.addr;
    let waiting = std::thread::spawn(move || {
        request(addr, "POST", "/v1/classify", br#"{"texts": ["wait"]}"#).unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    server.terminate();
    let r = waiting.join().unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("shutting down"), "{error}");
    let status = wait_exit(&mut server, Duration::from_secs(5)).expect("still running");
    assert!(status.success(), "{status:?}");
}

#[test]
fn every_request_in_flight_at_sigterm_is_answered() {
    // Requests on kept-alive connections, each held ~0.5 s by the batcher, SIGTERM meanwhile.
    let mut server = Server::start(&["--max-wait-ms", "500", "--max-batch-size", "64"]);
    let addr = server.addr;
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let mut conn = Connection::open(addr).unwrap();
            let warm = conn.request("GET", "/health", b"").unwrap();
            assert_eq!(warm.status, 200);
            std::thread::spawn(move || {
                let body = json!({ "texts": [format!("text {i}")] }).to_string();
                conn.request("POST", "/v1/classify", body.as_bytes())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    server.terminate();
    for client in clients {
        let r = client.join().unwrap().expect("an empty reply");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let status = wait_exit(&mut server, Duration::from_secs(5)).expect("still running");
    assert!(status.success(), "{status:?}");
}
