//! The BiLSTM student of Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT
//! into Simple Neural Networks"): word embeddings, one bidirectional LSTM layer, max-pooling
//! of its states over time, a ReLU layer and the classifier.
//!
//! The LSTM is PyTorch's `nn.LSTM` (gates in the order input, forget, cell, output; two bias
//! vectors; `weight_ih_l0`, `weight_hh_l0`, ... and `_reverse` for the backward direction),
//! written with differentiable candle ops, one time step after another.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::compact::{self, mask3, PooledHead};
use super::config::ModelConfig;
use super::encoder::{look_up_words, EncoderInput, Outputs};
use super::kernels;
use super::layers::{dropout, packed_weight, Linear, Pass, PACKED_MAX_ROWS};
use super::params::{Init, ParamBuilder, Params};
use super::transformer::{LoadReport, ModelOutput};
use crate::error::Result;

/// One direction of the LSTM.
#[derive(Debug)]
pub struct LstmDirection {
    /// `[4 × units, embedding]`: input → gates.
    pub weight_ih: Tensor,
    /// `[4 × units, units]`: previous state → gates.
    pub weight_hh: Tensor,
    pub bias_ih: Tensor,
    pub bias_hh: Tensor,
    /// Reads the sequence from its last real token back to the first.
    pub reverse: bool,
    /// The weights packed for inference ([`BiLstm::pack_for_inference`]): a frozen copy,
    /// read only by passes without gradients.
    packed: Option<Arc<PackedDirection>>,
}

/// One direction's weights as packed for inference ([`kernels::PackedWeight`]): the
/// recurrent product multiplies the same `W_hh` at every step, which the gemm crate would
/// pack again each time.
#[derive(Debug)]
struct PackedDirection {
    /// `x W_ihᵀ + (b_ih + b_hh)`, packed ([`Linear::pack`]).
    input: Linear,
    recurrent: kernels::PackedWeight,
}

/// A copy is not packed: it may be trained, and its packed weights would then be stale
/// (as [`crate::model::layers::Linear`]'s clone). [`LstmDirection::detached`] keeps them.
impl Clone for LstmDirection {
    fn clone(&self) -> Self {
        Self {
            weight_ih: self.weight_ih.clone(),
            weight_hh: self.weight_hh.clone(),
            bias_ih: self.bias_ih.clone(),
            bias_hh: self.bias_hh.clone(),
            reverse: self.reverse,
            packed: None,
        }
    }
}

