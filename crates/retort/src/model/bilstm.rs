//! The BiLSTM student of Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT
//! into Simple Neural Networks"): word embeddings, one bidirectional LSTM layer, max-pooling
//! of its states over time, a ReLU layer and the classifier.
//!
//! The LSTM is PyTorch's `nn.LSTM` (gates in the order input, forget, cell, output; two bias
//! vectors; `weight_ih_l0`, `weight_hh_l0`, ... and `_reverse` for the backward direction),
//! written with differentiable candle ops, one time step after another.

use candle_core::{DType, Device, Tensor};

use super::compact::{self, mask3, PooledHead};
use super::config::ModelConfig;
use super::encoder::{look_up_words, EncoderInput, Outputs};
use super::kernels;
use super::layers::{dropout, Pass};
use super::params::{Init, ParamBuilder, Params};
use super::transformer::{LoadReport, ModelOutput};
use crate::error::Result;

/// One direction of the LSTM.
#[derive(Debug, Clone)]
pub struct LstmDirection {
    /// `[4 × units, embedding]`: input → gates.
    pub weight_ih: Tensor,
    /// `[4 × units, units]`: previous state → gates.
    pub weight_hh: Tensor,
    pub bias_ih: Tensor,
    pub bias_hh: Tensor,
    /// Reads the sequence from its last real token back to the first.
    pub reverse: bool,
}

impl LstmDirection {
    fn new(b: &mut ParamBuilder, input: usize, units: usize, reverse: bool) -> Result<Self> {
        let suffix = if reverse { "_reverse" } else { "" };
        // PyTorch's U(−1/√units, 1/√units), as a normal of the same spread.
        let init = Init::Normal(compact::fan_in_std(units));
        let mut get =
            |name: &str, shape: &[usize]| b.get(&format!("lstm.{name}_l0{suffix}"), shape, init);
        Ok(Self {
            weight_ih: get("weight_ih", &[4 * units, input])?,
            weight_hh: get("weight_hh", &[4 * units, units])?,
            bias_ih: get("bias_ih", &[4 * units])?,
            bias_hh: get("bias_hh", &[4 * units])?,
            reverse,
        })
    }

    fn detached(&self) -> Self {
        Self {
            weight_ih: self.weight_ih.detach(),
            weight_hh: self.weight_hh.detach(),
            bias_ih: self.bias_ih.detach(),
            bias_hh: self.bias_hh.detach(),
            reverse: self.reverse,
        }
    }

    /// The state after every token: `x` `[batch, seq, embedding]`, `mask` `[batch, seq]` →
    /// `[batch, seq, units]`. A padded step leaves the state as it was, so the backward
    /// direction starts at each row's own last token (rows are padded on the right).
    fn run(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq, _) = x.dims3()?;
        let units = self.weight_hh.dim(1)?;
        // The input's share of every gate at every step, in one product.
        let bias = (&self.bias_ih + &self.bias_hh)?;
        let from_input = kernels::linear(x, &self.weight_ih, &bias)?;
        let recurrent = self.weight_hh.t()?;
        let mut h = Tensor::zeros((batch, units), DType::F32, &Device::Cpu)?;
        let mut c = h.clone();
        let mut states = vec![None; seq];
        for t in self.steps(seq) {
            let gates = (from_input.narrow(1, t, 1)?.squeeze(1)? + h.matmul(&recurrent)?)?;
            let gate = |i: usize| gates.narrow(1, i * units, units);
            let (input_gate, forget, cell, output) = (
                sigmoid(&gate(0)?)?,
                sigmoid(&gate(1)?)?,
                gate(2)?.tanh()?,
                sigmoid(&gate(3)?)?,
            );
            let c_new = ((forget * &c)? + (input_gate * cell)?)?;
            let h_new = (output * c_new.tanh()?)?;
            let real = mask.narrow(1, t, 1)?;
            c = keep_where_padded(&real, &c_new, &c)?;
            h = keep_where_padded(&real, &h_new, &h)?;
            states[t] = Some(h.clone());
        }
        let states: Vec<Tensor> = states.into_iter().flatten().collect();
        Ok(Tensor::stack(&states, 1)?)
    }

    /// The time steps in the order this direction reads them.
    fn steps(&self, seq: usize) -> Vec<usize> {
        match self.reverse {
            true => (0..seq).rev().collect(),
            false => (0..seq).collect(),
        }
    }

    /// [`Self::run`] for inference (detached weights, nothing recorded): one product per step
    /// for the recurrent share of the gates, then the cell update in one loop, where the
    /// autograd form takes some twenty small ops per step.
    fn run_inference(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq, _) = x.dims3()?;
        let units = self.weight_hh.dim(1)?;
        let bias = (&self.bias_ih + &self.bias_hh)?;
        let from_input = kernels::linear(x, &self.weight_ih, &bias)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let real = mask.to_vec2::<f32>()?;
        // The recurrent products have no bias: the input's share already holds both.
        let no_bias = Tensor::zeros(4 * units, DType::F32, &Device::Cpu)?;
        // The transposed copy only the matrix-product path reads, made once per pass.
        let recurrent = match batch <= SMALL_BATCH {
            true => None,
            false => Some(self.weight_hh.t()?.contiguous()?),
        };
        let mut h = vec![0f32; batch * units];
        let mut c = vec![0f32; batch * units];
        let mut states = vec![0f32; batch * seq * units];
        for t in self.steps(seq) {
            let h_tensor = Tensor::from_slice(&h, (batch, units), &Device::Cpu)?;
            let gates = match &recurrent {
                None => kernels::linear(&h_tensor, &self.weight_hh, &no_bias)?,
                Some(recurrent) => h_tensor.matmul(recurrent)?,
            };
            let gates = gates.flatten_all()?.to_vec1::<f32>()?;
            for b in 0..batch {
                let g = &gates[b * 4 * units..(b + 1) * 4 * units];
                let xg = &from_input[(b * seq + t) * 4 * units..(b * seq + t + 1) * 4 * units];
                let (hb, cb) = (
                    &mut h[b * units..(b + 1) * units],
                    &mut c[b * units..(b + 1) * units],
                );
                if real[b][t] > 0.0 {
                    for j in 0..units {
                        let pre = |k: usize| g[k * units + j] + xg[k * units + j];
                        let (i, f, cell, o) = (
                            logistic(pre(0)),
                            logistic(pre(1)),
                            pre(2).tanh(),
                            logistic(pre(3)),
                        );
                        cb[j] = f * cb[j] + i * cell;
                        hb[j] = o * cb[j].tanh();
                    }
                }
                let at = (b * seq + t) * units;
                states[at..at + units].copy_from_slice(hb);
            }
        }
        Ok(Tensor::from_vec(states, (batch, seq, units), &Device::Cpu)?)
    }
}

