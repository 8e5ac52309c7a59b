//! `retort train` and `retort distill` end to end on the tiny fixtures: checkpoints, metrics,
//! resume, NaN handling, the teacher cache, and gradients reaching every trainable tensor
//! under the full distillation objective. Each run takes a fraction of a second.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use common::{fixture, tiny_distill_config, write_data, WORDS};
use retort::distill::run::distill;
use retort::model::Pass;
use retort::objective::mapping::LayerMap;
use retort::objective::terms::{Term, TermKind};
use retort::objective::{Objective, Teacher, TrainBatch};
use retort::task::Task;
use retort::text::batch::pad_batch;
use retort::train::config::{
    load_config, DistillConfig, FreshStudent, LossWeights, PretrainedStudent, StudentSection,
    TeacherLayersStudent, TrainConfig,
};
use retort::train::finetune::{fine_tune, read_data, task_data};
use retort::train::optim::{AdamW, Grads};
use retort::train::step;
use retort::train::trainer::{self, RunOptions, Selection};
use retort::Classifier;

fn train_config(dir: &Path) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.init = fixture("tiny-bert");
    c.model.max_len = 32;
    c.data.train = write_data(dir, "train.tsv", 96);
    c.data.dev = write_data(dir, "dev.tsv", 24);
    c.train.batch_size = 8;
    c.train.lr = 1e-3;
    c.train.eval_every = 4;
    c.train.log_every = 2;
    c.output.dir = dir.join("teacher");
    c
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The first training step's record in a run's `metrics.jsonl`.
fn first_train_record(dir: &Path) -> serde_json::Value {
    metrics(dir)
        .into_iter()
        .find(|l| l["event"] == "train")
        .unwrap()
}

#[test]
fn train_saves_best_and_last_logs_metrics_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = train_config(tmp.path());
    c.train.max_steps = 6;
    let s = fine_tune(&c, false, false).unwrap();
    assert_eq!(s.steps, 6);
    assert!(s.best_score >= 0.0 && s.best_score <= 1.0);
    let best = Classifier::load(&c.output.dir.join("best"), 32).unwrap();
    assert!(!best.report.fresh_head);
    let lines = metrics(&c.output.dir);
    assert!(lines.iter().any(|l| l["event"] == "eval" && l["step"] == 4));
    assert!(lines
        .iter()
        .any(|l| l["event"] == "train" && l["terms"]["hard_ce"].is_number()));

    // With epochs = 0, max_steps alone sets the length, even past one epoch (12 steps here).
    let mut long = c.clone();
    long.train.epochs = 0;
    long.train.max_steps = 15;
    long.output.dir = tmp.path().join("steps-only");
    assert_eq!(fine_tune(&long, false, false).unwrap().steps, 15);

    // Starting again into the same directory would destroy the run: refused.
    let err = fine_tune(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    // Resuming continues from step 6 to the new limit.
    c.train.max_steps = 10;
    let s = fine_tune(&c, true, false).unwrap();
    assert_eq!(s.steps, 10);
    let steps: Vec<u64> = metrics(&c.output.dir)
        .iter()
        .filter(|l| l["event"] == "train")
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![2, 4, 6, 8, 10]);
}

fn run_options<'a>(c: &'a TrainConfig, toml: &'a str, stop_after: Option<usize>) -> RunOptions<'a> {
    RunOptions {
        train: &c.train,
        out_dir: &c.output.dir,
        tokenizer_dir: &c.model.init,
        resume: stop_after.is_none() && c.output.dir.join("last").exists(),
        config_toml: toml,
        progress: false,
        stop_after,
        selection: Selection::TaskMetric,
    }
}

