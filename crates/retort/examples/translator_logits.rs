//! A translator's next-token logits under teacher forcing, for `scripts/check_marian.py`:
//!
//!     cargo run --release --example translator_logits -p retort -- MODEL_DIR PAIRS.tsv
//!
//! PAIRS.tsv holds `source<TAB>target` lines. Each pair is tokenised with the translator's
//! vocabulary (the source with its end token, as `retort translate` reads it; the decoder reads
//! the start token then the target's tokens) and run alone; one JSON line per pair is printed:
//! `{"source_ids", "decoder_ids", "logits": [[...] per decoder position]}`, full f32 values.

use std::path::Path;
use std::process::ExitCode;

use candle_core::{Device, Tensor};
use retort::model::Pass;
use retort::translate::Translator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, pairs] = args.as_slice() else {
        eprintln!("usage: translator_logits MODEL_DIR PAIRS.tsv");
        return ExitCode::from(2);
    };
    match run(Path::new(model), Path::new(pairs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(model: &Path, pairs: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let translator = Translator::load(model)?;
    let config = &translator.model.config;
    for (i, line) in retort::text::lines::read_lines(pairs)?.iter().enumerate() {
        let (source, target) = line
            .split_once('\t')
            .ok_or_else(|| format!("{}:{}: no tab", pairs.display(), i + 1))?;
        let source_ids = translator.source_ids(source)?;
        let decoder_ids: Vec<u32> = std::iter::once(config.decoder_start_token_id)
            .chain(translator.tokenizer.encode(target)?)
            .collect();
        let row = |ids: &[u32]| Tensor::new(ids, &Device::Cpu)?.unsqueeze(0);
        let mask = Tensor::ones((1, source_ids.len()), candle_core::DType::F32, &Device::Cpu)?;
        let logits = translator.model.forward(
            &row(&source_ids)?,
            &mask,
            &row(&decoder_ids)?,
            Pass::INFERENCE,
        )?;
        let logits: Vec<Vec<f32>> = logits.squeeze(0)?.to_vec2()?;
        let record = serde_json::json!({
            "source_ids": source_ids,
            "decoder_ids": decoder_ids,
            "logits": logits,
        });
        println!("{record}");
    }
    Ok(())
}
