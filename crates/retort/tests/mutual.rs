//! Mutual learning (`distill.mutual`, `[[distill.peers]]`): the teacher and more peers train
//! beside the student, each on its own loss toward the others' detached predictions, by its
//! own optimiser; each keeps its best checkpoint, a paused run resumes exactly, and what
//! mutual learning cannot do is refused.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use common::{fixture, tiny_distill_config};
use retort::distill::run::{distill, distill_until};
use retort::model::layers::with_dropout_seed;
use retort::model::{Model, Outputs, Pass};
use retort::objective::loss;
use retort::objective::mapping::LayerMap;
use retort::objective::peers::GroupSettings;
use retort::objective::terms::{Term, TermKind};
use retort::objective::{Objective, Teacher};
use retort::train::config::{
    DistillConfig, ExtraTeacher, PeerSection, StudentSection, TeacherLayersStudent,
};
use retort::Classifier;

const T: f64 = 2.0;

fn terms() -> Vec<Term> {
    vec![
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::SoftKl, 0.5),
    ]
}

/// A peer of the teacher's task and tokens that is neither the student nor the teacher.
fn cnn_peer() -> Arc<dyn Model> {
    Classifier::load(&fixture("tiny-cnn"), 32).unwrap().model
}

fn settings(lr: f64) -> GroupSettings {
    GroupSettings {
        lr,
        warmup_ratio: 0.0,
        grad_clip: 1.0,
    }
}

