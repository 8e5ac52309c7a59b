//! Gradient flow: every trainable tensor receives a gradient and changes after one AdamW
//! step, and autograd agrees with finite differences.
//!
//! This guards against candle's fused ops (no backward pass) creeping into training paths,
//! which would silently freeze everything upstream of them.

mod common;

use candle_core::{Device, Tensor};
use common::fixture;
use retort::model::{EncoderInput, HeadKind, Outputs, Pass, RowAxis};
use retort::task::view::select_rows;
use retort::text::batch::pad_batch;
use retort::Classifier;

const TEXTS: [&str; 4] = [
    "Good.",
    "The music was surprisingly good!",
    "I didn't like the ending.",
    "Terrible plot, flat dialogue: not rewatchable.",
];

fn setup(name: &str) -> (Classifier, EncoderInput, Tensor) {
    let c = Classifier::load(&fixture(name), 64).unwrap();
    let enc = c.tokenizer.encode_batch(&TEXTS).unwrap();
    let items: Vec<_> = enc.iter().collect();
    let input = pad_batch(&items, 0).unwrap();
    let n = c.model.config().num_labels() as u32;
    let labels = Tensor::new(&[0u32, 1 % n, 2 % n, 1 % n], &Device::Cpu).unwrap();
    (c, input, labels)
}

fn loss(c: &Classifier, input: &EncoderInput, labels: &Tensor, pass: Pass) -> Tensor {
    let logits = c
        .model
        .forward(input, pass, Outputs::default())
        .unwrap()
        .logits;
    candle_nn::loss::cross_entropy(&logits, labels).unwrap()
}

#[test]
fn inference_passes_record_no_backward_pass() {
    for name in ["tiny-bert", "tiny-distilbert"] {
        let (c, input, _) = setup(name);
        let run = |pass| {
            let out = c.model.forward(&input, pass, Outputs::default()).unwrap();
            out.logits
        };
        let (inference, graded) = (run(Pass::INFERENCE), run(Pass::GRAD_NO_DROPOUT));
        assert!(!inference.track_op(), "{name}: inference recorded a graph");
        assert!(graded.track_op(), "{name}: a gradient pass recorded none");
        let diff = (inference - graded)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5, "{name}");
    }
}

#[test]
fn the_last_layer_at_the_first_token_gives_the_whole_layers_logits_and_gradients() {
    // A sequence head reads the [CLS] row only, so the last layer runs for that row alone
    // unless the whole last hidden state is asked for: the same logits, and the same
    // gradient in every tensor (a padded batch; MPNet with its relative-position bias).
    for name in ["tiny-bert", "tiny-distilbert", "tiny-mpnet"] {
        let (c, input, labels) = setup(name);
        let run = |outputs: Outputs| {
            let out = c
                .model
                .forward(&input, Pass::GRAD_NO_DROPOUT, outputs)
                .unwrap();
            let loss = candle_nn::loss::cross_entropy(&out.logits, &labels).unwrap();
            (out, loss.backward().unwrap())
        };
        let (first, first_grads) = run(Outputs::default());
        let (whole, whole_grads) = run(Outputs {
            last_hidden_state: true,
            ..Outputs::default()
        });
        let seq = input.input_ids.dim(1).unwrap();
        assert_eq!(first.last_hidden_state.dims()[1], 1, "{name}: one row");
        assert_eq!(whole.last_hidden_state.dims()[1], seq, "{name}: every row");
        let d = common::max_abs_diff(&first.logits, &whole.logits);
        assert!(d < 1e-5, "{name}: logits differ by {d}");
        for (tensor, var) in c.model.params().iter() {
            let (a, b) = (
                first_grads.get(var.as_tensor()),
                whole_grads.get(var.as_tensor()),
            );
            let (Some(a), Some(b)) = (a, b) else {
                panic!("{name}: {tensor} has a gradient in one pass only")
            };
            let d = common::max_abs_diff(a, b);
            assert!(d < 1e-5, "{name}: {tensor}'s gradients differ by {d}");
        }
    }
}

#[test]
fn a_batch_split_over_threads_gives_the_outputs_of_one_pass() {
    // 16 sentences: enough tokens that inference runs the batch as one part per thread.
    let c = Classifier::load(&fixture("tiny-bert"), 64).unwrap();
    let texts: Vec<&str> = TEXTS.iter().cycle().take(16).copied().collect();
    let enc = c.tokenizer.encode_batch(&texts).unwrap();
    let items: Vec<_> = enc.iter().collect();
    let input = pad_batch(&items, 0).unwrap();
    let all = Outputs {
        hidden_states: true,
        attentions: true,
        last_hidden_state: true,
    };
    let whole = c.model.forward(&input, Pass::GRAD_NO_DROPOUT, all).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let split = pool.install(|| c.model.forward(&input, Pass::INFERENCE, all).unwrap());
    let diff = |a: &Tensor, b: &Tensor| {
        assert_eq!(a.dims(), b.dims());
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar::<f32>().unwrap()
    };
    assert!(diff(&whole.logits, &split.logits) < 1e-5);
    assert!(diff(&whole.last_hidden_state, &split.last_hidden_state) < 1e-5);
    assert_eq!(whole.hidden_states.len(), split.hidden_states.len());
    assert_eq!(whole.attentions.len(), split.attentions.len());
    for (a, b) in whole.hidden_states.iter().zip(&split.hidden_states) {
        assert!(diff(a, b) < 1e-5);
    }
    for (a, b) in whole.attentions.iter().zip(&split.attentions) {
        assert!(diff(a, b) < 1e-5);
    }
}

