//! Helpers shared by the kernels' unit tests: deterministic inputs, comparisons, gradient checks.

use super::dropout::mix32;
use candle_core::{DType, Device, Tensor, Var, D};

/// Deterministic values in [-1, 1).
pub(super) fn rand_tensor(dims: &[usize], seed: u32) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n as u32)
        .map(|i| mix32(i ^ mix32(seed)) as f32 / 2_147_483_648.0 - 1.0)
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// `x Wᵀ + b` in f64 for row-major `x` (`rows × inp`) and `w` (`out × inp`): the reference
/// of the linear products.
pub(super) fn linear_f64(x: &[f32], w: &[f32], b: &[f32], inp: usize) -> Vec<f64> {
    x.chunks_exact(inp)
        .flat_map(|xr| {
            w.chunks_exact(inp).zip(b).map(move |(wr, &bo)| {
                bo as f64
                    + xr.iter()
                        .zip(wr)
                        .map(|(a, c)| *a as f64 * *c as f64)
                        .sum::<f64>()
            })
        })
        .collect()
}

pub(super) fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Checks autograd's gradient of `Σ r ⊙ f(inputs)` (fixed random `r`) with respect to
/// each input in `check` against central differences, entry by entry.
pub(super) fn check_grads(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor], check: &[usize]) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let tracked: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&tracked);
    let r = rand_tensor(y.dims(), 7);
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let r64 = r.to_dtype(DType::F64).unwrap();
    let loss = |ts: &[Tensor]| -> f64 {
        let y = f(ts).to_dtype(DType::F64).unwrap();
        (y * &r64).unwrap().sum_all().unwrap().to_scalar().unwrap()
    };
    for &i in check {
        let g = grads
            .get(vars[i].as_tensor())
            .unwrap_or_else(|| panic!("input {i} got no gradient"));
        let g = flat(g);
        let x = flat(&inputs[i]);
        for (j, &analytic) in g.iter().enumerate() {
            let at = |delta: f32| {
                let mut v = x.clone();
                v[j] += delta;
                let mut ts = inputs.to_vec();
                ts[i] = Tensor::from_vec(v.clone(), inputs[i].shape(), &Device::Cpu).unwrap();
                (loss(&ts), v[j])
            };
            let ((plus, xp), (minus, xm)) = (at(1e-3), at(-1e-3));
            let numeric = (plus - minus) / (xp - xm) as f64;
            let err = (numeric - analytic as f64).abs();
            assert!(
                err <= 1e-3 + 1e-2 * numeric.abs(),
                "input {i}[{j}]: autograd {analytic} vs finite difference {numeric}"
            );
        }
    }
}

pub(super) fn naive_layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
    let mean = x.mean_keepdim(D::Minus1).unwrap();
    let centered = x.broadcast_sub(&mean).unwrap();
    let var = centered.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let std = (var + eps).unwrap().sqrt().unwrap();
    let normed = centered.broadcast_div(&std).unwrap();
    normed.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
}
