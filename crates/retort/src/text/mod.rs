//! Text in: tokenisation (single texts, sentence pairs, question–context windows), datasets
//! and batches.

pub mod augment;
pub mod batch;
pub mod dataset;
pub mod tokenizer;
pub mod windows;

pub use dataset::{Dataset, Example};
pub use tokenizer::{Encoded, TextTokenizer, WordEncoded, DEFAULT_MAX_LEN};