/// Up to this many rows the recurrent product runs on the linear kernel; above, on candle's
/// matrix product (gemm), which packs the weights and wins on taller inputs.
const SMALL_BATCH: usize = 4;

fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The logistic function through `tanh`, which records a backward pass
/// (σ(x) = (1 + tanh(x/2)) / 2).
fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(x.affine(0.5, 0.0)?.tanh()?.affine(0.5, 0.5)?)
}

/// `new` where `real` (`[batch, 1]`) is 1, `old` where it is 0.
fn keep_where_padded(real: &Tensor, new: &Tensor, old: &Tensor) -> Result<Tensor> {
    Ok((old + real.broadcast_mul(&(new - old)?)?)?)
}

/// The BiLSTM student.
#[derive(Debug, Clone)]
pub struct BiLstm {
    pub config: ModelConfig,
    /// `[vocab, embedding_size]`.
    pub embeddings: Tensor,
    pub forward_lstm: LstmDirection,
    pub backward_lstm: LstmDirection,
    pub head: PooledHead,
    pub params: Params,
}

impl BiLstm {
    /// Builds the model through `b` (fresh, or from a checkpoint).
    pub fn build(config: ModelConfig, b: &mut ParamBuilder) -> Result<Self> {
        let shape = config
            .compact
            .clone()
            .expect("a retort-bilstm config has a shape");
        let embeddings = compact::embeddings(b, &config, shape.embedding_size)?;
        let forward_lstm = LstmDirection::new(b, shape.embedding_size, shape.units, false)?;
        let backward_lstm = LstmDirection::new(b, shape.embedding_size, shape.units, true)?;
        let head = PooledHead::new(b, &config)?;
        Ok(Self {
            config,
            embeddings,
            forward_lstm,
            backward_lstm,
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
            forward_lstm: self.forward_lstm.detached(),
            backward_lstm: self.backward_lstm.detached(),
            head: self.head.detached(),
            ..self.clone()
        }
    }

    fn run(&self, input: &EncoderInput, pass: Pass) -> Result<ModelOutput> {
        let mask = &input.attention_mask;
        let (words, word_rows) = look_up_words(&self.embeddings, input, pass)?;
        let x = dropout(&words, self.config.hidden_dropout, pass)?;
        let (forward, backward) = match pass.grad {
            true => (
                self.forward_lstm.run(&x, mask)?,
                self.backward_lstm.run(&x, mask)?,
            ),
            // The directions are independent: side by side on two threads where a pass may
            // fork (batch-1 latency); otherwise one after the other.
            false if kernels::may_fork() => {
                let (f, b) = rayon::join(
                    || self.forward_lstm.run_inference(&x, mask),
                    || self.backward_lstm.run_inference(&x, mask),
                );
                (f?, b?)
            }
            false => (
                self.forward_lstm.run_inference(&x, mask)?,
                self.backward_lstm.run_inference(&x, mask)?,
            ),
        };
        let states = Tensor::cat(&[forward, backward], 2)?;
        // States lie in (−1, 1): padding pushed to below −1 never wins the max.
        let padding = mask3(mask)?.affine(2.0, -2.0)?;
        let pooled = states.broadcast_add(&padding)?.max(1)?;
        let logits = self.head.forward(&pooled, pass)?;
        Ok(compact::output(logits, states, word_rows))
    }
}

impl super::Model for BiLstm {
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
