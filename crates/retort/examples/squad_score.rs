//! Scores SQuAD v1.1 predictions with the official metric (exact match and F1):
//!
//!     cargo run --release --example squad_score -p retort -- DATA.json PREDICTIONS.json
//!
//! DATA.json is a SQuAD v1.1 file, PREDICTIONS.json a JSON object `{id: answer text}` (what
//! the official `evaluate-v1.1.py` reads). Prints one JSON line, numbers at full f64
//! precision so that `scripts/check_squad_metric.py` can compare them with Python's:
//! `{"exact_match": .., "f1": .., "questions": .., "missing": ..}`.

use std::path::Path;
use std::process::ExitCode;

use retort::task::squad::{read_predictions, read_squad, Gold};
use retort::task::squad_metric::score;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, predictions] = args.as_slice() else {
        eprintln!("usage: squad_score DATA.json PREDICTIONS.json");
        return ExitCode::from(2);
    };
    match run(Path::new(data), Path::new(predictions)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The scores as one JSON line.
fn run(data: &Path, predictions: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let questions = read_squad(data, Gold::Required)?;
    let predictions = read_predictions(predictions)?;
    let scores = score(&questions, &predictions)?;
    Ok(serde_json::to_string(&scores)?)
}
