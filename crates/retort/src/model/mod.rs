//! Model definitions: the [`Model`] trait that training, distillation and inference work
//! through; its transformer implementation (the BERT-family encoder, its heads, kernels
//! and Hugging Face checkpoints), and the small BiLSTM and CNN students.

pub mod bilstm;
pub mod checkpoint;
pub mod cnn;
pub mod compact;
pub mod config;
pub mod encoder;
pub mod generate;
pub mod heads;
pub mod int8;
pub mod kernels;
pub mod layers;
pub mod params;
pub mod quantized;
pub mod seq2seq;
pub mod transformer;

pub use bilstm::BiLstm;
pub use checkpoint::load_model;
pub use cnn::Cnn;
pub use config::{
    Architecture, CompactShape, HeadKind, ModelConfig, RowAxis, SUPPORTED_MODEL_TYPES,
};
pub use encoder::{EncoderInput, EncoderOutput, Outputs, WordRows};
pub use layers::Pass;
pub use params::Params;
pub use transformer::{LoadReport, ModelOutput, Transformer};

/// What the trainer, the objective, the teacher cache and batched inference need from a
/// model, whatever its architecture. The transformer encoder with a task head
/// ([`Transformer`]) is one implementation; a student of another kind (a BiLSTM, a CNN)
/// implements this trait and trains with no change to the trainer or the objective
/// ([`BiLstm`], [`Cnn`]).
pub trait Model: Send + Sync + std::fmt::Debug {
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

    /// Parameters in total and without the embedding tables (every model names its tables
    /// `...embeddings...`).
    fn parameter_counts(&self) -> (usize, usize) {
        let total = self.params().count();
        let embeddings = self.params().count_where(|n| n.contains("embeddings."));
        (total, total - embeddings)
    }

    /// Whether its linear maps run in int8 (only a quantised transformer's do).
    fn is_int8(&self) -> bool {
        false
    }

    /// The transformer, for what only a transformer supports: Hugging Face export and int8,
    /// students made of its layers, its embedding space for augmentation.
    fn as_transformer(&self) -> Option<&Transformer> {
        None
    }

    /// The translator, for what only an encoder–decoder does: decoding.
    fn as_seq2seq(&self) -> Option<&seq2seq::Seq2Seq> {
        None
    }

    /// A copy of the model prepared for inference only, its weights packed for Retort's
    /// product kernels (`kernels::PackedWeight`: faster passes, a second copy of those
    /// weights), or `None` for a model that has no such form. The copy must never be
    /// trained: its packed weights would go stale.
    fn packed_for_inference(&self) -> crate::error::Result<Option<Arc<dyn Model>>> {
        Ok(None)
    }
}

/// A shared or boxed model is a model: `&Arc<dyn Model>` passes where `&dyn Model` is asked.
macro_rules! forward_model {
    ($wrapper:ident) => {
        impl<M: Model + ?Sized> Model for $wrapper<M> {
            fn config(&self) -> &ModelConfig {
                (**self).config()
            }
            fn params(&self) -> &Params {
                (**self).params()
            }
            fn forward(
                &self,
                input: &EncoderInput,
                pass: Pass,
                outputs: Outputs,
            ) -> crate::error::Result<ModelOutput> {
                (**self).forward(input, pass, outputs)
            }
            fn save(&self, dir: &std::path::Path) -> crate::error::Result<()> {
                (**self).save(dir)
            }
            fn parameter_counts(&self) -> (usize, usize) {
                (**self).parameter_counts()
            }
            fn is_int8(&self) -> bool {
                (**self).is_int8()
            }
            fn as_transformer(&self) -> Option<&Transformer> {
                (**self).as_transformer()
            }
            fn as_seq2seq(&self) -> Option<&seq2seq::Seq2Seq> {
                (**self).as_seq2seq()
            }
            fn packed_for_inference(&self) -> crate::error::Result<Option<Arc<dyn Model>>> {
                (**self).packed_for_inference()
            }
        }
    };
}

use std::sync::Arc;
forward_model!(Arc);
forward_model!(Box);
