//! `retort train` and `retort distill` as a user meets them when things go wrong: a run
//! killed at any point resumes from a complete checkpoint (even one caught between the two
//! renames of a save) and ends with the metrics log of an uninterrupted run; its stderr in a
//! file still shows every dev score; a new run never deletes a checkpoint it finds; a bad
//! config value is refused before anything is loaded or written, naming the file or `--set`
//! it came from.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fails, fixture, retort, s};
use serde_json::Value;

const WORDS: [&str; 12] = [
    "good", "music", "the", "ending", "plot", "flat", "story", "quiet", "film", "boring", "was",
    "not",
];

/// A labelled TSV of `n` rows in tiny-bert's vocabulary and labels.
fn write_data(path: &Path, n: usize) {
    let labels = ["negative", "neutral", "positive"];
    let mut text = String::from("sentence\tlabel\n");
    for i in 0..n {
        let words: Vec<&str> = (0..(3 + i % 7))
            .map(|j| WORDS[(i * 5 + j * 3) % WORDS.len()])
            .collect();
        text.push_str(&format!("{}\t{}\n", words.join(" "), labels[i % 3]));
    }
    std::fs::write(path, text).unwrap();
}

/// A fine-tuning config for tiny-bert in `dir`: 12 steps per epoch, dev every 4 steps, a
/// train record every 2, writing into `dir/<out>`.
fn train_config(dir: &Path, out: &str, epochs: usize) -> PathBuf {
    write_data(&dir.join("train.tsv"), 96);
    write_data(&dir.join("dev.tsv"), 24);
    let config = dir.join(format!("{out}.toml"));
    let toml = format!(
        "[model]\ninit = {:?}\nmax_len = 32\n\n[data]\ntrain = {:?}\ndev = {:?}\n\n\
         [train]\nepochs = {epochs}\nbatch_size = 8\nlr = 1e-3\neval_every = 4\nlog_every = 2\n\n\
         [output]\ndir = {:?}\n",
        fixture("tiny-bert"),
        dir.join("train.tsv"),
        dir.join("dev.tsv"),
        dir.join(out),
    );
    std::fs::write(&config, toml).unwrap();
    config
}

/// The records of a metrics log, without the fields that measure time.
fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            let record = v.as_object_mut().unwrap();
            record.remove("elapsed_s");
            record.remove("samples_per_s");
            v
        })
        .collect()
}

