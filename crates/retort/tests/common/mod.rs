//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use retort::task::Task;
use retort::train::config::{DistillConfig, StudentSection, TeacherLayersStudent, TrainConfig};

/// `tests/fixtures/NAME` at the repository root.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The real all-MiniLM-L6-v2 (`scripts/fetch-models.sh`): `$RETORT_MINILM`, or `models/` at
/// the repository root.
pub fn minilm_dir() -> PathBuf {
    let dir = std::env::var_os("RETORT_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").exists(),
        "{} has no model.safetensors: run scripts/fetch-models.sh first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// The tensors of a fixture's `expected.safetensors`.
pub fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("expected.safetensors"), &Device::Cpu)
        .unwrap()
}

/// The fixture's test sentences.
pub fn sentences(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixture(name).join("sentences.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The gradient of the scalar `loss` with respect to the rank-3 `x` (a `Var`'s tensor).
pub fn gradient3(loss: &Tensor, x: &Tensor) -> Vec<Vec<Vec<f32>>> {
    loss.backward()
        .unwrap()
        .get(x)
        .expect("no gradient reached the tensor")
        .to_vec3::<f32>()
        .unwrap()
}

/// Standard-normal values from a fixed seed: `Tensor::randn` on the CPU draws from an unseeded
/// generator, which makes a test's outcome change from run to run.
pub fn seeded_normal(dims: &[usize], seed: u64) -> Tensor {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = dims.iter().product::<usize>();
    let values: Vec<f32> = (0..n)
        .map(|_| rand_distr::StandardNormal.sample(&mut rng))
        .collect();
    Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
}

/// Max |a - b| over all elements (shapes must agree).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The loss after `logits[at]` is set to `value` (the others unchanged).
pub fn loss_with(
    logits: &Tensor,
    at: (usize, usize, usize),
    value: impl Fn(f32) -> f32,
    loss_of: impl Fn(&Tensor) -> Tensor,
) -> f32 {
    let mut v = logits.to_vec3::<f32>().unwrap();
    v[at.0][at.1][at.2] = value(v[at.0][at.1][at.2]);
    loss_of(&Tensor::new(v, logits.device()).unwrap())
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts that a forward difference of `loss_of` at `logits[at]` agrees with `grad`, the
/// autograd gradient there, to 2e-3.
pub fn assert_finite_difference(
    logits: &Tensor,
    at: (usize, usize, usize),
    grad: f32,
    loss_of: impl Fn(&Tensor) -> Tensor,
) {
    let eps = 1e-2f32;
    let a = loss_with(logits, at, |x| x, &loss_of);
    let b = loss_with(logits, at, |x| x + eps, &loss_of);
    let numeric = (b - a) / eps;
    assert!((numeric - grad).abs() < 2e-3, "{at:?}: {numeric} vs {grad}");
}

/// The gradient of `var` in `grads`, flattened.
pub fn grad_values(grads: &candle_core::backprop::GradStore, var: &candle_core::Var) -> Vec<f32> {
    grads
        .get(var.as_tensor())
        .expect("a gradient")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Central difference of `f` w.r.t. one scalar of `var` (set back afterwards): what the
/// autograd checks compare each gradient with.
pub fn finite_difference(
    var: &candle_core::Var,
    index: usize,
    eps: f32,
    f: impl Fn() -> f64,
) -> f64 {
    let original = var.as_tensor().copy().unwrap();
    let values = original.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let at = |delta: f32| {
        let mut v = values.clone();
        v[index] += delta;
        var.set(&Tensor::from_vec(v, original.shape(), &Device::Cpu).unwrap())
            .unwrap();
        f()
    };
    let (plus, minus) = (at(eps), at(-eps));
    var.set(&original).unwrap();
    (plus - minus) / (2.0 * eps as f64)
}

/// The first `n` sentences of SST-2's dev set (`$RETORT_SST2_DEV`, or
/// `../shared/data/sst2/dev.tsv` beside the repository), as `scripts/parity_real.py` reads
/// them: the first column after the header.
pub fn sst2_dev_sentences(n: usize) -> Vec<String> {
    let path = std::env::var_os("RETORT_SST2_DEV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/sst2/dev.tsv")
        });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set RETORT_SST2_DEV)", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .take(n)
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect()
}

/// Max |got − want| over the real tokens (`mask` `[batch, seq]`, 1 for real) of two
/// `[batch, seq, hidden]` states: what the real-model parity checks report.
pub fn max_diff_at_real_tokens(got: &Tensor, want: &Tensor, mask: &Tensor) -> f32 {
    let mask = mask.unsqueeze(candle_core::D::Minus1).unwrap();
    (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .broadcast_mul(&mask)
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// One backward pass of `loss` reaches every parameter in `params` (a nonzero gradient), and
/// one AdamW step changes them all: the gradient-flow check of every model kind.
pub fn assert_every_tensor_trains(
    name: &str,
    params: &retort::model::Params,
    loss: impl Fn() -> Tensor,
) {
    use candle_nn::Optimizer;
    let before: Vec<(String, Tensor)> = params
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_tensor().copy().unwrap()))
        .collect();
    let grads = loss().backward().unwrap();
    let without: Vec<&str> = params
        .iter()
        .filter(|(_, v)| {
            grads.get(v.as_tensor()).is_none_or(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    == 0.0
            })
        })
        .map(|(n, _)| n)
        .collect();
    assert!(
        without.is_empty(),
        "{name}: no gradient reaches {without:?}"
    );
    let settings = candle_nn::ParamsAdamW {
        lr: 1e-3,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(params.vars(), settings).unwrap();
    opt.step(&grads).unwrap();
    let unchanged: Vec<&str> = before
        .iter()
        .filter(|(n, t)| max_abs_diff(params.get(n).unwrap().as_tensor(), t) == 0.0)
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(
        unchanged.is_empty(),
        "{name}: one AdamW step left {unchanged:?} unchanged"
    );
}

/// The words of `write_data`'s sentences (all in the fixtures' vocabulary).
pub const WORDS: [&str; 12] = [
    "good", "music", "the", "ending", "plot", "flat", "story", "quiet", "film", "boring", "was",
    "not",
];

/// A small labelled TSV in the fixtures' vocabulary; the label follows the first word.
pub fn write_data(dir: &Path, name: &str, n: usize) -> PathBuf {
    let labels = ["negative", "neutral", "positive"];
    let mut text = String::from("sentence\tlabel\n");
    for i in 0..n {
        let words: Vec<&str> = (0..(3 + i % 7))
            .map(|j| WORDS[(i * 5 + j * 3) % WORDS.len()])
            .collect();
        text.push_str(&format!(
            "{}\t{}\n",
            words.join(" "),
            labels[(i * 5) % WORDS.len() % 3]
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A distillation of the tiny BERT into its layers 0 and 2 on 64 sentences (16 for dev), 3 steps.
pub fn tiny_distill_config(dir: &Path) -> DistillConfig {
    let mut c = DistillConfig::default();
    c.teacher.dir = fixture("tiny-bert");
    c.teacher.max_len = 32;
    c.student = StudentSection::TeacherLayers(TeacherLayersStudent {
        teacher_layers: vec![0, 2],
        ..TeacherLayersStudent::default()
    });
    c.data.train = write_data(dir, "train.tsv", 64);
    c.data.dev = write_data(dir, "dev.tsv", 16);
    c.distill.cache_dir = dir.join("cache");
    c.train.batch_size = 8;
    c.train.max_steps = 3;
    c.train.eval_every = 3;
    c
}

/// The tiny BERT teacher, a student of its `layers`, and a batch of three of its sentences
/// (labels `labels`) in its tokens.
pub fn tiny_pair(
    layers: &[usize],
    labels: Vec<Option<usize>>,
) -> (
    retort::Classifier,
    Box<dyn retort::model::Model>,
    retort::objective::TrainBatch,
) {
    let teacher = retort::Classifier::load(&fixture("tiny-bert"), 32).unwrap();
    let config = DistillConfig {
        student: StudentSection::TeacherLayers(TeacherLayersStudent {
            teacher_layers: layers.to_vec(),
            ..TeacherLayersStudent::default()
        }),
        ..DistillConfig::default()
    };
    let enc = teacher
        .tokenizer
        .encode_batch(&["good music", "the plot was flat and boring", "quiet film"])
        .unwrap();
    let student = retort::distill::run::build_student(&config, &teacher, &enc)
        .unwrap()
        .model;
    let items: Vec<_> = enc.iter().collect();
    let input = retort::text::batch::pad_batch(&items, 0).unwrap();
    let batch = retort::objective::TrainBatch::sentences(input, labels, &[0, 1, 2]);
    (teacher, student, batch)
}

/// The first `train` record of the run directory's `metrics.jsonl`.
pub fn first_train_record(run: &Path) -> serde_json::Value {
    metrics_records(run)
        .into_iter()
        .find(|l| l["event"] == "train")
        .expect("a train record")
}

/// Every record of the run's `metrics.jsonl`, in order.
pub fn metrics_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// CoNLL data for the tagger tests. Words of the fixture's vocabulary with the tag each starts; "unforgettable" is three
/// pieces (un ##forget ##table).
pub const PLACES: [&str; 2] = ["paris", "cafe"];
pub const PEOPLE: [&str; 3] = ["actor", "actress", "director"];
pub const OTHER: [&str; 8] = [
    "the",
    "film",
    "was",
    "good",
    "music",
    "unforgettable",
    "in",
    "night",
];

/// A CoNLL file of `n` sentences whose tags follow the words: places are LOC, people PER
/// (a person followed by "kid" is a two-word PER), everything else O.
pub fn write_conll(dir: &Path, name: &str, n: usize) -> PathBuf {
    let mut text = String::new();
    for i in 0..n {
        let len = 3 + i % 6;
        for j in 0..len {
            let k = i * 7 + j * 3;
            let (word, tag) = match k % 5 {
                0 => (PLACES[k % 2], "B-LOC"),
                1 => (PEOPLE[k % 3], "B-PER"),
                _ => (OTHER[k % 8], "O"),
            };
            text.push_str(&format!("{word} NN O {tag}\n"));
            if tag == "B-PER" && k % 2 == 0 {
                text.push_str("kid NN O I-PER\n");
            }
        }
        text.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn tagger_config(dir: &Path) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.init = fixture("tiny-bert");
    c.model.task = Task::TokenClassification;
    c.model.max_len = 32;
    c.data.train = write_conll(dir, "train.txt", 96);
    c.data.dev = write_conll(dir, "valid.txt", 24);
    c.train.epochs = 0;
    c.train.max_steps = 400;
    c.train.batch_size = 8;
    c.train.lr = 3e-3;
    c.train.eval_every = 100;
    c.train.log_every = 50;
    c.output.dir = dir.join("teacher");
    c
}
