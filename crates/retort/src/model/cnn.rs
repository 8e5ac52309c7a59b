//! The CNN student (Kim 2014, "Convolutional Neural Networks for Sentence Classification"):
//! word embeddings, convolutions of several widths over them, each feature map max-pooled
//! over time, then a ReLU layer and the classifier.
//!
//! A convolution is PyTorch's `nn.Conv1d` over `[batch, embedding, seq]` (weight
//! `[filters, embedding, width]`, no padding), computed as one matrix product over the
//! windows of `width` consecutive embeddings, which records a backward pass.

use candle_core::{DType, Device, Tensor};

use super::compact::{self, mask3, PooledHead};
use super::config::ModelConfig;
use super::encoder::{look_up_words, EncoderInput, Outputs};
use super::kernels;
use super::layers::{dropout, Pass};
use super::params::{Init, ParamBuilder, Params};
use super::transformer::{LoadReport, ModelOutput};
use crate::error::Result;

/// One convolution: `filters` feature maps over windows of `width` tokens.
#[derive(Debug, Clone)]
pub struct Conv {
    /// `[filters, embedding, width]` (PyTorch's `Conv1d` layout).
    pub weight: Tensor,
    pub bias: Tensor,
    pub width: usize,
}

impl Conv {
    fn new(
        b: &mut ParamBuilder,
        i: usize,
        input: usize,
        filters: usize,
        width: usize,
    ) -> Result<Self> {
        let init = Init::Normal(compact::fan_in_std(input * width));
        Ok(Self {
            weight: b.get(&format!("convs.{i}.weight"), &[filters, input, width], init)?,
            bias: b.get(&format!("convs.{i}.bias"), &[filters], Init::Zeros)?,
            width,
        })
    }

    fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            width: self.width,
        }
    }

    /// `x` `[batch, seq, embedding]` (seq ≥ width, padding zeroed), `lengths` each row's real
    /// tokens → `[batch, filters]`: the ReLU of each map, max-pooled over the windows that
    /// start at a real token and end in the row (the first window for a row shorter than
    /// the width, which then reads zeros).
    fn pooled(&self, x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (batch, seq, input) = x.dims3()?;
        let (k, positions) = (self.width, seq - self.width + 1);
        // windows[b, t, j·input + e] = x[b, t + j, e]
        let shifted: Vec<Tensor> = (0..k)
            .map(|j| x.narrow(1, j, positions))
            .collect::<candle_core::Result<_>>()?;
        let windows = Tensor::cat(&shifted, 2)?;
        // weight[f, e, j] → [f, j·input + e], the windows' order.
        let filters = self.weight.dim(0)?;
        let weight = self
            .weight
            .permute((0, 2, 1))?
            .contiguous()?
            .reshape((filters, k * input))?;
        let maps = kernels::linear(&windows, &weight, &self.bias)?.relu()?;
        let valid: Vec<f32> = lengths
            .iter()
            .flat_map(|&len| {
                let last = len.saturating_sub(k);
                (0..positions).map(move |t| if t <= last { 1.0 } else { 0.0 })
            })
            .collect();
        let valid = Tensor::from_vec(valid, (batch, positions, 1), &Device::Cpu)?;
        // After the ReLU every value is ≥ 0, so zeroed invalid windows never win the max.
        Ok(maps.broadcast_mul(&valid)?.max(1)?)
    }
}

/// The CNN student.
#[derive(Debug, Clone)]
pub struct Cnn {
    pub config: ModelConfig,
    /// `[vocab, embedding_size]`.
    pub embeddings: Tensor,
    pub convs: Vec<Conv>,
    pub head: PooledHead,
    pub params: Params,
}

impl Cnn {
    /// Builds the model through `b` (fresh, or from a checkpoint).
    pub fn build(config: ModelConfig, b: &mut ParamBuilder) -> Result<Self> {
        let shape = config
            .compact
            .clone()
            .expect("a retort-cnn config has a shape");
        let embeddings = compact::embeddings(b, &config, shape.embedding_size)?;
        let convs = shape
            .kernel_sizes
            .iter()
            .enumerate()
            .map(|(i, &w)| Conv::new(b, i, shape.embedding_size, shape.units, w))
            .collect::<Result<_>>()?;
        let head = PooledHead::new(b, &config)?;
        Ok(Self {
            config,
            embeddings,
            convs,
            head,
            params: b.take_params(),
        })
    }

    /// Loads it from a checkpoint's tensors.
    pub fn from_builder(config: ModelConfig, b: ParamBuilder) -> Result<(Self, LoadReport)> {
        compact::load(config, b, Self::build)
    }

    /// A fresh model; its word table is `table` when given (e.g. the teacher's).
    pub fn fresh(config: ModelConfig, table: Option<&Tensor>, seed: u64) -> Result<Self> {
        compact::fresh_with_table(config, table, seed, Self::build)
    }

    fn detached(&self) -> Self {
        Self {
            embeddings: self.embeddings.detach(),
            convs: self.convs.iter().map(Conv::detached).collect(),
            head: self.head.detached(),
            ..self.clone()
        }
    }

    fn run(&self, input: &EncoderInput, pass: Pass) -> Result<ModelOutput> {
        let mask = &input.attention_mask;
        let lengths: Vec<usize> = mask
            .sum(1)?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|n| n as usize)
            .collect();
        let (words, word_rows) = look_up_words(&self.embeddings, input, pass)?;
        // Padding reads as zeros, as the convolution's own zero padding would.
        let x = words.broadcast_mul(&mask3(mask)?)?;
        let x = dropout(&x, self.config.hidden_dropout, pass)?;
        let x = pad_to(&x, self.convs.iter().map(|c| c.width).max().unwrap_or(1))?;
        let pooled: Vec<Tensor> = self
            .convs
            .iter()
            .map(|c| c.pooled(&x, &lengths))
            .collect::<Result<_>>()?;
        let features = Tensor::cat(&pooled, 1)?;
        let logits = self.head.forward(&features, pass)?;
        Ok(compact::output(logits, features, word_rows))
    }
}

/// `x` `[batch, seq, width]` with zero rows appended up to `min_seq` positions.
fn pad_to(x: &Tensor, min_seq: usize) -> Result<Tensor> {
    let (batch, seq, width) = x.dims3()?;
    if seq >= min_seq {
        return Ok(x.clone());
    }
    let zeros = Tensor::zeros((batch, min_seq - seq, width), DType::F32, &Device::Cpu)?;
    Ok(Tensor::cat(&[x, &zeros], 1)?)
}

impl super::Model for Cnn {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn forward(&self, input: &EncoderInput, pass: Pass, _outputs: Outputs) -> Result<ModelOutput> {
        compact::forward_parts(self, || self.detached(), input, pass, Self::run)
    }

    fn save(&self, dir: &std::path::Path) -> Result<()> {
        compact::save(&self.config, &self.params, dir)
    }
}