#[test]
fn a_paused_and_resumed_run_ends_where_an_uninterrupted_one_does() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = train_config(tmp.path());
    // The fixture has dropout 0.1: its masks come from the seeded stream, so runs repeat.
    c.train.epochs = 2; // 24 steps
    let base = Classifier::load(&c.model.init, 32).unwrap();
    let labels = base.model.config().labels.clone();
    let task = Task::SequenceClassification;
    let (train_data, dev_data) = read_data(task, &c.data).unwrap();
    let train = task_data(task, &base.tokenizer, &train_data, &labels).unwrap();
    let dev = task_data(task, &base.tokenizer, &dev_data, &labels).unwrap();
    let run = |out: &str, stop: Option<usize>| {
        let mut c = c.clone();
        c.output.dir = tmp.path().join(out);
        let model = Classifier::load(&c.model.init, 32).unwrap().model;
        let s = trainer::run(
            &model,
            &Objective::fine_tune(),
            &train,
            &dev,
            &run_options(&c, "", stop),
        )
        .unwrap();
        (s, model)
    };
    let (whole, a) = run("whole", None);
    assert_eq!(whole.steps, 24);
    let (_, again) = run("again", None);
    for (name, va) in a.params().iter() {
        let d = common::max_abs_diff(
            va.as_tensor(),
            again.params().get(name).unwrap().as_tensor(),
        );
        assert!(d < 1e-6, "{name}: two runs with one seed differ by {d}");
    }
    let (paused, _) = run("paused", Some(13)); // mid-epoch
    assert!(paused.interrupted);
    assert_eq!(paused.steps, 13);
    let (resumed, b) = run("paused", None);
    assert_eq!(resumed.steps, 24);
    for (name, va) in a.params().iter() {
        let d = common::max_abs_diff(va.as_tensor(), b.params().get(name).unwrap().as_tensor());
        assert!(d < 1e-6, "{name} differs by {d} after resuming");
    }
}

#[test]
fn nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = train_config(tmp.path());
    c.train.max_steps = 4;
    fine_tune(&c, false, false).unwrap();
    let last = c.output.dir.join("last");
    let saved = std::fs::read(last.join("model.safetensors")).unwrap();
    // Resume with an absurd learning rate: step 5 wrecks the weights, the next loss is not finite.
    c.train.max_steps = 12;
    c.train.lr = 1e30;
    c.train.grad_clip = 0.0;
    c.train.warmup_ratio = 0.0;
    let err = fine_tune(&c, true, false).unwrap_err().to_string();
    assert!(
        err.contains("the loss became") && err.contains("at step 6"),
        "{err}"
    );
    assert!(
        err.contains("last good checkpoint is") && err.contains("(step 4)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(last.join("model.safetensors")).unwrap(),
        saved
    );
    Classifier::load(&last, 32).unwrap();
}

fn all_terms() -> LossWeights {
    LossWeights {
        hard_ce: 1.0,
        soft_kl: 1.0,
        soft_ce: 0.5,
        logit_mse: 0.5,
        hidden_mse: 1.0,
        attention_mse: 1.0,
        attention_kl: 1.0,
        cosine: 1.0,
    }
}

#[test]
fn distillation_gradients_reach_every_student_tensor_and_projection() {
    let teacher = Classifier::load(&fixture("tiny-bert"), 32).unwrap();
    let config = DistillConfig {
        student: StudentSection::Fresh(FreshStudent {
            layers: 2,
            hidden_size: 16,
            heads: 2,
            intermediate_size: 24,
            ..FreshStudent::default()
        }),
        ..DistillConfig::default()
    };
    let projections = every_student_tensor_learns(&config, &teacher, 2);
    assert!(projections > 0, "widths differ: projections are learned");
    // The teacher is never trained.
    let t = teacher
        .model
        .params()
        .get("classifier.weight")
        .unwrap()
        .as_tensor();
    let fresh = Classifier::load(&fixture("tiny-bert"), 32).unwrap();
    assert_eq!(
        common::max_abs_diff(
            t,
            fresh
                .model
                .params()
                .get("classifier.weight")
                .unwrap()
                .as_tensor()
        ),
        0.0
    );
}