/// One direction's inference result.
struct DirectionStates {
    /// `[batch, seq, units]`: the state after every token.
    states: Vec<f32>,
    /// `[batch, units]`: the states' maximum over each row's real tokens.
    pooled: Vec<f32>,
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
            packed: None,
        })
    }

    fn detached(&self) -> Self {
        Self {
            weight_ih: self.weight_ih.detach(),
            weight_hh: self.weight_hh.detach(),
            bias_ih: self.bias_ih.detach(),
            bias_hh: self.bias_hh.detach(),
            reverse: self.reverse,
            packed: self.packed.clone(),
        }
    }

    /// Packs both weight matrices for inference (see [`PackedDirection`]); nothing changes
    /// on a CPU where packing does not pay ([`kernels::packing_pays`]).
    fn pack(&mut self) -> Result<()> {
        if !kernels::packing_pays() {
            return Ok(());
        }
        // Detached: `Linear::forward` takes the packed weights only for a weight that records
        // no backward pass (the live parameter does), and a frozen copy must not follow it.
        let mut input = Linear::new(self.weight_ih.detach(), self.input_bias()?.detach());
        input.pack()?;
        self.packed = Some(Arc::new(PackedDirection {
            input,
            recurrent: packed_weight(&self.weight_hh)?,
        }));
        Ok(())
    }

    /// The state after every token: `x` `[batch, seq, embedding]`, `mask` `[batch, seq]` →
    /// `[batch, seq, units]`. A padded step leaves the state as it was, so the backward
    /// direction starts at each row's own last token (rows are padded on the right).
    fn run(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq, _) = x.dims3()?;
        let units = self.weight_hh.dim(1)?;
        // The input's share of every gate at every step, in one product.
        let from_input = kernels::linear(x, &self.weight_ih, &self.input_bias()?)?;
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

    /// [`Self::run`] for inference (detached weights, nothing recorded), on plain buffers:
    /// one product per step for the recurrent share of the gates (on the packed weights
    /// when there are), then the cell update ([`kernels::lstm_cell`]), where the autograd
    /// form takes some twenty small ops per step. `real[b][t]` is the mask. The max-pooling
    /// over real tokens is taken on the way.
    fn run_inference(&self, x: &Tensor, real: &[Vec<f32>]) -> Result<DirectionStates> {
        let (batch, seq, _) = x.dims3()?;
        let units = self.weight_hh.dim(1)?;
        let from_input = self.input_share(x)?.flatten_all()?.to_vec1::<f32>()?;
        let recurrent = Recurrent::new(self, batch)?;
        let mut h = vec![0f32; batch * units];
        let mut c = vec![0f32; batch * units];
        let mut states = vec![0f32; batch * seq * units];
        // States lie in (−1, 1): a row's maximum starts below any of them (a row with no real
        // token keeps −2, what the training pass's masked maximum gives it).
        let mut pooled = vec![-2f32; batch * units];
        for t in self.steps(seq) {
            let gates = recurrent.gates(&h, batch)?;
            for b in 0..batch {
                let (hb, cb) = (
                    &mut h[b * units..(b + 1) * units],
                    &mut c[b * units..(b + 1) * units],
                );
                if real[b][t] > 0.0 {
                    let at = (b * seq + t) * 4 * units;
                    kernels::lstm_cell(
                        &gates[b * 4 * units..(b + 1) * 4 * units],
                        &from_input[at..at + 4 * units],
                        cb,
                        hb,
                    );
                    for (m, &v) in pooled[b * units..(b + 1) * units].iter_mut().zip(&*hb) {
                        *m = m.max(v);
                    }
                }
                let at = (b * seq + t) * units;
                states[at..at + units].copy_from_slice(hb);
            }
        }
        Ok(DirectionStates { states, pooled })
    }

    /// `x W_ihᵀ + b_ih + b_hh` for every token: the input's share of the gates (on the
    /// packed weights where [`Linear::forward`] takes them).
    fn input_share(&self, x: &Tensor) -> Result<Tensor> {
        match &self.packed {
            Some(p) => p.input.forward(x),
            None => Ok(kernels::linear(x, &self.weight_ih, &self.input_bias()?)?),
        }
    }

    /// `b_ih + b_hh`: both biases add to the input's share of the gates.
    fn input_bias(&self) -> Result<Tensor> {
        Ok((&self.bias_ih + &self.bias_hh)?)
    }
}

