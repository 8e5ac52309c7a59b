//! The `retort` binary end to end: good input gives the documented output; bad input gives
//! a clear message and a non-zero exit, never a panic.

mod common;

use common::{copy_fixture, fails, fixture, json_lines, retort, s};

#[test]
fn inspect_reports_architecture_and_parameters() {
    let run = retort(
        &["inspect", "--model", s(&fixture("tiny-bert")), "--json"],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["model_type"], "bert");
    assert_eq!(v["layers"], 3);
    assert_eq!(
        v["labels"],
        serde_json::json!(["negative", "neutral", "positive"])
    );
    // Embeddings 316×32 + 64×32 + 2×32 + LayerNorm 2×32; per layer 4 × (32×32 + 32) attention,
    // 2 × 64 LayerNorm, 32×64 + 64 and 64×32 + 32 feed-forward; pooler 32×32 + 32; classifier 32×3 + 3.
    let layer = 4 * (32 * 32 + 32) + 2 * 64 + (32 * 64 + 64) + (64 * 32 + 32);
    assert_eq!(
        v["parameters"],
        10112 + 2048 + 64 + 64 + 3 * layer + 1056 + 99
    );
    let text = retort(&["inspect", "--model", s(&fixture("tiny-distilbert"))], "");
    assert!(text.stdout.contains("distilbert") && text.stdout.contains("NEG, POS"));
}

#[test]
fn bilstm_and_cnn_students_work_through_every_model_command() {
    for (name, words) in [
        ("tiny-bilstm", "BiLSTM 8 + 8 units"),
        ("tiny-cnn", "widths 2, 3 × 6 filters"),
    ] {
        let model = fixture(name);
        let run = retort(&["inspect", "--model", s(&model)], "");
        assert!(run.ok, "{}", run.stderr);
        assert!(run.stdout.contains(words), "{}", run.stdout);
        let run = retort(&["predict", "--model", s(&model)], "good film\nbad .\n");
        assert!(run.ok, "{}", run.stderr);
        assert_eq!(json_lines(&run.stdout).len(), 2);
        let run = retort(
            &[
                "bench",
                "--model",
                s(&model),
                "--reps",
                "2",
                "--warmup",
                "1",
            ],
            "",
        );
        assert!(run.ok, "{}", run.stderr);
        let out = tempfile::tempdir().unwrap();
        let int8 = out.path().join("int8");
        let err = fails(
            &[
                "export",
                "--model",
                s(&model),
                "--out",
                s(&int8),
                "--quantize",
                "int8",
            ],
            "",
        );
        assert!(err.contains("int8") && err.contains("f32"), "{err}");
    }
}

#[test]
fn predict_prints_one_json_line_per_input_line() {
    let run = retort(
        &["predict", "--model", s(&fixture("tiny-distilbert"))],
        "good film\n\nbad .\n",
    );
    assert!(run.ok, "{}", run.stderr);
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["text"], "bad .");
    let p = &lines[0]["probabilities"];
    let sum = p["NEG"].as_f64().unwrap() + p["POS"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-5);
    assert!(["NEG", "POS"].contains(&lines[0]["label"].as_str().unwrap()));
}

