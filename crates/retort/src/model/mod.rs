//! Model definitions: the [`Model`] trait that training, distillation and inference work
//! through, and its transformer implementation (the BERT-family encoder, its heads, kernels
//! and Hugging Face checkpoints).

pub mod checkpoint;
pub mod config;
pub mod encoder;
pub mod heads;
pub mod int8;
pub mod kernels;
pub mod layers;
pub mod params;
pub mod quantized;
pub mod transformer;

pub use config::{Architecture, HeadKind, ModelConfig, RowAxis, SUPPORTED_MODEL_TYPES};
pub use encoder::{EncoderInput, EncoderOutput, Outputs, WordRows};
pub use layers::Pass;
pub use params::Params;
pub use transformer::{LoadReport, ModelOutput, Transformer};

/// What the trainer, the objective, the teacher cache and batched inference need from a
/// model, whatever its architecture. The transformer encoder with a task head
/// ([`Transformer`]) is one implementation; a student of another kind (a BiLSTM, a CNN)
/// implements this trait and trains with no change to the trainer or the objective.
pub trait Model: Send + Sync {
    /// Its `config.json`: the head (and so the task), labels, padding token, and the layer
    /// count and width that intermediate loss terms pair up.
    fn config(&self) -> &ModelConfig;

    /// Its trainable tensors by name: what the optimiser updates and a checkpoint saves.
    fn params(&self) -> &Params;

    /// Runs the model on a batch: `[batch, labels]` or `[batch, seq, labels]` logits, plus
    /// the hidden states and attention maps `outputs` asks for. A model without such
    /// internals returns none, and a term that needs them fails with an error.
    fn forward(
        &self,
        input: &EncoderInput,
        pass: Pass,
        outputs: Outputs,
    ) -> crate::error::Result<ModelOutput>;

    /// Writes a loadable checkpoint (`config.json` and the weights) into `dir`.
    fn save(&self, dir: &std::path::Path) -> crate::error::Result<()>;
}
