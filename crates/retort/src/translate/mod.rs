//! `retort translate`: a trained translator and its sub-word vocabulary, turning lines of
//! source text into lines of target text, batched and decoded greedily or by beam search;
//! [`cache`]: a whole file's translations kept on disk as they are made, resumable.

pub mod cache;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::generate::DecodeOptions;
use crate::model::seq2seq::Seq2Seq;
use crate::progress::Progress;
use crate::task::translation::{decode_all, source_ids};
use crate::text::subword::SubwordTokenizer;

/// A translator and the vocabulary it reads and writes.
pub struct Translator {
    pub model: Seq2Seq,
    pub tokenizer: SubwordTokenizer,
    pub dir: PathBuf,
}

/// What a translation of many lines did, for a summary on stderr.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translated {
    pub lines: Vec<String>,
    /// Source tokens read (end tokens included) and target tokens written (without them).
    pub source_tokens: usize,
    pub target_tokens: usize,
}

/// Whether `dir` holds a translator (a `config.json` of `model_type` "marian") rather than
/// an encoder; `false` when there is no readable config (loading then says why).
pub fn is_translator(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|c| c["model_type"] == "marian")
}

impl Translator {
    /// Loads `dir/config.json`, `dir/model.safetensors` and `dir/tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let model = Seq2Seq::load(dir)?;
        let tokenizer = SubwordTokenizer::load(dir)?;
        if tokenizer.vocab_size() != model.config.vocab_size {
            return Err(Error::Checkpoint {
                path: dir.to_path_buf(),
                message: format!(
                    "the vocabulary has {} tokens and the model {}: they were not trained together",
                    tokenizer.vocab_size(),
                    model.config.vocab_size
                ),
            });
        }
        Ok(Self {
            model,
            tokenizer,
            dir: dir.to_path_buf(),
        })
    }

    /// The model's input for `line`: its tokens and the end token, cut to the model's
    /// longest input (keeping the end token last).
    pub fn source_ids(&self, line: &str) -> Result<Vec<u32>> {
        source_ids(&self.tokenizer, &self.model.config, line)
    }

    /// Translates `lines` in batches of `batch_size` sources of similar length; greedy when
    /// `opts.beam` is 1. A blank line gives an empty one. The outputs are in input order;
    /// `progress` shows a progress bar.
    pub fn translate(
        &self,
        lines: &[String],
        opts: &DecodeOptions,
        batch_size: usize,
        progress: bool,
    ) -> Result<Translated> {
        let bar = Progress::new(
            lines.len(),
            progress,
            "[{elapsed_precise}] {wide_bar} {pos}/{len} lines · ETA {eta}",
            "lines",
        );
        let mut out = Translated {
            lines: vec![String::new(); lines.len()],
            ..Translated::default()
        };
        let todo: Vec<usize> = (0..lines.len())
            .filter(|&i| !lines[i].trim().is_empty())
            .collect();
        let sources = todo
            .iter()
            .map(|&i| self.source_ids(&lines[i]))
            .collect::<Result<Vec<_>>>()?;
        let outputs = decode_all(&self.model, &sources, opts, batch_size, &|n| bar.inc(n))?;
        for (b, ids) in outputs.iter().enumerate() {
            out.lines[todo[b]] = self.tokenizer.decode(ids)?;
            out.source_tokens += sources[b].len();
            out.target_tokens += ids.len();
        }
        bar.finish_and_clear();
        Ok(out)
    }
}