/// How an inference pass multiplies the previous states by `W_hh`.
enum Recurrent<'a> {
    /// The packed weights.
    Packed(&'a kernels::PackedWeight),
    /// The linear kernel on the weights as they are (few rows: no packing at all).
    Linear(&'a Tensor, Tensor),
    /// candle's matrix product (gemm) on a transposed copy made once per pass.
    Gemm(Tensor),
}

impl<'a> Recurrent<'a> {
    fn new(direction: &'a LstmDirection, batch: usize) -> Result<Self> {
        let w = &direction.weight_hh;
        Ok(match &direction.packed {
            Some(p) if batch <= PACKED_MAX_ROWS => Self::Packed(&p.recurrent),
            // No bias: the input's share already holds both.
            _ if batch <= SMALL_BATCH => {
                Self::Linear(w, Tensor::zeros(w.dim(0)?, DType::F32, &Device::Cpu)?)
            }
            _ => Self::Gemm(w.t()?.contiguous()?),
        })
    }

    /// `h W_hhᵀ` for `batch` rows of `h`.
    fn gates(&self, h: &[f32], batch: usize) -> Result<Vec<f32>> {
        let tensor = || Tensor::from_slice(h, (batch, h.len() / batch), &Device::Cpu);
        let gates = match self {
            Self::Packed(p) => return Ok(p.matmul_new(h, batch, None)),
            Self::Linear(w, no_bias) => kernels::linear(&tensor()?, w, no_bias)?,
            Self::Gemm(w_t) => tensor()?.matmul(w_t)?,
        };
        Ok(gates.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// Up to this many rows the unpacked recurrent product runs on the linear kernel; above, on
/// candle's matrix product (gemm), which packs the weights and wins on taller inputs.
const SMALL_BATCH: usize = 4;

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

    /// Packs both directions' weights for inference: for a model that only runs inference
    /// from now on (eval, predict, serve). A clone of the model is not packed.
    pub fn pack_for_inference(&mut self) -> Result<()> {
        self.forward_lstm.pack()?;
        self.backward_lstm.pack()
    }

    fn run(&self, input: &EncoderInput, pass: Pass) -> Result<ModelOutput> {
        let mask = &input.attention_mask;
        let (words, word_rows) = look_up_words(&self.embeddings, input, pass)?;
        let x = dropout(&words, self.config.hidden_dropout, pass)?;
        let (states, pooled) = match pass.grad {
            true => {
                let states = Tensor::cat(
                    &[
                        self.forward_lstm.run(&x, mask)?,
                        self.backward_lstm.run(&x, mask)?,
                    ],
                    2,
                )?;
                // States lie in (−1, 1): padding pushed to below −1 never wins the max.
                let padding = mask3(mask)?.affine(2.0, -2.0)?;
                let pooled = states.broadcast_add(&padding)?.max(1)?;
                (states, pooled)
            }
            false => self.run_inference(&x, mask)?,
        };
        let logits = self.head.forward(&pooled, pass)?;
        Ok(compact::output(logits, states, word_rows))
    }

    /// The states (`[batch, seq, 2 × units]`) and their max-pooling (`[batch, 2 × units]`)
    /// without gradients.
    fn run_inference(&self, x: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let real = mask.to_vec2::<f32>()?;
        let (forward, backward) = match kernels::may_fork() {
            // The directions are independent: side by side on two threads where a pass may
            // fork (batch-1 latency); otherwise one after the other.
            true => {
                let (f, b) = rayon::join(
                    || self.forward_lstm.run_inference(x, &real),
                    || self.backward_lstm.run_inference(x, &real),
                );
                (f?, b?)
            }
            false => (
                self.forward_lstm.run_inference(x, &real)?,
                self.backward_lstm.run_inference(x, &real)?,
            ),
        };
        let (batch, seq, _) = x.dims3()?;
        let units = self.forward_lstm.weight_hh.dim(1)?;
        // Each row (a token's states, a sequence's pooled features) is the forward
        // direction's values, then the backward direction's.
        let side_by_side = |f: &[f32], b: &[f32]| -> Vec<f32> {
            f.chunks_exact(units)
                .zip(b.chunks_exact(units))
                .flat_map(|(f, b)| f.iter().chain(b).copied())
                .collect()
        };
        let states = side_by_side(&forward.states, &backward.states);
        let pooled = side_by_side(&forward.pooled, &backward.pooled);
        Ok((
            Tensor::from_vec(states, (batch, seq, 2 * units), &Device::Cpu)?,
            Tensor::from_vec(pooled, (batch, 2 * units), &Device::Cpu)?,
        ))
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

    fn packed_for_inference(&self) -> Result<Option<Arc<dyn super::Model>>> {
        let mut packed = self.clone();
        packed.pack_for_inference()?;
        Ok(Some(Arc::new(packed)))
    }
}