/// Builds the student `config` asks for, takes one AdamW step on every loss term, and checks
/// that every student tensor (and learned projection) changed. Returns the projections' count.
fn every_student_tensor_learns(
    config: &DistillConfig,
    teacher: &Classifier,
    student_layers: usize,
) -> usize {
    let enc = teacher
        .tokenizer
        .encode_batch(&["good music", "the plot was flat and boring"])
        .unwrap();
    let student = retort::distill::run::build_student(config, teacher, &enc)
        .unwrap()
        .model;
    let objective = Objective::distill(
        &all_terms().terms(),
        &LayerMap::Uniform,
        2.0,
        Teacher {
            model: Some(teacher.model.clone()),
            cached_logits: None,
            learns: None,
        },
        student_layers,
        student.config().hidden_size,
        0,
    )
    .unwrap();
    // The step training runs: its word-table gradient is added row by row.
    let make_batch = |idx: &[usize]| -> retort::Result<TrainBatch> {
        let items: Vec<_> = idx.iter().map(|&i| &enc[i]).collect();
        Ok(TrainBatch::sentences(
            pad_batch(&items, 0)?,
            idx.iter().map(|&i| [Some(2), None][i]).collect(),
            idx,
        ))
    };
    let parts = step::forward_backward(&student, &objective, &[0, 1], 0, &make_batch).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].terms.len(), 8, "{:?}", parts[0].terms);
    assert!(parts[0].word_rows.is_some());
    let params = retort::model::Params::merged(student.params(), &objective.params);
    let before: Vec<Tensor> = params
        .iter()
        .map(|(_, v)| v.as_tensor().copy().unwrap())
        .collect();
    let mut opt = AdamW::new(&params, 0.01).unwrap();
    let mut grads = Grads::empty(params.vars().len());
    parts[0].add_to(&mut grads, &opt.vars(), 1.0).unwrap();
    opt.step(&grads, 1e-3).unwrap();
    let unchanged: Vec<&str> = params
        .iter()
        .zip(&before)
        .filter(|((_, v), b)| common::max_abs_diff(v.as_tensor(), b) == 0.0)
        .map(|((n, _), _)| n)
        .collect();
    assert!(unchanged.is_empty(), "no update reached {unchanged:?}");
    objective.params.count()
}

#[test]
fn word_rows_give_the_word_table_the_gradient_of_the_whole_pass() {
    // The same loss through the ordinary lookup (a dense table gradient from autograd) and
    // through the word rows added back row by row: equal gradients for every tensor, twice
    // over (a second micro-batch adds onto the first) and with repeated tokens.
    let c = Classifier::load(&fixture("tiny-bert"), 32).unwrap();
    let texts = [
        "good music good",
        "the plot was flat and boring",
        "not good",
    ];
    let enc = c.tokenizer.encode_batch(&texts).unwrap();
    let input = pad_batch(&enc.iter().collect::<Vec<_>>(), 0).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2], &Device::Cpu).unwrap();
    let vars = c.model.params().vars();
    let gradients = |word_rows: bool| {
        let pass = Pass {
            word_rows,
            ..Pass::GRAD_NO_DROPOUT
        };
        let mut grads = Grads::empty(vars.len());
        for scale in [1.0, 0.5] {
            let out = c.model.forward(&input, pass, Default::default()).unwrap();
            assert_eq!(out.word_rows.is_some(), word_rows);
            let loss = retort::objective::loss::hard_ce(&out.logits, &labels).unwrap();
            let store = loss.backward().unwrap();
            grads.accumulate(&store, &vars, scale).unwrap();
            if let Some(rows) = &out.word_rows {
                grads.add_word_rows(&store, rows, &vars, scale).unwrap();
            }
        }
        grads
    };
    let (dense, rows) = (gradients(false), gradients(true));
    for (((name, _), a), b) in c
        .model
        .params()
        .iter()
        .zip(dense.tensors().unwrap())
        .zip(rows.tensors().unwrap())
    {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        let diff = common::max_abs_diff(a, b);
        assert!(diff < 1e-6, "{name}: {diff}");
    }
}

