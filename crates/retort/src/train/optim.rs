//! AdamW with decoupled weight decay, the warmup + linear-decay schedule, gradient
//! accumulation and global-norm clipping.
//!
//! Our own rather than candle_nn's AdamW because training needs what that one lacks:
//! no decay on biases and LayerNorm weights (as BERT is trained), averaged gradients over
//! micro-batches, clipping, and its moments saved in a checkpoint to resume from.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use std::cell::RefCell;

use candle_core::{bail, CpuStorage, InplaceOp2, Layout, Storage, Tensor, Var};

use crate::error::{Error, Result};
use crate::model::kernels;
use crate::model::{Params, WordRows};

/// Linear warmup from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
}

impl Schedule {
    /// Learning rate of optimiser step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let left = self.total.saturating_sub(step) as f64;
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        self.peak * (left / span).clamp(0.0, 1.0)
    }
}

/// Gradients of a list of variables, summed over micro-batches.
#[derive(Debug, Clone)]
pub struct Grads {
    grads: Vec<Option<Tensor>>,
    /// Multiplier the optimiser applies to every gradient as it reads it. Clipping sets it
    /// rather than rewriting each gradient (a pass over millions of embedding gradients).
    scale: f64,
}

impl Grads {
    /// No gradients yet for `n` variables.
    pub fn empty(n: usize) -> Self {
        Self {
            grads: vec![None; n],
            scale: 1.0,
        }
    }

    /// Adds `scale` × the gradients of `vars` found in `store`.
    pub fn accumulate(&mut self, store: &GradStore, vars: &[Var], scale: f64) -> Result<()> {
        for (slot, var) in self.grads.iter_mut().zip(vars) {
            if let Some(g) = store.get(var.as_tensor()) {
                *slot = Some(match slot.take() {
                    // A lone micro-batch's gradient is kept as it is (no copy).
                    None if scale == 1.0 => g.clone(),
                    acc => kernels::add_scaled(acc.as_ref(), g, scale as f32)?,
                });
            }
        }
        Ok(())
    }

    /// Each variable's gradient so far (`None`: none yet), in the order of the variables.
    pub fn tensors(&self) -> &[Option<Tensor>] {
        &self.grads
    }

    /// Adds `scale` × the gradient of the looked-up word rows (found in `store`) into the
    /// gradient of the table they come from, row by row: what the backward pass would have
    /// given the table, without a dense zeroed table per pass (see `Pass::word_rows`).
    pub fn add_word_rows(
        &mut self,
        store: &GradStore,
        rows: &WordRows,
        vars: &[Var],
        scale: f64,
    ) -> Result<()> {
        let Some(g) = store.get(rows.rows.as_tensor()) else {
            return Ok(());
        };
        let Some(i) = vars.iter().position(|v| v.as_tensor().id() == rows.table) else {
            return Err(Error::Invalid(
                "the word rows' table is not among the trained variables".into(),
            ));
        };
        let table = vars[i].as_tensor();
        let slot = match self.grads[i].take() {
            Some(acc) => acc,
            None => table.zeros_like()?,
        };
        let add = AddRows {
            ids: &rows.ids,
            scale: scale as f32,
        };
        slot.inplace_op2(&g.contiguous()?, &add)?;
        self.grads[i] = Some(slot);
        Ok(())
    }

    /// The L2 norm of all gradients together (clipping included).
    pub fn global_norm(&self) -> Result<f64> {
        let mut sum = 0f64;
        for g in self.grads.iter().flatten() {
            sum += sum_of_squares(g)?;
        }
        Ok(sum.sqrt() * self.scale.abs())
    }

    /// Scales the gradients down so their global norm is at most `max_norm`; returns the
    /// norm before clipping.
    pub fn clip(&mut self, max_norm: f64) -> Result<f64> {
        let norm = self.global_norm()?;
        if max_norm > 0.0 && norm > max_norm {
            self.scale *= max_norm / (norm + 1e-6);
        }
        Ok(norm)
    }
}

impl Grads {
    /// The gradients cut into consecutive groups of `lens` variables (summing to all of
    /// them), each with this one's scale.
    pub fn split(self, lens: &[usize]) -> Vec<Grads> {
        debug_assert_eq!(lens.iter().sum::<usize>(), self.grads.len());
        let mut rest = self.grads.into_iter();
        lens.iter()
            .map(|&n| Grads {
                grads: rest.by_ref().take(n).collect(),
                scale: self.scale,
            })
            .collect()
    }
}