/// Each model's gradient is that of its own loss: hard_ce on the gold labels (of the labelled
/// rows only) plus soft_kl toward the mean of the other models' detached logits (Zhang et al.'s
/// 1/(K−1) Σ). A missing detach would send one model's soft_kl into the others, and the
/// gradients would differ.
#[test]
fn each_of_three_models_gets_the_gradient_of_its_own_loss() {
    // The second sentence is unlabelled (an augmented one): it adds to the soft terms only.
    let (teacher, student, batch) = common::tiny_pair(&[0, 2], vec![Some(2), None, Some(1)]);
    let peer = cnn_peer();
    let objective = Objective::distill(
        &terms(),
        &LayerMap::Uniform,
        T,
        Teacher {
            model: Some(teacher.model.clone()),
            cached_logits: None,
            learns: Some(settings(2e-3)),
        },
        2,
        student.config().hidden_size,
        0,
    )
    .unwrap()
    .with_peers([(peer.clone(), settings(3e-3))])
    .unwrap();
    // The peers' parameters are the objective's, each under its own name.
    let peers = objective.peers();
    assert_eq!(peers.len(), 2);
    assert_eq!(
        (peers[0].name.as_str(), peers[1].name.as_str()),
        ("peer1", "peer2")
    );
    assert_eq!((peers[0].settings.lr, peers[1].settings.lr), (2e-3, 3e-3));
    assert_eq!(
        objective.params.count(),
        teacher.model.params().count() + peer.params().count()
    );
    for (prefix, model) in [("peer1.", &teacher.model), ("peer2.", &peer)] {
        let own = objective.params.filtered(|n| n.starts_with(prefix));
        assert_eq!(own.count(), model.params().count(), "{prefix}");
    }

    let outputs = Outputs::default();
    // Both computations draw the same dropout masks: the student's pass, the teacher's, the
    // other peer's.
    let (value, grads) = with_dropout_seed(7, || {
        let out = student.forward(&batch.input, Pass::TRAIN, outputs).unwrap();
        let l = objective.loss(&batch, &out).unwrap();
        let g = l.total.backward().unwrap();
        (l, g)
    });
    let names: Vec<&str> = value.terms.iter().map(|t| t.0).collect();
    assert_eq!(
        names,
        [
            "hard_ce",
            "soft_kl",
            "peer1.hard_ce",
            "peer1.soft_kl",
            "peer2.hard_ce",
            "peer2.soft_kl"
        ]
    );
    let own_losses = with_dropout_seed(7, || {
        let logits: Vec<Tensor> = [student.as_ref(), teacher.model.as_ref(), peer.as_ref()]
            .iter()
            .map(|m| {
                m.forward(&batch.input, Pass::TRAIN, outputs)
                    .unwrap()
                    .logits
            })
            .collect();
        let (labelled, gold) = (
            Tensor::new(&[0u32, 2], &Device::Cpu).unwrap(),
            Tensor::new(&[2u32, 1], &Device::Cpu).unwrap(),
        );
        (0..3)
            .map(|k| {
                let rows = logits[k].index_select(&labelled, 0).unwrap();
                let ce = loss::hard_ce(&rows, &gold).unwrap();
                let mut kl = Tensor::new(0f32, &Device::Cpu).unwrap();
                for j in (0..3).filter(|&j| j != k) {
                    let term = loss::soft_kl(&logits[k], &logits[j].detach(), T).unwrap();
                    kl = (kl + (term * 0.5).unwrap()).unwrap();
                }
                ((ce * 0.5).unwrap() + (kl * 0.5).unwrap()).unwrap()
            })
            .collect::<Vec<_>>()
    });
    let total: f32 = own_losses
        .iter()
        .map(|l| l.to_scalar::<f32>().unwrap())
        .sum();
    let got = value.total.to_scalar::<f32>().unwrap();
    assert!((total - got).abs() < 1e-5, "{total} vs {got}");
    let models = [student.params(), teacher.model.params(), peer.params()];
    for (own_loss, params) in own_losses.iter().zip(models) {
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

/// A mutual run with the CNN fixture as a second peer, at its own rate and clip.
fn three_model_config(dir: &Path) -> DistillConfig {
    let mut c = mutual_config(dir);
    c.distill.peers = vec![PeerSection {
        dir: fixture("tiny-cnn"),
        lr: 3e-3,
        warmup_ratio: Some(0.0),
        grad_clip: Some(0.5),
    }];
    c.train.eval_every = 1;
    c.train.log_every = 1;
    c
}

/// Every tensor of `dir`'s model differs from `start`'s.
fn assert_all_trained(start: &Path, dir: &Path) {
    let (before, after) = (tensors(start), tensors(dir));
    assert_eq!(before.len(), after.len());
    let unchanged: Vec<&String> = before
        .iter()
        .filter(|(n, t)| common::max_abs_diff(t, &after[*n]) == 0.0)
        .map(|(n, _)| n)
        .collect();
    assert!(
        unchanged.is_empty(),
        "untrained tensors in {}: {unchanged:?}",
        dir.display()
    );
}

#[test]
fn a_mutual_run_with_two_peers_trains_each_by_its_own_optimiser_and_keeps_its_best() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = three_model_config(dir);
    let s = distill(&c, false, false).unwrap();
    assert_eq!(s.run.steps, 3);
    // The teacher changes at every step: no logits are cached.
    assert_eq!(s.teacher_cache_hit, None);
    assert!(!dir.join("cache").exists());

    // Each peer's best is the best of its own dev scores, saved in <name>/, and every tensor
    // of it was trained (the fixtures themselves are untouched).
    let evals: Vec<_> = common::metrics_records(&c.output.dir)
        .into_iter()
        .filter(|r| r["event"] == "eval")
        .collect();
    assert_eq!(evals.len(), 3);
    assert_eq!(s.peers.len(), 2);
    for (peer, start) in s.peers.iter().zip(["tiny-bert", "tiny-cnn"]) {
        assert_eq!(peer.from, fixture(start));
        assert_eq!(peer.dir, c.output.dir.join(&peer.name));
        let key = format!("dev_{}.accuracy", peer.name);
        let scores: Vec<f64> = evals.iter().map(|r| r[&key].as_f64().unwrap()).collect();
        let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(peer.best_score, best, "{key}: {scores:?}");
        assert_eq!(peer.best_score, scores[peer.best_step - 1]);
        assert_eq!(peer.final_score, scores[2]);
        let loaded = Classifier::load(&peer.dir, 32).unwrap();
        assert!(!loaded.report.fresh_head);
        let got =
            retort::train::trainer::dev_metrics(loaded.model.as_ref(), &dev_data(&c, &loaded), 32)
                .unwrap();
        assert!((got.primary_value() - peer.best_score).abs() < 1e-9);
        assert_all_trained(&fixture(start), &peer.dir);
    }
    assert_eq!(s.peers[0].score_before, s.teacher_score);

    // Each model's optimiser: its own peak rate (no warmup in 3 steps), its own gradient
    // norm; the loss is the weighted sum of all six terms.
    let first = common::first_train_record(&c.output.dir);
    assert_eq!(first["lr"].as_f64().unwrap(), 1e-3);
    assert_eq!(first["peer1"]["lr"].as_f64().unwrap(), 2e-3);
    assert_eq!(first["peer2"]["lr"].as_f64().unwrap(), 3e-3);
    let norms: Vec<f64> = ["grad_norm", "peer1", "peer2"]
        .iter()
        .map(|k| match *k {
            "grad_norm" => first[k].as_f64().unwrap(),
            peer => first[peer]["grad_norm"].as_f64().unwrap(),
        })
        .collect();
    assert!(norms.iter().all(|n| *n > 0.0) && norms[0] != norms[1] && norms[1] != norms[2]);
    let term = |k: &str| first["terms"][k].as_f64().unwrap();
    let sum: f64 = ["", "peer1.", "peer2."]
        .iter()
        .map(|p| term(&format!("{p}hard_ce")) + term(&format!("{p}soft_kl")))
        .sum();
    assert!(
        (first["loss"].as_f64().unwrap() - 0.5 * sum).abs() < 1e-5,
        "{first}"
    );
}

/// The dev set of `c` in `model`'s tokens.
fn dev_data(c: &DistillConfig, model: &Classifier) -> retort::task::TaskData {
    let task = retort::task::Task::of(model.model.config());
    let (_, dev) = retort::train::finetune::read_data(task, &c.data).unwrap();
    retort::train::finetune::task_data(task, &model.tokenizer, &dev, &model.model.config().labels)
        .unwrap()
}

/// A run paused at step 3 and resumed to step 5 ends where an uninterrupted run does: every
/// model's parameters and every optimiser's moments come back.
#[test]
fn a_paused_and_resumed_mutual_run_ends_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = three_model_config(dir);
    c.train.max_steps = 5;
    c.output.dir = dir.join("straight");
    distill(&c, false, false).unwrap();
    let straight = c.output.dir.clone();
    c.output.dir = dir.join("paused");
    let paused = distill_until(&c, false, false, Some(3)).unwrap();
    assert_eq!(paused.run.steps, 3);
    assert!(c
        .output
        .dir
        .join("last/optimizer-peer2.safetensors")
        .exists());
    let resumed = distill(&c, true, false).unwrap();
    assert_eq!(resumed.run.steps, 5);
    for file in [
        "model.safetensors",
        "objective.safetensors",
        "optimizer-peer1.safetensors",
        "optimizer-peer2.safetensors",
    ] {
        let a =
            candle_core::safetensors::load(straight.join("last").join(file), &Device::Cpu).unwrap();
        let b = candle_core::safetensors::load(c.output.dir.join("last").join(file), &Device::Cpu)
            .unwrap();
        assert_eq!(a.len(), b.len(), "{file}");
        for (name, t) in &a {
            assert_eq!(common::max_abs_diff(t, &b[name]), 0.0, "{file}: {name}");
        }
    }
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

    let mut c = three_model_config(dir);
    c.distill.mutual = false;
    c.distill.mutual_lr = 0.0;
    refused(&c, "distill.peers");

    let mut c = three_model_config(dir);
    c.distill.peers[0].warmup_ratio = Some(1.0);
    refused(&c, "distill.peers[0].warmup_ratio");

    // Other labels, other tokens.
    for (fixture_dir, needle) in [
        ("tiny-distilbert", "same labels"),
        ("tiny-mpnet", "other tokens"),
    ] {
        let mut c = three_model_config(dir);
        c.distill.peers[0].dir = fixture(fixture_dir);
        refused(&c, needle);
    }

    let mut c = mutual_config(dir);
    c.student = StudentSection::TeacherLayers(TeacherLayersStudent {
        teacher_layers: vec![0, 2],
        keep_tokens: 20,
        ..TeacherLayersStudent::default()
    });
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("distill.mutual"), "{err}");
}
