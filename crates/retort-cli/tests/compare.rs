//! `retort compare` and `retort bench` on the tiny fixtures: the files and numbers they
//! promise, and clear errors (never a panic) for input they cannot use.

mod common;

use std::path::Path;

use common::{compare_tiny, copy_fixture, data, fails, fixture, retort, s, DEV};

#[test]
fn compare_writes_three_files_with_consistent_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (run, out) = compare_tiny(dir.path(), &["--latency-samples", "3", "--threads", "1"]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("## Quality") && run.stdout.contains("report.html"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        (v["examples"].as_u64(), v["threads"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(v["latency_samples"], 3);
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(
        (models[0]["role"].as_str(), models[1]["role"].as_str()),
        (Some("teacher"), Some("student"))
    );
    let num = |m: &serde_json::Value, k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k}: {m}"));
    for m in models {
        // The same model as teacher and student: it agrees with itself and keeps all of it.
        assert_eq!(num(m, "agreement"), 1.0);
        assert!((num(m, "retention_pct") - 100.0).abs() < 1e-9);
        assert_eq!(num(m, "size_ratio"), 1.0);
        assert_eq!(
            m["scores"]["values"]["accuracy"],
            models[0]["scores"]["values"]["accuracy"]
        );
        assert_eq!(num(m, "score"), num(&models[0], "score"));
        assert_eq!(m["parameters"], 39075);
        assert!(
            num(m, "latency_ms_p50") > 0.0 && num(m, "latency_ms_p95") >= num(m, "latency_ms_p50")
        );
        assert!(num(m, "throughput") > 0.0);
    }
    // Same score: the one measured faster is the front, unless both tie.
    let front: Vec<bool> = models
        .iter()
        .map(|m| m["pareto"].as_bool().unwrap())
        .collect();
    assert!(front.contains(&true), "{front:?}");
    assert_eq!(num(&models[0], "latency_speedup"), 1.0);
    assert_eq!(num(&models[0], "throughput_speedup"), 1.0);
    assert_eq!(v["logs"][0]["name"], "run-a");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| tiny-bert | teacher |") && md.contains("hard_ce, soft_kl"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for id in [
        "chart-score-latency",
        "chart-size",
        "chart-loss-0",
        "chart-schedule-0",
        "chart-dev-score",
    ] {
        assert!(html.contains(&format!("<svg id=\"{id}\"")), "{id} missing");
    }
    // Self-contained: nothing fetched, no script (the SVG namespace is a name, not a fetch);
    // and no number failed to compute.
    let page = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in ["<script", "http://", "https://", "NaN", "inf"] {
        assert!(!page.contains(bad), "{bad} in report.html");
    }
}

#[test]
fn compare_refuses_what_it_cannot_compare() {
    let dir = tempfile::tempdir().unwrap();
    let dev = data(dir.path(), DEV);
    let out = dir.path().join("out");
    let tiny = fixture("tiny-bert");
    let compare = |teacher: &Path, student: &Path, data: &Path, extra: &[&str]| {
        let mut args = vec![
            "compare",
            "--teacher",
            s(teacher),
            "--student",
            s(student),
            "--data",
            s(data),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        fails(&args, "")
    };

    let missing = dir.path().join("nope");
    let err = compare(&missing, &tiny, &dev, &[]);
    assert!(
        err.contains("cannot load the teacher") && err.contains("nope"),
        "{err}"
    );

    let err = compare(&tiny, &fixture("tiny-distilbert"), &dev, &[]);
    assert!(
        err.contains("has labels [\"NEG\", \"POS\"]") && err.contains("same task"),
        "{err}"
    );

    let unknown = data(dir.path(), "sentence\tlabel\ngood\thappy\n");
    let err = compare(&tiny, &tiny, &unknown, &[]);
    assert!(
        err.contains("dev.tsv:2") && err.contains("\"happy\" is not one of the model's labels"),
        "{err}"
    );

    let empty = data(dir.path(), "sentence\tlabel\n");
    let err = compare(&tiny, &tiny, &empty, &[]);
    assert!(err.contains("no examples"), "{err}");

    let dev = data(dir.path(), DEV);
    let err = compare(
        &tiny,
        &tiny,
        &dev,
        &["--logs", s(&dir.path().join("missing.jsonl"))],
    );
    assert!(
        err.contains("missing.jsonl") && err.contains("training log"),
        "{err}"
    );
    let bad_log = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad_log,
        "{\"event\":\"train\",\"step\":1,\"loss\":1}\n{oops\n",
    )
    .unwrap();
    let err = compare(&tiny, &tiny, &dev, &["--logs", s(&bad_log)]);
    assert!(err.contains("bad.jsonl:2: not a log record"), "{err}");

    // Nothing was written for any of the refused runs.
    assert!(!out.exists());
}

#[test]
fn a_student_with_its_own_tokenizer_is_compared_on_the_same_texts() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = fixture("tiny-bert");
    // A student whose tokenizer keeps 300 of the teacher's tokens, as student.keep_tokens makes.
    let small = copy_fixture("tiny-bert");
    std::fs::remove_file(small.path().join("tokenizer.json")).unwrap();
    let vocab = std::fs::read_to_string(small.path().join("vocab.txt")).unwrap();
    let fewer: Vec<&str> = vocab.lines().take(300).collect();
    std::fs::write(small.path().join("vocab.txt"), fewer.join("\n") + "\n").unwrap();
    let dev = data(dir.path(), DEV);
    let out = dir.path().join("report");
    let args = [
        "compare",
        "--teacher",
        s(&tiny),
        "--student",
        s(small.path()),
    ];
    let run = retort(
        &[&args[..], &["--data", s(&dev), "--out", s(&out)]].concat(),
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["models"].as_array().unwrap().len(), 2);
}

