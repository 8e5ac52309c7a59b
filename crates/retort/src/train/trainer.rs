//! The training loop shared by `retort train` and `retort distill`.
//!
//! Batches are bucketed by length with dynamic padding; gradients are accumulated over
//! micro-batches, clipped, and applied by AdamW under a warmup + linear-decay schedule (one
//! optimiser per group of parameters: the model's, and each peer's in mutual learning; see
//! [`super::groups`]). The dev set is evaluated every `eval_every` steps: the best model goes
//! to `best/` (each peer's best to `<peer>/`), resumable state to `last/`, metrics to
//! `metrics.jsonl`. A NaN/inf loss stops the run and leaves the
//! last good checkpoint in place; Ctrl-C saves `last/` and stops; `--resume` continues.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::TrainSection;
use super::groups::{GroupSettings, NamedGroup, Optimizers};
use super::optim::Grads;
use super::run_dir::{self, append_record, replace_dir};
use super::step::forward_backward;
use super::tasks::{merged_params, Plan, TaskRun, TASKS_PREFIX};
use crate::error::{Error, Result};
use crate::model::checkpoint::copy_tokenizer_files;
use crate::model::seq2seq::pad_ids;
use crate::model::{Model, ModelConfig, Params, Pass};
use crate::objective::{Objective, TrainBatch};
use crate::progress::Progress;
use crate::task::{Scores, Task, TaskData};
use crate::text::batch::{length_sorted_batches, pad_batch};
use crate::text::Encoded;

/// Where and how a run goes.
pub struct RunOptions<'a> {
    pub train: &'a TrainSection,
    /// The run directory (`best/`, `last/`, `metrics.jsonl`, `config.toml`).
    pub out_dir: &'a Path,
    /// Where the tokenizer files to copy into saved checkpoints are.
    pub tokenizer_dir: &'a Path,
    /// Continue from `last/` instead of starting afresh.
    pub resume: bool,
    /// The resolved run configuration, saved as `config.toml`.
    pub config_toml: &'a str,
    /// Show progress: a bar on a terminal, plain lines when stderr goes to a file
    /// ([`crate::progress`]); false for none at all.
    pub progress: bool,
    /// Pause after this step as Ctrl-C does (saving `last/`), e.g. to time-box a session.
    pub stop_after: Option<usize>,
    /// What the dev set is scored by, which chooses `best/`.
    pub selection: Selection,
}

/// The metric name of [`Selection::ObjectiveLoss`] in logs and summaries (lower is better).
pub const DEV_LOSS: &str = "loss";

/// The metric that chooses a multi-task run's checkpoints: the mean of the tasks' primary
/// metrics on their dev sets.
pub const TASK_MEAN: &str = "task_mean";

/// What chooses the best checkpoint on the dev set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The task's primary metric on labelled dev data; higher is better.
    TaskMetric,
    /// The objective's loss on held-out text; lower is better. General distillation has no
    /// labels and no head, so its dev set can only say how close the student is to the teacher.
    ObjectiveLoss,
}

impl Selection {
    /// The score that anything beats.
    fn worst(self) -> f64 {
        match self {
            Selection::TaskMetric => f64::NEG_INFINITY,
            Selection::ObjectiveLoss => f64::INFINITY,
        }
    }

    fn improves(self, value: f64, best: f64) -> bool {
        match self {
            Selection::TaskMetric => value > best,
            Selection::ObjectiveLoss => value < best,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub steps: usize,
    /// The task's primary metric (`accuracy`, `entity_f1`), which chose `best/`.
    pub metric: &'static str,
    pub best_score: f64,
    pub best_step: usize,
    pub final_score: f64,
    pub seconds: f64,
    pub interrupted: bool,
    pub best_dir: PathBuf,
    /// A multi-label run's thresholds, chosen on dev after training (`Task::after_training`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_thresholds: Option<crate::task::multilabel::Calibration>,
    /// A multi-task run's other tasks: name and checkpoint (`best-<name>/`), saved at the
    /// step that chose `best_dir`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub task_dirs: Vec<(String, PathBuf)>,
    /// A multi-task run: each task's primary metric at `best_step`, the first task's first
    /// (`best_score` is their mean).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub best_task_scores: Vec<f64>,
    /// Mutual learning: each peer's own best on the dev set, saved in `<name>/`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerRun>,
}

/// How a peer of mutual learning did: its best dev score (which chose its checkpoint) and its
/// score at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRun {
    pub name: String,
    pub best_score: f64,
    pub best_step: usize,
    pub final_score: f64,
    pub dir: PathBuf,
}

/// A peer's best so far, in `last/state.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PeerBest {
    score: f64,
    step: usize,
}

