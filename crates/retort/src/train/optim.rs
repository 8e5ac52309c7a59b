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

use candle_core::{bail, CpuStorage, InplaceOp1, InplaceOp2, Layout, Storage, Tensor, Var};

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
    /// The word table's gradient as the rows a step looked up (see [`RowGrads`]), while no
    /// dense gradient of the table exists.
    rows: Option<RowGrads>,
    /// Multiplier the optimiser applies to every gradient as it reads it. Clipping sets it
    /// rather than rewriting each gradient (a pass over millions of embedding gradients).
    scale: f64,
}

/// The gradient of a word table held as its non-zero rows. A step looks up a few hundred
/// of its 30,522 rows; a dense gradient is a zeroed 47 MB table per step (fresh pages from
/// the kernel, above the mmap threshold) that the norm and AdamW then read in full.
#[derive(Debug, Clone)]
struct RowGrads {
    /// The table's index among the variables.
    var: usize,
    /// The table's shape, `[rows, width]`.
    dims: (usize, usize),
    /// Each table row's row in `values`, or [`RowGrads::NONE`].
    slot: Vec<u32>,
    /// The gradient rows, `width` values each, in the order they were first seen.
    values: Vec<f32>,
}

impl RowGrads {
    const NONE: u32 = u32::MAX;

    fn new(var: usize, dims: (usize, usize)) -> Self {
        Self {
            var,
            dims,
            slot: vec![Self::NONE; dims.0],
            values: Vec::new(),
        }
    }

    /// `row(id) += scale · g` for each id and row of `g` (`ids.len()` rows of `width`),
    /// in the order given: the sums a dense zeroed table would hold, bit for bit.
    fn add(&mut self, ids: &[u32], g: &[f32], scale: f32) -> Result<()> {
        let width = self.dims.1;
        if width == 0 || g.len() != ids.len() * width {
            return Err(Error::Invalid(format!(
                "word rows: {} gradient values do not fit {} ids of width {width}",
                g.len(),
                ids.len()
            )));
        }
        for (&id, row) in ids.iter().zip(g.chunks_exact(width)) {
            let Some(slot) = self.slot.get_mut(id as usize) else {
                return Err(Error::Invalid(format!(
                    "word rows: id {id} is outside a table of {} rows",
                    self.dims.0
                )));
            };
            if *slot == Self::NONE {
                *slot = (self.values.len() / width) as u32;
                self.values.resize(self.values.len() + width, 0.0);
            }
            let at = *slot as usize * width;
            self.values[at..at + width]
                .iter_mut()
                .zip(row)
                .for_each(|(d, r)| *d += scale * r);
        }
        Ok(())
    }

    /// The gradient row of table row `r`, if it has one.
    fn row(&self, r: usize) -> Option<&[f32]> {
        let width = self.dims.1;
        match self.slot[r] {
            Self::NONE => None,
            s => Some(&self.values[s as usize * width..(s as usize + 1) * width]),
        }
    }

    /// The dense gradient (`acc` plus these rows, or these rows on zeros).
    fn dense(&self, acc: Option<&Tensor>, device: &candle_core::Device) -> Result<Tensor> {
        let (n, width) = self.dims;
        let mut out = match acc {
            Some(t) => t.flatten_all()?.to_vec1::<f32>()?,
            None => vec![0f32; n * width],
        };
        for (r, dst) in out.chunks_exact_mut(width).enumerate() {
            if let Some(row) = self.row(r) {
                dst.iter_mut().zip(row).for_each(|(d, g)| *d += g);
            }
        }
        Ok(Tensor::from_vec(out, self.dims, device)?)
    }
}

impl Grads {
    /// No gradients yet for `n` variables.
    pub fn empty(n: usize) -> Self {
        Self {
            grads: vec![None; n],
            rows: None,
            scale: 1.0,
        }
    }

