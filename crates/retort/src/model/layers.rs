//! Building blocks of the encoder: linear maps, LayerNorm, activations, softmax, dropout.
//!
//! Every block runs on the fused CPU kernels of [`super::kernels`], in inference and in
//! training alike: they record their own backward pass, so there is one code path. (candle's
//! fused `layer_norm` and `softmax_last_dim` record none — upstream issues #2168, #2977 —
//! and a parameter upstream of them would silently get no gradient.)

use std::cell::Cell;
use std::sync::Arc;

use candle_core::Tensor;

use super::config::Activation;
use super::int8::{self, Int8Linear, Int8Weight};
use super::kernels;
use crate::error::Result;

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pass {
    /// Apply dropout (training mode).
    pub dropout: bool,
    /// Gradients will be taken. When false, the model runs on detached copies of its
    /// parameters, so no op records a backward pass: each intermediate buffer is freed as soon
    /// as the next op has read it, and fused inference-only kernels may be used.
    pub grad: bool,
    /// With `grad`: leave the word-embedding table out of the autograd graph. The rows the
    /// batch looks up become a variable of their own (`ModelOutput::word_rows`), and the
    /// trainer adds their gradient into the table's (`Grads::add_word_rows`). Otherwise the
    /// backward pass makes a zeroed copy of the whole table (30,522 rows) for a few hundred
    /// rows of gradient, in every part of every micro-batch.
    pub word_rows: bool,
}

impl Pass {
    /// Inference: no dropout.
    pub const INFERENCE: Pass = Pass {
        dropout: false,
        grad: false,
        word_rows: false,
    };
    /// Training: dropout on, gradients taken.
    pub const TRAIN: Pass = Pass {
        dropout: true,
        grad: true,
        word_rows: false,
    };
    /// Gradients without dropout (deterministic; finite-difference checks, frozen-dropout training).
    pub const GRAD_NO_DROPOUT: Pass = Pass {
        dropout: false,
        grad: true,
        word_rows: false,
    };
}

/// `y = x Wᵀ + b`, weights stored `[out, in]` as in PyTorch.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
    /// The int8 form of `weight` in a quantised model: when set, the forward pass uses it
    /// instead (inference only: it records no backward pass).
    pub int8: Option<Int8Linear>,
    /// `weight` and `bias` packed for inference ([`Linear::pack`]): passes that record no
    /// backward pass use it up to [`PACKED_MAX_ROWS`] rows. A frozen copy: a model whose
    /// weights will change (one being trained) must not be packed.
    pub packed: Option<Arc<PackedLinear>>,
}

/// Up to this many rows (tokens on one thread), a packed weight's product is faster than
/// the gemm crate's (`bench_shapes linear`: 1.4–2.5× up to 64 rows, 1.05–1.4× at 128–256,
/// level at 512, gemm ahead from 768 on, where its cache blocking pays).
pub const PACKED_MAX_ROWS: usize = 512;

/// The matrix `w` (`[out, in]`) packed for inference ([`kernels::PackedWeight`]).
pub(super) fn packed_weight(w: &Tensor) -> Result<kernels::PackedWeight> {
    let (out_dim, in_dim) = w.dims2()?;
    let values = w.flatten_all()?.to_vec1::<f32>()?;
    Ok(kernels::PackedWeight::pack(&values, out_dim, in_dim))
}

/// A linear map's weight and bias as packed for inference.
#[derive(Debug)]
pub struct PackedLinear {
    weight: kernels::PackedWeight,
    bias: Vec<f32>,
}

/// A copy is not packed: a copy may be trained (a student made of a teacher's layers), and
/// its packed weights would then be stale. [`Linear::detached`] keeps them.
impl Clone for Linear {
    fn clone(&self) -> Self {
        Self {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            int8: self.int8.clone(),
            packed: None,
        }
    }
}