impl PeerBest {
    /// Before any evaluation: every score beats it.
    const UNSEEN: PeerBest = PeerBest {
        score: f64::NEG_INFINITY,
        step: 0,
    };
}

/// Progress saved in `last/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    step: usize,
    /// The best dev value of the primary metric so far (runs before tasks called it
    /// `best_accuracy`).
    #[serde(alias = "best_accuracy")]
    best_score: f64,
    best_step: usize,
    seconds: f64,
    /// Several tasks: each one's primary metric at `best_step`, the first task's first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    best_scores: Vec<f64>,
    /// Mutual learning: each peer's best, in the objective's order of peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peers: Vec<PeerBest>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C asks the loop to save and stop; a second Ctrl-C exits at once.
fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\ninterrupt: saving a checkpoint after this step (Ctrl-C again to quit now)"
            );
        });
    });
}

/// The task's scores of `model` on `dev`.
pub fn dev_metrics(model: &dyn Model, dev: &TaskData, batch_size: usize) -> Result<Scores> {
    Task::of(model.config()).evaluate(model, dev, batch_size)
}

/// The objective's mean loss over `dev` (each batch weighted by its examples), with its
/// terms: how general distillation scores a student. No dropout, no gradients.
/// `progress` places the evaluation in the run, for scheduled weights.
pub fn dev_loss(
    model: &dyn Model,
    objective: &Objective,
    dev: &TaskData,
    batch_size: usize,
    progress: f64,
) -> Result<Scores> {
    if dev.is_empty() {
        return Err(Error::Invalid("the dev set is empty".into()));
    }
    let offsets = row_offsets(dev);
    let lengths: Vec<usize> = dev.examples.iter().map(|e| e.ids.len()).collect();
    let (mut total, mut terms) = (0.0, Vec::new());
    for idx in length_sorted_batches(&lengths, batch_size) {
        let batch = make_batch(dev, &offsets, &idx, model.config(), progress)?;
        let output = model.forward(&batch.input, Pass::INFERENCE, objective.student_outputs())?;
        let loss = objective.loss(&batch, &output)?;
        let share = idx.len() as f64 / dev.len() as f64;
        total += loss.total.to_dtype(DType::F64)?.to_scalar::<f64>()? * share;
        accumulate_terms(&mut terms, loss.terms.iter().copied(), share);
    }
    let mut values = vec![(DEV_LOSS, total)];
    values.extend(terms);
    Ok(Scores {
        primary: DEV_LOSS,
        values,
        entities: None,
    })
}

/// Where each example's rows start among all the rows of `data` (the teacher cache's order).
pub fn row_offsets(data: &TaskData) -> Vec<u32> {
    let mut offsets = Vec::with_capacity(data.len());
    let mut next = 0u32;
    for r in &data.rows {
        offsets.push(next);
        next += r.len() as u32;
    }
    offsets
}

/// The batch of training examples `idx`: padded inputs, and each example's rows with their
/// gold labels and places in the teacher cache.
fn make_batch(
    data: &TaskData,
    offsets: &[u32],
    idx: &[usize],
    config: &ModelConfig,
    progress: f64,
) -> Result<TrainBatch> {
    let items: Vec<&Encoded> = idx.iter().map(|&i| &data.examples[i]).collect();
    let (mut rows, mut labels, mut cache_rows) = (Vec::new(), Vec::new(), Vec::new());
    for (b, &i) in idx.iter().enumerate() {
        for (k, (&pos, label)) in data.rows[i]
            .positions
            .iter()
            .zip(data.row_labels(i))
            .enumerate()
        {
            rows.push((b as u32, pos));
            labels.push(label);
            cache_rows.push(offsets[i] + k as u32);
        }
    }
    let mut input = pad_batch(&items, config.pad_token_id)?;
    if let Some(targets) = &data.targets {
        // A translator's decoder inputs (teacher forcing), padded after their tokens.
        let decoder: Vec<Vec<u32>> = idx
            .iter()
            .map(|&i| targets.decoder_inputs[i].clone())
            .collect();
        input.target_ids = Some(pad_ids(&decoder, config.pad_token_id)?.0);
    }
    Ok(TrainBatch {
        input,
        rows,
        axis: config.head.row_axis(),
        labels,
        cache_rows,
        progress,
        multi_label: config.multi_label,
    })
}

