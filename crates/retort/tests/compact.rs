//! The BiLSTM and CNN students: the same logits as the PyTorch modules whose layout their
//! checkpoints share (`scripts/make_compact_fixtures.py`), on a padded batch; gradients that
//! reach every tensor and agree with finite differences; checkpoints that load back; a
//! distillation from the tiny BERT; clear errors.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use common::fixture;
use retort::distill::run::distill;
use retort::model::{EncoderInput, Model, ModelConfig, Outputs, Pass};
use retort::objective::terms::{Term, TermKind};
use retort::text::batch::pad_batch;
use retort::text::Encoded;
use retort::train::config::{BiLstmStudent, CnnStudent, DistillConfig, StudentSection};
use retort::Classifier;

const MODELS: [&str; 2] = ["tiny-bilstm", "tiny-cnn"];

/// The fixture's sentences (token ids) as one right-padded batch, and PyTorch's logits.
fn expected_batch(name: &str) -> (EncoderInput, Vec<Vec<f32>>) {
    let expected = common::expected(name);
    let n = expected.keys().filter(|k| k.starts_with("ids.")).count();
    let mut encoded = Vec::new();
    let mut logits = Vec::new();
    for i in 0..n {
        let ids: Vec<u32> = expected[&format!("ids.{i}")]
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|id| id as u32)
            .collect();
        encoded.push(Encoded {
            type_ids: vec![0; ids.len()],
            ids,
        });
        logits.push(expected[&format!("logits.{i}")].to_vec1::<f32>().unwrap());
    }
    let items: Vec<&Encoded> = encoded.iter().collect();
    (pad_batch(&items, 0).unwrap(), logits)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn logits_match_pytorch_on_a_padded_batch() {
    for name in MODELS {
        let c = Classifier::load(&fixture(name), 64).unwrap();
        let (input, want) = expected_batch(name);
        for pass in [Pass::INFERENCE, Pass::GRAD_NO_DROPOUT] {
            let got = c
                .model
                .forward(&input, pass, Outputs::default())
                .unwrap()
                .logits
                .to_vec2::<f32>()
                .unwrap();
            let d = max_diff(&got, &want);
            assert!(d < 1e-5, "{name} ({pass:?}): max |diff| {d} vs PyTorch");
        }
        // Inference records no backward pass; a gradient pass does.
        let out = |pass| c.model.forward(&input, pass, Outputs::default()).unwrap();
        assert!(!out(Pass::INFERENCE).logits.track_op(), "{name}");
        assert!(out(Pass::GRAD_NO_DROPOUT).logits.track_op(), "{name}");
    }
}

#[test]
fn a_packed_bilstm_gives_the_same_logits_and_states_and_reads_its_packed_weights() {
    let mut c = Classifier::load(&fixture("tiny-bilstm"), 64).unwrap();
    let (input, want) = expected_batch("tiny-bilstm");
    let plain = c
        .model
        .forward(&input, Pass::GRAD_NO_DROPOUT, Outputs::default());
    let plain = plain.unwrap();
    c.pack_for_inference().unwrap();
    let run = |c: &Classifier, pass| c.model.forward(&input, pass, Outputs::default()).unwrap();
    let packed = run(&c, Pass::INFERENCE);
    let d = max_diff(&packed.logits.to_vec2::<f32>().unwrap(), &want);
    assert!(d < 1e-5, "packed: max |diff| {d} vs PyTorch");
    let states = common::max_abs_diff(&plain.last_hidden_state, &packed.last_hidden_state);
    assert!(states < 1e-5, "states: {states}");
    if !retort::model::kernels::packing_pays() {
        return; // nothing was packed on this CPU
    }
    // Change the input and recurrent weights under the packed copy: a gradient pass sees the
    // change, inference keeps reading the packed (now stale) weights, which proves it reads them.
    for name in ["lstm.weight_ih_l0", "lstm.weight_hh_l0"] {
        let var = c.model.params().get(name).unwrap();
        var.set(&var.zeros_like().unwrap()).unwrap();
    }
    let changed = run(&c, Pass::GRAD_NO_DROPOUT).logits;
    assert!(common::max_abs_diff(&changed, &packed.logits) > 1e-4);
    let stale = run(&c, Pass::INFERENCE).logits;
    assert_eq!(common::max_abs_diff(&stale, &packed.logits), 0.0);
}

