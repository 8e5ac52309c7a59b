//! One micro-batch of training: the forward and backward passes, with the batch split into
//! one part per thread.
//!
//! Why split: in one shared pass both threads meet at every op, and the glue between ops
//! (above all candle's autograd bookkeeping: a zeroed buffer and an add for every node's
//! gradient) runs on one thread while the other waits. Each part instead runs its forward and
//! backward passes start to end on its own thread (its products do not fork again, see
//! `kernels::may_fork`), padded to its own longest sequence. The caller sums the parts'
//! gradients, each weighted by its share of the examples: the batch mean of a per-example
//! loss exactly; terms averaged over tokens (the intermediate ones) are averaged per part,
//! as gradient accumulation over micro-batches already does.
//!
//! Dropout masks depend on the seed and the part, so a run is reproducible for a given seed
//! and thread count.

use candle_core::backprop::GradStore;
use candle_core::Var;
use rayon::prelude::*;

use crate::error::Result;
use crate::model::encoder::even_parts;
use crate::model::layers::with_dropout_seed;
use crate::model::{Model, Pass, WordRows};
use crate::objective::{Objective, TrainBatch};
use crate::train::optim::Grads;

/// Parts have at least this many examples: smaller ones are not worth a thread.
const MIN_PART_EXAMPLES: usize = 4;

/// The loss and gradients of one part of a micro-batch.
pub struct Part {
    /// The part's share of the micro-batch's examples (the weight of its gradients).
    pub share: f64,
    /// The part's total loss (mean over its examples) and each term's value.
    pub loss: f64,
    pub terms: Vec<(&'static str, f64)>,
    /// The gradients of `loss`; `None` when the loss is not finite (nothing to apply).
    pub grads: Option<GradStore>,
    /// The word-embedding rows the part looked up: their gradient in `grads` is the word
    /// table's (see `Pass::word_rows`).
    pub word_rows: Option<WordRows>,
}

impl Part {
    /// Adds `scale` × this part's gradients (the word table's included) to `grads`.
    pub fn add_to(&self, grads: &mut Grads, vars: &[Var], scale: f64) -> Result<()> {
        let Some(store) = &self.grads else {
            return Ok(());
        };
        grads.accumulate(store, vars, scale)?;
        match &self.word_rows {
            Some(rows) => grads.add_word_rows(store, rows, vars, scale),
            None => Ok(()),
        }
    }
}

/// How a training part runs: dropout on, gradients taken, the word table's gradient added
/// row by row (`Part::add_to`).
const TRAIN_PASS: Pass = Pass {
    word_rows: true,
    ..Pass::TRAIN
};

/// Runs the forward and backward passes of the micro-batch `indices` (turned into a batch
/// by `make_batch`) in one part per thread, or in one part on the calling thread when the
/// batch is small or there is one thread.
pub fn forward_backward(
    model: &dyn Model,
    objective: &Objective,
    indices: &[usize],
    seed: u64,
    make_batch: &(dyn Fn(&[usize]) -> Result<TrainBatch> + Sync),
) -> Result<Vec<Part>> {
    let parts = split(indices, rayon::current_num_threads());
    let run = |(p, idx): (usize, &[usize])| -> Result<Part> {
        let batch = make_batch(idx)?;
        // Dropout masks come from a per-thread stream: seed it for the part's forward pass
        // (and a teacher's that trains too, inside the objective).
        let (output, loss) = with_dropout_seed(seed ^ ((p as u64) << 40), || -> Result<_> {
            let output = model.forward(&batch.input, TRAIN_PASS, objective.student_outputs())?;
            let mut loss = objective.loss(&batch, &output)?;
            objective.add_adversarial(model, &batch, &mut loss)?;
            Ok((output, loss))
        })?;
        let value = loss.total.to_scalar::<f32>()? as f64;
        let grads = match value.is_finite() {
            true => Some(loss.total.backward()?),
            false => None,
        };
        Ok(Part {
            share: idx.len() as f64 / indices.len() as f64,
            loss: value,
            terms: loss.terms,
            grads,
            word_rows: output.word_rows,
        })
    };
    if parts.len() == 1 {
        // On the calling thread, where the ops may still use every thread.
        return Ok(vec![run((0, indices))?]);
    }
    parts.into_par_iter().enumerate().map(run).collect()
}

/// Consecutive parts of `indices`, one per thread, each at least [`MIN_PART_EXAMPLES`] long
/// (one part when that is not possible).
fn split(indices: &[usize], threads: usize) -> Vec<&[usize]> {
    let parts = threads.min(indices.len() / MIN_PART_EXAMPLES).max(1);
    even_parts(indices.len(), parts)
        .into_iter()
        .map(|r| &indices[r])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_consecutive_and_large_enough() {
        let idx: Vec<usize> = (0..32).collect();
        let lens = |n: usize, threads| -> Vec<usize> {
            let parts = split(&idx[..n], threads);
            assert_eq!(parts.concat(), idx[..n].to_vec());
            parts.iter().map(|p| p.len()).collect()
        };
        assert_eq!(lens(32, 2), vec![16, 16]);
        assert_eq!(lens(9, 2), vec![4, 5]);
        assert_eq!(lens(32, 3), vec![10, 11, 11]);
        assert_eq!(lens(7, 2), vec![7]);
        assert_eq!(lens(32, 1), vec![32]);
        assert_eq!(lens(0, 2), vec![0]);
    }
}
