//! Helpers shared by the binary's integration tests: run `retort`, expect failures, copy fixtures.
#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn retort(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading its input (a bad argument): ignore a closed pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "retort panicked: {}",
        run.stderr
    );
    run
}

/// Runs a command that must fail, and returns its error message.
pub fn fails(args: &[&str], stdin: &str) -> String {
    let run = retort(args, stdin);
    assert!(!run.ok, "expected failure, got success: {}", run.stdout);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    run.stderr
}

/// A copy of a fixture's files into a temporary directory, to break on purpose.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

/// One JSON value per line of `stdout`.
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A labelled data file for tiny-bert (labels negative / neutral / positive).
pub fn data(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("dev.tsv");
    std::fs::write(&path, text).unwrap();
    path
}

pub const DEV: &str = "sentence\tlabel\nthe music was good\tpositive\nterrible film\tnegative\nit is a film\tneutral\nwonderful\t2\n";

/// A two-line training log in the format `retort train` writes.
pub fn log(dir: &Path) -> PathBuf {
    let run = dir.join("run-a");
    std::fs::create_dir_all(&run).unwrap();
    let path = run.join("metrics.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"event":"train","step":10,"loss":0.9,"terms":{"hard_ce":0.7,"soft_kl":1.1},"lr":1e-5,"samples_per_s":50,"schedule":{"temperature":4.0,"weight.hard_ce":0.0}}"#,
            "\n",
            r#"{"event":"train","step":20,"loss":0.5,"terms":{"hard_ce":0.4,"soft_kl":0.6},"lr":2e-5,"samples_per_s":52,"schedule":{"temperature":2.5,"weight.hard_ce":0.5}}"#,
            "\n",
            r#"{"event":"eval","step":20,"dev_accuracy":0.75,"dev_macro_f1":0.7}"#,
            "\n"
        ),
    )
    .unwrap();
    path
}

/// `retort compare` with tiny-bert as teacher and student on [`DEV`] and a [`log`], writing
/// into `dir/report`; returns the run and the report directory.
pub fn compare_tiny(dir: &Path, extra: &[&str]) -> (Run, PathBuf) {
    let dev = data(dir, DEV);
    let out = dir.join("report");
    let tiny = fixture("tiny-bert");
    let log = log(dir);
    let mut args = vec![
        "compare",
        "--teacher",
        s(&tiny),
        "--student",
        s(&tiny),
        "--data",
        s(&dev),
        "--logs",
        s(&log),
        "--out",
        s(&out),
    ];
    args.extend_from_slice(extra);
    (retort(&args, ""), out)
}

/// A tiny random translator with a vocabulary learnt from a few lines, saved as `retort
/// translate` reads it.
pub fn tiny_translator(dir: &std::path::Path, lines: &[String]) {
    use retort::model::seq2seq::{Seq2Seq, Seq2SeqConfig};
    let tokenizer = retort::text::subword::SubwordTokenizer::train(lines, 300, 1).unwrap();
    let config = Seq2SeqConfig {
        dropout: 0.0,
        ..Seq2SeqConfig::shape(tokenizer.vocab_size(), 16, 1, 2, 24)
    };
    Seq2Seq::fresh(config, 3).unwrap().save(dir).unwrap();
    tokenizer.save(dir).unwrap();
}