/// The f32 values of an in-place op's two operands: the one it writes and the one it reads.
fn inplace_values<'a>(
    op: &str,
    dst: &'a mut CpuStorage,
    dst_l: &Layout,
    src: &'a CpuStorage,
    src_l: &Layout,
) -> candle_core::Result<(&'a mut [f32], &'a [f32])> {
    let (Some((d0, d1)), Some((s0, s1))) = (dst_l.contiguous_offsets(), src_l.contiguous_offsets())
    else {
        bail!("{op}: both operands must be contiguous")
    };
    let CpuStorage::F32(dst) = dst else {
        bail!("{op}: the values must be f32")
    };
    Ok((&mut dst[d0..d1], &src.as_slice::<f32>()?[s0..s1]))
}

/// `table[ids[k]] += scale · rows[k]` for every row `k`, in place in the table's gradient.
struct AddRows<'a> {
    ids: &'a [u32],
    scale: f32,
}

impl InplaceOp2 for AddRows<'_> {
    fn name(&self) -> &'static str {
        "retort-add-rows"
    }

    fn cpu_fwd(
        &self,
        table: &mut CpuStorage,
        table_l: &Layout,
        rows: &CpuStorage,
        rows_l: &Layout,
    ) -> candle_core::Result<()> {
        let (table, rows) = inplace_values("add rows", table, table_l, rows, rows_l)?;
        let width = *table_l.dims().last().unwrap_or(&0);
        if width == 0 || rows.len() != self.ids.len() * width {
            bail!(
                "add rows: {} rows do not fit {} ids",
                rows.len(),
                self.ids.len()
            )
        }
        for (&id, row) in self.ids.iter().zip(rows.chunks_exact(width)) {
            let Some(dst) = table.get_mut(id as usize * width..(id as usize + 1) * width) else {
                bail!("add rows: id {id} is outside the table")
            };
            dst.iter_mut()
                .zip(row)
                .for_each(|(d, r)| *d += self.scale * r);
        }
        Ok(())
    }
}

/// `Σ x²` over a tensor's values, read in place (no squared copy).
fn sum_of_squares(t: &Tensor) -> Result<f64> {
    use rayon::prelude::*;
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::Invalid("gradients must be on the CPU".into()));
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(Error::Invalid("gradient is not contiguous".into()));
    };
    let values = &cpu.as_slice::<f32>()?[start..end];
    Ok(values.par_chunks(1 << 14).map(squares_summed).sum())
}

/// `Σ x²` of a slice in f64 over sixteen running sums: one running sum waits on each add's
/// latency (`perf`: 5% of a distillation step, for a sum over all 17M gradients), sixteen
/// independent ones vectorise.
fn squares_summed(x: &[f32]) -> f64 {
    let mut sums = [0f64; 16];
    let blocks = x.chunks_exact(16);
    let rest = blocks.remainder();
    for block in blocks {
        for (s, &v) in sums.iter_mut().zip(block) {
            *s += f64::from(v) * f64::from(v);
        }
    }
    let rest: f64 = rest.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    sums.iter().sum::<f64>() + rest
}

struct Slot {
    name: String,
    var: Var,
    /// First and second moment estimates, flat, in the variable's element order.
    m: Vec<f32>,
    v: Vec<f32>,
    decay: bool,
}

/// AdamW (Loshchilov & Hutter) over named variables.
///
/// The update runs as one fused, multi-threaded pass over each variable's elements rather
/// than a dozen tensor ops that each allocate: for a student whose embedding table holds
/// millions of parameters this is the difference between a few and a few hundred ms a step.
pub struct AdamW {
    slots: Vec<Slot>,
    /// Optimiser steps taken so far.
    pub steps: usize,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// Biases and LayerNorm parameters are not decayed.
fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

/// Constants of one update, shared by every element.
#[derive(Clone, Copy)]
struct Update {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    /// Bias corrections 1 − βᵗ.
    c1: f32,
    c2: f32,
    /// Multiplier of θ for decoupled weight decay (1 − lr·λ, or 1).
    keep: f32,
    /// Multiplier of the gradient (clipping, see [`Grads::clip`]).
    grad_scale: f32,
}

impl Update {
    /// Updates a chunk of parameters and their moments; compiled for AVX-512 where the
    /// CPU has it (the crate's baseline is 4-lane SSE2), with identical results.
    fn apply(&self, theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { self.apply_avx512(theta, m, v, g) };
        }
        self.apply_loop(theta, m, v, g)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(&self, theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        self.apply_loop(theta, m, v, g)
    }

