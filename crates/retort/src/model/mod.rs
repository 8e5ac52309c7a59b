//! The BERT-family encoder, its heads, and Hugging Face checkpoints.

pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod encoder;
pub mod heads;
pub mod int8;
pub mod kernels;
pub mod layers;
pub mod params;
pub mod quantized;
pub mod student;

pub use classifier::{ClassifierOutput, LoadReport, SequenceClassifier};
pub use config::{Architecture, HeadKind, ModelConfig, SUPPORTED_MODEL_TYPES};
pub use encoder::{EncoderInput, EncoderOutput, Outputs, WordRows};
pub use layers::Pass;
pub use params::Params;