#[test]
fn a_batch_split_over_threads_gives_the_logits_of_one_pass() {
    for name in MODELS {
        let c = Classifier::load(&fixture(name), 64).unwrap();
        let texts: Vec<String> = (0..24)
            .map(|i| "the music was good and the plot flat ".repeat(1 + i % 4))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let enc = c.tokenizer.encode_batch(&refs).unwrap();
        let items: Vec<_> = enc.iter().collect();
        let input = pad_batch(&items, 0).unwrap();
        let whole = c
            .model
            .forward(&input, Pass::GRAD_NO_DROPOUT, Outputs::default())
            .unwrap()
            .logits;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let split = pool.install(|| {
            c.model
                .forward(&input, Pass::INFERENCE, Outputs::default())
                .unwrap()
                .logits
        });
        assert!(common::max_abs_diff(&whole, &split) < 1e-5, "{name}");
    }
}

fn loss(model: &dyn Model, input: &EncoderInput, pass: Pass) -> Tensor {
    let logits = model
        .forward(input, pass, Outputs::default())
        .unwrap()
        .logits;
    let n = logits.dim(0).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
    let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    candle_nn::loss::cross_entropy(&logits, &labels).unwrap()
}

#[test]
fn every_tensor_gets_a_gradient_and_changes_after_one_step() {
    for name in MODELS {
        let c = Classifier::load(&fixture(name), 64).unwrap();
        let (input, _) = expected_batch(name);
        common::assert_every_tensor_trains(name, c.model.params(), || {
            loss(c.model.as_ref(), &input, Pass::TRAIN)
        });
    }
}

#[test]
fn autograd_agrees_with_finite_differences() {
    let cases = [
        (
            "tiny-bilstm",
            &[
                "embeddings.weight",
                "lstm.weight_ih_l0",
                "lstm.weight_hh_l0_reverse",
                "lstm.bias_hh_l0",
                "lstm.bias_ih_l0_reverse",
                "mlp.weight",
                "classifier.bias",
            ][..],
        ),
        (
            "tiny-cnn",
            &[
                "embeddings.weight",
                "convs.0.weight",
                "convs.1.weight",
                "convs.1.bias",
                "mlp.bias",
                "classifier.weight",
            ][..],
        ),
    ];
    for (name, params) in cases {
        let c = Classifier::load(&fixture(name), 64).unwrap();
        let (input, _) = expected_batch(name);
        let f = || {
            loss(c.model.as_ref(), &input, Pass::GRAD_NO_DROPOUT)
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let grads = loss(c.model.as_ref(), &input, Pass::GRAD_NO_DROPOUT)
            .backward()
            .unwrap();
        for p in params {
            let var = c.model.params().get(p).unwrap();
            let g = grads.get(var.as_tensor()).unwrap();
            let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // The entry with the largest gradient: a meaningful value, not rounding noise.
            let (index, &analytic) = g
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap();
            let numeric = common::finite_difference(var, index, 1e-3, f);
            let err = (numeric - analytic as f64).abs();
            assert!(
                err <= 1e-3 + 1e-2 * analytic.abs() as f64,
                "{name} {p}[{index}]: autograd {analytic} vs finite difference {numeric}"
            );
        }
    }
}

#[test]
fn a_saved_model_loads_back_with_the_same_config_and_logits() {
    for name in MODELS {
        let c = Classifier::load(&fixture(name), 64).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        c.model.save(tmp.path()).unwrap();
        retort::model::checkpoint::copy_tokenizer_files(&fixture(name), tmp.path()).unwrap();
        let back = Classifier::load(tmp.path(), 64).unwrap();
        assert_eq!(back.model.config(), c.model.config(), "{name}");
        let (input, _) = expected_batch(name);
        let run = |m: &dyn Model| {
            m.forward(&input, Pass::INFERENCE, Outputs::default())
                .unwrap()
        };
        let (a, b) = (run(c.model.as_ref()), run(back.model.as_ref()));
        assert_eq!(common::max_abs_diff(&a.logits, &b.logits), 0.0, "{name}");
        // And the export command writes the same checkpoint (f32 only).
        let out = tempfile::tempdir().unwrap();
        let export = out.path().join("export");
        retort::export::export(&c, &export, retort::export::Precision::AsLoaded).unwrap();
        let exported = Classifier::load(&export, 64).unwrap();
        assert_eq!(exported.model.config(), c.model.config());
        let err = retort::export::export(
            &c,
            &out.path().join("int8"),
            retort::export::Precision::Int8,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("int8") && err.contains(name), "{err}");
    }
}

/// `config.json` of the BiLSTM fixture with `edit` applied.
fn bilstm_config(edit: impl Fn(&mut serde_json::Value)) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("tiny-bilstm").join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut v);
    v
}