#[test]
fn a_student_with_pruned_heads_and_neurons_learns_in_every_tensor() {
    // Attention terms compare 2 student heads with 4 teacher heads (averaged over heads).
    let teacher = Classifier::load(&fixture("tiny-bert"), 32).unwrap();
    let config = DistillConfig {
        student: StudentSection::TeacherLayers(TeacherLayersStudent {
            teacher_layers: vec![0, 2],
            keep_heads: 2,
            keep_ffn: 16,
            ..TeacherLayersStudent::default()
        }),
        ..DistillConfig::default()
    };
    every_student_tensor_learns(&config, &teacher, 2);
}

/// A 3-step distillation of the tiny BERT into its layers 0 and 2, on data written into `dir`.

#[test]
fn distill_reuses_the_teacher_cache_and_saves_a_loadable_student() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = tiny_distill_config(dir);
    c.augment.multiplier = 2;
    c.output.dir = dir.join("a");
    let first = distill(&c, false, false).unwrap();
    assert_eq!(first.teacher_cache_hit, Some(false));
    assert!(first.augmented_examples > 0);
    assert_eq!(first.transfer_examples, 64 + first.augmented_examples);
    c.output.dir = dir.join("b");
    let second = distill(&c, false, false).unwrap();
    assert_eq!(second.teacher_cache_hit, Some(true));
    assert_eq!(first.teacher_cache_path, second.teacher_cache_path);
    let student = Classifier::load(&dir.join("b/best"), 32).unwrap();
    assert_eq!(student.model.config().num_layers, 2);
    assert_eq!(
        student.model.config().labels,
        vec!["negative", "neutral", "positive"]
    );

    // Intermediate terms with a teacher-layer student (same width: no projection).
    c.distill.weights = Some(all_terms());
    c.output.dir = dir.join("c");
    let third = distill(&c, false, false).unwrap();
    assert_eq!(third.run.steps, 3);

    // hard_ce alone (an ablation's no-teacher baseline) needs neither logits nor the model.
    c.distill.terms = Some(vec![Term::new(TermKind::HardCe, 1.0)]);
    c.distill.weights = None;
    c.augment.multiplier = 0;
    c.output.dir = dir.join("d");
    let hard = distill(&c, false, false).unwrap();
    assert_eq!(hard.run.steps, 3);
    assert_eq!(hard.teacher_cache_hit, None);
    let log = metrics(&dir.join("d"));
    let terms = log.iter().find(|l| l["event"] == "train").unwrap()["terms"].clone();
    assert_eq!(
        terms.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["hard_ce"]
    );
}

