//! Fused CPU kernels with hand-written backward passes.
//!
//! Why they exist: built from small differentiable candle ops, a LayerNorm or an attention
//! block allocates a full-size tensor per step, and autograd then adds a zero-filled
//! gradient buffer and an `add` per step on the way back. Measured on the student train
//! step, that bookkeeping (not the matmuls) took most of the time. Each kernel here does its
//! block in one pass over memory, split over rows with rayon, and records its backward pass
//! through candle's `CustomOp` machinery (`apply_op*`, not the `_no_bwd` variants), so
//! parameters upstream keep getting gradients — unlike candle's fused `layer_norm` and
//! `softmax_last_dim`, which record none.
//!
//! Everything is f32 on the CPU. The public wrappers make their inputs contiguous; the ops
//! check it again. Element-wise maths is written branch-free with its own `exp` and `erf`
//! so the compiler vectorises the loops (libm's `expf`/`erff` are scalar calls).
//!
//! Parallel work, the matmuls included, runs on rayon's pool. (candle's own barrier pool
//! spin-waits, which under load on a small machine stalls every op; the kernels tried it
//! and were slower. See [`disable_candle_pool`] for candle's remaining element-wise ops.)

mod add_scaled;
mod attention;
mod cross_entropy;
mod dropout;
mod elementwise;
mod gelu;
mod gemm;
mod layer_norm;
mod linear;
mod lstm;
mod math;
mod packed;
mod softmax;
mod storage;
#[cfg(test)]
pub(crate) mod test_util;

pub use add_scaled::add_scaled;
pub use attention::{attention_context, attention_probs};
pub use cross_entropy::cross_entropy;
pub use dropout::dropout;
pub use gelu::gelu_erf;
pub(crate) use gemm::SMALL_M_ROWS;
pub use layer_norm::{add_layer_norm, layer_norm};
pub use linear::{linear, linear_gelu, linear_packed};
pub use lstm::lstm_cell;
pub use packed::{packing_pays, PackedWeight};
pub use softmax::softmax_last;

use std::cell::Cell;

/// Sets up the process for the kernels: call it first thing in `main`, before other threads
/// start and before any tensor op.
///
/// - glibc keeps freed tensor buffers for reuse. Each tensor op allocates its output; glibc
///   serves large blocks with mmap and gives them back with munmap, so a training step spent
///   about half its time in the kernel mapping and zeroing pages. Raising the mmap threshold
///   to its maximum (32 MiB) and never trimming the heap lets freed buffers be reused.
/// - candle's own element-wise pool is off ([`disable_candle_pool`]).
pub fn configure_process() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
    disable_candle_pool();
}

/// Makes candle run its own element-wise ops on the calling thread rather than on its
/// worker pool, unless the user set `CANDLE_NUM_THREADS`. The kernels here and the matmuls
/// run on rayon's pool; candle's second pool only adds threads that spin-wait against
/// rayon's for the same cores (on 2 cores: a third of the backward pass, mostly in the
/// gradient sums candle's autograd adds per op). Matmul threads are unaffected.
///
/// It sets an environment variable candle reads once: call it first thing in `main`, before
/// other threads start and before any tensor op.
pub fn disable_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Whether a product may split over the threads: not when it is called from a rayon worker,
/// that is from work already split over the threads (an inference batch run as one part
/// per thread, see `Transformer::forward`), where forking only adds overhead, unless that
/// worker runs a whole pass for [`on_pool`].
pub(crate) fn may_fork() -> bool {
    rayon::current_num_threads() > 1
        && (rayon::current_thread_index().is_none() || WHOLE_PASS.with(Cell::get))
}

thread_local! {
    /// Set on the rayon worker that runs a whole pass for [`on_pool`].
    static WHOLE_PASS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, a pass that is not split over the threads (a single sentence), on a rayon
/// worker, where its products may still fork ([`may_fork`]). Called from outside the pool,
/// every fork would hand its work to the pool and put the calling thread to sleep until
/// it is done: two thread switches per product, ~14% of batch-1 time in `perf`. From a
/// worker, a fork runs its first half in place and the other worker, still awake from the
/// previous product, takes the second.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() < 2 || rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| {
        WHOLE_PASS.with(|w| w.set(true));
        let result = f();
        WHOLE_PASS.with(|w| w.set(false));
        result
    })
}

// Tests of several kernels together; each op's own tests are in its file.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{flat, max_diff, naive_layer_norm, rand_tensor};
    use candle_core::{Tensor, Var, D};

    /// Gradients of `Σ r ⊙ f(inputs)` for each input.
    fn grads_of(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> Vec<Tensor> {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let tracked: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&tracked);
        let r = rand_tensor(y.dims(), 8);
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        vars.iter()
            .map(|v| grads.get(v.as_tensor()).unwrap().clone())
            .collect()
    }

    #[test]
    fn big_inputs_split_over_tasks_match_candle_autograd() {
        // 300 rows of 100: several parallel tasks, so per-task offsets and partial sums
        // (weight and bias gradients) are exercised; candle's own autograd is the reference.
        let inputs = [
            rand_tensor(&[300, 100], 40),
            rand_tensor(&[300, 100], 41),
            rand_tensor(&[100], 42),
            rand_tensor(&[100], 43),
            rand_tensor(&[70, 100], 44),
            rand_tensor(&[70], 45),
        ];
        let ours = |t: &[Tensor]| {
            let h = add_layer_norm(&t[0], &t[1], &t[2], &t[3], 1e-5).unwrap();
            let h = layer_norm(&gelu_erf(&h).unwrap(), &t[2], &t[3], 1e-5).unwrap();
            softmax_last(&linear(&h, &t[4], &t[5]).unwrap()).unwrap()
        };
        let naive = |t: &[Tensor]| {
            let h = naive_layer_norm(&(&t[0] + &t[1]).unwrap(), &t[2], &t[3], 1e-5);
            let h = naive_layer_norm(&h.gelu_erf().unwrap(), &t[2], &t[3], 1e-5);
            let y = h
                .matmul(&t[4].t().unwrap())
                .unwrap()
                .broadcast_add(&t[5])
                .unwrap();
            candle_nn::ops::softmax(&y, D::Minus1).unwrap()
        };
        assert!(max_diff(&ours(&inputs), &naive(&inputs)) < 1e-5);
        for (i, (a, b)) in grads_of(ours, &inputs)
            .iter()
            .zip(grads_of(naive, &inputs))
            .enumerate()
        {
            let scale = flat(&b).iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(max_diff(a, &b) <= 1e-4 * scale.max(1.0), "input {i}");
        }
    }

    #[test]
    fn gradients_flow_through_a_chain_of_kernels() {
        let x = Var::from_tensor(&rand_tensor(&[2, 3, 4], 14)).unwrap();
        let (w, b) = (rand_tensor(&[4, 4], 15), rand_tensor(&[4], 16));
        let h = linear(x.as_tensor(), &w, &b).unwrap();
        let y = layer_norm(&gelu_erf(&h).unwrap(), &b, &b, 1e-5).unwrap();
        let y = dropout(&softmax_last(&y).unwrap(), 0.1, 3).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).expect("x gets a gradient");
        assert!(flat(g).iter().any(|v| *v != 0.0));
    }
}
