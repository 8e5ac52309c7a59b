//! The tasks of one run. A run trains one model on one task, or, in multi-task
//! distillation, one student with a head per task: each task has its own view of the
//! student (a [`Model`] whose encoder variables are the first task's own, with a head of its
//! own), its objective (its teacher and terms), its data and its share of the batches.
//!
//! The trainer walks the tasks' batches in the order a [`Plan`] gives, updates every
//! parameter of every view with one optimiser (a head is updated only at the steps its
//! task's batches reach it), scores each task on its dev set and chooses checkpoints by the
//! mean of their primary metrics.

use crate::error::{Error, Result};
use crate::model::heads::head_prefixes;
use crate::model::{Model, Params};
use crate::objective::Objective;
use crate::task::TaskData;
use crate::text::batch::bucketed_batches;

/// One task of a run.
pub struct TaskRun<'a> {
    /// Empty for the first task (saved in `best/`, logged under its metric's own name);
    /// another task's name (saved in `best-<name>/`, its terms and metrics logged as
    /// `<name>.<term>`).
    pub name: &'a str,
    pub model: &'a dyn Model,
    pub objective: &'a Objective,
    pub train: &'a TaskData,
    pub dev: &'a TaskData,
    /// Batches of this task per batch of the first task (the first task's is 1).
    pub ratio: f64,
}

impl<'a> TaskRun<'a> {
    /// The only task of a single-task run.
    pub fn single(
        model: &'a dyn Model,
        objective: &'a Objective,
        train: &'a TaskData,
        dev: &'a TaskData,
    ) -> Self {
        Self {
            name: "",
            model,
            objective,
            train,
            dev,
            ratio: 1.0,
        }
    }

    /// `<name>.<what>` for a named task, `what` for the first.
    pub fn prefixed(&self, what: &str) -> String {
        match self.name {
            "" => what.to_string(),
            name => format!("{name}.{what}"),
        }
    }
}

/// Where the parameters of a task other than the first are kept in the run's parameter set
/// and in `last/tasks.safetensors`: under `tasks.<name>.` (its objective's under
/// `tasks.<name>.objective.`).
pub fn task_prefix(name: &str) -> String {
    format!("{TASKS_PREFIX}{name}.")
}

/// What every other task's parameter name starts with.
pub const TASKS_PREFIX: &str = "tasks.";

/// Every parameter the run trains, each once: the first task's model and objective as they
/// name them, then each other task's own parameters (those its model does not share with the
/// first's: its head) and its objective's, under [`task_prefix`]. A variable a later task
/// shares under a name the first task uses must be the first task's own variable.
pub fn merged_params(tasks: &[TaskRun]) -> Result<Params> {
    let first = &tasks[0];
    let mut params = Params::merged(first.model.params(), &first.objective.params);
    for task in &tasks[1..] {
        let shared = first.model.params();
        // Both heads' names: the other task's head is its own even where the first's is named alike.
        let heads: Vec<&str> = [first.model, task.model]
            .iter()
            .flat_map(|m| {
                head_prefixes(m.config().architecture, m.config().head)
                    .iter()
                    .copied()
            })
            .collect();
        let is_head = |name: &str| heads.iter().any(|p| name.starts_with(p));
        let mut own = Vec::new();
        for (name, var) in task.model.params().iter() {
            match shared.get(name) {
                Some(v) if v.as_tensor().id() == var.as_tensor().id() => {}
                Some(_) if !is_head(name) => {
                    return Err(Error::Invalid(format!(
                        "task {}: its model's {name} is not the first task's variable: the tasks' models must share their encoder",
                        task.name
                    )))
                }
                _ => own.push(name.to_string()),
            }
        }
        let prefix = task_prefix(task.name);
        let own = task
            .model
            .params()
            .filtered(|n| own.iter().any(|o| o == n))
            .prefixed(&prefix);
        let objective = task
            .objective
            .params
            .prefixed(&format!("{prefix}objective."));
        params = Params::merged(&Params::merged(&params, &own), &objective);
    }
    Ok(params)
}