pub use super::run_dir::check_output_dir;

/// Trains `model` (and the objective's own parameters) on `train`, keeping the best on `dev`.
pub fn run(
    model: &dyn Model,
    objective: &Objective,
    train: &TaskData,
    dev: &TaskData,
    opts: &RunOptions,
) -> Result<RunSummary> {
    run_tasks(&[TaskRun::single(model, objective, train, dev)], opts)
}

/// Trains the models of `tasks` (one, or the views of a multi-task student; see
/// [`super::tasks`]) and their objectives' parameters, keeping the best on their dev sets.
pub fn run_tasks(tasks: &[TaskRun], opts: &RunOptions) -> Result<RunSummary> {
    let cfg = opts.train;
    cfg.validate()?;
    let Some(first) = tasks.first() else {
        return Err(Error::Invalid("a run needs a task".into()));
    };
    for task in tasks {
        if task.train.examples.is_empty() {
            return Err(Error::Invalid(task.prefixed("the training set is empty")));
        }
    }
    let (model, objective) = (first.model, first.objective);
    let out = opts.out_dir;
    let (best_dir, last_dir) = (out.join("best"), out.join("last"));
    check_output_dir(out, opts.resume)?;
    std::fs::create_dir_all(out).map_err(|e| Error::create(out, e, "output directory"))?;
    write_file(&out.join("config.toml"), opts.config_toml)?;

    let params = merged_params(tasks)?;
    let plan = Plan::of(tasks, cfg.batch_size);
    let batches_per_epoch = plan.batches_per_epoch();
    let steps_per_epoch = batches_per_epoch.div_ceil(cfg.grad_accum);
    let mut total = cfg.epochs * steps_per_epoch;
    if cfg.max_steps > 0 {
        total = if cfg.epochs == 0 {
            cfg.max_steps
        } else {
            total.min(cfg.max_steps)
        };
    }
    // One optimiser for the model (and the objective's projections), one per peer.
    let main = GroupSettings {
        lr: cfg.lr,
        warmup_ratio: cfg.warmup_ratio,
        grad_clip: cfg.grad_clip,
    };
    let peers = objective.peers();
    let named: Vec<NamedGroup> = peers
        .iter()
        .map(|p| NamedGroup {
            name: p.name.clone(),
            prefix: p.prefix(),
            settings: p.settings,
        })
        .collect();
    let mut opt = Optimizers::new(&params, cfg.weight_decay, total, main, &named)?;
    let vars = opt.vars().to_vec();
    let peer_dirs: Vec<PathBuf> = peers.iter().map(|p| out.join(&p.name)).collect();

    let mut state = State {
        step: 0,
        best_score: opts.selection.worst(),
        best_step: 0,
        seconds: 0.0,
        best_scores: Vec::new(),
        peers: vec![PeerBest::UNSEEN; peers.len()],
    };
    if opts.resume {
        // A save interrupted between its two renames left `last/` (or `best/`) under another name.
        for note in run_dir::find_checkpoint(out)? {
            eprintln!("{note}");
        }
        state = restore(&last_dir, &params, &mut opt, tasks.len() > 1)?;
        state.peers.resize(peers.len(), PeerBest::UNSEEN);
        eprintln!(
            "resuming {} at step {} of {total}",
            out.display(),
            state.step
        );
    }
    // A resumed run logs the steps after its checkpoint again: the log is cut back to it first.
    let mut log = run_dir::open_log(
        &out.join("metrics.jsonl"),
        opts.resume.then_some(state.step),
    )?;

    install_interrupt_handler();
    INTERRUPTED.store(false, Ordering::SeqCst);
    let bar = Progress::new(
        total,
        opts.progress,
        "[{elapsed_precise}] {wide_bar} {pos}/{len} steps · {msg} · ETA {eta}",
        "steps",
    );
    bar.resume_at(state.step);
    let offsets: Vec<Vec<u32>> = tasks.iter().map(|t| row_offsets(t.train)).collect();
    let metric = match opts.selection {
        Selection::TaskMetric if tasks.len() > 1 => TASK_MEAN,
        Selection::TaskMetric => Task::of(model.config()).primary_metric(),
        Selection::ObjectiveLoss => DEV_LOSS,
    };
    let task_dirs: Vec<(String, PathBuf)> = tasks[1..]
        .iter()
        .map(|t| (t.name.to_string(), out.join(format!("best-{}", t.name))))
        .collect();
    let started = Instant::now() - std::time::Duration::from_secs_f64(state.seconds);
    let (mut window_examples, mut window_start) = (0usize, Instant::now());
    let mut final_score = f64::NAN;
    let mut peer_final = vec![f64::NAN; peers.len()];
    let mut step = 0usize; // counts steps from the start of training, skipped ones included
    let mut interrupted = false;
    // The step of the checkpoint in last/, which a NaN loss leaves untouched.
    let mut saved_step = opts.resume.then_some(state.step);

    // With epochs = 0, max_steps alone decides how many passes are made.
    let epochs = if cfg.epochs == 0 {
        total.div_ceil(steps_per_epoch)
    } else {
        cfg.epochs
    };
    'epochs: for epoch in 0..epochs {
        let order = plan.epoch(epoch, cfg.seed);
        for group in order.chunks(cfg.grad_accum) {
            if step >= total {
                break 'epochs;
            }
            if step < state.step {
                step += 1; // already done before the resume
                continue;
            }
            let mut grads = Grads::empty(vars.len());
            let mut terms_sum: Vec<(String, f64)> = Vec::new();
            let mut loss_sum = 0.0;
            for (micro, (k, indices)) in group.iter().enumerate() {
                let task = &tasks[*k];
                // Dropout masks depend only on the seed, the step, the micro-batch and the part.
                let seed = cfg.seed ^ ((step as u64) << 20) ^ micro as u64;
                let progress = step as f64 / total as f64;
                let make_batch = |idx: &[usize]| -> Result<TrainBatch> {
                    make_batch(task.train, &offsets[*k], idx, task.model.config(), progress)
                };
                let parts =
                    forward_backward(task.model, task.objective, indices, seed, &make_batch)?;
                for part in parts {
                    // No gradients: the part's loss is not finite.
                    if part.grads.is_none() {
                        bar.abandon();
                        return Err(nan_error(
                            part.loss,
                            step + 1,
                            &part.terms,
                            &last_dir,
                            saved_step,
                        ));
                    }
                    let weight = part.share / group.len() as f64;
                    loss_sum += part.loss * weight;
                    let terms = part.terms.iter().map(|&(n, v)| (task.prefixed(n), v));
                    accumulate_terms(&mut terms_sum, terms, weight);
                    part.add_to(&mut grads, &vars, weight)?;
                }
                window_examples += indices.len();
            }
            let groups = opt.step(grads, step)?;
            let (lr, grad_norm) = (groups[0].lr, groups[0].grad_norm);
            step += 1;
            state.step = step;
            bar.set_position(step);

            if step.is_multiple_of(cfg.log_every) || step == total {
                let speed = window_examples as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
                (window_examples, window_start) = (0, Instant::now());
                let terms: serde_json::Map<_, _> = terms_sum
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                let mut record = json!({
                    "event": "train", "step": step, "epoch": step as f64 / steps_per_epoch as f64,
                    "loss": loss_sum, "terms": terms, "lr": lr, "grad_norm": grad_norm,
                    "samples_per_s": speed, "elapsed_s": started.elapsed().as_secs_f64(),
                });
                // The values scheduled weights and temperatures had in this step.
                let schedule = objective.schedule_at((step - 1) as f64 / total as f64);
                if !schedule.is_empty() {
                    record["schedule"] = schedule.into_iter().map(|(k, v)| (k, json!(v))).collect();
                }
                for g in &groups[1..] {
                    record[&g.name] = json!({"lr": g.lr, "grad_norm": g.grad_norm});
                }
                append_record(&mut log, record)?;
                bar.set_message(format!(
                    "loss {loss_sum:.4} · lr {lr:.1e} · {speed:.0} ex/s"
                ));
            }
            let end_of_epoch = step.is_multiple_of(steps_per_epoch);
            let eval_now = (cfg.eval_every > 0 && step.is_multiple_of(cfg.eval_every))
                || end_of_epoch
                || step == total;
            interrupted = INTERRUPTED.load(Ordering::SeqCst) || opts.stop_after == Some(step);
            if eval_now || interrupted {
                state.seconds = started.elapsed().as_secs_f64();
                let scores = match opts.selection {
                    Selection::TaskMetric => tasks
                        .iter()
                        .map(|t| dev_metrics(t.model, t.dev, cfg.batch_size.max(32)))
                        .collect::<Result<Vec<_>>>()?,
                    Selection::ObjectiveLoss => {
                        let progress = step as f64 / total as f64;
                        vec![dev_loss(
                            model,
                            objective,
                            first.dev,
                            cfg.batch_size,
                            progress,
                        )?]
                    }
                };
                let value =
                    scores.iter().map(Scores::primary_value).sum::<f64>() / scores.len() as f64;
                final_score = value;
                let improved = opts.selection.improves(value, state.best_score);
                if improved {
                    state.best_score = value;
                    state.best_step = step;
                    if tasks.len() > 1 {
                        state.best_scores = scores.iter().map(Scores::primary_value).collect();
                    }
                    save_model(model, opts.tokenizer_dir, &best_dir)?;
                    for (task, (_, dir)) in tasks[1..].iter().zip(&task_dirs) {
                        save_model(task.model, opts.tokenizer_dir, dir)?;
                    }
                }
                // Each peer keeps its own best, by its own score on the first task's dev set.
                let mut peer_scores = Vec::with_capacity(peers.len());
                for (i, peer) in peers.iter().enumerate() {
                    let score =
                        dev_metrics(peer.model.as_ref(), first.dev, cfg.batch_size.max(32))?;
                    let value = score.primary_value();
                    peer_final[i] = value;
                    if value > state.peers[i].score {
                        state.peers[i] = PeerBest { score: value, step };
                        save_model(peer.model.as_ref(), opts.tokenizer_dir, &peer_dirs[i])?;
                    }
                    peer_scores.push(score);
                }
                save_last(tasks, &params, &opt, &state, opts.tokenizer_dir, &last_dir)?;
                saved_step = Some(step);
                let mut record = json!({
                    "event": "eval", "step": step, "metric": metric,
                    "best": state.best_score, "elapsed_s": state.seconds,
                });
                for (task, scores) in tasks.iter().zip(&scores) {
                    for (name, v) in &scores.values {
                        record[format!("dev_{}", task.prefixed(name))] = json!(v);
                    }
                }
                if tasks.len() > 1 {
                    record[format!("dev_{TASK_MEAN}")] = json!(value);
                }
                let mut peer_note = String::new();
                for ((peer, scores), best) in peers.iter().zip(&peer_scores).zip(&state.peers) {
                    for (name, v) in &scores.values {
                        record[format!("dev_{}.{name}", peer.name)] = json!(v);
                    }
                    peer_note += &format!(
                        "; {} {:.4} (best {:.4} at step {})",
                        peer.name,
                        scores.primary_value(),
                        best.score,
                        best.step
                    );
                }
                append_record(&mut log, record)?;
                bar.println(format!(
                    "step {step}/{total}: dev {metric} {value:.4} (best {:.4} at step {}){peer_note}",
                    state.best_score, state.best_step
                ));
            }
            if interrupted {
                break 'epochs;
            }
        }
    }
    bar.finish_and_clear();
    state.seconds = started.elapsed().as_secs_f64();
    Ok(RunSummary {
        steps: state.step,
        metric,
        best_score: state.best_score,
        best_step: state.best_step,
        final_score,
        seconds: state.seconds,
        interrupted,
        best_dir,
        label_thresholds: None,
        task_dirs,
        best_task_scores: state.best_scores,
        peers: peers
            .iter()
            .zip(&state.peers)
            .zip(peer_dirs)
            .zip(peer_final)
            .map(|(((p, best), dir), final_score)| PeerRun {
                name: p.name.clone(),
                best_score: best.score,
                best_step: best.step,
                final_score,
                dir,
            })
            .collect(),
    })
}

