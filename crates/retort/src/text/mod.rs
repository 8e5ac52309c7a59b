//! Text in: tokenisation (single texts, sentence pairs, question–context windows), datasets,
//! batches, and Python's string semantics for the metrics that official scripts define.

pub mod augment;
pub mod batch;
pub mod dataset;
pub mod lines;
pub mod python_str;
pub mod subword;
pub mod tokenizer;
pub mod windows;

pub use dataset::{Dataset, Example};
pub use tokenizer::{Encoded, TextTokenizer, WordEncoded, DEFAULT_MAX_LEN};