    #[inline(always)]
    fn apply_loop(&self, theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        let n = theta.len();
        let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
        for i in 0..n {
            let g = g[i] * self.grad_scale;
            m[i] = self.beta1 * m[i] + (1.0 - self.beta1) * g;
            v[i] = self.beta2 * v[i] + (1.0 - self.beta2) * g * g;
            let step = (m[i] / self.c1) / ((v[i] / self.c2).sqrt() + self.eps);
            theta[i] = theta[i] * self.keep - self.lr * step;
        }
    }
}

/// One AdamW update of a variable, in place in its storage: no copies of the parameters or
/// the gradient (for an embedding table, four passes over tens of MB a step).
struct AdamStep<'a> {
    update: Update,
    moments: RefCell<(&'a mut [f32], &'a mut [f32])>,
}

impl InplaceOp2 for AdamStep<'_> {
    fn name(&self) -> &'static str {
        "retort-adamw"
    }

    fn cpu_fwd(
        &self,
        theta: &mut CpuStorage,
        theta_l: &Layout,
        g: &CpuStorage,
        g_l: &Layout,
    ) -> candle_core::Result<()> {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 14;
        let (theta, g) = inplace_values("AdamW", theta, theta_l, g, g_l)?;
        let mut moments = self.moments.borrow_mut();
        let (m, v) = &mut *moments;
        if g.len() != theta.len() || m.len() != theta.len() || v.len() != theta.len() {
            bail!("AdamW: gradient or moments of the wrong size")
        }
        let u = self.update;
        theta
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((theta, m), v), g)| u.apply(theta, m, v, g));
        Ok(())
    }
}

impl AdamW {
    /// An optimiser for every variable of `params`.
    pub fn new(params: &Params, weight_decay: f64) -> Result<Self> {
        let slots = params
            .iter()
            .map(|(name, var)| Slot {
                name: name.to_string(),
                var: var.clone(),
                m: vec![0.0; var.elem_count()],
                v: vec![0.0; var.elem_count()],
                decay: decays(name),
            })
            .collect();
        Ok(Self {
            slots,
            steps: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// The variables, in the order `Grads` expects.
    pub fn vars(&self) -> Vec<Var> {
        self.slots.iter().map(|s| s.var.clone()).collect()
    }

    /// One update with learning rate `lr`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &Grads, lr: f64) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        for (slot, g) in self.slots.iter_mut().zip(&grads.grads) {
            let Some(g) = g else { continue };
            let decay = slot.decay && self.weight_decay > 0.0;
            let update = Update {
                lr: lr as f32,
                beta1: self.beta1 as f32,
                beta2: self.beta2 as f32,
                eps: self.eps as f32,
                c1: (1.0 - self.beta1.powi(t)) as f32,
                c2: (1.0 - self.beta2.powi(t)) as f32,
                keep: if decay {
                    (1.0 - lr * self.weight_decay) as f32
                } else {
                    1.0
                },
                grad_scale: grads.scale as f32,
            };
            let step = AdamStep {
                update,
                moments: RefCell::new((&mut slot.m, &mut slot.v)),
            };
            slot.var.as_tensor().inplace_op2(&g.contiguous()?, &step)?;
        }
        Ok(())
    }

    /// Saves the moments (`m.NAME`, `v.NAME`) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map = HashMap::new();
        for s in &self.slots {
            let (shape, device) = (s.var.shape(), s.var.device());
            map.insert(
                format!("m.{}", s.name),
                Tensor::from_slice(&s.m, shape, device)?,
            );
            map.insert(
                format!("v.{}", s.name),
                Tensor::from_slice(&s.v, shape, device)?,
            );
        }
        crate::model::params::write_safetensors(&map, path)
    }