/// The order of a run's micro-batches. An epoch is one pass over the first task's training
/// data in batches; each other task adds `ratio` batches per batch of the first, taken in
/// turn from its own data (shuffled again whenever it has all been seen), spread evenly
/// over the epoch. A single task's epoch is exactly its bucketed batches.
pub struct Plan {
    /// Per task: the lengths of its training examples, and how many batches one pass over
    /// them takes.
    lengths: Vec<Vec<usize>>,
    passes: Vec<usize>,
    /// Per task: its batches in each epoch (the first task's: one pass).
    per_epoch: Vec<usize>,
    batch_size: usize,
}

impl Plan {
    /// The plan of `tasks`' training data in batches of `batch_size`.
    pub fn of(tasks: &[TaskRun], batch_size: usize) -> Self {
        let lengths = tasks
            .iter()
            .map(|t| t.train.examples.iter().map(|e| e.ids.len()).collect())
            .collect();
        let ratios: Vec<f64> = tasks.iter().map(|t| t.ratio).collect();
        Self::new(lengths, &ratios, batch_size)
    }

    /// Per task: its examples' lengths and its batches per batch of the first (`ratios[0]`
    /// is not read).
    pub fn new(lengths: Vec<Vec<usize>>, ratios: &[f64], batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        let passes: Vec<usize> = lengths
            .iter()
            .map(|l| l.len().div_ceil(batch_size))
            .collect();
        let per_epoch = ratios
            .iter()
            .enumerate()
            .map(|(k, ratio)| match k {
                0 => passes[0],
                _ => ((ratio * passes[0] as f64).round() as usize).max(1),
            })
            .collect();
        Self {
            lengths,
            passes,
            per_epoch,
            batch_size,
        }
    }

    /// Micro-batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.per_epoch.iter().sum()
    }

    /// Epoch `epoch`'s micro-batches: (task, example indices), in training order.
    pub fn epoch(&self, epoch: usize, seed: u64) -> Vec<(usize, Vec<usize>)> {
        let first = bucketed_batches(
            &self.lengths[0],
            self.batch_size,
            seed.wrapping_add(epoch as u64),
        );
        if self.per_epoch.len() == 1 {
            return first.into_iter().map(|b| (0, b)).collect();
        }
        let mut streams: Vec<Box<dyn Iterator<Item = Vec<usize>>>> =
            vec![Box::new(first.into_iter())];
        for k in 1..self.per_epoch.len() {
            streams.push(Box::new(self.stream(k, epoch, seed)));
        }
        interleave(&self.per_epoch)
            .into_iter()
            .map(|k| {
                (
                    k,
                    streams[k]
                        .next()
                        .expect("each stream holds its epoch's batches"),
                )
            })
            .collect()
    }

    /// Task `k`'s batches of epoch `epoch`: batch `epoch × per_epoch + j` of its endless
    /// sequence of passes, pass `p` shuffled by `seed`, `k` and `p`.
    fn stream(&self, k: usize, epoch: usize, seed: u64) -> impl Iterator<Item = Vec<usize>> + '_ {
        let (n, start) = (self.passes[k], epoch * self.per_epoch[k]);
        let mut cached: Option<(usize, Vec<Vec<usize>>)> = None;
        (start..start + self.per_epoch[k]).map(move |g| {
            let pass = g / n;
            if cached.as_ref().map(|c| c.0) != Some(pass) {
                let pass_seed = seed ^ ((k as u64) << 48) ^ ((pass as u64) << 24);
                cached = Some((
                    pass,
                    bucketed_batches(&self.lengths[k], self.batch_size, pass_seed),
                ));
            }
            cached.as_ref().expect("just filled").1[g % n].clone()
        })
    }
}