impl Linear {
    /// A map of these weights, in f32 and not packed.
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        Self {
            weight,
            bias,
            int8: None,
            packed: None,
        }
    }

    /// The same map on detached weights (see [`Pass::grad`]).
    pub fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            int8: self.int8.clone(),
            packed: self.packed.clone(),
        }
    }

    /// Packs the weights for inference (see [`PackedLinear`]); an int8 map stays int8, and
    /// on a CPU without AVX-512 nothing changes ([`kernels::packing_pays`]).
    pub fn pack(&mut self) -> Result<()> {
        if self.int8.is_some() || !kernels::packing_pays() {
            return Ok(());
        }
        self.packed = Some(Arc::new(PackedLinear {
            weight: packed_weight(&self.weight)?,
            bias: self.bias.to_vec1::<f32>()?,
        }));
        Ok(())
    }

    /// The packed weights, when this product may use them: no backward pass recorded, and
    /// few enough rows.
    fn packed_for(&self, x: &Tensor) -> Option<&PackedLinear> {
        let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
        let usable = !x.track_op() && !self.weight.track_op() && rows <= PACKED_MAX_ROWS;
        self.packed.as_deref().filter(|_| usable)
    }

    /// Maps the last dimension of `x`, whatever the leading ones.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match (&self.int8, self.packed_for(x)) {
            (Some(q), _) if int8::kernel_available() => q.forward(x),
            (_, Some(p)) => Ok(kernels::linear_packed(x, &p.weight, &p.bias, false)?),
            // Without the VNNI kernel, integer products are slower than f32: the dequantised
            // weights (in `weight`) run on the f32 kernel instead.
            _ => Ok(kernels::linear(x, &self.weight, &self.bias)?),
        }
    }

    /// `act(x Wᵀ + b)`. GELU runs inside the map's op where it can (f32 weights; in place
    /// when nothing records a backward pass, see [`kernels::linear_gelu`]).
    pub fn forward_activated(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        match (act, &self.int8, self.packed_for(x)) {
            (Activation::Gelu, None, Some(p)) => {
                Ok(kernels::linear_packed(x, &p.weight, &p.bias, true)?)
            }
            (Activation::Gelu, None, None) => {
                Ok(kernels::linear_gelu(x, &self.weight, &self.bias)?)
            }
            _ => activate(&self.forward(x)?, act),
        }
    }

    /// Switches the map to int8 weights quantised from its f32 weight.
    pub fn quantize_int8(&mut self) -> Result<()> {
        let (out_dim, in_dim) = self.weight.dims2()?;
        let w = self.weight.flatten_all()?.to_vec1::<f32>()?;
        self.set_int8(Int8Weight::quantize(&w, out_dim, in_dim)?)
    }

    /// Uses the given int8 weights from now on; `weight` becomes their dequantised values
    /// (what runs where the int8 kernel cannot, see [`Linear::forward`]).
    pub fn set_int8(&mut self, q: Int8Weight) -> Result<()> {
        let (out_dim, in_dim) = q.dims();
        if self.weight.dims() != [out_dim, in_dim] {
            return Err(crate::Error::Invalid(format!(
                "int8 weight [{out_dim}, {in_dim}] does not fit a linear map of shape {:?}",
                self.weight.dims()
            )));
        }
        self.weight = Tensor::from_vec(q.dequantize(), (out_dim, in_dim), self.weight.device())?;
        let bias = self.bias.to_vec1::<f32>()?;
        self.int8 = Some(Int8Linear {
            weight: std::sync::Arc::new(q),
            bias,
        });
        Ok(())
    }
}

/// Layer normalisation over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    /// The same normalisation on detached parameters (see [`Pass::grad`]).
    pub fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            eps: self.eps,
        }
    }

    /// The same kernel serves every pass (it has a backward pass).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }

    /// Normalises `x + residual` (a post-LN residual block) in one fused op.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let (w, b) = (&self.weight, &self.bias);
        Ok(kernels::add_layer_norm(x, residual, w, b, self.eps)?)
    }
}