/// Adds `scale` × each term's value to its running sum (in first-seen order).
fn accumulate_terms<K: PartialEq>(
    sum: &mut Vec<(K, f64)>,
    terms: impl IntoIterator<Item = (K, f64)>,
    scale: f64,
) {
    for (name, v) in terms {
        match sum.iter_mut().find(|(n, _)| *n == name) {
            Some((_, acc)) => *acc += v * scale,
            None => sum.push((name, v * scale)),
        }
    }
}

fn nan_error(
    value: f64,
    step: usize,
    terms: &[(&str, f64)],
    last: &Path,
    saved: Option<usize>,
) -> Error {
    let kept = match saved {
        Some(s) => format!("the last good checkpoint is {} (step {s})", last.display()),
        None => "no checkpoint had been saved yet".to_string(),
    };
    Error::Invalid(format!(
        "the loss became {value} at step {step} (terms: {terms:?}); training stopped, {kept}. \
         Try a lower train.lr or a grad_clip"
    ))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::create(path, e, "output file"))
}

/// Saves a loadable checkpoint (HF layout plus the tokenizer) into `dir`, replacing it whole.
fn save_model(model: &dyn Model, tokenizer_dir: &Path, dir: &Path) -> Result<()> {
    replace_dir(dir, |tmp| {
        model.save(tmp)?;
        copy_tokenizer_files(tokenizer_dir, tmp)
    })
}