#[test]
fn bad_configs_and_checkpoints_are_clear_errors() {
    let err = |v: serde_json::Value| match ModelConfig::from_json(&v) {
        Err(retort::model::config::ConfigError::Field(m)) => m,
        other => panic!("expected a field error, got {other:?}"),
    };
    let token = bilstm_config(|v| {
        v["architectures"] = serde_json::json!(["RetortBiLstmForTokenClassification"])
    });
    assert!(err(token).contains("classifies whole sequences"));
    let no_units = bilstm_config(|v| {
        v.as_object_mut()
            .unwrap()
            .remove("hidden_size")
            .map(drop)
            .unwrap()
    });
    assert!(err(no_units).contains("hidden_size"));
    let cnn = bilstm_config(|v| {
        v["model_type"] = "retort-cnn".into();
        v["filters"] = 4.into();
        v["kernel_sizes"] = serde_json::json!([]);
    });
    assert!(err(cnn).contains("kernel_sizes"));

    // A checkpoint that lacks a tensor names it.
    let tmp = tempfile::tempdir().unwrap();
    let c = Classifier::load(&fixture("tiny-bilstm"), 64).unwrap();
    c.model.save(tmp.path()).unwrap();
    let weights = tmp.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    tensors.remove("lstm.weight_hh_l0_reverse");
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let e = retort::model::load_model(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lstm.weight_hh_l0_reverse") && e.contains("retort-bilstm"),
        "{e}"
    );
}

/// A small labelled TSV in the fixtures' vocabulary.
fn write_data(dir: &Path, name: &str, n: usize) -> std::path::PathBuf {
    let words = [
        "good", "music", "the", "ending", "plot", "flat", "story", "boring",
    ];
    let labels = ["negative", "neutral", "positive"];
    let mut text = String::from("sentence\tlabel\n");
    for i in 0..n {
        let s: Vec<&str> = (0..(2 + i % 6))
            .map(|j| words[(i * 3 + j * 5) % words.len()])
            .collect();
        text.push_str(&format!("{}\t{}\n", s.join(" "), labels[i % 3]));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bilstm_and_cnn_students_distil_from_the_tiny_bert() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = DistillConfig::default();
    c.teacher.dir = fixture("tiny-bert");
    c.teacher.max_len = 32;
    c.data.train = write_data(dir, "train.tsv", 48);
    c.data.dev = write_data(dir, "dev.tsv", 12);
    c.distill.cache_dir = dir.join("cache");
    c.distill.terms = Some(vec![
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::SoftKl, 0.5),
        Term::new(TermKind::LogitMse, 0.1),
    ]);
    c.train.batch_size = 8;
    c.train.max_steps = 4;
    c.train.eval_every = 2;
    let students = [
        (
            "bilstm",
            StudentSection::Bilstm(BiLstmStudent {
                hidden_size: 6,
                mlp_size: 10,
                // Narrower than the teacher's 32: its table projected onto 16 directions.
                embedding_size: 16,
                ..BiLstmStudent::default()
            }),
        ),
        (
            "cnn",
            StudentSection::Cnn(CnnStudent {
                filters: 4,
                kernel_sizes: vec![2, 3],
                mlp_size: 10,
                ..CnnStudent::default()
            }),
        ),
    ];
    for (name, student) in students {
        c.student = student;
        c.output.dir = dir.join(name);
        let s = distill(&c, false, false).unwrap();
        assert_eq!(s.run.steps, 4, "{name}");
        assert!(s.student_parameters < s.teacher_parameters, "{name}");
        let best = Classifier::load(&c.output.dir.join("best"), 32).unwrap();
        assert_eq!(
            best.model.config().architecture.model_type(),
            format!("retort-{name}")
        );
        assert_eq!(best.model.params().count(), s.student_parameters);
        // It predicts through the same path as any model.
        let data = retort::task::Task::of(best.model.config())
            .read(&c.data.dev)
            .unwrap();
        let report = retort::eval::evaluate(&best, &data, 4).unwrap();
        assert_eq!(report.count, 12, "{name}");
    }

    // Intermediate terms need layers the student does not have: refused before training.
    c.distill.terms = Some(vec![Term::new(TermKind::HiddenMse, 1.0)]);
    c.output.dir = dir.join("hidden");
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(
        err.contains("no hidden states") && err.contains("retort-cnn"),
        "{err}"
    );
}