/// Two logs hold the same records: same events and steps, numbers equal to 1e-5 (a resumed
/// run computes what the uninterrupted one did, up to summation order).
fn assert_same_records(a: &[Value], b: &[Value]) {
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0)
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }
    let steps = |r: &[Value]| -> Vec<(String, u64)> {
        r.iter()
            .map(|v| (v["event"].to_string(), v["step"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(steps(a), steps(b));
    for (x, y) in a.iter().zip(b) {
        assert!(same(x, y), "{x}\n  vs\n{y}");
    }
}

/// The last step logged so far (0 when nothing is).
fn last_logged_step(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["step"].as_u64())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_run_killed_mid_save_resumes_with_the_log_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let whole = train_config(dir, "whole", 4);
    let run = retort(&["train", "--config", s(&whole)], "");
    assert!(run.ok, "{}", run.stderr);
    let expected = records(&dir.join("whole/metrics.jsonl"));
    assert_eq!(expected.last().unwrap()["step"], 48);
    // stderr is a pipe here, as in a run logged to a file: no bar, but every dev score.
    for step in [4, 24, 48] {
        let note = format!("step {step}/48: dev accuracy ");
        assert!(
            run.stderr.contains(&note),
            "{note:?} missing in\n{}",
            run.stderr
        );
    }

    // The same run, killed (SIGKILL) once it has logged past its first checkpoint (step 4).
    let config = train_config(dir, "killed", 4);
    let out = dir.join("killed");
    let log = out.join("metrics.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_retort"))
        .args(["train", "--config", s(&config)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_logged_step(&log) < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = last_logged_step(&log);
    assert!(
        (6..48).contains(&killed_at),
        "the kill missed the run: step {killed_at}"
    );
    // What a kill can leave besides: a torn last line, and the checkpoint caught between the
    // two renames of a save (`last` renamed to `last.old`, the new copy not complete yet).
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"event\":\"train\",\"st");
    std::fs::write(&log, text).unwrap();
    if out.join("last").exists() {
        // (Else the kill itself landed between the renames.)
        std::fs::rename(out.join("last"), out.join("last.old")).unwrap();
    }
    if !out.join("last.partial").exists() {
        std::fs::create_dir_all(out.join("last.partial")).unwrap();
        std::fs::write(out.join("last.partial/config.json"), "{").unwrap();
    }

    // A new run into the same directory refuses, deleting nothing.
    // (The copy is last.old, unless the kill itself caught a newer complete last.partial.)
    let err = fails(&["train", "--config", s(&config)], "");
    assert!(err.contains("/last.") && err.contains("--resume"), "{err}");
    assert!(
        out.join("last.old/state.json").exists() || out.join("last.partial/state.json").exists()
    );

    let resumed = retort(&["train", "--config", s(&config), "--resume"], "");
    eprintln!(
        "killed after step {killed_at}; resumed:\n{}",
        resumed.stderr
    );
    assert!(resumed.ok, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("using the complete copy in"),
        "{}",
        resumed.stderr
    );
    assert!(out.join("last/state.json").exists());
    assert!(!out.join("last.old").exists() && !out.join("last.partial").exists());
    assert_same_records(&records(&log), &expected);
}

#[test]
fn bad_values_are_refused_before_anything_is_loaded_or_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let train = train_config(dir, "teacher", 1);
    let distill = dir.join("distill.toml");
    std::fs::write(
        &distill,
        format!(
            "[teacher]\ndir = {:?}\nmax_len = 32\n\n[data]\ntrain = {:?}\ndev = {:?}\n\n\
             [distill]\ncache_dir = {:?}\n\n[output]\ndir = {:?}\n",
            fixture("tiny-bert"),
            dir.join("train.tsv"),
            dir.join("dev.tsv"),
            dir.join("cache"),
            dir.join("student"),
        ),
    )
    .unwrap();
    let cases: &[(&Path, &str, &str)] = &[
        (
            &distill,
            "distill.temperature=0",
            "must be a positive number, got 0",
        ),
        (
            &distill,
            "distill.temperature=-1",
            "must be a positive number, got -1",
        ),
        (
            &distill,
            "distill.temperature=nan",
            "must be a positive number, got NaN",
        ),
        (
            &distill,
            "distill.weights.soft_kl=-1",
            "must be 0 or a positive number",
        ),
        (&distill, "augment.p_mask=1.5", "must be a probability"),
        (&distill, "train.batch_size=0", "must be at least 1"),
        (&train, "train.batch_size=0", "must be at least 1"),
        (&train, "train.lr=-1e-5", "must be a positive number"),
        (&train, "train.warmup_ratio=2", "must be in [0, 1)"),
        (
            &train,
            "train.grad_clip=nan",
            "must be 0 or a positive number, got NaN",
        ),
    ];
    for (config, set, needle) in cases {
        let command = if *config == distill {
            "distill"
        } else {
            "train"
        };
        let err = fails(&[command, "--config", s(config), "--set", set], "");
        let key = set.split('=').next().unwrap();
        assert!(
            err.contains(&format!("--set {set}: {key} {needle}")),
            "{set}: {err}"
        );
        for out in ["teacher", "student", "cache"] {
            assert!(!dir.join(out).exists(), "{set}: {out} was created");
        }
    }
    // A value from the file is attributed to the file.
    let text = std::fs::read_to_string(&train).unwrap();
    std::fs::write(&train, text.replace("lr = 1e-3", "lr = 0.0")).unwrap();
    let err = fails(&["train", "--config", s(&train)], "");
    assert!(
        err.contains(&format!(
            "{}: train.lr must be a positive number",
            train.display()
        )),
        "{err}"
    );
}

#[test]
fn a_type_error_from_set_names_the_set() {
    let tmp = tempfile::tempdir().unwrap();
    let config = train_config(tmp.path(), "teacher", 1);
    let err = fails(
        &[
            "train",
            "--config",
            s(&config),
            "--set",
            "train.epochs=2",
            "--set",
            "train.batch_size=many",
        ],
        "",
    );
    assert!(err.contains("--set train.batch_size=many: "), "{err}");
    assert!(!err.contains(s(&config)), "{err}");
}
