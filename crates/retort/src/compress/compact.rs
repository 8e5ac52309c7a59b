//! BiLSTM and CNN students for a transformer teacher: they read the teacher's tokenizer, keep
//! its labels, and start from its word embeddings (Tang et al. 2019 start from word2vec; the
//! teacher's table is the pretrained word geometry at hand).

use std::collections::BTreeMap;

use candle_core::Tensor;

use super::student::principal_directions;
use crate::error::{Error, Result};
use crate::model::config::Activation;
use crate::model::{Architecture, BiLstm, Cnn, CompactShape, Model, ModelConfig, Transformer};

/// The shape of a compact student; see [`crate::train::config::BiLstmStudent`] and
/// [`crate::train::config::CnnStudent`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompactStudent {
    /// [`Architecture::BiLstm`] or [`Architecture::Cnn`].
    pub architecture: Architecture,
    /// LSTM units per direction, or filters per kernel width.
    pub units: usize,
    /// The CNN's kernel widths (empty for a BiLSTM).
    pub kernel_sizes: Vec<usize>,
    pub mlp_size: usize,
    /// 0: the teacher's hidden size.
    pub embedding_size: usize,
    pub dropout: f32,
}

/// A fresh BiLSTM or CNN for `teacher`'s task, its word table the teacher's (projected onto
/// the table's top principal directions when `embedding_size` is narrower).
pub fn compact_student(
    teacher: &Transformer,
    shape: &CompactStudent,
    seed: u64,
) -> Result<Box<dyn Model>> {
    let t = &teacher.config;
    let width = match shape.embedding_size {
        0 => t.hidden_size,
        w => w,
    };
    if width > t.hidden_size {
        return Err(Error::Invalid(format!(
            "student.embedding_size {width} is wider than the teacher's embeddings ({}): the student's start as the teacher's, so choose at most {}",
            t.hidden_size, t.hidden_size
        )));
    }
    let compact = CompactShape {
        embedding_size: width,
        units: shape.units,
        kernel_sizes: shape.kernel_sizes.clone(),
    };
    let config = ModelConfig {
        architecture: shape.architecture,
        hidden_size: compact.features(shape.architecture),
        num_layers: 1,
        num_heads: 1,
        intermediate_size: shape.mlp_size,
        type_vocab_size: 0,
        activation: Activation::Relu,
        hidden_dropout: shape.dropout,
        attention_dropout: 0.0,
        classifier_dropout: shape.dropout,
        pruned_heads: BTreeMap::new(),
        compact: Some(compact),
        // A student's own thresholds are chosen on dev when it is trained.
        label_thresholds: Vec::new(),
        ..t.clone()
    };
    config
        .validate()
        .map_err(|e| Error::Invalid(format!("student: {e}")))?;
    let table = word_table(&teacher.encoder.embeddings.word, width)?;
    Ok(match shape.architecture {
        Architecture::Cnn => Box::new(Cnn::fresh(config, Some(&table), seed)?),
        _ => Box::new(BiLstm::fresh(config, Some(&table), seed)?),
    })
}

/// The teacher's word table at `width` columns: itself, or its rows (mean removed) projected
/// onto its top `width` principal directions.
fn word_table(table: &Tensor, width: usize) -> Result<Tensor> {
    if width == table.dim(1)? {
        return Ok(table.detach());
    }
    let projection = principal_directions(table, width, 0)?;
    Ok(table
        .broadcast_sub(&table.mean_keepdim(0)?)?
        .matmul(&projection)?)
}
