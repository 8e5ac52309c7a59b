//! Retort: knowledge distillation for transformer NLP models.
//!
//! The library holds everything reusable; the `retort` binary only parses arguments and calls it.
//! - [`model`]: the BERT-family encoder, heads, configs and Hugging Face checkpoints;
//! - [`text`]: tokenisation, datasets and batching;
//! - [`task`]: what a model predicts (sentence labels, word tags): data, rows, decoding, metrics;
//! - [`objective`]: loss terms and their weighted sum, what training minimises;
//! - [`train`]: run configs, the optimiser and the training loop (fine-tuning);
//! - [`compress`]: students made from a teacher (layers, pruning, fresh shapes);
//! - [`distill`]: `retort distill` and the teacher's cached logits;
//! - [`progress`]: a bar on a terminal, plain lines in a log, for long phases;
//! - [`infer`]: a loaded model + tokenizer that turns texts into probabilities;
//! - [`translate`]: a loaded translator + vocabulary that turns source lines into target lines;
//! - [`eval`]: metrics and evaluation on labelled data;
//! - [`summary`]: what `retort inspect` shows about a model;
//! - [`bench`]: whole-model latency and throughput (`retort bench`);
//! - [`report`]: teacher vs students on one page (`retort compare`);
//! - [`export`]: Hugging Face directories (f32 or int8) for deployment;
//! - [`serve`]: the HTTP server (`retort serve`), with dynamic batching and metrics.

pub mod bench;
pub mod compress;
pub mod distill;
pub mod error;
pub mod eval;
pub mod export;
pub mod fingerprint;
pub mod infer;
pub mod model;
pub mod objective;
pub mod progress;
pub mod report;
pub mod serve;
pub mod summary;
pub mod task;
pub mod text;
pub mod train;
pub mod translate;

pub use error::{Error, Result};
pub use infer::Classifier;
