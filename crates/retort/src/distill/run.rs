//! `retort distill`: build a student, label the transfer set with the teacher, and train.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::ensemble::{ensemble_logits, EnsembleMember};
use super::multitask::{check_student, check_terms_fit, other_tasks, TaskSummary};
use super::peers::{load_peers, summaries, PeerSummary};
use super::teacher_cache::{teacher_logits, CachedLogits};
use crate::compress::compact::{compact_student, CompactStudent};
use crate::compress::student::{self, Keep, StudentShape};
use crate::compress::vocab::{pruned_vocabulary, tokens_of};
use crate::error::{Error, Result};
use crate::infer::Classifier;
use crate::model::checkpoint::copy_tokenizer_files;
use crate::model::{Architecture, EncoderInput, Model, Transformer};
use crate::objective::terms::{Needs, Term};
use crate::objective::{Objective, Teacher};
use crate::progress::Progress;
use crate::task::{read_unlabelled, Corpus, Input, Rows, Task, TaskData};
use crate::text::augment::{augment, mask_token, WordNeighbours};
use crate::text::batch::pad_batch;
use crate::text::{Encoded, TextTokenizer};
use crate::train::config::{
    to_toml, DistillConfig, EmbeddingInit, Stage, StudentSection, Validate,
};
use crate::train::finetune::{read_data, task_data};
use crate::train::tasks::TaskRun;
use crate::train::trainer::{
    self, check_output_dir, dev_metrics, RunOptions, RunSummary, Selection,
};

/// What a distillation run did.
#[derive(Debug, Clone, Serialize)]
pub struct DistillSummary {
    pub run: RunSummary,
    /// The task's primary metric (`run.metric` too, unless several tasks chose by their mean).
    pub metric: &'static str,
    /// The teacher's dev value of `metric`.
    pub teacher_score: f64,
    pub teacher_parameters: usize,
    /// The student's parameters (multi-task: its encoder and every task's head).
    pub student_parameters: usize,
    /// Labelled examples plus augmented and unlabelled ones.
    pub transfer_examples: usize,
    pub augmented_examples: usize,
    /// Texts read from `augment.unlabelled`.
    pub unlabelled_examples: usize,
    /// The teacher-logits cache: was it reused, how long the teacher phase took, where it is.
    pub teacher_cache_hit: Option<bool>,
    pub teacher_phase_seconds: f64,
    pub teacher_cache_path: Option<PathBuf>,
    /// The extra teachers of a multi-teacher run (the first is `teacher_score`'s).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teachers: Vec<EnsembleMember>,
    /// Mutual learning: each peer (the teacher first) before the run, at its best and at the
    /// end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerSummary>,
    /// Multi-task: the tasks beside the first (`[[tasks]]`), whose students are saved in
    /// `run.task_dirs`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSummary>,
}

/// A student and, when it does not read the teacher's tokens, its own tokenizer.
pub struct Student {
    /// A transformer, or a BiLSTM or CNN.
    pub model: Box<dyn Model>,
    /// `None`: the student reads the teacher's tokenizer.
    pub tokenizer: Option<StudentTokenizer>,
}

/// A student's own tokenizer and where its files come from.
pub struct StudentTokenizer {
    pub tokenizer: TextTokenizer,
    pub files: TokenizerFiles,
}

/// The files a student's checkpoints carry for its tokenizer.
pub enum TokenizerFiles {
    /// A pruned vocabulary: the teacher's tokenizer settings over these tokens, written into
    /// the run directory.
    Pruned(Vec<String>),
    /// A pretrained student's own checkpoint directory.
    Dir(PathBuf),
}

/// Examples whose activity chooses the heads and neurons a pruned student keeps.
const ACTIVITY_SAMPLE: usize = 2048;

