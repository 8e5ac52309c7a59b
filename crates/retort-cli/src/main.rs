//! `retort`: the command line. Each subcommand parses its arguments and calls the library.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use retort::bench::{bench_model, BenchConfig, Repetitions};
use retort::distill::general::general_distill;
use retort::distill::run::distill as run_distill;
use retort::eval::{evaluate, evaluate_translator};
use retort::export::Precision;
use retort::model::generate::DecodeOptions;
use retort::report::{self, MeasureOptions, TrainingLog};
use retort::serve::{BatchConfig, Limits, Predictor, ServeOptions, Timeouts, TranslationService};
use retort::summary::ModelSummary;
use retort::task::bleu::score_against_files;
use retort::task::{Input, Task};
use retort::text::lines::{read_lines, split_lines};
use retort::text::subword::SubwordTokenizer;
use retort::text::DEFAULT_MAX_LEN;
use retort::train::config::{load_config, DistillConfig, Stage, TrainConfig};
use retort::train::finetune::fine_tune;
use retort::train::trainer::RunSummary;
use retort::translate::cache::{cached_translations, CacheOptions, CHUNK};
use retort::translate::{is_translator, Translator};
use retort::Classifier;
use serde_json::json;

/// Knowledge distillation for transformer NLP models: load BERT-family checkpoints
/// (Hugging Face layout), inspect them, predict and evaluate.
#[derive(Parser)]
#[command(name = "retort", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a checkpoint's architecture, sizes, labels and parameter count.
    Inspect(InspectArgs),
    /// Classify texts, one per line (stdin by default); prints one JSON object per line.
    Predict(PredictArgs),
    /// Score a model on labelled data (TSV/CSV with `sentence` and `label` columns, or JSONL).
    Eval(EvalArgs),
    /// Fine-tune a checkpoint for its task (e.g. the teacher), or train a translator from scratch
    /// (model.task = "translation", model.init = "fresh"; configs/multi30k-teacher.toml).
    #[command(after_long_help = TRAIN_HELP)]
    Train(RunArgs),
    /// Distil a fine-tuned teacher into a smaller student (soft labels, intermediate layers, augmentation).
    #[command(after_long_help = DISTILL_HELP)]
    Distill(RunArgs),
    /// Teacher vs students on one data set: accuracy, agreement, size, latency, throughput;
    /// writes report.json, report.md and report.html (tables and SVG charts).
    Compare(CompareArgs),
    /// Time a model's forward pass: batch-1 latency and batched throughput (median and spread).
    Bench(BenchArgs),
    /// Write a model as a Hugging Face directory (config, safetensors, tokenizer), optionally int8.
    Export(ExportArgs),
    /// Serve a model over HTTP: its task's POST route (/v1/classify, /v1/entities, /v1/answer,
    /// /v1/translate), GET /health, GET /metrics.
    Serve(ServeArgs),
    /// Score translations with corpus BLEU exactly as sacrebleu does by default (13a tokens,
    /// exp smoothing): `retort bleu --ref val.de < translations.de`.
    Bleu(BleuArgs),
    /// Learn a byte-level BPE vocabulary from text files (for a model trained from scratch,
    /// e.g. a translator): writes OUT/tokenizer.json; decoding gives back the exact text.
    Vocab(VocabArgs),
    /// Translate lines (stdin by default) with a trained translator: one output line per
    /// input line, on stdout; `retort translate --model DIR < test.en > test.hyp.de`.
    Translate(TranslateArgs),
}