#[test]
fn eval_scores_labelled_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev.tsv");
    std::fs::write(
        &data,
        "sentence\tlabel\ngood film\tPOS\nbad .\t0\nthe end\t1\n",
    )
    .unwrap();
    let run = retort(
        &[
            "eval",
            "--model",
            s(&fixture("tiny-distilbert")),
            "--data",
            s(&data),
            "--json",
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["count"], 3);
    assert_eq!(v["scores"]["primary"], "accuracy");
    let acc = v["scores"]["values"]["accuracy"].as_f64().unwrap();
    assert!([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
        .iter()
        .any(|a| (a - acc).abs() < 1e-9));
}

#[test]
fn a_reader_answers_json_questions_and_writes_official_predictions() {
    let model = fixture("tiny-bert-qa");
    let context = "Élan: the film was good in paris";
    let line = serde_json::json!({"id": "q1", "question": "where ?", "context": context});
    let run = retort(
        &["predict", "--model", s(&model), "--logits"],
        &format!("{line}\n"),
    );
    assert!(run.ok, "{}", run.stderr);
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], "q1");
    assert_eq!(lines[0]["question"], "where ?");
    let (start, end) = (
        lines[0]["start"].as_u64().unwrap() as usize,
        lines[0]["end"].as_u64().unwrap() as usize,
    );
    let cut: String = context.chars().skip(start).take(end - start).collect();
    assert_eq!(lines[0]["answer"], cut.as_str());
    // One window: a start row and an end row as long as it.
    let windows = lines[0]["logits"].as_array().unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(
        windows[0][0].as_array().unwrap().len(),
        windows[0][1].as_array().unwrap().len()
    );
    // A line that is not a question is named by its number.
    let err = fails(
        &["predict", "--model", s(&model)],
        &format!("{line}\nwhere?\n"),
    );
    assert!(err.contains("input line 2"), "{err}");

    // eval: F1 and exact match; --predictions writes {id: answer}, the official script's input.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev.json");
    let squad = serde_json::json!({"data": [{"title": "t", "paragraphs": [{"context": context,
        "qas": [{"id": "q1", "question": "where ?", "answers": [{"text": "paris", "answer_start": 27}]},
                {"id": "q2", "question": "what ?", "answers": [{"text": "the film", "answer_start": 6}]}]}]}]});
    std::fs::write(&data, squad.to_string()).unwrap();
    let preds = dir.path().join("predictions.json");
    let run = retort(
        &[
            "eval",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--json",
            "--predictions",
            s(&preds),
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["count"], 2);
    assert_eq!(v["scores"]["primary"], "f1");
    let written: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&preds).unwrap()).unwrap();
    assert_eq!(written.keys().collect::<Vec<_>>(), ["q1", "q2"]);
    for answer in written.values() {
        assert!(context.contains(answer.as_str().unwrap()));
    }
}

#[test]
fn missing_files_are_named() {
    let err = fails(&["inspect", "--model", "/no/such/model"], "");
    assert!(
        err.contains("missing file: /no/such/model (model directory)"),
        "{err}"
    );
    let dir = copy_fixture("tiny-bert");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = fails(&["inspect", "--model", s(dir.path())], "");
    assert!(
        err.contains("model.safetensors") && err.contains("missing file"),
        "{err}"
    );
    let dir = copy_fixture("tiny-distilbert");
    std::fs::remove_file(dir.path().join("vocab.txt")).unwrap();
    let err = fails(&["inspect", "--model", s(dir.path())], "");
    assert!(
        err.contains("neither tokenizer.json nor vocab.txt"),
        "{err}"
    );
}

#[test]
fn bleu_scores_stdin_or_a_file_against_references_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let reference = write("val.de", "Ein Mann fährt Fahrrad.\nZwei Hunde spielen.\n");
    let hyp = write("out.de", "Ein Mann fährt Fahrrad.\nZwei Hunde\n");
    // sacrebleu 2.6.0 prints this line for these two files.
    let want =
        "BLEU = 75.15 100.0/100.0/100.0/100.0 (BP = 0.751 ratio = 0.778 hyp_len = 7 ref_len = 9)";
    let run = retort(
        &["bleu", "--ref", s(&reference)],
        "Ein Mann fährt Fahrrad.\nZwei Hunde\n",
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), want);
    let run = retort(
        &["bleu", "--ref", s(&reference), "--hyp", s(&hyp), "--json"],
        "",
    );
    let b = &json_lines(&run.stdout)[0];
    assert_eq!(
        (b["sys_len"].as_u64(), b["ref_len"].as_u64()),
        (Some(7), Some(9))
    );

    let err = fails(&["bleu", "--ref", s(&reference)], "one line\n");
    assert!(
        err.contains("stdin has 1 lines but") && err.contains("val.de has 2"),
        "{err}"
    );
    let err = fails(&["bleu", "--ref", "/no/such/ref.de"], "x\n");
    assert!(err.contains("/no/such/ref.de"), "{err}");
    let err = fails(&["bleu", "--ref", s(&reference)], "");
    assert!(err.contains("stdin holds no line"), "{err}");
    let bad = dir.path().join("bad.de");
    std::fs::write(&bad, b"ok\n\xff\n").unwrap();
    let err = fails(&["bleu", "--ref", s(&reference), "--hyp", s(&bad)], "");
    assert!(err.contains("bad.de:2: not valid UTF-8"), "{err}");
}