    /// Adds `scale` × the gradients of `vars` found in `store`.
    pub fn accumulate(&mut self, store: &GradStore, vars: &[Var], scale: f64) -> Result<()> {
        // A table used elsewhere too (tied output weights) gets a dense gradient: the rows so
        // far join it, so that every later sum sees one gradient per variable.
        if let Some(rows) = &self.rows {
            if store.get(vars[rows.var].as_tensor()).is_some() {
                self.densify(vars)?;
            }
        }
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

    /// Each variable's gradient so far (`None`: none yet), in the order of the variables,
    /// the word table's as a dense tensor (built here: for checks, not for the step).
    pub fn tensors(&self) -> Result<Vec<Option<Tensor>>> {
        let mut out = self.grads.clone();
        if let Some(rows) = &self.rows {
            let device = candle_core::Device::Cpu;
            out[rows.var] = Some(rows.dense(out[rows.var].as_ref(), &device)?);
        }
        Ok(out)
    }

    /// Turns the word rows, if any, into a dense gradient of their table.
    fn densify(&mut self, vars: &[Var]) -> Result<()> {
        if let Some(rows) = self.rows.take() {
            let device = vars[rows.var].device();
            self.grads[rows.var] = Some(rows.dense(self.grads[rows.var].as_ref(), device)?);
        }
        Ok(())
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
        if let Some(dense) = &self.grads[i] {
            // The table also has a dense gradient (tied weights): add the rows into it.
            let add = AddRows {
                ids: &rows.ids,
                scale: scale as f32,
            };
            return Ok(dense.inplace_op2(&g.contiguous()?, &add)?);
        }
        if self.rows.as_ref().is_some_and(|r| r.var != i) {
            self.densify(vars)?;
        }
        let dims = vars[i].as_tensor().dims2()?;
        let acc = self.rows.get_or_insert_with(|| RowGrads::new(i, dims));
        let g = g.flatten_all()?.to_vec1::<f32>()?;
        acc.add(&rows.ids, &g, scale as f32)
    }

    /// The L2 norm of all gradients together (clipping included).
    pub fn global_norm(&self) -> Result<f64> {
        let mut sum = 0f64;
        for g in self.grads.iter().flatten() {
            sum += sum_of_squares(g)?;
        }
        if let Some(rows) = &self.rows {
            sum += squares_summed(&rows.values);
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
        let mut rows = self.rows;
        let mut start = 0;
        lens.iter()
            .map(|&n| {
                // The word rows go to the group holding their table, renumbered.
                let own = match rows.take() {
                    Some(mut r) if r.var < start + n => {
                        r.var -= start;
                        Some(r)
                    }
                    other => {
                        rows = other;
                        None
                    }
                };
                start += n;
                Grads {
                    grads: rest.by_ref().take(n).collect(),
                    rows: own,
                    scale: self.scale,
                }
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

/// A variable's gradient as one step reads it.
enum Gradient<'a> {
    Dense(&'a Tensor),
    Rows(&'a RowGrads),
}

/// One AdamW update of a word table whose gradient is held as rows ([`RowGrads`]): every
/// row is updated (its moments decay, as with a zero gradient), but only the rows with a
/// gradient read one; the others read a row of zeros, so the result is the dense update's.
struct AdamRowStep<'a> {
    update: Update,
    moments: RefCell<(&'a mut [f32], &'a mut [f32])>,
    rows: &'a RowGrads,
}

impl InplaceOp1 for AdamRowStep<'_> {
    fn name(&self) -> &'static str {
        "retort-adamw-rows"
    }

    fn cpu_fwd(&self, theta: &mut CpuStorage, theta_l: &Layout) -> candle_core::Result<()> {
        use rayon::prelude::*;
        /// Table rows per parallel task.
        const ROWS: usize = 64;
        let Some((start, end)) = theta_l.contiguous_offsets() else {
            bail!("AdamW: the table must be contiguous")
        };
        let CpuStorage::F32(theta) = theta else {
            bail!("AdamW: the values must be f32")
        };
        let theta = &mut theta[start..end];
        let mut moments = self.moments.borrow_mut();
        let (m, v) = &mut *moments;
        let (n, width) = self.rows.dims;
        if theta.len() != n * width || m.len() != theta.len() || v.len() != theta.len() {
            bail!("AdamW: the table, its gradient rows or its moments differ in size")
        }
        let (u, zeros) = (self.update, vec![0f32; width]);
        let chunk = ROWS * width;
        theta
            .par_chunks_mut(chunk)
            .zip(m.par_chunks_mut(chunk))
            .zip(v.par_chunks_mut(chunk))
            .enumerate()
            .for_each(|(c, ((theta, m), v))| {
                let rows = theta
                    .chunks_exact_mut(width)
                    .zip(m.chunks_exact_mut(width))
                    .zip(v.chunks_exact_mut(width));
                for (k, ((theta, m), v)) in rows.enumerate() {
                    let g = self.rows.row(c * ROWS + k).unwrap_or(&zeros);
                    u.apply(theta, m, v, g);
                }
            });
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
        for (i, (slot, g)) in self.slots.iter_mut().zip(&grads.grads).enumerate() {
            // A dense gradient, else the word table's rows, else nothing to do.
            let rows = grads.rows.as_ref().filter(|r| r.var == i);
            let gradient = match (g, rows) {
                (Some(g), _) => Gradient::Dense(g),
                (None, Some(rows)) => Gradient::Rows(rows),
                (None, None) => continue,
            };
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
            let moments = RefCell::new((&mut slot.m[..], &mut slot.v[..]));
            match gradient {
                Gradient::Dense(g) => {
                    let step = AdamStep { update, moments };
                    slot.var.as_tensor().inplace_op2(&g.contiguous()?, &step)?;
                }
                Gradient::Rows(rows) => {
                    let step = AdamRowStep {
                        update,
                        moments,
                        rows,
                    };
                    slot.var.as_tensor().inplace_op1(&step)?;
                }
            }
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
    use candle_core::{DType, Device};

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

    /// A 6 × 4 table's gradient as rows: ids 1, 3, 1 at scale 1, then 3, 5 at scale 0.5.
    fn table_rows() -> (RowGrads, Vec<f32>) {
        let g1: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) / 3.0).collect();
        let g2: Vec<f32> = (0..8).map(|i| (i as f32 * 7.0 % 5.0 - 2.0) / 9.0).collect();
        let mut rows = RowGrads::new(0, (6, 4));
        rows.add(&[1, 3, 1], &g1, 1.0).unwrap();
        rows.add(&[3, 5], &g2, 0.5).unwrap();
        // The same sums in a zeroed dense table, in the same order.
        let mut dense = vec![0f32; 24];
        for (ids, g, scale) in [(&[1u32, 3, 1][..], &g1, 1.0f32), (&[3, 5], &g2, 0.5)] {
            for (&id, row) in ids.iter().zip(g.chunks_exact(4)) {
                for (d, r) in dense[id as usize * 4..][..4].iter_mut().zip(row) {
                    *d += scale * r;
                }
            }
        }
        (rows, dense)
    }

    #[test]
    fn a_table_step_on_gradient_rows_equals_the_dense_step() {
        let dev = Device::Cpu;
        let (rows, dense) = table_rows();
        let run = |sparse: bool| {
            let mut b = ParamBuilder::fresh(3);
            b.get("word_embeddings.weight", &[6, 4], Init::Normal(0.5))
                .unwrap();
            let params = b.take_params();
            let mut opt = AdamW::new(&params, 0.01).unwrap();
            let mut norms = Vec::new();
            for _ in 0..3 {
                let mut grads = Grads::empty(1);
                if sparse {
                    grads.rows = Some(rows.clone());
                } else {
                    grads.grads[0] = Some(Tensor::from_vec(dense.clone(), (6, 4), &dev).unwrap());
                }
                norms.push(grads.clip(0.5).unwrap());
                opt.step(&grads, 0.1).unwrap();
            }
            let table = opt.vars()[0].as_tensor().flatten_all().unwrap();
            (table.to_vec1::<f32>().unwrap(), norms)
        };
        let ((sparse, n1), (full, n2)) = (run(true), run(false));
        assert_eq!(sparse, full, "the same table after three steps");
        for (a, b) in n1.iter().zip(&n2) {
            assert!((a - b).abs() < 1e-12 * b, "{n1:?} vs {n2:?}");
        }
        // Rows without a gradient still decay and keep moving on their moments.
        let mut b = ParamBuilder::fresh(3);
        b.get("word_embeddings.weight", &[6, 4], Init::Normal(0.5))
            .unwrap();
        let start = b.take_params().vars()[0].as_tensor().flatten_all().unwrap();
        assert_ne!(start.to_vec1::<f32>().unwrap()[..4], sparse[..4]);
    }

    #[test]
    fn gradient_rows_become_dense_when_asked_or_tied() {
        let dev = Device::Cpu;
        let (rows, dense) = table_rows();
        let table = Var::from_tensor(&Tensor::zeros((6, 4), DType::F32, &dev).unwrap()).unwrap();
        let mut grads = Grads::empty(1);
        grads.rows = Some(rows);
        let got = grads.tensors().unwrap()[0].clone().unwrap();
        assert_eq!(got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), dense);
        // A dense gradient of the same table (tied weights) takes the rows in.
        let loss = (table.as_tensor() * 2.0).unwrap().sum_all().unwrap();
        let store = loss.backward().unwrap();
        grads
            .accumulate(&store, std::slice::from_ref(&table), 1.0)
            .unwrap();
        assert!(grads.rows.is_none());
        let got = grads.grads[0].as_ref().unwrap().flatten_all().unwrap();
        let want: Vec<f32> = dense.iter().map(|d| d + 2.0).collect();
        assert_eq!(got.to_vec1::<f32>().unwrap(), want);
    }

    #[test]
    fn split_hands_the_gradient_rows_to_their_tables_group() {
        let (mut rows, _) = table_rows();
        rows.var = 2;
        let mut grads = Grads::empty(4);
        grads.rows = Some(rows);
        let parts = grads.split(&[1, 2, 1]);
        let vars: Vec<Option<usize>> = parts
            .iter()
            .map(|g| g.rows.as_ref().map(|r| r.var))
            .collect();
        assert_eq!(vars, [None, Some(1), None]);
    }

    #[test]
    fn gradient_rows_refuse_ids_outside_the_table() {
        let mut rows = RowGrads::new(0, (6, 4));
        assert!(rows.add(&[6], &[0.0; 4], 1.0).is_err());
        assert!(rows.add(&[1, 2], &[0.0; 4], 1.0).is_err());
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
