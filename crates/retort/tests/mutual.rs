//! Mutual learning (`distill.mutual`): the teacher trains beside the student, each on its own
//! loss toward the other's detached predictions, with its own learning rate; the run saves it
//! as `peer/`, resumes both, and refuses what mutual learning cannot do.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use common::{fixture, tiny_distill_config};
use retort::distill::run::distill;
use retort::model::layers::with_dropout_seed;
use retort::model::{Outputs, Pass};
use retort::objective::loss;
use retort::objective::mapping::LayerMap;
use retort::objective::terms::{Term, TermKind};
use retort::objective::{Objective, Teacher, PEER_PREFIX};
use retort::train::config::{DistillConfig, ExtraTeacher, StudentSection, TeacherLayersStudent};
use retort::Classifier;

const T: f64 = 2.0;

fn terms() -> Vec<Term> {
    vec![
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::SoftKl, 0.5),
    ]
}

/// Each model's gradient is that of its own loss: hard_ce on the gold labels plus soft_kl
/// toward the other's detached logits. A missing detach would send the student's soft_kl
/// into the teacher (and back), and the gradients would differ.
#[test]
fn each_peer_gets_the_gradient_of_its_own_loss() {
    let (teacher, student, batch) = common::tiny_pair(&[0, 2], vec![Some(2), Some(0), Some(1)]);
    let objective = Objective::distill(
        &terms(),
        &LayerMap::Uniform,
        T,
        Teacher {
            model: Some(teacher.model.clone()),
            cached_logits: None,
            learns: Some(0.5),
        },
        2,
        student.config().hidden_size,
        0,
    )
    .unwrap();
    // The teacher's parameters are the objective's, under their own names, at half the rate.
    assert_eq!(objective.params.count(), teacher.model.params().count());
    assert!(objective
        .params
        .iter()
        .all(|(n, _)| n.starts_with(PEER_PREFIX)));
    assert_eq!(objective.lr_scale("peer.classifier.weight"), 0.5);
    assert_eq!(objective.lr_scale("classifier.weight"), 1.0);
    assert!(objective.learning_teacher().is_some());

    let outputs = Outputs::default();
    // Both computations draw the same dropout masks: the student's pass, then the teacher's.
    let (value, grads) = with_dropout_seed(7, || {
        let out = student.forward(&batch.input, Pass::TRAIN, outputs).unwrap();
        let l = objective.loss(&batch, &out).unwrap();
        let g = l.total.backward().unwrap();
        (l, g)
    });
    let names: Vec<&str> = value.terms.iter().map(|t| t.0).collect();
    assert_eq!(
        names,
        ["hard_ce", "soft_kl", "peer.hard_ce", "peer.soft_kl"]
    );
    let (s_loss, t_loss) = with_dropout_seed(7, || {
        let s = student.forward(&batch.input, Pass::TRAIN, outputs).unwrap();
        let t = teacher
            .model
            .forward(&batch.input, Pass::TRAIN, outputs)
            .unwrap();
        let gold = Tensor::new(&[2u32, 0, 1], &Device::Cpu).unwrap();
        let own = |mine: &Tensor, other: &Tensor| -> Tensor {
            let ce = loss::hard_ce(mine, &gold).unwrap();
            let kl = loss::soft_kl(mine, &other.detach(), T).unwrap();
            ((ce * 0.5).unwrap() + (kl * 0.5).unwrap()).unwrap()
        };
        (own(&s.logits, &t.logits), own(&t.logits, &s.logits))
    });
    let total = (&s_loss + &t_loss).unwrap().to_scalar::<f32>().unwrap();
    let got = value.total.to_scalar::<f32>().unwrap();
    assert!((total - got).abs() < 1e-5, "{total} vs {got}");
    for (own_loss, params) in [
        (&s_loss, student.params()),
        (&t_loss, teacher.model.params()),
    ] {
        let own = own_loss.backward().unwrap();
        for (name, var) in params.iter() {
            let (a, b) = (grads.get(var.as_tensor()), own.get(var.as_tensor()));
            match (a, b) {
                (Some(a), Some(b)) => {
                    let d = common::max_abs_diff(a, b);
                    assert!(d < 1e-5, "{name}: gradients differ by {d}");
                }
                (None, None) => {}
                _ => panic!("{name}: a gradient in one computation only"),
            }
        }
    }
}

