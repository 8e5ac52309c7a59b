//! The adversarial transfer set (`adversarial_kl`): word-embedding perturbations found by
//! gradient ascent on the teacher–student divergence, within a per-token bound, and the
//! student trained on the teacher's soft labels there.

mod common;

use candle_core::Tensor;
use common::tiny_distill_config;
use retort::distill::run::distill;
use retort::model::{EncoderInput, Model, Outputs, Pass};
use retort::objective::loss;
use retort::objective::terms::{Term, TermKind};
use retort::objective::{adversarial_noise, TrainBatch};
use retort::train::config::{DistillConfig, FreshStudent, StudentSection};
use retort::Classifier;

const T: f64 = 2.0;

/// The teacher–student soft_kl on `batch` with `noise` added to the word embeddings.
fn divergence(student: &dyn Model, teacher: &dyn Model, batch: &TrainBatch, noise: &Tensor) -> f32 {
    let input = EncoderInput {
        word_noise: Some(noise.clone()),
        ..batch.input.clone()
    };
    let none = Outputs::default();
    let s = student.forward(&input, Pass::INFERENCE, none).unwrap();
    let t = teacher.forward(&input, Pass::INFERENCE, none).unwrap();
    let rows = |l: &Tensor| batch.select_rows(l).unwrap();
    loss::soft_kl(&rows(&s.logits), &rows(&t.logits), T)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Per token, the L2 norm of `noise`'s vector: `[batch, seq]`.
fn token_norms(noise: &Tensor) -> Vec<Vec<f32>> {
    noise
        .sqr()
        .unwrap()
        .sum(2)
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec2()
        .unwrap()
}

#[test]
fn the_perturbation_stays_within_epsilon_and_raises_the_divergence_more_than_chance() {
    let (teacher, student, batch) = common::tiny_pair(&[0], vec![None, None, None]);
    let eps = 0.2;
    let noise =
        adversarial_noise(student.as_ref(), teacher.model.as_ref(), &batch, eps, 2, T).unwrap();
    let width = teacher.model.config().hidden_size;
    assert_eq!(
        noise.dims(),
        [3, batch.input.input_ids.dim(1).unwrap(), width]
    );
    // Within the bound for every token, at the bound for some, zero at padding.
    let norms = token_norms(&noise);
    let mask: Vec<Vec<f32>> = batch.input.attention_mask.to_vec2().unwrap();
    for (row, m) in norms.iter().zip(&mask) {
        for (&n, &m) in row.iter().zip(m) {
            assert!(n <= eps as f32 + 1e-5, "{n}");
            if m == 0.0 {
                assert_eq!(n, 0.0);
            }
        }
    }
    assert!(norms.iter().flatten().any(|&n| n > 0.9 * eps as f32));

    // Ascent beats doing nothing, and beats random directions of the same per-token length.
    let (s, t) = (student.as_ref(), teacher.model.as_ref());
    let clean = divergence(s, t, &batch, &noise.zeros_like().unwrap());
    let adversarial = divergence(s, t, &batch, &noise);
    let lengths = noise.sqr().unwrap().sum_keepdim(2).unwrap().sqrt().unwrap();
    for seed in 0..5 {
        let r = common::seeded_normal(noise.dims(), seed);
        let r_len = r.sqr().unwrap().sum_keepdim(2).unwrap().sqrt().unwrap();
        let random = r
            .broadcast_div(&r_len)
            .unwrap()
            .broadcast_mul(&lengths)
            .unwrap();
        let by_chance = divergence(s, t, &batch, &random);
        assert!(
            adversarial > by_chance,
            "{adversarial} vs random {by_chance}"
        );
    }
    assert!(adversarial > clean, "{adversarial} vs clean {clean}");
}

#[test]
fn a_distillation_with_adversarial_kl_trains_on_it_and_needs_no_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = tiny_distill_config(dir);
    let mut adversarial = Term::new(TermKind::AdversarialKl, 0.5);
    adversarial.epsilon = Some(0.3);
    adversarial.steps = Some(2);
    c.distill.terms = Some(vec![Term::new(TermKind::HardCe, 0.5), adversarial]);
    c.output.dir = dir.join("adversarial");
    let s = distill(&c, false, false).unwrap();
    assert_eq!(s.run.steps, 3);
    // No logit term reads cached logits: the teacher runs online only.
    assert_eq!(s.teacher_cache_hit, None);
    let first = common::first_train_record(&c.output.dir);
    let term = |k: &str| first["terms"][k].as_f64().unwrap();
    assert!(term("adversarial_kl") > 0.0, "{first}");
    let total = 0.5 * (term("hard_ce") + term("adversarial_kl"));
    assert!(
        (first["loss"].as_f64().unwrap() - total).abs() < 1e-5,
        "{first}"
    );
    Classifier::load(&c.output.dir.join("best"), 32).unwrap();
}

#[test]
fn bad_adversarial_settings_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let refused = |c: &DistillConfig, needle: &str| {
        let err = distill(c, false, false).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!c.output.dir.join("best").exists(), "{needle}");
    };
    let mut c = tiny_distill_config(dir);
    c.output.dir = dir.join("refused");
    // epsilon belongs to adversarial_kl only; a bound of 0 or no steps moves nothing.
    let mut kl = Term::new(TermKind::SoftKl, 1.0);
    kl.epsilon = Some(0.5);
    c.distill.terms = Some(vec![kl]);
    refused(&c, "epsilon and steps belong to adversarial_kl");
    let mut adversarial = Term::new(TermKind::AdversarialKl, 1.0);
    adversarial.steps = Some(0);
    c.distill.terms = Some(vec![adversarial.clone()]);
    refused(&c, "steps at least 1");
    adversarial.steps = None;
    adversarial.epsilon = Some(-1.0);
    c.distill.terms = Some(vec![adversarial]);
    refused(&c, "epsilon must be a positive number");

    // A student whose word embeddings are narrower than the teacher's.
    c.distill.terms = Some(vec![Term::new(TermKind::AdversarialKl, 1.0)]);
    c.student = StudentSection::Fresh(FreshStudent {
        layers: 1,
        hidden_size: 8,
        heads: 2,
        intermediate_size: 16,
        ..FreshStudent::default()
    });
    refused(&c, "wide like the teacher's");
}