/// Where `last/` keeps the parameters of a multi-task run's other tasks (under their
/// [`super::tasks::task_prefix`]es).
const TASKS_FILE: &str = "tasks.safetensors";

/// Saves everything `--resume` needs into `last/`: the first task's model (a loadable
/// checkpoint) and objective, the other tasks' own parameters, the optimiser and the state.
fn save_last(
    tasks: &[TaskRun],
    params: &Params,
    opt: &Optimizers,
    state: &State,
    tokenizer_dir: &Path,
    dir: &Path,
) -> Result<()> {
    replace_dir(dir, |tmp| {
        tasks[0].model.save(tmp)?;
        copy_tokenizer_files(tokenizer_dir, tmp)?;
        tasks[0]
            .objective
            .params
            .save_safetensors(&tmp.join("objective.safetensors"))?;
        if tasks.len() > 1 {
            params
                .filtered(|n| n.starts_with(TASKS_PREFIX))
                .save_safetensors(&tmp.join(TASKS_FILE))?;
        }
        opt.save(tmp)?;
        write_file(
            &tmp.join("state.json"),
            &serde_json::to_string_pretty(state).expect("state serialises"),
        )
    })
}

/// Loads `last/` into the parameters and optimiser; returns the saved progress.
/// `multi_task`: the other tasks' parameters are in [`TASKS_FILE`] too.
fn restore(dir: &Path, params: &Params, opt: &mut Optimizers, multi_task: bool) -> Result<State> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path)
        .map_err(|e| Error::io(&state_path, e, "resume state (is there a run to resume?)"))?;
    let state: State = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: state_path.clone(),
        message: format!("unreadable resume state: {e}"),
    })?;
    let device = Device::Cpu;
    let mut saved = std::collections::HashMap::new();
    let files = ["model.safetensors", "objective.safetensors", TASKS_FILE];
    for file in files.iter().filter(|&&f| multi_task || f != TASKS_FILE) {
        let path = dir.join(file);
        let map =
            candle_core::safetensors::load(&path, &device).map_err(|e| Error::Checkpoint {
                path: path.clone(),
                message: format!("cannot read: {e}"),
            })?;
        saved.extend(map);
    }
    for (name, var) in params.iter() {
        let t = saved.get(name).ok_or_else(|| Error::Checkpoint {
            path: dir.to_path_buf(),
            message: format!("the saved run lacks {name}: was it made with another config?"),
        })?;
        var.set(t)?;
    }
    opt.load(dir, state.step)?;
    Ok(state)
}
