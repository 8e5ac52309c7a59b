//! The run's optimisers: one per group of parameters, each with its own AdamW moments,
//! learning-rate schedule and gradient clip. A plain run has one group (the model and the
//! objective's own parameters, e.g. projections); mutual learning adds one per peer, so each
//! model trains as it would alone: one peer's large gradients neither clip nor slow another's.

use std::path::{Path, PathBuf};

use candle_core::Var;

use super::optim::{AdamW, Grads, Schedule};
use crate::error::Result;
use crate::model::Params;

pub use crate::objective::peers::GroupSettings;

/// A group of parameters with a name of its own (a peer's prefix without its dot), trained
/// by its own settings.
pub struct NamedGroup {
    pub name: String,
    /// The parameters of the group are those whose names start with this.
    pub prefix: String,
    pub settings: GroupSettings,
}

struct Group {
    /// "" for the main group.
    name: String,
    opt: AdamW,
    schedule: Schedule,
    clip: f64,
    /// How many of [`Optimizers::vars`] are this group's (consecutive, in group order).
    len: usize,
}

/// What one group did in a step, for the training log.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStep {
    pub name: String,
    pub lr: f64,
    /// The group's gradient norm before clipping.
    pub grad_norm: f64,
}

/// One optimiser per group of the run's parameters.
pub struct Optimizers {
    groups: Vec<Group>,
    vars: Vec<Var>,
}

impl Optimizers {
    /// `params`: every trained parameter. Those under a named group's prefix train by its
    /// settings; the rest form the main group, trained by `main`. `total`: the run's steps.
    pub fn new(
        params: &Params,
        weight_decay: f64,
        total: usize,
        main: GroupSettings,
        named: &[NamedGroup],
    ) -> Result<Self> {
        let in_named = |n: &str| named.iter().any(|g| n.starts_with(&g.prefix));
        let mut parts = vec![(String::new(), params.filtered(|n| !in_named(n)), main)];
        for g in named {
            let own = params.filtered(|n| n.starts_with(&g.prefix));
            parts.push((g.name.clone(), own, g.settings));
        }
        let mut groups = Vec::new();
        let mut vars = Vec::new();
        for (name, params, settings) in parts {
            let opt = AdamW::new(&params, weight_decay)?;
            let own = opt.vars();
            groups.push(Group {
                name,
                opt,
                schedule: Schedule {
                    peak: settings.lr,
                    warmup: (settings.warmup_ratio * total as f64).round() as usize,
                    total,
                },
                clip: settings.grad_clip,
                len: own.len(),
            });
            vars.extend(own);
        }
        Ok(Self { groups, vars })
    }

    /// Every trained variable, in the order `Grads` expects.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Step `step` (0-based) of every group: each clips its own gradients and updates at its
    /// own learning rate. Returns the groups' steps, the main group's first.
    pub fn step(&mut self, grads: Grads, step: usize) -> Result<Vec<GroupStep>> {
        let lens: Vec<usize> = self.groups.iter().map(|g| g.len).collect();
        let mut done = Vec::with_capacity(self.groups.len());
        for (group, mut grads) in self.groups.iter_mut().zip(grads.split(&lens)) {
            let grad_norm = grads.clip(group.clip)?;
            let lr = group.schedule.lr(step);
            group.opt.step(&grads, lr)?;
            done.push(GroupStep {
                name: group.name.clone(),
                lr,
                grad_norm,
            });
        }
        Ok(done)
    }

    /// Saves every group's moments into `dir`: `optimizer.safetensors` for the main group,
    /// `optimizer-<name>.safetensors` for each named one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        for g in &self.groups {
            g.opt.save(&file(dir, &g.name))?;
        }
        Ok(())
    }

    /// Restores what [`Optimizers::save`] wrote, at `steps` steps done.
    pub fn load(&mut self, dir: &Path, steps: usize) -> Result<()> {
        for g in &mut self.groups {
            g.opt.load(&file(dir, &g.name), steps)?;
        }
        Ok(())
    }
}

