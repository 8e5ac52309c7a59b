//! One LSTM time step's cell update for inference: gates → new cell and hidden state.
//!
//! The BiLSTM student's inference spent a third of its time in libm's scalar `expf` and
//! `tanhf` (`perf`, batch 32 × 32 tokens), five per unit and step. Here both go through the
//! branch-free [`exp`], so the loop over units vectorises (compiled again for AVX-512 and
//! AVX2 and picked at run time, as `elementwise` does).

use super::math::exp;

/// Updates one sequence's `c` and `h` (`units` values each) from the gates' two shares,
/// `recurrent` (h W_hhᵀ) and `input` (x W_ihᵀ + both biases), each `4 × units` values in
/// PyTorch's gate order: input, forget, cell, output.
pub fn lstm_cell(recurrent: &[f32], input: &[f32], c: &mut [f32], h: &mut [f32]) {
    let units = c.len();
    assert!(
        h.len() == units && recurrent.len() == 4 * units && input.len() == 4 * units,
        "lstm cell: {} recurrent and {} input gate values for {units} units ({} in h)",
        recurrent.len(),
        input.len(),
        h.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { cell_avx512(recurrent, input, c, h) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { cell_avx2(recurrent, input, c, h) };
        }
    }
    cell_loop(recurrent, input, c, h)
}

macro_rules! cell_with {
    ($name:ident, $feature:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name(recurrent: &[f32], input: &[f32], c: &mut [f32], h: &mut [f32]) {
            cell_loop(recurrent, input, c, h)
        }
    };
}
cell_with!(cell_avx512, "avx512f");
cell_with!(cell_avx2, "avx2");

#[inline(always)]
fn cell_loop(recurrent: &[f32], input: &[f32], c: &mut [f32], h: &mut [f32]) {
    let units = c.len();
    let gate = |k: usize| {
        recurrent[k * units..(k + 1) * units]
            .iter()
            .zip(&input[k * units..(k + 1) * units])
    };
    let gates = gate(0).zip(gate(1)).zip(gate(2)).zip(gate(3));
    for (((((ri, xi), (rf, xf)), (rg, xg)), (ro, xo)), (c, h)) in
        gates.zip(c.iter_mut().zip(h.iter_mut()))
    {
        let (i, f, g, o) = (
            sigmoid(ri + xi),
            sigmoid(rf + xf),
            tanh(rg + xg),
            sigmoid(ro + xo),
        );
        *c = f * *c + i * g;
        *h = o * tanh(*c);
    }
}

/// σ(x) = 1 / (1 + e^−x); `exp` saturates at ±87, where σ is 0 or 1 in f32 anyway.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh(x) = 1 − 2 / (1 + e^2x): within a few 1e-8 of libm's (absolute; near 0 the
/// subtraction loses relative, not absolute, precision).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::rand_tensor;

    fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        let t = rand_tensor(&[n], seed);
        t.to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v * scale)
            .collect()
    }

    #[test]
    fn cell_matches_the_lstm_equations_in_f64() {
        // 37 units: whole vectors and a remainder; gate values up to ±12, past where σ and
        // tanh saturate, and a cell state carried in.
        let units = 37;
        let (rec, inp) = (values(4 * units, 1, 6.0), values(4 * units, 2, 6.0));
        let c0 = values(units, 3, 3.0);
        let (mut c, mut h) = (c0.clone(), vec![0f32; units]);
        lstm_cell(&rec, &inp, &mut c, &mut h);
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        for j in 0..units {
            let pre = |k: usize| rec[k * units + j] as f64 + inp[k * units + j] as f64;
            let c_ref = s(pre(1)) * c0[j] as f64 + s(pre(0)) * pre(2).tanh();
            let h_ref = s(pre(3)) * c_ref.tanh();
            assert!(
                (c[j] as f64 - c_ref).abs() < 1e-6,
                "c[{j}]: {} vs {c_ref}",
                c[j]
            );
            assert!(
                (h[j] as f64 - h_ref).abs() < 1e-6,
                "h[{j}]: {} vs {h_ref}",
                h[j]
            );
        }
    }

    #[test]
    fn the_wide_paths_give_the_portable_loops_values() {
        let units = 45;
        let (rec, inp) = (values(4 * units, 4, 4.0), values(4 * units, 5, 4.0));
        let c0 = values(units, 6, 2.0);
        let (mut c, mut h) = (c0.clone(), vec![0f32; units]);
        let (mut c_loop, mut h_loop) = (c0, vec![0f32; units]);
        lstm_cell(&rec, &inp, &mut c, &mut h);
        cell_loop(&rec, &inp, &mut c_loop, &mut h_loop);
        assert_eq!((c, h), (c_loop, h_loop));
    }

    #[test]
    #[should_panic(expected = "lstm cell")]
    fn gates_of_the_wrong_length_are_refused() {
        let (mut c, mut h) = (vec![0f32; 3], vec![0f32; 3]);
        lstm_cell(&[0.0; 12], &[0.0; 8], &mut c, &mut h);
    }
}