/// Softmax over the last dimension (the same kernel serves every pass).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    Ok(kernels::softmax_last(x)?)
}

/// Applies the feed-forward non-linearity.
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Gelu => kernels::gelu_erf(x)?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
    })
}

thread_local! {
    /// Where dropout masks come from: a counter, turned into a mask seed by a hash. Training
    /// sets it from the run's seed and the step ([`with_dropout_seed`]), so a run is
    /// reproducible and a resumed run draws the same masks as an uninterrupted one. Per
    /// thread, so that runs on different threads do not draw from each other's stream.
    static DROPOUT_STREAM: Cell<u64> = const { Cell::new(0x2545_f491_4f6c_dd1d) };
}

/// Runs `f` with this thread's dropout mask stream started at `seed`, then puts back the
/// stream it found. A part of a training batch runs on one thread, but while that thread
/// waits inside a parallel kernel rayon may run another part on it: without the restore,
/// that part's seed would replace the first part's stream halfway through its pass, and
/// the masks would depend on scheduling.
pub fn with_dropout_seed<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    let saved = DROPOUT_STREAM.with(|s| s.replace(seed));
    let out = f();
    DROPOUT_STREAM.with(|s| s.set(saved));
    out
}

/// SplitMix64: distinct, well-mixed seeds from consecutive counter values.
fn next_dropout_seed() -> u64 {
    let mut z = DROPOUT_STREAM.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        next
    });
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Inverted dropout, active only when the pass asks for it; each call takes the next mask
/// seed of the stream.
pub fn dropout(x: &Tensor, p: f32, pass: Pass) -> Result<Tensor> {
    if pass.dropout && p > 0.0 {
        Ok(kernels::dropout(x, p, next_dropout_seed())?)
    } else {
        Ok(x.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    #[test]
    fn a_nested_dropout_seed_leaves_the_outer_stream_as_it_was() {
        let x = Tensor::ones((4, 64), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let masks = |nested: bool| {
            with_dropout_seed(7, || {
                let first = dropout(&x, 0.5, Pass::TRAIN).unwrap();
                if nested {
                    // Another part run on this thread in between.
                    with_dropout_seed(8, || dropout(&x, 0.5, Pass::TRAIN).unwrap());
                }
                let second = dropout(&x, 0.5, Pass::TRAIN).unwrap();
                (
                    first.to_vec2::<f32>().unwrap(),
                    second.to_vec2::<f32>().unwrap(),
                )
            })
        };
        let (plain, nested) = (masks(false), masks(true));
        assert_eq!(plain, nested);
        assert_ne!(plain.0, plain.1, "consecutive masks differ");
    }

    #[test]
    fn layer_norm_matches_candle_and_has_gradients() {
        let dev = Device::Cpu;
        let x = Var::new(&[[1.0f32, 2.0, 4.0, -1.0], [0.5, 0.0, -3.0, 2.0]], &dev).unwrap();
        let ln = LayerNorm {
            weight: Tensor::new(&[1.0f32, 0.5, 2.0, 1.5], &dev).unwrap(),
            bias: Tensor::new(&[0.1f32, 0.0, -0.2, 0.3], &dev).unwrap(),
            eps: 1e-12,
        };
        let ours = ln.forward(&x).unwrap();
        let candle = candle_nn::ops::layer_norm(&x, &ln.weight, &ln.bias, 1e-12).unwrap();
        let diff = (candle - &ours).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        let grads = ours.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some());
    }

    #[test]
    fn softmax_matches_candle() {
        let x = Tensor::new(&[[1.0f32, 2.0, 3.0], [-1.0, 0.0, 10.0]], &Device::Cpu).unwrap();
        let a = softmax_last(&x).unwrap();
        let b = candle_nn::ops::softmax(&x, D::Minus1).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