#[test]
fn a_pruned_student_keeps_its_own_vocabulary_heads_and_neurons_and_loads_with_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = tiny_distill_config(dir);
    c.student = StudentSection::TeacherLayers(TeacherLayersStudent {
        teacher_layers: vec![0, 2],
        keep_tokens: 12,
        keep_heads: 3,
        keep_ffn: 16,
    });
    c.output.dir = dir.join("pruned");
    let summary = distill(&c, false, false).unwrap();
    let best = dir.join("pruned/best");
    let student = Classifier::load(&best, 32).unwrap();
    let cfg = student.model.config();
    assert_eq!((cfg.vocab_size, cfg.intermediate_size), (12, 16));
    assert!((0..cfg.num_layers).all(|l| cfg.heads_in_layer(l) == 3));
    let text = retort::summary::ModelSummary::of(&student)
        .unwrap()
        .to_text();
    assert!(
        text.contains("kept after pruning: 3, 3 (per layer)"),
        "{text}"
    );
    assert_eq!(student.tokenizer.vocab_size(), 12);
    assert_eq!(summary.student_parameters, student.model.params().count());
    let vocab = std::fs::read_to_string(best.join("vocab.txt")).unwrap();
    assert_eq!(vocab.lines().count(), 12);
    assert_eq!(vocab.lines().next(), Some("[PAD]"));
    // It reads any text, kept words or not, with its own tokens.
    let texts = [
        "good music",
        "a word the teacher has but the student lost: boring plot",
    ];
    assert_eq!(student.predict(&texts, 8).unwrap().len(), 2);
    // Exported, its pruned heads come back as zeros: full shape, the same logits.
    let out = dir.join("exported");
    retort::export::export(&student, &out, retort::export::Precision::AsLoaded).unwrap();
    let exported = Classifier::load(&out, 32).unwrap();
    assert!(exported.model.config().pruned_heads.is_empty());
    let (a, b) = (
        student.logits(&texts, 8).unwrap(),
        exported.logits(&texts, 8).unwrap(),
    );
    assert!(a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .all(|(x, y)| (x - y).abs() < 1e-6));

    // A second run into the same directory is refused before it does or writes anything:
    // no teacher phase (the new cache directory stays absent), the old run's files untouched.
    let vocab_file = dir.join("pruned/student-tokenizer/vocab.txt");
    let written = std::fs::metadata(&vocab_file).unwrap().modified().unwrap();
    let mut again = c.clone();
    again.distill.cache_dir = dir.join("unused-cache");
    let err = distill(&again, false, false).err().unwrap().to_string();
    assert!(err.contains("already holds a run"), "{err}");
    assert!(!again.distill.cache_dir.exists());
    assert_eq!(
        std::fs::metadata(&vocab_file).unwrap().modified().unwrap(),
        written
    );

    // Token-by-token terms cannot compare two tokenizations; a fresh student has no layers to prune.
    c.distill.weights = Some(all_terms());
    c.output.dir = dir.join("refused");
    let err = distill(&c, false, false).err().unwrap().to_string();
    assert!(err.contains("keep_tokens"), "{err}");
    // Pruning a fresh student cannot be written: [student] takes only its kind's fields.
    let toml = dir.join("fresh-pruned.toml");
    std::fs::write(&toml, "[student]\ninit = \"fresh\"\nkeep_tokens = 12\n").unwrap();
    let err = load_config::<DistillConfig>(&toml, &[])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("keep_tokens") && err.contains("\"teacher-layers\" takes"),
        "{err}"
    );
}

#[test]
fn a_base_model_needs_labels_and_a_headless_teacher_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    for f in std::fs::read_dir(fixture("tiny-bert")).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(&p, base.join(p.file_name().unwrap())).unwrap();
    }
    // Drop the head from the weights.
    let weights =
        candle_core::safetensors::load(base.join("model.safetensors"), &Device::Cpu).unwrap();
    let kept: std::collections::HashMap<_, _> = weights
        .into_iter()
        .filter(|(k, _)| !k.starts_with("classifier."))
        .collect();
    candle_core::safetensors::save(&kept, base.join("model.safetensors")).unwrap();

    let mut c = train_config(tmp.path());
    c.model.init = base.clone();
    c.model.labels = vec![];
    let err = fine_tune(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("model.labels"), "{err}");

    let mut d = DistillConfig::default();
    d.teacher.dir = base;
    let err = distill(&d, false, false).unwrap_err().to_string();
    assert!(err.contains("no trained head"), "{err}");
}