fn file(dir: &Path, group: &str) -> PathBuf {
    match group {
        "" => dir.join("optimizer.safetensors"),
        name => dir.join(format!("optimizer-{name}.safetensors")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::{Init, ParamBuilder};
    use candle_core::Tensor;

    fn settings(lr: f64, grad_clip: f64) -> GroupSettings {
        GroupSettings {
            lr,
            warmup_ratio: 0.0,
            grad_clip,
        }
    }

    /// Two groups fed the same gradients, twice, the second ten times the first: each moves
    /// at its own rate, and the peer's clip (which evens out the two steps' scales, and so
    /// changes Adam's second update) leaves the main group's gradients whole.
    #[test]
    fn each_group_steps_by_its_own_rate_and_clip() {
        let mut b = ParamBuilder::fresh(0);
        b.get("w.weight", &[2], Init::Ones).unwrap();
        b.get("peer1.w.weight", &[2], Init::Ones).unwrap();
        let params = b.take_params();
        let peer = NamedGroup {
            name: "peer1".into(),
            prefix: "peer1.".into(),
            settings: settings(0.2, 1e-3),
        };
        let mut opts = Optimizers::new(&params, 0.0, 10, settings(0.1, 0.0), &[peer]).unwrap();
        let vars = opts.vars().to_vec();
        assert_eq!(vars.len(), 2);
        // Each group's rate: its own peak, decaying to 0 at step 10.
        let lr = |peak: f64, step: usize| {
            Schedule {
                peak,
                warmup: 0,
                total: 10,
            }
            .lr(step)
        };
        // Alone: the same variables' values under one AdamW each, clipped by hand.
        let alone = |peak: f64, clip: bool| -> Vec<f32> {
            let mut b = ParamBuilder::fresh(0);
            b.get("w.weight", &[2], Init::Ones).unwrap();
            let mut opt = AdamW::new(&b.take_params(), 0.0).unwrap();
            let v = opt.vars();
            for (step, scale) in [1.0f32, 10.0].into_iter().enumerate() {
                let k = Tensor::new(&[3.0 * scale, 4.0 * scale], &candle_core::Device::Cpu);
                let loss = (v[0].as_tensor() * k.unwrap()).unwrap().sum_all().unwrap();
                let mut g = Grads::empty(1);
                g.accumulate(&loss.backward().unwrap(), &v, 1.0).unwrap();
                if clip {
                    g.clip(1e-3).unwrap();
                }
                opt.step(&g, lr(peak, step)).unwrap();
            }
            v[0].as_tensor().to_vec1::<f32>().unwrap()
        };
        let mut norms = Vec::new();
        for (step, scale) in [1.0f32, 10.0].into_iter().enumerate() {
            let k = Tensor::new(&[3.0 * scale, 4.0 * scale], &candle_core::Device::Cpu).unwrap();
            let loss = vars
                .iter()
                .map(|v| (v.as_tensor() * &k).unwrap().sum_all().unwrap())
                .reduce(|a, b| (a + b).unwrap())
                .unwrap();
            let mut grads = Grads::empty(2);
            grads
                .accumulate(&loss.backward().unwrap(), &vars, 1.0)
                .unwrap();
            let steps = opts.step(grads, step).unwrap();
            assert_eq!(
                (steps[0].name.as_str(), steps[1].name.as_str()),
                ("", "peer1")
            );
            assert_eq!((steps[0].lr, steps[1].lr), (lr(0.1, step), lr(0.2, step)));
            norms.push((steps[0].grad_norm, steps[1].grad_norm));
        }
        assert!((norms[1].0 - 50.0).abs() < 1e-3 && (norms[1].1 - 50.0).abs() < 1e-3);
        let main = vars[0].as_tensor().to_vec1::<f32>().unwrap();
        let peer = vars[1].as_tensor().to_vec1::<f32>().unwrap();
        assert_eq!(main, alone(0.1, false));
        assert_eq!(peer, alone(0.2, true));
        assert_ne!(
            alone(0.2, true),
            alone(0.2, false),
            "the clip changes the update"
        );

        let dir = tempfile::tempdir().unwrap();
        opts.save(dir.path()).unwrap();
        assert!(dir.path().join("optimizer.safetensors").exists());
        assert!(dir.path().join("optimizer-peer1.safetensors").exists());
        opts.load(dir.path(), 2).unwrap();
    }
}