#[test]
fn vocab_learns_a_vocabulary_that_restores_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let (en, de) = (dir.path().join("train.en"), dir.path().join("train.de"));
    let lines = |base: &[&str]| -> String {
        (0..40)
            .map(|i| format!("{}\n", base[i % base.len()]))
            .collect()
    };
    std::fs::write(
        &en,
        lines(&["A man rides a bike.", "Two dogs play in the snow."]),
    )
    .unwrap();
    std::fs::write(
        &de,
        lines(&["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]),
    )
    .unwrap();
    let out = dir.path().join("vocab");
    let run = retort(
        &[
            "vocab",
            "--train",
            s(&en),
            "--train",
            s(&de),
            "--vocab-size",
            "300",
            "--out",
            s(&out),
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("from 80 lines") && run.stdout.contains("0 line(s) not restored"),
        "{}",
        run.stdout
    );
    let vocab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer.json")).unwrap())
            .unwrap();
    assert_eq!(vocab["model"]["vocab"]["</s>"], 2);
    let err = fails(
        &[
            "vocab",
            "--train",
            s(&en),
            "--vocab-size",
            "10",
            "--out",
            s(&out),
        ],
        "",
    );
    assert!(err.contains("byte symbols"), "{err}");
    let err = fails(&["vocab", "--train", "/no/such.en", "--out", s(&out)], "");
    assert!(err.contains("/no/such.en"), "{err}");
}

#[test]
fn unsupported_model_type_lists_the_supported_ones() {
    let dir = copy_fixture("tiny-bert");
    let path = dir.path().join("config.json");
    let config = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"bert\"", "\"gpt2\"");
    std::fs::write(&path, config).unwrap();
    let err = fails(&["inspect", "--model", s(dir.path())], "");
    assert!(
        err.contains("unsupported model_type \"gpt2\"")
            && err.contains("supported: bert, distilbert"),
        "{err}"
    );
}

#[test]
fn broken_weights_are_clear_errors() {
    let dir = copy_fixture("tiny-bert");
    std::fs::write(dir.path().join("model.safetensors"), b"not a checkpoint").unwrap();
    let err = fails(&["inspect", "--model", s(dir.path())], "");
    assert!(err.contains("not a readable safetensors file"), "{err}");

    let dir = copy_fixture("tiny-bert");
    let path = dir.path().join("config.json");
    let config = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"intermediate_size\": 64", "\"intermediate_size\": 48");
    std::fs::write(&path, config).unwrap();
    let err = fails(&["inspect", "--model", s(dir.path())], "");
    assert!(
        err.contains("has shape [64, 32], the config implies [48, 32]"),
        "{err}"
    );
}

#[test]
fn mismatched_vocabulary_is_refused() {
    let dir = copy_fixture("tiny-bert");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let mut vocab = std::fs::read_to_string(dir.path().join("vocab.txt")).unwrap();
    for i in 0..400 {
        vocab.push_str(&format!("extra{i}\n"));
    }
    std::fs::write(dir.path().join("vocab.txt"), vocab).unwrap();
    let err = fails(&["predict", "--model", s(dir.path())], "hello\n");
    assert!(
        err.contains("vocabulary mismatch") && err.contains("316 rows"),
        "{err}"
    );
}

#[test]
fn malformed_and_empty_data_are_clear_errors() {
    let model = fixture("tiny-distilbert");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev.tsv");
    std::fs::write(&data, "sentence\tlabel\ngood\t1\nno label on this line\n").unwrap();
    let err = fails(&["eval", "--model", s(&model), "--data", s(&data)], "");
    assert!(
        err.contains("dev.tsv:3:") && err.contains("expected 2 fields"),
        "{err}"
    );

    std::fs::write(&data, "sentence\tlabel\n").unwrap();
    let err = fails(&["eval", "--model", s(&model), "--data", s(&data)], "");
    assert!(err.contains("no examples"), "{err}");

    std::fs::write(&data, "sentence\tlabel\ngood\tmaybe\n").unwrap();
    let err = fails(&["eval", "--model", s(&model), "--data", s(&data)], "");
    assert!(
        err.contains("dev.tsv:2:") && err.contains("\"maybe\""),
        "{err}"
    );

    let err = fails(&["predict", "--model", s(&model)], "");
    assert!(err.contains("no input texts"), "{err}");
}

