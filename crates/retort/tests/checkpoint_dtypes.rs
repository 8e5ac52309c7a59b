//! The dtypes a checkpoint may store its parameters in: F32, F16 and BF16 load as f32 (the
//! logits of the F32 checkpoint, to half precision); an integer dtype of the right byte count
//! is refused, naming the tensor, instead of being read as numbers.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::fixture;
use retort::Classifier;

const TEXTS: &[&str] = &["a surprisingly good film", "bad", "the plot was flat"];

/// A copy of tiny-bert in a temporary directory whose tensors are `convert`ed.
fn tiny_bert_with(convert: impl Fn(&str, Tensor) -> Tensor) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("tiny-bert");
    for entry in std::fs::read_dir(&source).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let weights = source.join("model.safetensors");
    let tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&weights, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            let t = convert(&name, t);
            (name, t)
        })
        .collect();
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

fn logits(dir: &Path) -> Vec<Vec<f32>> {
    Classifier::load(dir, 64).unwrap().logits(TEXTS, 2).unwrap()
}

#[test]
fn f16_and_bf16_checkpoints_load_as_f32() {
    let expected = logits(&fixture("tiny-bert"));
    let scale = expected.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
    for dtype in [DType::F16, DType::BF16] {
        let dir = tiny_bert_with(|_, t| t.to_dtype(dtype).unwrap());
        let got = logits(dir.path());
        let diff = got
            .iter()
            .flatten()
            .zip(expected.iter().flatten())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // BF16 keeps 8 bits of mantissa: a few percent after three layers.
        assert!(
            diff <= 0.05 * scale + 1e-3,
            "{dtype:?}: logits differ by {diff}"
        );
    }
}

#[test]
fn an_integer_dtype_is_refused_naming_the_tensor() {
    for (dtype, name) in [
        (DType::I64, "I64"),
        (DType::U32, "U32"),
        (DType::F64, "F64"),
    ] {
        let dir = tiny_bert_with(|n, t| match n {
            "bert.encoder.layer.0.attention.self.query.bias" => t.to_dtype(dtype).unwrap(),
            _ => t,
        });
        let err = Classifier::load(dir.path(), 64).err().unwrap().to_string();
        assert!(
            err.contains(&format!(
                "tensor bert.encoder.layer.0.attention.self.query.bias is stored as {name}"
            )),
            "{err}"
        );
    }
}
