//! `export`: the written directory is a Hugging Face checkpoint that Retort reloads with the
//! same logits, in f32 and in int8; int8 stays close to f32.

use std::path::PathBuf;

use retort::export::{export, Precision};
use retort::Classifier;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

const TEXTS: &[&str] = &[
    "the cat sat on the mat.",
    "a surprisingly good film",
    "bad",
    "the [MASK] was not what i expected at all, but the music was fine",
];

fn logits(c: &Classifier) -> Vec<Vec<f32>> {
    let encoded = c.tokenizer.encode_batch(TEXTS).unwrap();
    retort::infer::logits(&c.model, &encoded, 2, &|_| {}).unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn read_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn f32_export_is_a_complete_hf_directory_with_identical_logits() {
    for (name, class) in [
        ("tiny-bert", "BertForSequenceClassification"),
        ("tiny-distilbert", "DistilBertForSequenceClassification"),
        ("tiny-mpnet", "MPNetForSequenceClassification"),
    ] {
        let original = Classifier::load(&fixture(name), 64).unwrap();
        let out = tempfile::tempdir().unwrap();
        export(&original, out.path(), Precision::AsLoaded).unwrap();
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            assert!(out.path().join(file).exists(), "{name}: {file} missing");
        }
        let config = read_json(out.path().join("config.json"));
        assert_eq!(config["architectures"], serde_json::json!([class]));
        let labels = &original.model.config().labels;
        for (i, label) in labels.iter().enumerate() {
            assert_eq!(config["id2label"][i.to_string()], *label);
            assert_eq!(config["label2id"][label], i);
        }
        assert!(config.get("retort_quantization").is_none());
        // Every tensor of the source file that the model uses is saved under its own name.
        let reloaded = Classifier::load(out.path(), 64).unwrap();
        assert!(!reloaded.report.fresh_head && reloaded.report.unused.is_empty());
        assert_eq!(logits(&original), logits(&reloaded), "{name}");
        // The tokenizer written from vocab.txt (tiny-distilbert has no tokenizer.json) agrees.
        assert_eq!(
            original.tokenizer.encode_batch(TEXTS).unwrap(),
            reloaded.tokenizer.encode_batch(TEXTS).unwrap()
        );
    }
}

#[test]
fn int8_export_reloads_as_int8_with_identical_logits() {
    for name in ["tiny-bert", "tiny-distilbert", "tiny-mpnet"] {
        let original = Classifier::load(&fixture(name), 64).unwrap();
        let out = tempfile::tempdir().unwrap();
        export(&original, out.path(), Precision::Int8).unwrap();
        let config = read_json(out.path().join("config.json"));
        assert!(config["retort_quantization"].is_object());
        let reloaded = Classifier::load(out.path(), 64).unwrap();
        assert!(reloaded.model.is_int8() && !original.model.is_int8());

        let mut in_memory = original.transformer("test").unwrap().clone();
        in_memory.quantize_int8().unwrap();
        let quantized = Classifier {
            model: std::sync::Arc::new(in_memory),
            ..original.clone()
        };
        assert_eq!(logits(&quantized), logits(&reloaded), "{name}");
        // Re-exporting an int8 model keeps it int8, bit for bit.
        let again = tempfile::tempdir().unwrap();
        export(&reloaded, again.path(), Precision::AsLoaded).unwrap();
        let twice = Classifier::load(again.path(), 64).unwrap();
        assert_eq!(logits(&twice), logits(&reloaded));

        // Quantisation moves the logits a little, not a lot (random 32-wide weights round
        // coarsely: a loose bound; SST-2 accuracy is the real measure, see BENCHMARKS.md).
        let (f, q) = (logits(&original), logits(&reloaded));
        let scale = f.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        let diff = max_diff(&f, &q);
        assert!(diff <= 0.1 * scale.max(1.0), "{name}: {diff} vs {scale}");
    }
}

#[test]
fn exporting_into_the_source_directory_is_refused() {
    let c = Classifier::load(&fixture("tiny-bert"), 64).unwrap();
    let err = export(&c, &fixture("tiny-bert"), Precision::AsLoaded).unwrap_err();
    assert!(err.to_string().contains("own directory"), "{err}");
}