/// Builds the student the config asks for. `examples` (the transfer set, in the teacher's
/// tokens) choose the tokens, heads and neurons a pruned student keeps.
pub fn build_student(
    config: &DistillConfig,
    teacher: &Classifier,
    examples: &[Encoded],
) -> Result<Student> {
    let transformer = teacher.transformer("distilling a student")?;
    match &config.student {
        StudentSection::TeacherLayers(s) => {
            if s.keep_tokens > 0 && Needs::of(&config.distill.terms()?).teacher_online() {
                return Err(Error::Invalid(
                    "student.keep_tokens gives the student its own tokens, so it cannot be matched token by token with the teacher: remove the intermediate terms (hidden_mse, attention_mse, attention_kl, cosine)".into(),
                ));
            }
            let mut keep = Keep::default();
            if s.keep_tokens > 0 {
                keep.tokens = Some(pruned_vocabulary(
                    &teacher.tokenizer,
                    examples,
                    s.keep_tokens,
                )?);
            }
            if s.keep_heads > 0 || s.keep_ffn > 0 {
                // One pass of the teacher over the sample serves both choices.
                let batches = activity_sample(examples, transformer.config.pad_token_id)?;
                let activity = student::measure_activity(transformer, &batches)?;
                if s.keep_heads > 0 {
                    keep.heads = Some(student::heads_to_keep(
                        transformer,
                        &activity,
                        s.keep_heads,
                    )?);
                }
                if s.keep_ffn > 0 {
                    keep.ffn = Some(student::ffn_to_keep(transformer, &activity, s.keep_ffn)?);
                }
            }
            let model = student::from_teacher_layers(transformer, &s.teacher_layers, &keep)?;
            let tokenizer = match &keep.tokens {
                None => None,
                Some(ids) => {
                    let tokens = tokens_of(&teacher.tokenizer, ids)?;
                    let tokenizer = teacher.tokenizer.with_vocabulary(&tokens)?;
                    Some(StudentTokenizer {
                        tokenizer,
                        files: TokenizerFiles::Pruned(tokens),
                    })
                }
            };
            Ok(Student {
                model: Box::new(model),
                tokenizer,
            })
        }
        StudentSection::Fresh(s) => {
            let shape = StudentShape {
                layers: s.layers,
                hidden_size: s.hidden_size,
                heads: s.heads,
                intermediate_size: s.intermediate_size,
            };
            let fresh = student::fresh(&transformer.config, shape, config.train.seed)?;
            if s.embeddings == EmbeddingInit::TeacherPca {
                student::init_embeddings_from_teacher(&fresh, transformer)?;
            }
            Ok(Student {
                model: Box::new(fresh),
                tokenizer: None,
            })
        }
        StudentSection::Pretrained(s) => pretrained(config, teacher, &s.dir),
        StudentSection::Bilstm(s) => {
            let shape = CompactStudent {
                architecture: Architecture::BiLstm,
                units: s.hidden_size,
                kernel_sizes: Vec::new(),
                mlp_size: s.mlp_size,
                embedding_size: s.embedding_size,
                dropout: s.dropout as f32,
            };
            compact(config, transformer, &shape)
        }
        StudentSection::Cnn(s) => {
            let shape = CompactStudent {
                architecture: Architecture::Cnn,
                units: s.filters,
                kernel_sizes: s.kernel_sizes.clone(),
                mlp_size: s.mlp_size,
                embedding_size: s.embedding_size,
                dropout: s.dropout as f32,
            };
            compact(config, transformer, &shape)
        }
    }
}

/// A pretrained model (e.g. all-MiniLM-L6-v2 for an MPNet teacher, or a student of general
/// distillation) with the teacher's head kind and labels (a fresh head unless it already has
/// them). A student whose tokenizer gives the teacher's ids reads the teacher's tokens, and
/// every term applies; one with its own tokenizer re-reads the data in its tokens, and the
/// teacher's logits stay matched by example, so only output terms compare them.
fn pretrained(config: &DistillConfig, teacher: &Classifier, dir: &Path) -> Result<Student> {
    let t = teacher.model.config();
    let c = Classifier::load(dir, config.teacher.max_len)?;
    let mut model = c.transformer("a pretrained student")?.clone().with_head(
        t.head,
        &t.labels,
        config.train.seed,
    )?;
    model.config.multi_label = t.multi_label;
    if c.tokenizer.same_tokens_as(&teacher.tokenizer) {
        return Ok(Student {
            model: Box::new(model),
            tokenizer: None,
        });
    }
    if Needs::of(&config.distill.terms()?).teacher_online() {
        return Err(Error::Invalid(format!(
            "a pretrained student ({}) reads its own tokenizer, so it cannot be matched token by token with the teacher: remove the intermediate terms (hidden_mse, attention_mse, attention_kl, cosine)",
            dir.display()
        )));
    }
    if Task::of(t).reads_questions() {
        return Err(Error::Invalid(
            "a pretrained student with its own tokenizer cuts other windows than the teacher's: question answering needs the teacher's tokenizer (init = \"teacher-layers\")".into(),
        ));
    }
    Ok(Student {
        model: Box::new(model),
        tokenizer: Some(StudentTokenizer {
            tokenizer: c.tokenizer,
            files: TokenizerFiles::Dir(dir.to_path_buf()),
        }),
    })
}