#[test]
fn a_micro_batch_split_over_threads_gives_the_gradients_of_one_pass() {
    // Without dropout, parts weighted by their share of the examples must give the
    // gradients of the whole batch in one pass (hard_ce + soft_kl are per-example means).
    let loaded = Classifier::load(&fixture("tiny-bert"), 32).unwrap();
    let config = retort::model::ModelConfig {
        hidden_dropout: 0.0,
        attention_dropout: 0.0,
        classifier_dropout: 0.0,
        ..loaded.model.config().clone()
    };
    let tensors = |m: &retort::model::Params| {
        m.iter()
            .map(|(n, v)| (n.to_string(), v.as_tensor().copy().unwrap()))
            .collect()
    };
    let build = || {
        let cfg = config.clone();
        retort::model::Transformer::from_tensors(cfg, tensors(loaded.model.params()), "t", 0)
            .unwrap()
    };
    let (student, teacher) = (build(), build());
    let weights = LossWeights {
        hard_ce: 1.0,
        soft_kl: 1.0,
        ..LossWeights::default()
    };
    let online = Teacher {
        model: Some(std::sync::Arc::new(teacher)),
        cached_logits: None,
        learns: None,
    };
    let hidden = config.hidden_size;
    let layers = config.num_layers;
    let objective = Objective::distill(
        &weights.terms(),
        &LayerMap::Uniform,
        2.0,
        online,
        layers,
        hidden,
        0,
    );
    let objective = objective.unwrap();
    let texts: Vec<String> = (0..13)
        .map(|i| {
            WORDS[i % 12..]
                .iter()
                .take(2 + i % 5)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let encoded = loaded.tokenizer.encode_batch(&refs).unwrap();
    let make_batch = |idx: &[usize]| -> retort::Result<TrainBatch> {
        let items: Vec<_> = idx.iter().map(|&i| &encoded[i]).collect();
        Ok(TrainBatch::sentences(
            pad_batch(&items, 0)?,
            idx.iter().map(|&i| Some(i % 3)).collect(),
            idx,
        ))
    };
    let indices: Vec<usize> = (0..texts.len()).collect();
    let vars = student.params.vars();
    let grads_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let parts = pool.install(|| {
            retort::train::step::forward_backward(&student, &objective, &indices, 7, &make_batch)
        });
        let parts = parts.unwrap();
        // As the trainer sums them (the word table's gradient added row by row).
        let mut grads = Grads::empty(vars.len());
        for p in &parts {
            p.add_to(&mut grads, &vars, p.share).unwrap();
        }
        let sums: Vec<Tensor> = grads
            .tensors()
            .unwrap()
            .into_iter()
            .map(|g| g.expect("every tensor has a gradient"))
            .collect();
        (parts.len(), sums)
    };
    let (one, whole) = grads_with(1);
    let (three, split) = grads_with(3);
    assert_eq!(
        (one, three),
        (1, 3),
        "13 examples over 3 threads make 3 parts"
    );
    for ((name, _), (a, b)) in student.params.iter().zip(whole.iter().zip(&split)) {
        let scale = common::max_abs_diff(a, &a.zeros_like().unwrap()).max(1e-3);
        let diff = common::max_abs_diff(a, b);
        assert!(
            diff <= 1e-4 * scale,
            "{name}: {diff} (largest gradient {scale})"
        );
    }
}

#[test]
fn a_pretrained_student_reads_its_own_tokenizer_and_learns_from_the_teachers_logits() {
    // Teacher: the tiny MPNet (`<s> … </s>`, its own vocabulary); student: the tiny BERT
    // (`[CLS] … [SEP]`), as all-MiniLM-L6-v2 would learn from all-mpnet-base-v2.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = tiny_distill_config(dir);
    c.teacher.dir = fixture("tiny-mpnet");
    c.student = StudentSection::Pretrained(PretrainedStudent {
        dir: fixture("tiny-bert"),
    });
    c.distill.terms = Some(vec![
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::SoftKl, 0.5),
    ]);
    c.output.dir = dir.join("pretrained");
    let s = distill(&c, false, false).unwrap();
    assert_eq!(s.run.steps, 3);
    assert_eq!(s.teacher_cache_hit, Some(false));
    let best = Classifier::load(&c.output.dir.join("best"), 32).unwrap();
    assert_eq!(best.model.config().architecture.model_type(), "bert");
    // Its checkpoints carry its own tokenizer, not the teacher's.
    let read = |d: &Path| std::fs::read_to_string(d.join("tokenizer.json")).unwrap();
    assert_eq!(
        read(&c.output.dir.join("best")),
        read(&fixture("tiny-bert"))
    );
    let ids = best.tokenizer.encode("good music").unwrap().ids;
    let bert = Classifier::load(&fixture("tiny-bert"), 32).unwrap();
    assert_eq!(ids, bert.tokenizer.encode("good music").unwrap().ids);

    // Token-by-token terms cannot pair two tokenizers: refused before the teacher labels
    // the transfer set.
    c.distill.terms = Some(vec![Term::new(TermKind::HiddenMse, 1.0)]);
    c.output.dir = dir.join("hidden");
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(
        err.contains("own tokenizer") && err.contains("hidden_mse"),
        "{err}"
    );
}