/// Which task each slot of an epoch serves, `counts[k]` slots for task `k`, spread evenly
/// (smooth weighted round robin: each slot goes to the task furthest behind its share).
pub fn interleave(counts: &[usize]) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    let mut given = vec![0usize; counts.len()];
    (0..total)
        .map(|slot| {
            let due =
                |k: usize| counts[k] as f64 * (slot + 1) as f64 / total as f64 - given[k] as f64;
            let k = (0..counts.len())
                .filter(|&k| given[k] < counts[k])
                .max_by(|&a, &b| due(a).total_cmp(&due(b)).then(b.cmp(&a)))
                .expect("a slot is left for some task");
            given[k] += 1;
            k
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Transformer;

    #[test]
    fn interleaving_gives_each_task_its_count_spread_evenly() {
        assert_eq!(interleave(&[3]), vec![0, 0, 0]);
        assert_eq!(interleave(&[2, 2]), vec![0, 1, 0, 1]);
        let order = interleave(&[4, 2]);
        assert_eq!(order, vec![0, 1, 0, 0, 1, 0]);
        let order = interleave(&[5, 3, 1]);
        for (k, want) in [5, 3, 1].into_iter().enumerate() {
            assert_eq!(order.iter().filter(|&&t| t == k).count(), want);
        }
        // Never two of task 1 in a row when it has fewer slots than task 0.
        assert!(!order.windows(2).any(|w| w == [1, 1]), "{order:?}");
    }

    #[test]
    fn tasks_share_the_first_tasks_encoder_or_are_refused() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-bert");
        let first = crate::infer::Classifier::load(&dir, 16).unwrap();
        let first = first.transformer("test").unwrap().clone();
        // A clone shares every variable; its head is given new ones (the other task's own).
        let labels: Vec<String> = ["x", "y"].map(String::from).to_vec();
        let mut view = first.clone();
        let fresh = first
            .clone()
            .with_head(first.config.head, &labels, 1)
            .unwrap();
        view.head = fresh.head.clone();
        let head_vars = fresh.params.filtered(|n| n.starts_with("classifier."));
        view.params = Params::merged(
            &first.params.filtered(|n| !n.starts_with("classifier.")),
            &head_vars,
        );
        let (objective, data) = (Objective::fine_tune(), TaskData::default());
        let task = |name: &'static str, model: &'static Transformer| TaskRun {
            name,
            model,
            objective: &objective,
            train: &data,
            dev: &data,
            ratio: 1.0,
        };
        // The views live as long as the test: leaked, so the closure can lend them.
        let first: &'static Transformer = Box::leak(Box::new(first));
        let view: &'static Transformer = Box::leak(Box::new(view));
        let fresh: &'static Transformer = Box::leak(Box::new(fresh));
        let merged = merged_params(&[task("", first), task("ner", view)]).unwrap();
        let own: Vec<&str> = merged
            .iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(TASKS_PREFIX))
            .collect();
        assert_eq!(own.len(), head_vars.iter().count(), "{own:?}");
        assert!(
            own.iter().all(|n| n.starts_with("tasks.ner.classifier.")),
            "{own:?}"
        );
        assert_eq!(merged.count(), first.params.count() + head_vars.count());
        // A model with encoder variables of its own does not share the encoder.
        let err = merged_params(&[task("", first), task("ner", fresh)]).unwrap_err();
        assert!(
            err.to_string().contains("must share their encoder"),
            "{err}"
        );
    }

    #[test]
    fn a_plan_gives_each_task_its_ratio_and_every_example_once_per_pass() {
        let (a, b) = (vec![5usize; 8], vec![3usize; 6]);
        // One task: exactly its bucketed batches.
        let one = Plan::new(vec![a.clone()], &[1.0], 2);
        let epoch: Vec<Vec<usize>> = one.epoch(0, 7).into_iter().map(|(_, b)| b).collect();
        assert_eq!(epoch, bucketed_batches(&a, 2, 7));
        // Task 1 (3 batches a pass) at 1.5 batches per batch of task 0 (4 a pass): 6 a epoch.
        let two = Plan::new(vec![a, b], &[1.0, 1.5], 2);
        assert_eq!(two.batches_per_epoch(), 10);
        let mut seen = vec![0usize; 6];
        for epoch in 0..2 {
            let order = two.epoch(epoch, 7);
            assert_eq!(order.iter().filter(|(k, _)| *k == 1).count(), 6);
            let firsts: Vec<usize> = order
                .iter()
                .filter(|(k, _)| *k == 0)
                .flat_map(|(_, b)| b.clone())
                .collect();
            assert_eq!(firsts.len(), 8);
            for (_, batch) in order.iter().filter(|(k, _)| *k == 1) {
                batch.iter().for_each(|&i| seen[i] += 1);
            }
        }
        // 12 batches of task 1 over two epochs: four whole passes over its 6 examples.
        assert_eq!(seen, vec![4; 6]);
    }
}
