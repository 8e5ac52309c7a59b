//! What the small non-transformer students share (the BiLSTM of `bilstm.rs`, the CNN of
//! `cnn.rs`): a word table, a ReLU layer and classifier over pooled features, inference split
//! over the threads, and their checkpoint (`config.json` + `model.safetensors`).
//!
//! Their tensors are named as PyTorch modules would name them (`embeddings.weight`,
//! `lstm.weight_ih_l0`, `convs.0.weight`, `mlp.weight`, `classifier.weight`), in PyTorch's
//! layouts, so the weights load into the equivalent `nn.Module` as they are.

use candle_core::{Tensor, D};
use rayon::prelude::*;

use super::config::ModelConfig;
use super::encoder::EncoderInput;
use super::kernels;
use super::layers::{dropout, Linear, Pass};
use super::params::{Init, ParamBuilder, Params, TensorSource};
use super::transformer::{split_batch, LoadReport, ModelOutput};
use crate::error::{Error, Result};

/// The word table's name.
pub const EMBEDDINGS: &str = "embeddings.weight";

/// Features → ReLU layer → classifier: `[batch, features]` → `[batch, labels]`.
#[derive(Debug, Clone)]
pub struct PooledHead {
    pub mlp: Linear,
    pub classifier: Linear,
    /// Dropout on the features, and before the classifier.
    pub feature_dropout: f32,
    pub classifier_dropout: f32,
}

impl PooledHead {
    pub fn new(b: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        Ok(Self {
            mlp: uniform_linear(b, "mlp", cfg.hidden_size, cfg.intermediate_size)?,
            classifier: uniform_linear(b, "classifier", cfg.intermediate_size, cfg.num_labels())?,
            feature_dropout: cfg.hidden_dropout,
            classifier_dropout: cfg.classifier_dropout,
        })
    }

    pub fn detached(&self) -> Self {
        Self {
            mlp: self.mlp.detached(),
            classifier: self.classifier.detached(),
            ..self.clone()
        }
    }

    pub fn forward(&self, features: &Tensor, pass: Pass) -> Result<Tensor> {
        let x = dropout(features, self.feature_dropout, pass)?;
        let h = self.mlp.forward(&x)?.relu()?;
        let h = dropout(&h, self.classifier_dropout, pass)?;
        self.classifier.forward(&h)
    }
}

/// A linear map initialised as PyTorch's `nn.Linear` is (std 1/√(3·in), biases zero): these
/// layers train from scratch, where BERT's 0.02 would start them nearly silent.
fn uniform_linear(
    b: &mut ParamBuilder,
    name: &str,
    in_dim: usize,
    out_dim: usize,
) -> Result<Linear> {
    Ok(Linear::new(
        b.get(
            &format!("{name}.weight"),
            &[out_dim, in_dim],
            Init::Normal(fan_in_std(in_dim)),
        )?,
        b.get(&format!("{name}.bias"), &[out_dim], Init::Zeros)?,
    ))
}

/// The standard deviation of PyTorch's default uniform initialisation, U(−1/√n, 1/√n).
pub fn fan_in_std(n: usize) -> f64 {
    1.0 / (3.0 * n as f64).sqrt()
}

/// The word table: `[vocab, embedding_size]`.
pub fn embeddings(b: &mut ParamBuilder, cfg: &ModelConfig, width: usize) -> Result<Tensor> {
    b.get(EMBEDDINGS, &[cfg.vocab_size, width], Init::Normal(0.1))
}

/// `[batch, seq]` mask → `[batch, seq, 1]`, for broadcasting over a width.
pub fn mask3(mask: &Tensor) -> Result<Tensor> {
    Ok(mask.unsqueeze(D::Minus1)?)
}

/// The forward pass of a model whose sequences are independent: with gradients, `run` on the
/// model itself; without, on `detached` (parameters that record no backward pass), the batch
/// split over the threads as the transformer's inference is.
pub fn forward_parts<M: Sync>(
    model: &M,
    detached: impl FnOnce() -> M,
    input: &EncoderInput,
    pass: Pass,
    run: impl Fn(&M, &EncoderInput, Pass) -> Result<ModelOutput> + Sync,
) -> Result<ModelOutput> {
    if pass.grad {
        return run(model, input, pass);
    }
    let model = detached();
    let threads = match kernels::may_fork() {
        true => rayon::current_num_threads(),
        false => 1,
    };
    let parts = split_batch(input, threads)?;
    if parts.len() == 1 {
        return run(&model, input, pass);
    }
    let outs = parts
        .par_iter()
        .map(|part| run(&model, part, pass))
        .collect::<Result<Vec<_>>>()?;
    ModelOutput::concat(outs)
}

/// Builds a compact model through `b`; a checkpoint must hold every tensor (these models
/// are trained whole, so a missing one means a file of another model).
pub fn load<M>(
    config: ModelConfig,
    mut b: ParamBuilder,
    build: impl FnOnce(ModelConfig, &mut ParamBuilder) -> Result<M>,
) -> Result<(M, LoadReport)> {
    let name = config.architecture.model_type();
    let model = build(config, &mut b)?;
    if !b.missing().is_empty() {
        let shown: Vec<&str> = b.missing().iter().take(5).map(String::as_str).collect();
        return Err(Error::Checkpoint {
            path: b.source_path().map(|p| p.to_path_buf()).unwrap_or_default(),
            message: format!(
                "{} tensor(s) missing, e.g. {} — is this a {name} checkpoint?",
                b.missing().len(),
                shown.join(", ")
            ),
        });
    }
    let report = LoadReport {
        fresh_head: false,
        unused: b.unused(),
    };
    Ok((model, report))
}

/// A fresh compact model whose word table is `table` (the teacher's, when the widths agree).
pub fn fresh_with_table<M>(
    config: ModelConfig,
    table: Option<&Tensor>,
    seed: u64,
    build: impl FnOnce(ModelConfig, &mut ParamBuilder) -> Result<M>,
) -> Result<M> {
    let mut b = match table {
        Some(t) => {
            let tensors = [(EMBEDDINGS.to_string(), t.detach())].into_iter().collect();
            ParamBuilder::from_source(
                TensorSource::from_tensors("(teacher embeddings)", tensors),
                seed,
            )
        }
        None => ParamBuilder::fresh(seed),
    };
    build(config, &mut b)
}

/// Writes `config.json` and `model.safetensors`.
pub fn save(config: &ModelConfig, params: &Params, dir: &std::path::Path) -> Result<()> {
    use super::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
    std::fs::create_dir_all(dir).map_err(|e| Error::create(dir, e, "output directory"))?;
    let text = serde_json::to_string_pretty(&config.to_hf_json()).expect("JSON value serialises");
    let path = dir.join(CONFIG_FILE);
    std::fs::write(&path, text + "\n").map_err(|e| Error::create(&path, e, "config.json"))?;
    params.save_safetensors(&dir.join(WEIGHTS_FILE))
}

/// The output of a model with no per-layer states: logits, and `features` as its last
/// hidden state.
pub fn output(logits: Tensor, features: Tensor, word_rows: Option<super::WordRows>) -> ModelOutput {
    ModelOutput {
        logits,
        hidden_states: Vec::new(),
        attentions: Vec::new(),
        last_hidden_state: features,
        word_rows,
    }
}