fn every_tensor_trains(name: &str) {
    let (c, input, labels) = setup(name);
    tensors_train(name, c, |c| loss(c, &input, &labels, Pass::TRAIN));
}

/// One backward pass of `loss` reaches every parameter of `c`, and one AdamW step changes them all.
fn tensors_train(name: &str, c: Classifier, loss: impl Fn(&Classifier) -> Tensor) {
    common::assert_every_tensor_trains(name, c.model.params(), || loss(&c));
}

#[test]
fn every_bert_tensor_trains() {
    every_tensor_trains("tiny-bert");
}

#[test]
fn every_distilbert_tensor_trains() {
    every_tensor_trains("tiny-distilbert");
}

#[test]
fn every_mpnet_tensor_trains() {
    // The relative-position bias table included: its gradient comes through the attention
    // kernel's whole-bias backward pass.
    every_tensor_trains("tiny-mpnet");
}

/// The token-classification head: cross-entropy over every real token's row.
#[test]
fn every_tensor_of_a_tagger_trains() {
    for name in ["tiny-bert", "tiny-distilbert"] {
        let (c, input, _) = setup(name);
        let tags = ["O", "B-PER", "I-PER"].map(String::from);
        let mut c = c;
        c.model = std::sync::Arc::new(
            c.transformer("test")
                .unwrap()
                .clone()
                .with_head(HeadKind::TokenClassification, &tags, 3)
                .unwrap(),
        );
        let mask = input.attention_mask.to_vec2::<f32>().unwrap();
        let rows: Vec<(u32, u32)> = mask
            .iter()
            .enumerate()
            .flat_map(|(b, m)| {
                (0..m.iter().filter(|&&x| x > 0.0).count()).map(move |p| (b as u32, p as u32))
            })
            .collect();
        let labels: Vec<u32> = rows.iter().map(|(b, p)| (b + p) % 3).collect();
        let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
        tensors_train(&format!("{name} tagger"), c, |c| {
            let logits = c
                .model
                .forward(&input, Pass::TRAIN, Outputs::default())
                .unwrap()
                .logits;
            assert_eq!(logits.rank(), 3);
            let rows = select_rows(&logits, &rows, RowAxis::Labels, &input.attention_mask).unwrap();
            candle_nn::loss::cross_entropy(&rows, &labels).unwrap()
        });
    }
}

#[test]
fn every_tensor_of_a_span_head_model_trains() {
    for name in ["tiny-bert", "tiny-distilbert"] {
        let (c, input, _) = setup(name);
        let mut c = c;
        let outputs = ["start", "end"].map(String::from);
        c.model = std::sync::Arc::new(
            c.transformer("test")
                .unwrap()
                .clone()
                .with_head(HeadKind::QuestionAnswering, &outputs, 3)
                .unwrap(),
        );
        // The start and the end row of every example, each pointing at a real token.
        let batch = input.attention_mask.dim(0).unwrap() as u32;
        let rows: Vec<(u32, u32)> = (0..batch).flat_map(|b| [(b, 0), (b, 1)]).collect();
        let labels: Vec<u32> = rows.iter().map(|&(b, o)| (b + o) % 2 + 1).collect();
        let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
        tensors_train(&format!("{name} span head"), c, |c| {
            let logits = c
                .model
                .forward(&input, Pass::TRAIN, Outputs::default())
                .unwrap()
                .logits;
            assert_eq!(logits.dims()[2], 2);
            let rows =
                select_rows(&logits, &rows, RowAxis::Positions, &input.attention_mask).unwrap();
            candle_nn::loss::cross_entropy(&rows, &labels).unwrap()
        });
    }
}

#[test]
fn autograd_agrees_with_finite_differences() {
    let (c, input, labels) = setup("tiny-bert");
    let f = || {
        let l = loss(&c, &input, &labels, Pass::GRAD_NO_DROPOUT);
        l.to_scalar::<f32>().unwrap() as f64
    };
    let grads = loss(&c, &input, &labels, Pass::GRAD_NO_DROPOUT)
        .backward()
        .unwrap();
    let names = [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.1.attention.self.key.bias",
        "bert.encoder.layer.1.intermediate.dense.weight",
        "bert.encoder.layer.2.output.LayerNorm.bias",
        "bert.pooler.dense.weight",
        "classifier.weight",
    ];
    for name in names {
        let var = c.model.params().get(name).unwrap();
        let g = common::grad_values(&grads, var);
        // Check the entry with the largest gradient: a meaningful value, not rounding noise.
        let (index, &analytic) = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        let numeric = common::finite_difference(var, index, 1e-3, f);
        let err = (numeric - analytic as f64).abs();
        assert!(
            err <= 2e-3 + 2e-2 * analytic.abs() as f64,
            "{name}[{index}]: autograd {analytic} vs finite difference {numeric}"
        );
    }
}