/// The tiny distillation with the teacher learning too, at twice the student's rate.
fn mutual_config(dir: &Path) -> DistillConfig {
    let mut c = tiny_distill_config(dir);
    c.distill.terms = Some(terms());
    c.distill.mutual = true;
    c.distill.mutual_lr = 2e-3;
    c.train.lr = 1e-3;
    // No decay: a tensor that changed did so by its gradient.
    c.train.weight_decay = 0.0;
    c.output.dir = dir.join("mutual");
    c
}

fn tensors(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn a_mutual_run_trains_every_teacher_tensor_saves_the_peer_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = mutual_config(dir);
    let s = distill(&c, false, false).unwrap();
    assert_eq!(s.run.steps, 3);
    // The teacher changes at every step: no logits are cached.
    assert_eq!(s.teacher_cache_hit, None);
    assert!(!dir.join("cache").exists());
    let peer = s.peer.as_ref().expect("a mutual run reports its peer");
    assert_eq!(peer.dir, c.output.dir.join("peer"));
    assert!((0.0..=1.0).contains(&peer.score));
    let loaded = Classifier::load(&peer.dir, 32).unwrap();
    assert!(!loaded.report.fresh_head);

    // Every tensor of the teacher was trained (the fixture itself is untouched).
    let (before, after) = (tensors(&fixture("tiny-bert")), tensors(&peer.dir));
    assert_eq!(before.len(), after.len());
    let unchanged: Vec<&String> = before
        .iter()
        .filter(|(n, t)| common::max_abs_diff(t, &after[*n]) == 0.0)
        .map(|(n, _)| n)
        .collect();
    assert!(
        unchanged.is_empty(),
        "untrained teacher tensors: {unchanged:?}"
    );

    // The log holds both models' terms, and the loss is their weighted sum.
    let first = common::first_train_record(&c.output.dir);
    let term = |k: &str| first["terms"][k].as_f64().unwrap();
    let sum = term("hard_ce") + term("soft_kl") + term("peer.hard_ce") + term("peer.soft_kl");
    assert!(
        (first["loss"].as_f64().unwrap() - 0.5 * sum).abs() < 1e-5,
        "{first}"
    );

    // --resume restores both models and both optimisers and goes on.
    c.train.max_steps = 5;
    let resumed = distill(&c, true, false).unwrap();
    assert_eq!(resumed.run.steps, 5);
    let later = tensors(&c.output.dir.join("peer"));
    let w = "classifier.weight";
    assert!(common::max_abs_diff(&after[w], &later[w]) > 0.0);
}

#[test]
fn mutual_learning_refuses_what_it_cannot_do_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let refused = |c: &DistillConfig, needle: &str| {
        let err = distill(c, false, false).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!c.output.dir.exists(), "{needle}");
    };
    let mut c = mutual_config(dir);
    c.distill.terms = Some(vec![Term::new(TermKind::HardCe, 1.0)]);
    refused(&c, "distill.terms");

    let mut c = mutual_config(dir);
    c.teacher.extra = vec![ExtraTeacher {
        dir: fixture("tiny-mpnet"),
        weight: 1.0,
    }];
    refused(&c, "teacher.extra");

    let mut c = mutual_config(dir);
    c.distill.mutual = false;
    refused(&c, "distill.mutual_lr");

    let mut c = mutual_config(dir);
    c.student = StudentSection::TeacherLayers(TeacherLayersStudent {
        teacher_layers: vec![0, 2],
        keep_tokens: 20,
        ..TeacherLayersStudent::default()
    });
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("distill.mutual"), "{err}");
}
