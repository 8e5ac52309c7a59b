//! `retort`: the command line. Each subcommand parses its arguments and calls the library.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use retort::eval::evaluate;
use retort::summary::ModelSummary;
use retort::text::{Dataset, DEFAULT_MAX_LEN};
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
    /// File with one text per line; reads stdin when absent.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = retort::infer::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled data: .tsv, .csv or .jsonl.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = retort::infer::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Print the numbers as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect(a),
        Command::Predict(a) => predict(a),
        Command::Eval(a) => eval(a),
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

fn inspect(args: InspectArgs) -> Result<()> {
    let summary = ModelSummary::of(&load(&args.model)?)?;
    if args.json {
        print_line(&serde_json::to_string(&summary)?)
    } else {
        print_line(&summary.to_text())
    }
}

fn predict(args: PredictArgs) -> Result<()> {
    let c = load(&args.model)?;
    let texts = read_texts(args.input.as_deref())?;
    anyhow::ensure!(!texts.is_empty(), "no input texts (the input is empty)");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let predictions = c.predict(&refs, args.batch_size)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (text, p) in texts.iter().zip(predictions) {
        let line = json!({"text": text, "label": p.label, "probabilities": p.probabilities});
        if writeln!(out, "{line}").is_err() {
            return Ok(()); // the reader went away (e.g. `| head`): nothing more to do
        }
    }
    out.flush().ok();
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let c = load(&args.model)?;
    let data = Dataset::read(&args.data)?;
    let r = evaluate(&c, &data, args.batch_size)?;
    if args.json {
        return print_line(&serde_json::to_string(&r)?);
    }
    print_line(&format!(
        "accuracy   {:.4}\nmacro-F1   {:.4}\nexamples   {}\nspeed      {:.1} sequences/s ({:.2} s)",
        r.accuracy, r.macro_f1, r.count, r.sequences_per_second, r.seconds
    ))
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
