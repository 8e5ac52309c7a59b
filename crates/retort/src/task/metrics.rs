//! Classification metrics over predicted and gold labels.

/// Fraction of predictions equal to the gold labels (0 for no examples).
pub fn accuracy(pred: &[usize], gold: &[usize]) -> f64 {
    if gold.is_empty() {
        return 0.0;
    }
    let right = pred.iter().zip(gold).filter(|(p, g)| p == g).count();
    right as f64 / gold.len() as f64
}

/// Unweighted mean of per-class F1 over the classes that occur in gold or predictions.
pub fn macro_f1(pred: &[usize], gold: &[usize], num_classes: usize) -> f64 {
    let mut tp = vec![0usize; num_classes];
    let mut fp = vec![0usize; num_classes];
    let mut fneg = vec![0usize; num_classes];
    for (&p, &g) in pred.iter().zip(gold) {
        if p == g {
            tp[p] += 1;
        } else {
            fp[p] += 1;
            fneg[g] += 1;
        }
    }
    let f1s: Vec<f64> = (0..num_classes)
        .filter(|&c| tp[c] + fp[c] + fneg[c] > 0)
        .map(|c| {
            let denom = 2 * tp[c] + fp[c] + fneg[c];
            2.0 * tp[c] as f64 / denom as f64
        })
        .collect();
    if f1s.is_empty() {
        0.0
    } else {
        f1s.iter().sum::<f64>() / f1s.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_macro_f1_by_hand() {
        let gold = [0, 0, 1, 1, 1];
        let pred = [0, 1, 1, 1, 0];
        assert!((accuracy(&pred, &gold) - 0.6).abs() < 1e-12);
        // class 0: tp 1, fp 1, fn 1 -> F1 0.5; class 1: tp 2, fp 1, fn 1 -> F1 2/3.
        assert!((macro_f1(&pred, &gold, 2) - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