/// Checks, before the teacher phase, that every term's class weights give one weight per
/// teacher label, and that the task's rows are over classes at all (a reader's are over the
/// window's positions).
fn check_class_weights(terms: &[Term], labels: &[String], task: Task) -> Result<()> {
    for term in terms {
        let (Some(weights), name) = (&term.class_weights, term.kind.name()) else {
            continue;
        };
        if task.reads_questions() {
            return Err(Error::Invalid(format!(
                "{name}: class_weights weight classes, and a reader's rows score a window's positions: remove them"
            )));
        }
        if weights.len() != labels.len() {
            return Err(Error::Invalid(format!(
                "{name} has {} class_weights for the teacher's {} labels ({}): give one per label, in that order",
                weights.len(),
                labels.len(),
                labels.join(", ")
            )));
        }
    }
    Ok(())
}

/// A BiLSTM or CNN student. It has no layers to match the teacher's, so the run's terms must
/// compare outputs only.
fn compact(
    config: &DistillConfig,
    teacher: &Transformer,
    shape: &CompactStudent,
) -> Result<Student> {
    if Needs::of(&config.distill.terms()?).teacher_online() {
        return Err(Error::Invalid(format!(
            "a {} student has no hidden states or attention maps to match with the teacher's: remove the intermediate terms (hidden_mse, attention_mse, attention_kl, cosine) and keep hard_ce, soft_kl, soft_ce or logit_mse",
            shape.architecture.model_type()
        )));
    }
    Ok(Student {
        model: compact_student(teacher, shape, config.train.seed)?,
        tokenizer: None,
    })
}

/// Up to [`ACTIVITY_SAMPLE`] examples spread over the set, in batches of 64.
fn activity_sample(examples: &[Encoded], pad_id: u32) -> Result<Vec<EncoderInput>> {
    let step = (examples.len() / ACTIVITY_SAMPLE).max(1);
    let picked: Vec<&Encoded> = examples
        .iter()
        .step_by(step)
        .take(ACTIVITY_SAMPLE)
        .collect();
    picked.chunks(64).map(|c| pad_batch(c, pad_id)).collect()
}

/// Writes a pruned student's tokenizer files into `dir`, for its checkpoints to carry: the
/// teacher's tokenizer settings, with `tokenizer.json` and `vocab.txt` replaced by its own.
fn save_pruned_tokenizer(
    tokenizer: &TextTokenizer,
    tokens: &[String],
    teacher_dir: &Path,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::create(dir, e, "tokenizer directory"))?;
    copy_tokenizer_files(teacher_dir, dir)?;
    tokenizer.save(dir)?;
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, tokens.join("\n") + "\n")
        .map_err(|e| Error::create(&vocab, e, "vocabulary"))
}

/// Runs a whole distillation as configured; the best student is saved in `output.dir/best`.
pub fn distill(config: &DistillConfig, resume: bool, progress: bool) -> Result<DistillSummary> {
    distill_until(config, resume, progress, None)
}