#[test]
fn scheduled_weights_and_temperature_follow_their_ramps_step_by_step() {
    use retort::objective::schedule::{Ramp, Scheduled, Shape};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = tiny_distill_config(dir);
    c.distill.temperature = Scheduled::Ramp(Ramp {
        start: 4.0,
        end: 1.0,
        shape: Shape::Linear,
    });
    let mut hard = Term::new(TermKind::HardCe, 1.0);
    hard.weight = Scheduled::Ramp(Ramp {
        start: 0.0,
        end: 1.0,
        shape: Shape::Cosine,
    });
    c.distill.terms = Some(vec![hard, Term::new(TermKind::SoftKl, 1.0)]);
    c.train.max_steps = 6;
    c.train.log_every = 1;
    c.output.dir = dir.join("scheduled");
    distill(&c, false, false).unwrap();
    let records: Vec<serde_json::Value> = metrics(&c.output.dir)
        .into_iter()
        .filter(|l| l["event"] == "train")
        .collect();
    assert_eq!(records.len(), 6);
    for r in &records {
        // Step k (1-based) ran at progress (k - 1) / 6.
        let p = (r["step"].as_f64().unwrap() - 1.0) / 6.0;
        let (t, w) = (
            r["schedule"]["temperature"].as_f64().unwrap(),
            r["schedule"]["weight.hard_ce"].as_f64().unwrap(),
        );
        assert!((t - (4.0 - 3.0 * p)).abs() < 1e-12, "{r}");
        assert!(
            (w - (1.0 - (std::f64::consts::PI * p).cos()) / 2.0).abs() < 1e-12,
            "{r}"
        );
        // The step's loss is the terms weighted by the scheduled weights.
        let term = |k: &str| r["terms"][k].as_f64().unwrap();
        let loss = r["loss"].as_f64().unwrap();
        assert!(
            (loss - (w * term("hard_ce") + term("soft_kl"))).abs() < 1e-5,
            "{r}"
        );
    }
    // The first step has hard_ce at weight 0: the loss is soft_kl alone.
    assert_eq!(records[0]["schedule"]["weight.hard_ce"], 0.0);

    // The soft term is read at the scheduled temperature: at progress 0, T = 4, which the
    // log of a constant-temperature run at T = 4 (same seed, same first batch) reproduces.
    c.distill.temperature = Scheduled::Constant(4.0);
    c.distill.terms = Some(vec![Term::new(TermKind::SoftKl, 1.0)]);
    c.output.dir = dir.join("constant");
    distill(&c, false, false).unwrap();
    let first = first_train_record(&c.output.dir);
    assert!(first.get("schedule").is_none(), "{first}");
    assert!(
        (first["terms"]["soft_kl"].as_f64().unwrap()
            - records[0]["terms"]["soft_kl"].as_f64().unwrap())
        .abs()
            < 1e-6
    );
}

#[test]
fn logistic_and_confidence_weighted_terms_distil_end_to_end() {
    use retort::objective::terms::Weighting;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = tiny_distill_config(dir);
    let mut weighted = Term::new(TermKind::LogitMse, 0.5);
    weighted.weighting = Weighting::TeacherConfidence;
    c.distill.terms = Some(vec![
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::Logistic, 0.5),
        weighted,
    ]);
    c.train.log_every = 1;
    c.output.dir = dir.join("logistic");
    let s = distill(&c, false, false).unwrap();
    assert_eq!(s.run.steps, 3);
    let first = first_train_record(&c.output.dir);
    let term = |k: &str| first["terms"][k].as_f64().unwrap();
    assert!(term("logistic") > 0.0 && term("logit_mse") > 0.0, "{first}");
    assert!(
        (first["loss"].as_f64().unwrap()
            - 0.5 * (term("hard_ce") + term("logistic") + term("logit_mse")))
        .abs()
            < 1e-5,
        "{first}"
    );

    // Weighting is for rows of logits: a hidden-state term refuses it, naming the kinds.
    let mut hidden = Term::new(TermKind::HiddenMse, 1.0);
    hidden.weighting = Weighting::TeacherConfidence;
    c.distill.terms = Some(vec![hidden]);
    c.output.dir = dir.join("refused");
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("weighting applies to soft_kl"), "{err}");
    assert!(!c.output.dir.exists());
}