    /// Restores moments saved by [`AdamW::save`] and the step count.
    pub fn load(&mut self, path: &Path, steps: usize) -> Result<()> {
        let device = candle_core::Device::Cpu;
        let map = candle_core::safetensors::load(path, &device).map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("cannot read optimiser state: {e}"),
        })?;
        for s in &mut self.slots {
            let get = |k: String| -> Result<Vec<f32>> {
                let t = map.get(&k).ok_or_else(|| Error::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!("optimiser state lacks {k}"),
                })?;
                Ok(t.flatten_all()?.to_vec1::<f32>()?)
            };
            s.m = get(format!("m.{}", s.name))?;
            s.v = get(format!("v.{}", s.name))?;
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::{Init, ParamBuilder};
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let s = Schedule {
            peak: 1.0,
            warmup: 4,
            total: 12,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        assert_eq!(s.lr(8), 0.5);
        assert_eq!(s.lr(12), 0.0);
    }

    #[test]
    fn adamw_first_step_moves_by_lr_against_the_gradient_sign() {
        let mut b = ParamBuilder::fresh(0);
        b.get("w.weight", &[2], Init::Ones).unwrap();
        b.get("w.bias", &[2], Init::Ones).unwrap();
        let params = b.take_params();
        let mut opt = AdamW::new(&params, 0.5).unwrap();
        let vars = opt.vars();
        let loss = ((vars[0].as_tensor() * 3.0).unwrap().sum_all().unwrap()
            - vars[1].as_tensor().sum_all().unwrap())
        .unwrap();
        let mut grads = Grads::empty(2);
        grads
            .accumulate(&loss.backward().unwrap(), &vars, 1.0)
            .unwrap();
        opt.step(&grads, 0.1).unwrap();
        // Bias-corrected first Adam step = lr·sign(g); the weight also decays by lr·wd.
        let w = vars[0].as_tensor().to_vec1::<f32>().unwrap();
        let bias = vars[1].as_tensor().to_vec1::<f32>().unwrap();
        assert!((w[0] - (1.0 * (1.0 - 0.05) - 0.1)).abs() < 1e-5, "{w:?}");
        assert!((bias[0] - 1.1).abs() < 1e-5, "{bias:?}");
    }

    #[test]
    fn squares_are_summed_like_one_running_sum() {
        for n in [0, 1, 15, 16, 17, 1000, 1 << 15] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let one: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let got = squares_summed(&x);
            assert!(
                (got - one).abs() <= 1e-12 * one.max(1.0),
                "{n}: {got} vs {one}"
            );
            let t = Tensor::from_vec(x, n, &Device::Cpu).unwrap();
            let whole = sum_of_squares(&t).unwrap();
            assert!(
                (whole - one).abs() <= 1e-12 * one.max(1.0),
                "{n}: {whole} vs {one}"
            );
        }
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let dev = Device::Cpu;
        let v = Var::new(&[3.0f32, 4.0], &dev).unwrap();
        let loss = (v.as_tensor() * Tensor::new(&[3.0f32, 4.0], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let mut g = Grads::empty(1);
        g.accumulate(&loss.backward().unwrap(), std::slice::from_ref(&v), 2.0)
            .unwrap();
        assert!((g.clip(1.0).unwrap() - 10.0).abs() < 1e-5);
        assert!((g.global_norm().unwrap() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn a_clipped_step_equals_a_step_on_scaled_gradients() {
        // Clipping only records a factor; the update must be the one the scaled gradient
        // gives. Gradients near eps make the update depend on their scale.
        let dev = Device::Cpu;
        let run = |clip: bool| {
            let mut b = ParamBuilder::fresh(0);
            b.get("w.weight", &[3], Init::Ones).unwrap();
            let params = b.take_params();
            let mut opt = AdamW::new(&params, 0.0).unwrap();
            opt.eps = 1e-3;
            let vars = opt.vars();
            let k = Tensor::new(&[3e-3f32, -4e-3, 1e-2], &dev).unwrap();
            let mut steps = Vec::new();
            for _ in 0..3 {
                let loss = (vars[0].as_tensor() * &k).unwrap().sum_all().unwrap();
                let store = loss.backward().unwrap();
                let mut grads = Grads::empty(1);
                // The norm of k is 0.0112: clipping to 0.005 scales by ~0.447.
                let factor = if clip {
                    1.0
                } else {
                    0.005 / (0.011_180_34 + 1e-6)
                };
                grads.accumulate(&store, &vars, factor).unwrap();
                if clip {
                    grads.clip(0.005).unwrap();
                }
                opt.step(&grads, 0.1).unwrap();
                steps.push(vars[0].as_tensor().to_vec1::<f32>().unwrap());
            }
            steps
        };
        let (clipped, scaled) = (run(true), run(false));
        for (a, b) in clipped.iter().flatten().zip(scaled.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{clipped:?} vs {scaled:?}");
        }
        assert!(clipped[2][0] < 0.99, "the parameters moved: {clipped:?}");
    }
}
