//! Text in: tokenisation, datasets and batches.

pub mod augment;
pub mod batch;
pub mod dataset;
pub mod tokenizer;

pub use dataset::{Dataset, Example};
pub use tokenizer::{Encoded, TextTokenizer, WordEncoded, DEFAULT_MAX_LEN};