#[test]
fn bench_prints_latency_and_throughput_with_spread() {
    let tiny = fixture("tiny-bert");
    let run = retort(
        &[
            "bench",
            "--model",
            s(&tiny),
            "--reps",
            "4",
            "--warmup",
            "1",
            "--seq-len",
            "16",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "--json",
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (v["threads"].as_u64(), v["reps"].as_u64()),
        (Some(1), Some(4))
    );
    let ms = &v["latency"]["ms"];
    assert_eq!(
        (ms["samples"].as_u64(), v["latency"]["seq_len"].as_u64()),
        (Some(4), Some(16))
    );
    assert!(
        ms["min"].as_f64() <= ms["median"].as_f64() && ms["median"].as_f64() <= ms["max"].as_f64()
    );
    let t = &v["throughput"];
    assert_eq!(t["batch_size"], 4);
    let per_batch = t["seconds_per_batch"]["median"].as_f64().unwrap();
    assert!((t["sequences_per_second"].as_f64().unwrap() - 4.0 / per_batch).abs() < 1e-6);

    let text = retort(
        &[
            "bench",
            "--model",
            s(&tiny),
            "--reps",
            "2",
            "--only",
            "latency",
            "--threads",
            "2",
        ],
        "",
    );
    assert!(text.ok, "{}", text.stderr);
    assert!(
        text.stdout.contains("threads     2")
            && text.stdout.contains("latency     batch 1 × 64 tokens")
    );
    assert!(!text.stdout.contains("throughput"));

    let err = fails(&["bench", "--model", "/nonexistent/model"], "");
    assert!(
        err.contains("cannot load the model in /nonexistent/model"),
        "{err}"
    );
    let err = fails(&["bench", "--model", s(&tiny), "--seq-len", "65"], "");
    assert!(err.contains("exceeds the model's 64 positions"), "{err}");
    let err = fails(&["bench", "--model", s(&tiny), "--reps", "0"], "");
    assert!(err.contains("at least 1"), "{err}");
    let err = fails(&["bench", "--model", s(&tiny), "--threads", "0"], "");
    assert!(err.contains("--threads must be at least 1"), "{err}");
}

/// Translators: BLEU of each model's translations, agreement as the BLEU of a student's
/// translations against the teacher's, and the report's three files.
#[test]
fn compare_of_translators_scores_bleu_and_agreement_with_the_teachers_translations() {
    use retort::model::generate::DecodeOptions;
    use retort::task::bleu::corpus_bleu;
    let dir = tempfile::tempdir().unwrap();
    let (teacher, student) = (dir.path().join("teacher"), dir.path().join("student"));
    let en = ["A man rides a bike.", "Two dogs play in the snow."];
    let de = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."];
    let lines: Vec<String> = en.iter().chain(&de).map(|t| t.to_string()).collect();
    common::tiny_translator(&teacher, &lines);
    common::tiny_translator(&student, &lines);
    // The student: the same shape and vocabulary, other weights.
    let config = retort::model::seq2seq::Seq2Seq::load(&student)
        .unwrap()
        .config;
    let other = retort::model::seq2seq::Seq2Seq::fresh(config, 7).unwrap();
    other.save(&student).unwrap();
    std::fs::write(dir.path().join("val.en"), en.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("val.de"), de.join("\n") + "\n").unwrap();
    let out = dir.path().join("report");
    let data = dir.path().join("val.en");
    let args = [
        "compare",
        "--teacher",
        s(&teacher),
        "--student",
        s(&student),
        "--data",
        s(&data),
        "--beam",
        "1",
        "--latency-samples",
        "2",
        "--out",
        s(&out),
    ];
    let run = retort(&args, "");
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("| bleu |"), "{}", run.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["task"], "translation");
    let sources: Vec<String> = en.iter().map(|t| t.to_string()).collect();
    let greedy = DecodeOptions {
        beam: 1,
        ..DecodeOptions::default()
    };
    let translate = |dir: &Path| {
        retort::translate::Translator::load(dir)
            .unwrap()
            .translate(&sources, &greedy, 32, false)
            .unwrap()
            .lines
    };
    let (t, st) = (translate(&teacher), translate(&student));
    let models = v["models"].as_array().unwrap();
    let score = |m: &serde_json::Value| m["score"].as_f64().unwrap();
    assert_eq!(
        score(&models[0]),
        corpus_bleu(&t, &[de.to_vec()]).unwrap().score
    );
    assert_eq!(
        score(&models[1]),
        corpus_bleu(&st, &[de.to_vec()]).unwrap().score
    );
    let agreement = corpus_bleu(&st, std::slice::from_ref(&t)).unwrap().score / 100.0;
    assert_ne!(t, st, "two different translators");
    assert_eq!(models[1]["agreement"].as_f64().unwrap(), agreement);
    assert_eq!(models[0]["agreement"].as_f64().unwrap(), 1.0);
    for file in ["report.md", "report.html"] {
        assert!(out.join(file).is_file());
    }
}