#[test]
fn class_weights_scale_a_logit_term_and_must_give_one_per_label() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = tiny_distill_config(dir);
    c.train.log_every = 1;
    // The logistic term of the first step (same seed, same first batch) under each weighting.
    let mut first_logistic = |name: &str, weights: Option<Vec<f64>>| {
        let mut term = Term::new(TermKind::Logistic, 1.0);
        term.class_weights = weights;
        c.distill.terms = Some(vec![Term::new(TermKind::HardCe, 1.0), term]);
        c.output.dir = dir.join(name);
        distill(&c, false, false).map(|_| {
            let first = first_train_record(&c.output.dir);
            first["terms"]["logistic"].as_f64().unwrap()
        })
    };
    let plain = first_logistic("plain", None).unwrap();
    let ones = first_logistic("ones", Some(vec![1.0; 3])).unwrap();
    let doubled = first_logistic("doubled", Some(vec![2.0; 3])).unwrap();
    let first_only = first_logistic("first", Some(vec![3.0, 0.0, 0.0])).unwrap();
    assert!(plain > 0.0);
    assert!((ones - plain).abs() < 1e-6, "{ones} vs {plain}");
    assert!((doubled - 2.0 * plain).abs() < 1e-5, "{doubled} vs {plain}");
    assert!((first_only - plain).abs() > 1e-4, "{first_only} vs {plain}");
    // The tiny teacher has 3 labels: 2 weights are refused before anything is written.
    let err = first_logistic("refused", Some(vec![1.0, 1.0]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 class_weights for the teacher's 3 labels"),
        "{err}"
    );
    assert!(!dir.join("refused").exists());
}

#[test]
fn several_teachers_in_their_own_tokens_label_the_transfer_set_together() {
    use retort::train::config::{Combine, ExtraTeacher};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = tiny_distill_config(dir);
    // The tiny BERT first; the tiny MPNet (same labels, its own tokenizer) beside it.
    c.teacher.extra = vec![ExtraTeacher {
        dir: fixture("tiny-mpnet"),
        weight: 2.0,
    }];
    c.teacher.combine = Combine::Confidence;
    c.output.dir = dir.join("ensemble");
    let s = distill(&c, false, false).unwrap();
    assert_eq!(s.run.steps, 3);
    assert_eq!(s.teachers.len(), 1);
    let member = &s.teachers[0];
    assert!(!member.cache_hit && member.cache_path.exists());
    assert!((0.0..=1.0).contains(&member.dev_score));
    // Its cache holds one row per training example, read in its own tokens.
    let cached = candle_core::safetensors::load(&member.cache_path, &Device::Cpu).unwrap();
    assert_eq!(cached["logits"].dims(), [64, 3]);
    assert_ne!(Some(&member.cache_path), s.teacher_cache_path.as_ref());
    // A second run reuses both caches.
    c.output.dir = dir.join("again");
    let again = distill(&c, false, false).unwrap();
    assert_eq!(again.teacher_cache_hit, Some(true));
    assert!(again.teachers[0].cache_hit);

    // Another label set, or a run with no logit term, is refused before training.
    c.teacher.extra[0].dir = fixture("tiny-distilbert");
    c.output.dir = dir.join("labels");
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("labels"), "{err}");
    c.teacher.extra[0].dir = fixture("tiny-mpnet");
    c.distill.terms = Some(vec![Term::new(TermKind::HardCe, 1.0)]);
    let err = distill(&c, false, false).unwrap_err().to_string();
    assert!(err.contains("teacher.extra"), "{err}");
    assert!(!c.output.dir.exists());
}