#[test]
fn run_commands_document_every_option_and_reject_unknown_keys() {
    let help = retort(&["distill", "--help"], "");
    assert!(help.ok);
    for key in [
        "temperature",
        "layer_map",
        "attention_kl",
        "multiplier",
        "teacher_layers",
        "grad_accum",
    ] {
        assert!(
            help.stdout.contains(key),
            "distill --help does not explain {key}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[train]\nlr = 1e-4\n").unwrap();
    let err = fails(
        &["train", "--config", s(&config), "--set", "train.lrr=3"],
        "",
    );
    assert!(err.contains("lrr"), "{err}");
    let err = fails(&["distill", "--config", "/no/such.toml"], "");
    assert!(err.contains("missing file: /no/such.toml"), "{err}");
}

#[test]
fn export_int8_gives_a_model_that_predict_and_inspect_use_as_int8() {
    let out = tempfile::tempdir().unwrap();
    let q = out.path().join("int8");
    let model = fixture("tiny-bert");
    let run = retort(
        &[
            "export",
            "--model",
            s(&model),
            "--out",
            s(&q),
            "--quantize",
            "int8",
        ],
        "",
    );
    assert!(run.ok && run.stdout.contains("(int8)"), "{}", run.stderr);
    let inspect = retort(&["inspect", "--model", s(&q), "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(v["int8"], true);
    let run = retort(
        &["predict", "--model", s(&q), "--logits"],
        "a fine film\nbad\n",
    );
    assert!(run.ok, "{}", run.stderr);
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["logits"].as_array().unwrap().len(), 3);
    let bench = retort(
        &[
            "bench",
            "--model",
            s(&q),
            "--warmup",
            "0",
            "--reps",
            "1",
            "--only",
            "latency",
        ],
        "",
    );
    assert!(
        bench.ok && bench.stdout.contains("(int8)"),
        "{}",
        bench.stdout
    );

    // Fine-tuning an int8 export is refused: its int8 maps have no backward pass.
    let config = out.path().join("run.toml");
    let toml = format!("[model]\ninit = \"{}\"\n", q.display());
    std::fs::write(&config, toml).unwrap();
    let err = fails(&["train", "--config", s(&config)], "");
    assert!(err.contains("int8 export (inference only)"), "{err}");
}

#[test]
fn export_errors_are_clear() {
    let model = fixture("tiny-bert");
    let err = fails(&["export", "--model", s(&model), "--out", s(&model)], "");
    assert!(err.contains("model's own directory"), "{err}");
    let err = fails(
        &[
            "export",
            "--model",
            s(&model),
            "--out",
            "/tmp/x",
            "--quantize",
            "int4",
        ],
        "",
    );
    assert!(err.contains("int4"), "{err}");

    // An int8 checkpoint whose scales are missing names the tensor.
    let out = tempfile::tempdir().unwrap();
    let run = retort(
        &[
            "export",
            "--model",
            s(&model),
            "--out",
            s(out.path()),
            "--quantize",
            "int8",
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let weights = out.path().join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    // Rename the first scale tensor in the (ASCII) header; the data stays as it is.
    let name = b"query.weight_scale";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
    bytes[at + name.len() - 1] = b'X';
    std::fs::write(&weights, bytes).unwrap();
    let err = fails(&["predict", "--model", s(out.path())], "hello\n");
    assert!(err.contains("weight_scale is missing"), "{err}");
}

/// Rewrites the dtype of `tensor` in a safetensors header, keeping its bytes (so a same-size
/// dtype passes every size check).
fn set_dtype(file: &std::path::Path, tensor: &str, dtype: &str) {
    let mut bytes = std::fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header[tensor]["dtype"] = serde_json::json!(dtype);
    let mut text = serde_json::to_vec(&header).unwrap();
    assert!(text.len() <= n);
    text.resize(n, b' ');
    bytes.splice(8..8 + n, text);
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_tensor_of_the_wrong_dtype_is_named() {
    let dir = copy_fixture("tiny-bert");
    // I32 has F32's byte count: read as numbers, the bias would silently change predictions.
    set_dtype(
        &dir.path().join("model.safetensors"),
        "classifier.bias",
        "I32",
    );
    let err = fails(&["predict", "--model", s(dir.path())], "hello\n");
    assert!(
        err.contains("tensor classifier.bias is stored as I32") && err.contains("F32, F16 or BF16"),
        "{err}"
    );

    // The same in an int8 export, whose reader is its own.
    let out = tempfile::tempdir().unwrap();
    let q = out.path().join("int8");
    let model = fixture("tiny-bert");
    let export = ["export", "--model", s(&model), "--out", s(&q)];
    assert!(retort(&[&export[..], &["--quantize", "int8"][..]].concat(), "").ok);
    set_dtype(&q.join("model.safetensors"), "classifier.bias", "I32");
    let err = fails(&["predict", "--model", s(&q)], "hello\n");
    assert!(
        err.contains("tensor classifier.bias is stored as I32"),
        "{err}"
    );
}

#[test]
fn an_int8_export_of_an_unknown_method_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let q = out.path().join("int8");
    let run = retort(
        &[
            "export",
            "--model",
            s(&fixture("tiny-bert")),
            "--out",
            s(&q),
            "--quantize",
            "int8",
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let config = q.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"method\": \"int8\""), "{text}");
    std::fs::write(
        &config,
        text.replace("\"method\": \"int8\"", "\"method\": \"int4\""),
    )
    .unwrap();
    let err = fails(&["predict", "--model", s(&q)], "hello\n");
    assert!(
        err.contains("retort_quantization.method is \"int4\"") && err.contains("only \"int8\""),
        "{err}"
    );
}

#[test]
fn crlf_and_non_utf8_data_name_the_right_line_once() {
    let model = fixture("tiny-distilbert");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("c.tsv");
    std::fs::write(
        &data,
        "sentence\tlabel\r\ngood\t1\r\nno label on this line\r\n",
    )
    .unwrap();
    let err = fails(&["eval", "--model", s(&model), "--data", s(&data)], "");
    assert!(err.contains("c.tsv:3:"), "{err}");

    std::fs::write(&data, b"sentence\tlabel\ngood\t1\nbad \xff\t0\n").unwrap();
    let err = fails(&["eval", "--model", s(&model), "--data", s(&data)], "");
    assert!(err.contains("c.tsv:3: not valid UTF-8"), "{err}");
    // Said once: the cause is not repeated after the message that holds it.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("valid UTF-8").count(), 1, "{err}");
}

#[test]
fn an_output_that_cannot_be_created_says_so() {
    let err = fails(
        &[
            "export",
            "--model",
            s(&fixture("tiny-bert")),
            "--out",
            "/proc/forbidden",
        ],
        "",
    );
    assert!(err.contains("cannot create /proc/forbidden"), "{err}");
    assert!(!err.contains("missing file"), "{err}");
}

#[cfg(unix)]
#[test]
fn exported_weights_follow_the_umask_like_every_other_file() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let run = retort(
        &[
            "export",
            "--model",
            s(&fixture("tiny-bert")),
            "--out",
            s(&dir),
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("model.safetensors"), mode("config.json"));
    assert_eq!(mode("model.safetensors"), mode("tokenizer.json"));
}

#[test]
fn export_refuses_a_directory_that_holds_files_unless_forced() {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("pytorch_model.bin"), "another model").unwrap();
    let model = fixture("tiny-bert");
    let args = ["export", "--model", s(&model), "--out", s(out.path())];
    let err = fails(&args, "");
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert!(!out.path().join("config.json").exists());
    let run = retort(&[&args[..], &["--force"][..]].concat(), "");
    assert!(run.ok, "{}", run.stderr);
    assert!(out.path().join("config.json").exists());
    assert!(out.path().join("pytorch_model.bin").exists());
}

/// `retort eval` of a translator: the BLEU of its translations of a parallel corpus (the
/// references beside the source file), as sacrebleu's line would give, and the translations.
#[test]
fn eval_of_a_translator_scores_its_translations_with_bleu() {
    use retort::model::generate::DecodeOptions;
    use retort::task::bleu::corpus_bleu;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mt");
    let en = ["A man rides a bike.", "Two dogs play in the snow."];
    let de = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."];
    let lines: Vec<String> = en.iter().chain(&de).map(|t| t.to_string()).collect();
    common::tiny_translator(&model, &lines);
    std::fs::write(dir.path().join("test.en"), en.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("test.de"), de.join("\n") + "\n").unwrap();
    let translator = retort::translate::Translator::load(&model).unwrap();
    let opts = DecodeOptions {
        beam: 2,
        ..DecodeOptions::default()
    };
    let sources: Vec<String> = en.iter().map(|t| t.to_string()).collect();
    let want = translator
        .translate(&sources, &opts, 32, false)
        .unwrap()
        .lines;
    let bleu = corpus_bleu(&want, &[de.to_vec()]).unwrap();
    let out = dir.path().join("hyp.de");
    let data = dir.path().join("test.en");
    let args = [
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--beam",
        "2",
        "--json",
        "--predictions",
        s(&out),
    ];
    let run = retort(&args, "");
    assert!(run.ok, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["task"], "translation");
    assert_eq!(report["count"], 2);
    assert_eq!(
        report["scores"]["values"]["bleu"].as_f64().unwrap(),
        bleu.score
    );
    assert!(report["target_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        want.join("\n") + "\n"
    );
    // Without references beside the source: an error naming the file.
    std::fs::remove_file(dir.path().join("test.de")).unwrap();
    let run = retort(&args, "");
    assert!(
        !run.ok && run.stderr.contains("no reference file"),
        "{}",
        run.stderr
    );
}

/// `inspect` describes a translator; the commands made for classifiers say what to use instead
/// of failing on its config.
#[test]
fn inspect_describes_a_translator_and_classifier_commands_point_to_translate() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mt");
    let lines = vec!["A man rides a bike.".to_string(), "Ein Mann.".to_string()];
    common::tiny_translator(&model, &lines);
    let run = retort(&["inspect", "--model", s(&model)], "");
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("marian (MarianMTModel)") && run.stdout.contains("encoder 1 × 16"),
        "{}",
        run.stdout
    );
    let out = dir.path().join("export");
    for args in [
        vec!["predict", "--model", s(&model)],
        vec!["export", "--model", s(&model), "--out", s(&out)],
        vec!["bench", "--model", s(&model)],
    ] {
        let run = retort(&args, "a man\n");
        assert!(!run.ok, "{args:?}");
        assert!(
            run.stderr.contains("holds a translator") && run.stderr.contains("retort translate"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[test]
fn translate_writes_one_line_per_input_line_as_the_library_decodes_them() {
    use retort::model::generate::DecodeOptions;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mt");
    let text = [
        "A man rides a bike.",
        "Two dogs play in the snow.",
        "Ein Mann fährt Fahrrad.",
    ];
    let lines: Vec<String> = text.iter().map(|t| t.to_string()).collect();
    common::tiny_translator(&model, &lines);
    let translator = retort::translate::Translator::load(&model).unwrap();
    // A blank line stays blank; a long one is cut to the model's 24 positions.
    let long = "a man ".repeat(40);
    let input = format!("{}\n\n{}\n{long}\n", text[0], text[1]);
    let inputs: Vec<String> = input.lines().map(str::to_string).collect();
    for beam in [1usize, 3] {
        let opts = DecodeOptions {
            beam,
            length_penalty: 1.0,
            max_len_a: 1.5,
            max_len_b: 10,
        };
        let want = translator.translate(&inputs, &opts, 32, false).unwrap();
        let beam_arg = beam.to_string();
        let run = retort(
            &["translate", "--model", s(&model), "--beam", &beam_arg],
            &input,
        );
        assert!(run.ok, "{}", run.stderr);
        let got: Vec<&str> = run.stdout.split('\n').collect();
        assert_eq!(
            got.len(),
            5,
            "four lines and the last newline: {:?}",
            run.stdout
        );
        assert_eq!(
            got[..4],
            want.lines.iter().map(String::as_str).collect::<Vec<_>>()[..]
        );
        assert!(got[1].is_empty() && !got[0].is_empty(), "{got:?}");
        assert!(run.stderr.contains("translated 4 lines"), "{}", run.stderr);
    }

    // With a cache: written, then read back, the same lines both times.
    let cache = dir.path().join("cache");
    let cached = |expect: &str| {
        let args = [
            "translate",
            "--model",
            s(&model),
            "--beam",
            "1",
            "--cache-dir",
            s(&cache),
        ];
        let run = retort(&args, &input);
        assert!(run.ok && run.stderr.contains(expect), "{}", run.stderr);
        run.stdout
    };
    let first = cached("translations written to");
    assert_eq!(first, cached("translations read back from"));
    assert_eq!(first.lines().count(), 4);

    // What cannot be translated is an error, not a panic.
    let err = fails(
        &["translate", "--model", s(&dir.path().join("none"))],
        "x\n",
    );
    assert!(err.contains("config.json"), "{err}");
    let other = dir.path().join("other");
    common::tiny_translator(&other, &lines);
    retort::text::subword::SubwordTokenizer::train(&lines, 280, 1)
        .unwrap()
        .save(&other)
        .unwrap();
    let err = fails(&["translate", "--model", s(&other)], "x\n");
    assert!(err.contains("not trained together"), "{err}");
    let err = fails(
        &["translate", "--model", s(&model), "--batch-size", "0"],
        "x\n",
    );
    assert!(err.contains("--batch-size"), "{err}");
}