#[derive(Args)]
struct TranslateArgs {
    /// The translator's directory: config.json, model.safetensors and tokenizer.json.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Source lines to translate (default: stdin).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Sentences decoded together (sorted by length, so each batch holds similar ones).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Keep the translations in this directory as they are made (keyed by the model, the
    /// decoding options and the input): an interrupted run goes on from where it stopped,
    /// and a finished one is read back (e.g. a teacher's translations of a training set).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

/// How a translator decodes (`retort translate`, and `retort eval` of a translator).
#[derive(Args)]
struct DecodeArgs {
    /// Hypotheses kept per sentence; 1 decodes greedily.
    #[arg(long, default_value_t = 5)]
    beam: usize,
    /// Beam search ranks a finished output by log-probability / length^this (0: plain
    /// log-probability; higher favours longer outputs).
    #[arg(long, default_value_t = 1.0)]
    length_penalty: f64,
    /// At most max_len_a × source tokens + max_len_b tokens are generated per line.
    #[arg(long, default_value_t = 1.5)]
    max_len_a: f64,
    #[arg(long, default_value_t = 10)]
    max_len_b: usize,
}

impl DecodeArgs {
    fn options(&self) -> DecodeOptions {
        DecodeOptions {
            beam: self.beam.max(1),
            length_penalty: self.length_penalty,
            max_len_a: self.max_len_a,
            max_len_b: self.max_len_b,
        }
    }
}

#[derive(Args)]
struct VocabArgs {
    /// Text to learn from, one sentence per line; repeat for several files (e.g. both sides
    /// of a parallel corpus, for a vocabulary they share).
    #[arg(long = "train", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Tokens in the vocabulary, the 256 byte symbols and 4 special tokens included.
    #[arg(long, default_value_t = 8000)]
    vocab_size: usize,
    /// A merge must be seen at least this many times.
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
    /// Directory to write tokenizer.json into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Args)]
struct BleuArgs {
    /// Reference translations, one line per translation; repeat for several references.
    #[arg(long = "ref", value_name = "FILE", required = true)]
    refs: Vec<PathBuf>,
    /// The translations to score (default: stdin), detokenised, one per line.
    #[arg(long, value_name = "FILE")]
    hyp: Option<PathBuf>,
    /// Print the numbers as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Texts per forward pass: requests arriving together are batched up to this many.
    #[arg(long, default_value_t = 32)]
    max_batch_size: usize,
    /// Milliseconds the first request of a batch waits for others to join it.
    #[arg(long, default_value_t = 2)]
    max_wait_ms: u64,
    /// Texts per request (more: 413).
    #[arg(long, default_value_t = 64)]
    max_texts: usize,
    /// Characters per text (more: 422).
    #[arg(long, default_value_t = 2000)]
    max_chars: usize,
    /// Bytes per request body (more: 413).
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Seconds a request's head, then its body, may take to arrive (more: 408, connection closed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = positive_seconds)]
    read_timeout: Duration,
    /// Seconds a connection may stay open without a request.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = positive_seconds)]
    idle_timeout: Duration,
    /// Seconds requests in progress get to finish after SIGINT / SIGTERM; then those still
    /// waiting for the model get 503 and every connection is closed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    shutdown_grace: Duration,
    /// A translator's beam size on POST /v1/translate (1: greedy).
    #[arg(long, default_value_t = 5)]
    beam: usize,
}

/// A duration given in seconds (decimals allowed), 0 included.
fn seconds(text: &str) -> std::result::Result<Duration, String> {
    let s: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(s).map_err(|_| format!("{text}: expected 0 or more seconds"))
}

/// A duration given in seconds, above 0.
fn positive_seconds(text: &str) -> std::result::Result<Duration, String> {
    match seconds(text)? {
        d if d.is_zero() => Err(format!("{text}: expected more than 0 seconds")),
        d => Ok(d),
    }
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Output directory (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Store the encoder's linear weights quantised; predict, eval and serve then run them in int8.
    #[arg(long, value_enum)]
    quantize: Option<Quantize>,
    /// Write into --out even if it holds files (files of the same names are replaced, others stay).
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Quantize {
    /// 8-bit weights per output channel, 8-bit activations per row.
    Int8,
}

const DISTILL_HELP: &str = concat!(
    "Every option of the run config, with its default (configs/sst2-distill.toml):\n\n",
    include_str!("../../../configs/sst2-distill.toml")
);

const TRAIN_HELP: &str = concat!(
    "Every option of the run config, with its default (configs/sst2-teacher.toml):\n\n",
    include_str!("../../../configs/sst2-teacher.toml")
);

/// A run driven by a TOML config.
#[derive(Args)]
struct RunArgs {
    /// The run config (TOML). Every key has a default; unknown keys are an error.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Override a config key, e.g. `--set train.lr=3e-5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Continue the run saved in output.dir/last.
    #[arg(long)]
    resume: bool,
}

/// Where the model is and how long its inputs may be.
#[derive(Args)]
struct ModelArgs {
    /// Checkpoint directory: config.json, model.safetensors, tokenizer.json or vocab.txt.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Truncate inputs to this many tokens (special tokens included).
    #[arg(long, default_value_t = DEFAULT_MAX_LEN)]
    max_len: usize,
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print the numbers as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// File with one text per line; reads stdin when absent. For a question-answering model,
    /// one JSON object per line: {"question": "...", "context": "..."} (an "id" is echoed).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = retort::infer::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Also print the raw logits (e.g. to compare with another implementation): one row for
    /// a sequence classifier, one row per token for a tagger, the start and end rows of
    /// each window for a reader.
    #[arg(long)]
    logits: bool,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled data in the model's task format: .tsv, .csv or .jsonl for a sequence
    /// classifier; CoNLL columns (word ... tag) for a tagger; SQuAD v1.1 JSON for a reader;
    /// for a translator, the source file of a parallel corpus (test.en, its references the
    /// file beside it: test.de).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// A translator's decoding (ignored for other models).
    #[command(flatten)]
    decode: DecodeArgs,
    /// Texts per forward pass.
    #[arg(long, default_value_t = retort::infer::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Print the numbers as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write every example's input, gold and predicted labels as JSON lines here
    /// (`{"words"|"text", "gold", "pred"}`), e.g. for scripts/check_seqeval.py; for a reader,
    /// the answers as the official SQuAD script reads them (`{id: answer}`), e.g. for
    /// scripts/check_squad_metric.py --predictions; for a translator, its translations, one
    /// per line (e.g. for sacrebleu).
    #[arg(long, value_name = "FILE")]
    predictions: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    /// The teacher's checkpoint directory.
    #[arg(long, value_name = "DIR")]
    teacher: PathBuf,
    /// A student's checkpoint directory (repeatable).
    #[arg(long = "student", value_name = "DIR", required = true)]
    students: Vec<PathBuf>,
    /// Labelled data in the teacher's task format (e.g. the dev set); for translators, the
    /// source file of a parallel corpus (test.en, its references beside it: test.de).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Translators only: how each model decodes.
    #[command(flatten)]
    decode: DecodeArgs,
    /// A training log (`metrics.jsonl` of a run) to plot (repeatable).
    #[arg(long = "logs", value_name = "FILE")]
    logs: Vec<PathBuf>,
    /// Directory for report.json, report.md and report.html (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Texts per forward pass for the throughput.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Sentences (the first N of the data) timed one at a time for the batch-1 latency.
    #[arg(long, default_value_t = 100)]
    latency_samples: usize,
    /// Truncate inputs to this many tokens.
    #[arg(long, default_value_t = DEFAULT_MAX_LEN)]
    max_len: usize,
    #[command(flatten)]
    threads: ThreadArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// Checkpoint directory.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Sequences per batch for the throughput.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Tokens per sequence (synthetic ids, no padding), for latency and throughput.
    #[arg(long, default_value_t = 64)]
    seq_len: usize,
    /// Untimed iterations before timing.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed repetitions.
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Measure only one of the two.
    #[arg(long, value_enum)]
    only: Option<BenchPart>,
    /// Print the numbers as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    threads: ThreadArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchPart {
    Latency,
    Throughput,
}

#[derive(Args)]
struct ThreadArgs {
    /// Threads for all parallel work (default: RAYON_NUM_THREADS, else one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    // Freed buffers reused; one thread pool for all parallel work (candle's spinning pool
    // competed with gemm's).
    retort::model::kernels::configure_process();
    let cli = Cli::parse();
    // The thread pools start with the first parallel op: set their size before any.
    let threads = match &cli.command {
        Command::Compare(a) => a.threads.threads,
        Command::Bench(a) => a.threads.threads,
        _ => None,
    };
    match threads {
        Some(0) => {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::FAILURE;
        }
        Some(n) => retort::bench::set_threads(n),
        None => {}
    }
    let result = match cli.command {
        Command::Inspect(a) => inspect(a),
        Command::Predict(a) => predict(a),
        Command::Eval(a) => eval(a),
        Command::Train(a) => train(a),
        Command::Distill(a) => distill(a),
        Command::Compare(a) => compare(a),
        Command::Bench(a) => bench(a),
        Command::Export(a) => export(a),
        Command::Serve(a) => serve(a),
        Command::Bleu(a) => bleu(a),
        Command::Vocab(a) => vocab(a),
        Command::Translate(a) => translate(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: &ModelArgs) -> Result<Classifier> {
    let classifier = Classifier::load(&args.model, args.max_len)
        .with_context(|| format!("cannot load the model in {}", args.model.display()))?;
    if classifier.report.fresh_head {
        eprintln!(
            "note: {} has no classification head; a freshly initialised one is used (predictions are untrained)",
            args.model.display()
        );
    }
    Ok(classifier)
}

/// [`load`] for a command that only runs the model: its weights packed for inference.
fn load_for_inference(args: &ModelArgs) -> Result<Classifier> {
    let mut classifier = load(args)?;
    classifier.pack_for_inference()?;
    Ok(classifier)
}

fn inspect(args: InspectArgs) -> Result<()> {
    let summary = match is_translator(&args.model.model) {
        true => ModelSummary::of_translator(&Translator::load(&args.model.model)?)?,
        false => ModelSummary::of(&load(&args.model)?)?,
    };
    if args.json {
        print_line(&serde_json::to_string(&summary)?)
    } else {
        print_line(&summary.to_text())
    }
}

fn predict(args: PredictArgs) -> Result<()> {
    let c = load_for_inference(&args.model)?;
    let texts = read_texts(args.input.as_deref())?;
    anyhow::ensure!(!texts.is_empty(), "no input texts (the input is empty)");
    let task = Task::of(c.model.config());
    if task.reads_questions() {
        return predict_answers(&c, &texts, args.batch_size, args.logits);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let predictions = task.predict(&c, &refs, args.batch_size)?;
    let logits = match args.logits {
        true => Some(c.raw_logits(&refs, args.batch_size)?),
        false => None,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (i, (text, p)) in texts.iter().zip(predictions).enumerate() {
        let mut line = json!({"text": text});
        if let serde_json::Value::Object(fields) = p {
            line.as_object_mut().expect("an object").extend(fields);
        }
        if let Some(l) = &logits {
            line["logits"] = l[i].clone();
        }
        if writeln!(out, "{line}").is_err() {
            return Ok(()); // the reader went away (e.g. `| head`): nothing more to do
        }
    }
    out.flush().ok();
    Ok(())
}

/// Answers for JSON lines `{"question", "context"}` (an `"id"` is echoed): one JSON line each,
/// with the question, the answer, its score and its character offsets in the context.
fn predict_answers(
    c: &Classifier,
    lines: &[String],
    batch_size: usize,
    with_logits: bool,
) -> Result<()> {
    let mut ids = Vec::with_capacity(lines.len());
    let mut inputs = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let question =
            retort::task::parse_question(line).with_context(|| format!("input line {}", i + 1))?;
        let v: serde_json::Value = serde_json::from_str(line)?;
        ids.push(v.get("id").cloned());
        inputs.push(question);
    }
    let refs: Vec<&Input> = inputs.iter().collect();
    let answers = retort::task::answers(c, &refs, batch_size, with_logits)
        .context("cannot answer the questions")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for ((id, input), answer) in ids.into_iter().zip(&inputs).zip(answers) {
        let Input::Question { question, .. } = input else {
            unreachable!("parse_question gives questions");
        };
        let mut line = json!({ "question": question });
        if let Some(id) = id {
            line["id"] = id;
        }
        if let serde_json::Value::Object(fields) = answer {
            line.as_object_mut().expect("an object").extend(fields);
        }
        if writeln!(out, "{line}").is_err() {
            return Ok(()); // the reader went away
        }
    }
    out.flush().ok();
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    if is_translator(&args.model.model) {
        return eval_translator(&args);
    }
    let c = load_for_inference(&args.model)?;
    let data = Task::of(c.model.config()).read(&args.data)?;
    let r = evaluate(&c, &data, args.batch_size)?;
    if let Some(path) = &args.predictions {
        write_predictions(path, &c, &data, &r.predictions)?;
    }
    if args.json {
        return print_line(&serde_json::to_string(&r)?);
    }
    let mut text = String::new();
    for (name, v) in &r.scores.values {
        text.push_str(&format!("{:<18} {v:.4}\n", name.replace('_', " ")));
    }
    if let Some(e) = &r.scores.entities {
        for (kind, p) in &e.per_type {
            text.push_str(&format!(
                "  {kind:<16} F1 {:.4}  precision {:.4}  recall {:.4}  support {}\n",
                p.f1, p.precision, p.recall, p.support
            ));
        }
    }
    text.push_str(&format!(
        "{:<18} {}\n{:<18} {:.1} examples/s ({:.2} s)",
        "examples", r.count, "speed", r.sequences_per_second, r.seconds
    ));
    print_line(&text)
}

/// `retort eval` of a translator: BLEU of its translations of the corpus, and its speed.
fn eval_translator(args: &EvalArgs) -> Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let translator = Translator::load(&args.model.model)?;
    let data = Task::Translation.read(&args.data)?;
    let opts = args.decode.options();
    let (r, translations) = evaluate_translator(&translator, &data, &opts, args.batch_size)?;
    if let Some(path) = &args.predictions {
        let mut text = translations.join("\n");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot create {}", path.display()))?;
    }
    if args.json {
        return print_line(&serde_json::to_string(&r)?);
    }
    let mut text = String::new();
    for (name, v) in &r.scores.values {
        text.push_str(&format!("{:<18} {v:.4}\n", name.replace('_', " ")));
    }
    text.push_str(&format!(
        "{:<18} {}\n{:<18} {:.1} sentences/s, {:.0} target tokens/s ({:.2} s, beam {})",
        "sentences",
        r.count,
        "speed",
        r.sequences_per_second,
        r.target_tokens_per_second.unwrap_or(0.0),
        r.seconds,
        opts.beam
    ));
    print_line(&text)
}

fn vocab(args: VocabArgs) -> Result<()> {
    let mut lines = Vec::new();
    for path in &args.files {
        lines.extend(read_lines(path)?);
    }
    let tokenizer = SubwordTokenizer::train(&lines, args.vocab_size, args.min_frequency)?;
    tokenizer.save(&args.out)?;
    let s = tokenizer.summary(&lines)?;
    print_line(&format!(
        "{} tokens learnt from {} lines; {:.1} tokens per line; {} line(s) not restored exactly by decoding; wrote {}",
        s.vocab_size,
        s.lines,
        s.tokens_per_line,
        s.round_trip_failures,
        args.out.join("tokenizer.json").display()
    ))
}

/// The lines of `path`, or of stdin, with the name to give them in messages.
fn lines_of(path: Option<&Path>) -> Result<(String, Vec<String>)> {
    match path {
        Some(path) => Ok((path.display().to_string(), read_lines(path)?)),
        None => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
                .context("cannot read stdin")?;
            let lines = split_lines(&bytes)
                .map_err(|line| anyhow::anyhow!("stdin:{line}: not valid UTF-8"))?;
            Ok(("stdin".to_string(), lines))
        }
    }
}

fn translate(args: TranslateArgs) -> Result<()> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let translator = Translator::load(&args.model)?;
    let (_, lines) = lines_of(args.input.as_deref())?;
    let opts = args.decode.options();
    let start = std::time::Instant::now();
    // A bar on a terminal, plain lines when stderr goes to a file (`retort::progress`).
    let progress = true;
    let Some(dir) = &args.cache_dir else {
        let out = translator.translate(&lines, &opts, args.batch_size, progress)?;
        write_lines(&out.lines)?;
        let seconds = start.elapsed().as_secs_f64();
        eprintln!(
            "translated {} lines ({} source tokens, {} target tokens) in {seconds:.1} s: {:.0} target tokens/s, beam {}",
            lines.len(),
            out.source_tokens,
            out.target_tokens,
            out.target_tokens as f64 / seconds.max(1e-9),
            opts.beam
        );
        return Ok(());
    };
    let cache = CacheOptions {
        decode: opts,
        batch_size: args.batch_size,
        chunk: CHUNK,
        stop_after_chunks: None,
    };
    let c = cached_translations(&translator, &lines, &cache, dir, progress)?;
    write_lines(&c.lines)?;
    let how = match (c.hit, c.resumed) {
        (true, _) => "read back from".to_string(),
        (false, 0) => "written to".to_string(),
        (false, n) => format!("written to (going on after the {n} lines of an earlier run)"),
    };
    eprintln!(
        "{} translations {how} {} in {:.1} s, beam {}",
        c.lines.len(),
        c.path.display(),
        c.seconds,
        opts.beam
    );
    Ok(())
}

/// Writes `lines` to stdout, one per line.
fn write_lines(lines: &[String]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()?;
    Ok(())
}

fn bleu(args: BleuArgs) -> Result<()> {
    let (name, hypotheses) = lines_of(args.hyp.as_deref())?;
    let b = score_against_files(&name, &hypotheses, &args.refs)?;
    match args.json {
        true => print_line(&serde_json::to_string(&b)?),
        false => print_line(&b.to_string()),
    }
}

/// A reader's answers as the official SQuAD script reads them: one JSON object
/// `{id: answer text}` (each answer cut from its context by its character offsets).
fn write_answers(
    path: &Path,
    data: &retort::task::Corpus,
    predictions: &[Vec<usize>],
) -> Result<()> {
    let mut answers = serde_json::Map::new();
    for (item, pred) in data.items.iter().zip(predictions) {
        let (Input::Question { context, .. }, [start, end]) = (&item.input, pred.as_slice()) else {
            anyhow::bail!("a reader's prediction is a question's answer span");
        };
        let text: String = context.chars().skip(*start).take(end - start).collect();
        answers.insert(item.id.clone().unwrap_or_default(), json!(text));
    }
    let text = serde_json::to_string(&answers)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// One JSON line per example: its input, gold and predicted labels (by name).
fn write_predictions(
    path: &Path,
    c: &Classifier,
    data: &retort::task::Corpus,
    predictions: &[Vec<usize>],
) -> Result<()> {
    if Task::of(c.model.config()).reads_questions() {
        return write_answers(path, data, predictions);
    }
    let labels = &c.model.config().labels;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    for (item, pred) in data.items.iter().zip(predictions) {
        let mut line = match &item.input {
            Input::Text(t) => json!({"text": t}),
            Input::Pair(a, b) => json!({"sentence1": a, "sentence2": b}),
            Input::Words(w) => json!({"words": w}),
            Input::Question { .. } => unreachable!("questions are written by write_answers"),
        };
        line["gold"] = json!(item.gold);
        line["pred"] = json!(pred.iter().map(|&p| &labels[p]).collect::<Vec<_>>());
        writeln!(out, "{line}").with_context(|| format!("cannot write {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

fn export(args: ExportArgs) -> Result<()> {
    // Before loading the model: a refused target costs nothing.
    retort::export::check_target(&args.model.model, &args.out, args.force)?;
    let c = load(&args.model)?;
    let precision = match args.quantize {
        Some(Quantize::Int8) => Precision::Int8,
        None => Precision::AsLoaded,
    };
    retort::export::export_to(&c, &args.out, precision, args.force)
        .with_context(|| format!("cannot export to {}", args.out.display()))?;
    let how = if precision == Precision::Int8 || c.model.is_int8() {
        "int8"
    } else {
        "f32"
    };
    print_line(&format!(
        "exported {} ({how}) to {}",
        args.model.model.display(),
        args.out.display()
    ))
}

fn serve(args: ServeArgs) -> Result<()> {
    anyhow::ensure!(args.max_batch_size > 0, "--max-batch-size must be positive");
    anyhow::ensure!(args.max_texts > 0, "--max-texts must be positive");
    // A translator's route decodes with the beam options; a classifier's runs its task.
    let model: Box<dyn Predictor> = match is_translator(&args.model.model) {
        true => Box::new(TranslationService {
            translator: Translator::load(&args.model.model)?,
            options: DecodeOptions {
                beam: args.beam.max(1),
                ..DecodeOptions::default()
            },
        }),
        false => Box::new(load_for_inference(&args.model)?),
    };
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        batch: BatchConfig {
            max_batch_size: args.max_batch_size,
            max_wait: std::time::Duration::from_millis(args.max_wait_ms),
        },
        limits: Limits {
            max_texts: args.max_texts,
            max_chars: args.max_chars,
            max_body_bytes: args.max_body_bytes,
        },
        timeouts: Timeouts {
            read: args.read_timeout,
            idle: args.idle_timeout,
            shutdown_grace: args.shutdown_grace,
        },
    };
    let int8 = if model.is_int8() { ", int8" } else { "" };
    let dir = args.model.model.display().to_string();
    retort::serve::serve(model, &options, |addr| {
        // Tests and scripts wait for this line to know the server is up, and on which port.
        eprintln!("retort serve: {dir}{int8} listening on http://{addr}");
    })?;
    eprintln!("retort serve: stopped");
    Ok(())
}

fn train(args: RunArgs) -> Result<()> {
    let config: TrainConfig = load_config(&args.config, &args.set)?;
    let summary = fine_tune(&config, args.resume, true)?;
    print_run_summary(&summary)
}

fn distill(args: RunArgs) -> Result<()> {
    let config: DistillConfig = load_config(&args.config, &args.set)?;
    let progress = true;
    if config.distill.stage == Stage::General {
        let s = general_distill(&config, args.resume, progress)?;
        print_run_summary(&s.run)?;
        print_line(&format!(
            "general distillation: student encoder {} parameters ({:.1}% of the teacher's {}), {} training texts; start a task stage from {} with [student] init = \"pretrained\"",
            s.student_parameters,
            100.0 * s.student_parameters as f64 / s.teacher_parameters as f64,
            s.teacher_parameters,
            s.train_texts,
            s.run.best_dir.display()
        ))?;
        return write_summary(&config.output.dir, serde_json::to_value(&s)?);
    }
    let s = run_distill(&config, args.resume, progress)?;
    print_run_summary(&s.run)?;
    if s.tasks.is_empty() {
        // A teacher scoring 0 (an untrained translator's BLEU) has no share to keep.
        let kept = match s.teacher_score > 0.0 {
            true => format!("{:.1}%", 100.0 * s.run.best_score / s.teacher_score),
            false => "none".to_string(),
        };
        print_line(&format!(
            "teacher dev {} {:.4}; student keeps {kept} of it with {:.1}% of the parameters ({} vs {})",
            s.run.metric,
            s.teacher_score,
            100.0 * s.student_parameters as f64 / s.teacher_parameters as f64,
            s.student_parameters,
            s.teacher_parameters
        ))?;
    } else {
        print_task_scores(&s)?;
    }
    for (i, peer) in s.peers.iter().enumerate() {
        let who = match i {
            0 => "the teacher",
            _ => "a peer",
        };
        print_line(&format!(
            "mutual learning: {} ({who}, from {}): dev {} {:.4} before, best {:.4} at step {} (saved in {}), {:.4} at the end",
            peer.name,
            peer.from.display(),
            s.run.metric,
            peer.score_before,
            peer.best_score,
            peer.best_step,
            peer.dir.display(),
            peer.final_score
        ))?;
    }
    if let Some(hit) = s.teacher_cache_hit {
        let how = if hit {
            "reused the cache"
        } else {
            "computed and cached"
        };
        print_line(&format!(
            "teacher phase: {how} in {:.1} s",
            s.teacher_phase_seconds
        ))?;
    }
    write_summary(&config.output.dir, serde_json::to_value(&s)?)
}

/// A multi-task run: each task's student score at the best step beside its teacher's.
fn print_task_scores(s: &retort::distill::run::DistillSummary) -> Result<()> {
    let rows = std::iter::once(("first task", s.metric, s.teacher_score, &s.run.best_dir)).chain(
        s.tasks
            .iter()
            .zip(&s.run.task_dirs)
            .map(|(t, (_, dir))| (t.name.as_str(), t.metric, t.teacher_score, dir)),
    );
    for ((name, metric, teacher, dir), student) in rows.zip(&s.run.best_task_scores) {
        print_line(&format!(
            "{name}: student dev {metric} {student:.4}, teacher {teacher:.4} ({:.1}%), saved in {}",
            100.0 * student / teacher,
            dir.display()
        ))?;
    }
    print_line(&format!(
        "one student for {} tasks: {} parameters (encoder and every head), the first teacher {}",
        s.tasks.len() + 1,
        s.student_parameters,
        s.teacher_parameters
    ))
}

/// `summary.json` in the run directory.
fn write_summary(dir: &Path, summary: serde_json::Value) -> Result<()> {
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

fn compare(args: CompareArgs) -> Result<()> {
    anyhow::ensure!(
        args.batch_size > 0 && args.latency_samples > 0,
        "--batch-size and --latency-samples must be at least 1"
    );
    let opts = MeasureOptions {
        batch_size: args.batch_size,
        latency_samples: args.latency_samples,
        ..MeasureOptions::default()
    };
    let logs = args
        .logs
        .iter()
        .map(|p| TrainingLog::read(p))
        .collect::<retort::Result<Vec<_>>>()?;
    let report = match is_translator(&args.teacher) {
        true => compare_translators(&args, logs, &opts)?,
        false => compare_classifiers(&args, logs, &opts)?,
    };
    report::write(&report, &args.out)?;
    print_line(&report::markdown::render(&report))?;
    print_line(&format!(
        "wrote {0}/report.json, {0}/report.md, {0}/report.html",
        args.out.display()
    ))
}

/// A translator teacher and its students on a parallel corpus.
fn compare_translators(
    args: &CompareArgs,
    logs: Vec<TrainingLog>,
    opts: &MeasureOptions,
) -> Result<report::Report> {
    let load_as = |role: &str, dir: &Path| -> Result<Translator> {
        Translator::load(dir)
            .with_context(|| format!("cannot load the {role} in {}", dir.display()))
    };
    let teacher = load_as("teacher", &args.teacher)?;
    let students = args
        .students
        .iter()
        .map(|d| load_as("student", d))
        .collect::<Result<Vec<_>>>()?;
    let data = Task::Translation.read(&args.data)?;
    let decode = args.decode.options();
    Ok(report::compare_translators(
        &teacher, &students, &data, logs, opts, &decode,
    )?)
}

/// A classifier teacher (sentences, words, spans) and its students on labelled data.
fn compare_classifiers(
    args: &CompareArgs,
    logs: Vec<TrainingLog>,
    opts: &MeasureOptions,
) -> Result<report::Report> {
    let load_as = |role: &str, dir: &Path| -> Result<Classifier> {
        let mut c = Classifier::load(dir, args.max_len)
            .with_context(|| format!("cannot load the {role} in {}", dir.display()))?;
        anyhow::ensure!(
            !c.report.fresh_head,
            "the {role} in {} has no trained head; compare fine-tuned models",
            dir.display()
        );
        c.pack_for_inference()?;
        Ok(c)
    };
    let teacher = load_as("teacher", &args.teacher)?;
    let students = args
        .students
        .iter()
        .map(|d| load_as("student", d))
        .collect::<Result<Vec<_>>>()?;
    let data = Task::of(teacher.model.config()).read(&args.data)?;
    Ok(report::compare(&teacher, &students, &data, logs, opts)?)
}

fn bench(args: BenchArgs) -> Result<()> {
    let c = load_for_inference(&ModelArgs {
        model: args.model.clone(),
        max_len: DEFAULT_MAX_LEN,
    })?;
    let cfg = BenchConfig {
        batch_size: args.batch_size,
        seq_len: args.seq_len,
        reps: Repetitions {
            warmup: args.warmup,
            reps: args.reps,
        },
        latency: !matches!(args.only, Some(BenchPart::Throughput)),
        throughput: !matches!(args.only, Some(BenchPart::Latency)),
    };
    let r = bench_model(c.model.as_ref(), &args.model.display().to_string(), &cfg)?;
    if args.json {
        print_line(&serde_json::to_string(&r)?)
    } else {
        print_line(&r.to_text())
    }
}

fn print_run_summary(s: &RunSummary) -> Result<()> {
    let how = if s.interrupted {
        "interrupted"
    } else {
        "finished"
    };
    print_line(&format!(
        "{how} after {} steps in {:.1} s\nbest dev {metric} {:.4} (step {}), saved in {}\nlast dev {metric} {:.4}",
        s.steps,
        s.seconds,
        s.best_score,
        s.best_step,
        s.best_dir.display(),
        s.final_score,
        metric = s.metric
    ))?;
    if let Some(c) = &s.label_thresholds {
        let thresholds: Vec<String> = c.thresholds.iter().map(|t| format!("{t:.2}")).collect();
        print_line(&format!(
            "label thresholds chosen on dev: [{}] (dev micro-F1 {:.4} at 0.5, {:.4} with them; score on data that chose nothing)",
            thresholds.join(", "),
            c.before,
            c.after
        ))?;
    }
    Ok(())
}

/// Lines of a file, or of stdin; invalid UTF-8 is an error naming the line.
fn read_texts(path: Option<&Path>) -> Result<Vec<String>> {
    let reader: Box<dyn BufRead> = match path {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let name = path.map_or("stdin".to_string(), |p| p.display().to_string());
    reader
        .lines()
        .enumerate()
        .map(|(i, l)| l.with_context(|| format!("{name}:{}: cannot read line", i + 1)))
        .collect()
}

fn print_line(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").ok();
    Ok(())
}