/// [`distill`], saving a checkpoint and stopping after step `stop_after` as Ctrl-C would:
/// a paused run, which `--resume` continues.
pub fn distill_until(
    config: &DistillConfig,
    resume: bool,
    progress: bool,
    stop_after: Option<usize>,
) -> Result<DistillSummary> {
    // Before the teacher phase and before anything is written into output.dir.
    config.validate()?;
    if config.distill.stage == Stage::General {
        return Err(Error::Invalid(
            "distill.stage = \"general\" is run by distill::general::general_distill".into(),
        ));
    }
    if crate::translate::is_translator(&config.teacher.dir) {
        return super::translation::distill(config, resume, progress);
    }
    check_output_dir(&config.output.dir, resume)?;
    let mut teacher = Classifier::load(&config.teacher.dir, config.teacher.max_len)?;
    if teacher.report.fresh_head {
        return Err(Error::Invalid(format!(
            "the teacher {} has no trained head: fine-tune it first (retort train)",
            config.teacher.dir.display()
        )));
    }
    // A teacher that learns (mutual learning) changes at every step: it cannot be packed.
    if !config.distill.mutual {
        teacher.pack_for_inference()?;
    }
    let task = Task::of(teacher.model.config());
    task.check_train_options(&config.train)?;
    let labels = teacher.model.config().labels.clone();
    check_class_weights(&config.distill.terms()?, &labels, task)?;
    let (train_data, dev_data) = read_data(task, &config.data)?;
    check_pair_transfer_set(config, &train_data)?;
    let unlabelled = match &config.augment.unlabelled {
        Some(path) => read_unlabelled(path, config.augment.unlabelled_limit)?,
        None => Vec::new(),
    };
    let mut train = task_data(task, &teacher.tokenizer, &train_data, &labels)?;
    let dev = task_data(task, &teacher.tokenizer, &dev_data, &labels)?;
    let teacher_score = dev_metrics(teacher.model.as_ref(), &dev, 64)?.primary_value();

    let augmented = augment_transfer_set(config, &teacher, &train_data)?;
    // Augmented sentences, then the unlabelled text: both labelled by the teacher only.
    let mut extra_inputs: Vec<Input> = augmented.iter().cloned().map(Input::Text).collect();
    if let Some(path) = config.augment.unlabelled.as_ref() {
        eprintln!(
            "transfer set: {} labelled examples, {} augmented, {} unlabelled texts from {}",
            train.examples.len(),
            augmented.len(),
            unlabelled.len(),
            path.display()
        );
    }
    let unlabelled_examples = unlabelled.len();
    extra_inputs.extend(unlabelled);
    if !extra_inputs.is_empty() {
        let refs: Vec<&Input> = extra_inputs.iter().collect();
        train.extend_unlabelled(task.encode(&teacher.tokenizer, &refs)?);
    }
    let Student {
        model: student,
        tokenizer: student_tokenizer,
    } = build_student(config, &teacher, &train.examples)?;
    eprintln!(
        "teacher {}: {} parameters, dev {} {teacher_score:.4}; student: {}, {} tokens, {} parameters",
        config.teacher.dir.display(),
        teacher.model.params().count(),
        task.primary_metric(),
        student.config().describe(),
        student.config().vocab_size,
        student.params().count()
    );
    let terms = config.distill.terms()?;
    check_terms_fit(task, &terms)?;
    let needs = Needs::of(&terms);
    let mutual = config.distill.mutual;
    if (mutual || needs.perturbed_inputs) && student_tokenizer.is_some() {
        let what = match mutual {
            true => "distill.mutual",
            false => "adversarial_kl",
        };
        return Err(Error::Invalid(format!(
            "{what} runs the teacher on the student's batches, so the student must read the teacher's tokens: remove student.keep_tokens, or use a student with the teacher's tokenizer"
        )));
    }
    if !config.teacher.extra.is_empty() && !needs.teacher_logits {
        return Err(Error::Invalid(
            "teacher.extra teachers serve the logit terms (soft_kl, soft_ce, logit_mse, logistic), and this run has none: add one or remove teacher.extra".into(),
        ));
    }
    // Mutual learning's peers beside the teacher, checked before anything is written.
    let peers = load_peers(config, &teacher, &dev)?;
    // Multi-task: a view of the student per other task, each with its teacher's logits.
    let others = match config.tasks.is_empty() {
        true => Vec::new(),
        false => {
            let transformer = check_student(student.as_ref(), student_tokenizer.is_some())?;
            other_tasks(config, &teacher, transformer, &terms, progress)?
        }
    };
    // The transfer set's raw inputs in example order, for tokenizers other than the teacher's.
    let inputs: Vec<&Input> = train_data
        .inputs()
        .into_iter()
        .chain(&extra_inputs)
        .collect();
    if needs.perturbed_inputs {
        check_perturbable(student.as_ref(), teacher.model.as_ref(), &train.examples)?;
    }
    let teacher_start = Instant::now();
    // A teacher that learns changes at every step: its logits cannot be cached.
    let cache = match needs.teacher_logits && !mutual {
        true => Some(label_transfer_set(
            teacher.model.as_ref(),
            &config.teacher.dir,
            &train,
            &config.distill.cache_dir,
            progress,
        )?),
        false => None,
    };
    // More teachers: their logits, combined with the first's, become the target.
    let (cached_logits, teachers) = match &cache {
        Some(c) if !config.teacher.extra.is_empty() => {
            let (combined, members) = ensemble_logits(
                &config.teacher,
                &teacher,
                &c.logits,
                &train,
                &dev_data,
                &inputs,
                &config.distill.cache_dir,
            )?;
            (Some(combined), members)
        }
        _ => (cache.as_ref().map(|c| c.logits.clone()), Vec::new()),
    };
    let teacher_phase_seconds = teacher_start.elapsed().as_secs_f64();
    let objective = Objective::distill(
        &terms,
        &config.distill.layer_map,
        config.distill.temperature,
        Teacher {
            model: (needs.teacher_online() || needs.perturbed_inputs || mutual)
                .then(|| teacher.model.clone()),
            cached_logits,
            learns: mutual.then(|| config.teacher_peer_settings()),
        },
        student.config().num_layers,
        student.config().hidden_size,
        config.train.seed,
    )?
    .with_peers(peers.iter().map(|p| (p.model.clone(), p.settings)))?;
    // A student with its own tokens reads the transfer set and dev set in them; the teacher's
    // logits (cached above) stay matched by example index.
    let (tokenizer_dir, dev) = match &student_tokenizer {
        None => (config.teacher.dir.clone(), dev),
        Some(st) => {
            let dir = match &st.files {
                TokenizerFiles::Pruned(tokens) => {
                    let dir = config.output.dir.join("student-tokenizer");
                    save_pruned_tokenizer(&st.tokenizer, tokens, &config.teacher.dir, &dir)?;
                    dir
                }
                TokenizerFiles::Dir(dir) => dir.clone(),
            };
            train = encoded_like(task, &train, &st.tokenizer, &inputs)?;
            (dir, task_data(task, &st.tokenizer, &dev_data, &labels)?)
        }
    };
    let options = RunOptions {
        train: &config.train,
        out_dir: &config.output.dir,
        tokenizer_dir: &tokenizer_dir,
        resume,
        config_toml: &to_toml(config),
        progress,
        stop_after,
        selection: Selection::TaskMetric,
    };
    if mutual {
        eprintln!(
            "mutual learning: the teacher trains beside the student as peer1 (peak lr {:e}), online at every step",
            config.teacher_peer_settings().lr
        );
        for (i, p) in peers.iter().enumerate() {
            eprintln!(
                "mutual learning: peer{} from {} (dev {} {:.4}, peak lr {:e})",
                i + 2,
                p.from.display(),
                task.primary_metric(),
                p.score_before,
                p.settings.lr
            );
        }
    }
    let mut tasks = vec![TaskRun::single(student.as_ref(), &objective, &train, &dev)];
    tasks.extend(others.iter().map(|o| o.run()));
    let mut run = trainer::run_tasks(&tasks, &options)?;
    run.label_thresholds =
        task.after_training(&config.train, &run.best_dir, &dev, config.teacher.max_len)?;
    for (other, (_, dir)) in others.iter().zip(&run.task_dirs) {
        other
            .task
            .after_training(&config.train, dir, &other.dev, other.max_len)?;
    }
    // One encoder and every task's head.
    let student_parameters = student.params().count()
        + others
            .iter()
            .map(|o| {
                o.model
                    .head_tensors()
                    .values()
                    .map(|t| t.elem_count())
                    .sum::<usize>()
            })
            .sum::<usize>();
    let peers = summaries(&run.peers, &config.teacher.dir, teacher_score, &peers);
    Ok(DistillSummary {
        run,
        metric: task.primary_metric(),
        teacher_score,
        teacher_parameters: teacher.model.params().count(),
        student_parameters,
        transfer_examples: train.examples.len(),
        augmented_examples: augmented.len(),
        unlabelled_examples,
        teacher_cache_hit: cache.as_ref().map(|c| c.hit),
        teacher_phase_seconds,
        teacher_cache_path: cache.map(|c| c.path),
        teachers,
        peers,
        tasks: others.into_iter().map(|o| o.summary).collect(),
    })
}

