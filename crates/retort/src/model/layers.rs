//! Building blocks of the encoder: linear maps, LayerNorm, activations, softmax, dropout.
//!
//! candle's fused `layer_norm` and `softmax_last_dim` record no backward pass (upstream
//! issues #2168, #2977): a parameter upstream of them silently gets no gradient. So every
//! block here has two paths, chosen by [`Pass::grad`]: the fused kernels for inference, and
//! formulations built from differentiable primitives when gradients are needed.

use candle_core::{Tensor, D};

use super::config::Activation;
use crate::error::Result;

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pass {
    /// Apply dropout (training mode).
    pub dropout: bool,
    /// Gradients will be taken: use only ops that record a backward pass.
    pub grad: bool,
}

impl Pass {
    /// Inference: no dropout, fused kernels.
    pub const INFERENCE: Pass = Pass {
        dropout: false,
        grad: false,
    };
    /// Training: dropout on, differentiable ops.
    pub const TRAIN: Pass = Pass {
        dropout: true,
        grad: true,
    };
    /// Gradients without dropout (deterministic; finite-difference checks, frozen-dropout training).
    pub const GRAD_NO_DROPOUT: Pass = Pass {
        dropout: false,
        grad: true,
    };
}

/// `y = x Wᵀ + b`, weights stored `[out, in]` as in PyTorch.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Fold leading dims so the matmul is one 2-D gemm against the transposed weight view.
        let dims = x.dims();
        let (in_dim, lead) = (dims[dims.len() - 1], &dims[..dims.len() - 1]);
        let rows: usize = lead.iter().product();
        let y = x
            .reshape((rows, in_dim))?
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?;
        let mut out_shape = lead.to_vec();
        out_shape.push(self.weight.dim(0)?);
        Ok(y.reshape(out_shape)?)
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
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor> {
        if !pass.grad {
            let y = candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32)?;
            return Ok(y);
        }
        // Differentiable: (x - mean) / sqrt(var + eps) * w + b.
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?)
    }
}

/// Softmax over the last dimension.
pub fn softmax_last(x: &Tensor, pass: Pass) -> Result<Tensor> {
    if pass.grad {
        Ok(candle_nn::ops::softmax(x, D::Minus1)?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(x)?)
    }
}

/// Applies the feed-forward non-linearity.
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Gelu => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
    })
}

/// Inverted dropout, active only when the pass asks for it.
pub fn dropout(x: &Tensor, p: f32, pass: Pass) -> Result<Tensor> {
    if pass.dropout && p > 0.0 {
        Ok(candle_nn::ops::dropout(x, p)?)
    } else {
        Ok(x.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn differentiable_layer_norm_matches_fused_and_has_gradients() {
        let dev = Device::Cpu;
        let x = Var::new(&[[1.0f32, 2.0, 4.0, -1.0], [0.5, 0.0, -3.0, 2.0]], &dev).unwrap();
        let ln = LayerNorm {
            weight: Tensor::new(&[1.0f32, 0.5, 2.0, 1.5], &dev).unwrap(),
            bias: Tensor::new(&[0.1f32, 0.0, -0.2, 0.3], &dev).unwrap(),
            eps: 1e-12,
        };
        let fused = ln.forward(&x, Pass::INFERENCE).unwrap();
        let slow = ln.forward(&x, Pass::GRAD_NO_DROPOUT).unwrap();
        let diff = (fused - &slow).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        let grads = slow.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some());
    }

    #[test]
    fn softmax_paths_agree() {
        let x = Tensor::new(&[[1.0f32, 2.0, 3.0], [-1.0, 0.0, 10.0]], &Device::Cpu).unwrap();
        let a = softmax_last(&x, Pass::INFERENCE).unwrap();
        let b = softmax_last(&x, Pass::TRAIN).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