/// The teacher's logits over a transfer set, from `cache_dir` or computed (with a progress
/// bar: labelling a large augmented set takes minutes) and stored there.
pub(crate) fn label_transfer_set(
    teacher: &dyn Model,
    teacher_dir: &Path,
    train: &TaskData,
    cache_dir: &Path,
    progress: bool,
) -> Result<CachedLogits> {
    let bar = Progress::new(
        train.examples.len(),
        progress,
        "[{elapsed_precise}] {wide_bar} {pos}/{len} teacher logits · {per_sec} · ETA {eta}",
        "teacher logits",
    );
    let c = teacher_logits(teacher, teacher_dir, train, cache_dir, 64, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    let how = match c.hit {
        true => "reused cached",
        false => "computed and cached",
    };
    eprintln!(
        "teacher logits of {} for {} examples: {how} in {:.1} s ({})",
        teacher_dir.display(),
        train.examples.len(),
        c.seconds,
        c.path.display()
    );
    Ok(c)
}

/// adversarial_kl perturbs both models' word embeddings alike: one example with a zero
/// perturbation as wide as the teacher's embeddings must pass through the student, before
/// the run starts rather than at its first step.
fn check_perturbable(student: &dyn Model, teacher: &dyn Model, examples: &[Encoded]) -> Result<()> {
    let Some(first) = examples.first() else {
        return Ok(());
    };
    let mut input = pad_batch(&[first], student.config().pad_token_id)?;
    let width = teacher.config().hidden_size;
    input.word_noise = Some(candle_core::Tensor::zeros(
        (1, first.ids.len(), width),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?);
    let none = crate::model::Outputs::default();
    student
        .forward(&input, crate::model::Pass::INFERENCE, none)
        .map(|_| ())
        .map_err(|_| {
            Error::Invalid(format!(
                "adversarial_kl perturbs the teacher's and the student's word embeddings alike, but the student's ({}) are not {width} wide like the teacher's: use a student of the teacher's width, or remove adversarial_kl",
                student.config().describe()
            ))
        })
}

/// The transfer set `train` in the tokens of another `tokenizer` (a student's or a
/// teacher's own), from its raw `inputs` in example order. Cached teacher logits stay matched
/// by example and row, so each example must keep its number of rows.
pub(crate) fn encoded_like(
    task: Task,
    train: &TaskData,
    tokenizer: &TextTokenizer,
    inputs: &[&Input],
) -> Result<TaskData> {
    let (examples, rows): (Vec<Encoded>, Vec<Rows>) =
        task.encode(tokenizer, inputs)?.into_iter().unzip();
    if let Some(i) = (0..rows.len()).find(|&i| rows[i].units != train.rows[i].units) {
        return Err(Error::Invalid(format!(
            "training example {i} keeps other words within max_len with another tokenizer than with the teacher's; raise teacher.max_len (or, for a pruned vocabulary, keep more tokens)"
        )));
    }
    Ok(TaskData {
        examples,
        rows,
        ..train.clone()
    })
}

/// Augmentation and `augment.unlabelled` make single texts; added to sentence-pair data they
/// would teach the student inputs of another shape than the task's, so they are refused
/// (before the teacher runs) until they make pairs.
fn check_pair_transfer_set(config: &DistillConfig, train: &Corpus) -> Result<()> {
    if !train.has_pairs() {
        return Ok(());
    }
    if config.augment.enabled() {
        return Err(Error::Invalid(format!(
            "augmentation of sentence pairs is not supported yet ({} holds pairs): set augment.multiplier = 0",
            train.path.display()
        )));
    }
    if let Some(path) = &config.augment.unlabelled {
        return Err(Error::Invalid(format!(
            "augment.unlabelled ({}) holds single texts, one per line, but {} holds sentence pairs: unlabelled pairs are not supported yet; remove augment.unlabelled",
            path.display(),
            train.path.display()
        )));
    }
    Ok(())
}

/// Augmented sentences (unlabelled) for the transfer set, or none when augmentation is off.
fn augment_transfer_set(
    config: &DistillConfig,
    teacher: &Classifier,
    corpus: &Corpus,
) -> Result<Vec<String>> {
    let aug = &config.augment;
    if !aug.enabled() {
        return Ok(Vec::new());
    }
    let texts = corpus.texts().ok_or_else(|| {
        Error::Invalid(
            "augmentation rewrites raw texts; this task's data is split into words: set augment.multiplier = 0".into(),
        )
    })?;
    let texts = texts.as_slice();
    let start = Instant::now();
    let neighbours = if aug.p_replace > 0.0 {
        let words = texts.iter().flat_map(|t| t.split_whitespace());
        Some(WordNeighbours::build(
            &teacher
                .transformer("augmentation by nearest words")?
                .encoder
                .embeddings
                .word,
            &teacher.tokenizer,
            words,
            aug.neighbours,
        )?)
    } else {
        None
    };
    let mask = mask_token(&teacher.tokenizer).unwrap_or("[MASK]");
    let out = augment(texts, aug, neighbours.as_ref(), mask, config.train.seed)?;
    eprintln!(
        "augmentation: {} new sentences from {} ({:.1} s)",
        out.len(),
        texts.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(out.into_iter().map(|a| a.text).collect())
}
