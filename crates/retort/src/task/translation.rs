//! Translation: a parallel corpus in, BLEU out.
//!
//! A corpus is named by its source file (`train.en`); its reference translations are the file
//! beside it that differs only in its extension (`train.de`). Each sentence pair is one
//! example: the source's tokens (and the end token) are the encoder's input, and every target
//! token is a *row* whose gold is the next token: the decoder reads the start token and the
//! target's tokens (teacher forcing, [`Targets::decoder_inputs`]) and must predict the target's
//! tokens, then the end token. Rows and gold are then what they are for a tagger, over the
//! vocabulary instead of tags, so hard_ce, label smoothing and word-level distillation (the
//! logit terms, on the teacher's next-token rows) need nothing of their own. Scoring decodes:
//! greedy outputs of the whole set, turned back into text and scored by corpus BLEU
//! (`task::bleu`, sacrebleu's), with the reference texts as written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bleu::corpus_bleu;
use super::{Corpus, Input, Item, Rows, Scores, TaskData};
use crate::error::{Error, Result};
use crate::model::generate::{beam_search, greedy, DecodeOptions, StepModel};
use crate::model::seq2seq::Seq2SeqConfig;
use crate::model::Model;
use crate::text::batch::length_sorted_batches;
use crate::text::lines::read_parallel;
use crate::text::subword::SubwordTokenizer;
use crate::text::Encoded;

pub const PRIMARY: &str = "bleu";

/// The target side of a tokenised parallel corpus.
#[derive(Clone)]
pub struct Targets {
    /// Per example: the decoder's inputs under teacher forcing, the start token then the
    /// target's tokens (one per row; the last row's gold is the end token).
    pub decoder_inputs: Vec<Vec<u32>>,
    /// Per example: the reference translation as written in the file.
    pub references: Vec<String>,
    /// The vocabulary that turns decoded ids back into text.
    pub tokenizer: Arc<SubwordTokenizer>,
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targets")
            .field("examples", &self.decoder_inputs.len())
            .finish_non_exhaustive()
    }
}

/// The reference file of a source file: the one file beside it with the same name and
/// another extension (`val.en` → `val.de`).
pub fn reference_path(source: &Path) -> Result<PathBuf> {
    let (Some(stem), Some(ext)) = (source.file_stem(), source.extension()) else {
        return Err(Error::Invalid(format!(
            "{}: a translation corpus is named by its source file, whose extension is its language (train.en, with train.de beside it)",
            source.display()
        )));
    };
    let dir = match source.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(source, e, "parallel corpus"))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_stem() == Some(stem))
        .filter(|p| p.extension().is_some_and(|e| e != ext))
        .collect();
    found.sort();
    if !source.is_file() {
        return Err(Error::io(
            source,
            std::io::Error::from(std::io::ErrorKind::NotFound),
            "source text",
        ));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::Invalid(format!(
            "{}: no reference file beside it ({}.<language>): a translation corpus is two files aligned by line",
            source.display(),
            stem.to_string_lossy()
        ))),
        _ => Err(Error::Invalid(format!(
            "{}: several files could be its references ({}); keep only the target language's beside it",
            source.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Reads a parallel corpus named by its source file: one example per line, the source as its
/// input and the reference translation as its one gold unit.
pub fn read(source: &Path) -> Result<Corpus> {
    let reference = reference_path(source)?;
    let parallel = read_parallel(source, &reference)?;
    let items = parallel
        .source
        .into_iter()
        .zip(parallel.target)
        .enumerate()
        .map(|(i, (src, tgt))| Item {
            input: Input::Text(src),
            gold: vec![Some(tgt)],
            line: i + 1,
            ..Item::default()
        })
        .collect();
    Ok(Corpus {
        path: source.to_path_buf(),
        items,
    })
}

/// The model's input for a source text: its tokens and the end token, cut to the model's
/// positions (the end token kept last).
pub fn source_ids(
    tokenizer: &SubwordTokenizer,
    config: &Seq2SeqConfig,
    text: &str,
) -> Result<Vec<u32>> {
    Ok(with_end(tokenizer.encode(text)?, config))
}

/// A source's tokens cut to the model's positions, then its end token.
fn with_end(mut ids: Vec<u32>, config: &Seq2SeqConfig) -> Vec<u32> {
    ids.truncate(config.max_positions.saturating_sub(1));
    ids.push(config.eos_token_id);
    ids
}

/// A tokenised parallel corpus and how many of its pairs lost tokens to the position table.
pub struct Tokenised {
    pub data: TaskData,
    /// Pairs whose source or target was cut to `max_positions`.
    pub cut: usize,
}

/// Tokenises a parallel corpus (read by [`read`]) for a translator of `config` with its
/// vocabulary: sources as [`source_ids`], and per target token a row whose gold is that token
/// (the last row's, the end token), the decoder reading the start token and the tokens before.
pub fn data(
    tokenizer: Arc<SubwordTokenizer>,
    config: &Seq2SeqConfig,
    corpus: &Corpus,
) -> Result<Tokenised> {
    if tokenizer.vocab_size() != config.vocab_size {
        return Err(Error::Invalid(format!(
            "the vocabulary has {} tokens and the translator {}: they were not made together",
            tokenizer.vocab_size(),
            config.vocab_size
        )));
    }
    let longest = config.max_positions.saturating_sub(1);
    let (mut examples, mut rows, mut gold) = (Vec::new(), Vec::new(), Vec::new());
    let (mut decoder_inputs, mut references) = (Vec::new(), Vec::new());
    let mut cut = 0;
    for item in &corpus.items {
        let (Input::Text(source), [Some(reference)]) = (&item.input, item.gold.as_slice()) else {
            return Err(Error::Data {
                path: corpus.path.clone(),
                line: item.line,
                message: "a translation example is a source text and its reference".into(),
            });
        };
        let ids = tokenizer.encode(source)?;
        let mut target = tokenizer.encode(reference)?;
        if target.len() > longest || ids.len() > longest {
            cut += 1;
        }
        let ids = with_end(ids, config);
        target.truncate(longest);
        let n = target.len() + 1;
        rows.push(Rows {
            positions: (0..n as u32).collect(),
            units: (0..n as u32).collect(),
        });
        gold.push(
            target
                .iter()
                .chain(std::iter::once(&config.eos_token_id))
                .map(|&t| Some(t as usize))
                .collect(),
        );
        decoder_inputs.push(
            std::iter::once(config.decoder_start_token_id)
                .chain(target)
                .collect(),
        );
        references.push(reference.clone());
        examples.push(Encoded {
            type_ids: vec![0; ids.len()],
            ids,
        });
    }
    let data = TaskData {
        examples,
        rows,
        gold,
        spans: None,
        targets: Some(Targets {
            decoder_inputs,
            references,
            tokenizer,
        }),
    };
    Ok(Tokenised { data, cut })
}

/// Decodes every source of `sources` (token ids, end token included) in batches of
/// `batch_size` sources of similar length, greedy when `opts.beam` is 1, beam search
/// otherwise; outputs in input order, without their end token. `done` is told how many
/// sources each batch finished.
pub fn decode_all<M: StepModel>(
    model: &M,
    sources: &[Vec<u32>],
    opts: &DecodeOptions,
    batch_size: usize,
    done: &dyn Fn(usize),
) -> Result<Vec<Vec<u32>>> {
    let lengths: Vec<usize> = sources.iter().map(Vec::len).collect();
    let mut out = vec![Vec::new(); sources.len()];
    for batch in length_sorted_batches(&lengths, batch_size.max(1)) {
        let rows: Vec<Vec<u32>> = batch.iter().map(|&b| sources[b].clone()).collect();
        let outputs = match opts.beam {
            0 | 1 => greedy(model, &rows, opts)?,
            _ => beam_search(model, &rows, opts)?,
        };
        for (&b, ids) in batch.iter().zip(outputs) {
            out[b] = ids;
        }
        done(batch.len());
    }
    Ok(out)
}

/// How the trainer's evaluations translate the dev set: greedy, at most 1.5 × the source's
/// tokens + 10 (beam search would cost several times as much at every evaluation).
pub const DEV_DECODING: DecodeOptions = DecodeOptions {
    beam: 1,
    length_penalty: 1.0,
    max_len_a: 1.5,
    max_len_b: 10,
};

/// `model`'s corpus BLEU on `data` (tokenised by [`data`]), decoding as `opts` says:
/// `bleu` (primary), `brevity_penalty` and `length_ratio` (output / reference tokens).
pub fn evaluate(
    model: &dyn Model,
    data: &TaskData,
    opts: &DecodeOptions,
    batch_size: usize,
) -> Result<Scores> {
    let (hypotheses, _) = translations(model, data, opts, batch_size)?;
    let targets = data
        .targets
        .as_ref()
        .expect("translations checked the targets");
    scores(&hypotheses, &targets.references)
}

/// `model`'s translations of `data`'s sources (tokenised by [`data`]) as text, in order, and
/// the tokens it wrote (end tokens not counted).
pub fn translations(
    model: &dyn Model,
    data: &TaskData,
    opts: &DecodeOptions,
    batch_size: usize,
) -> Result<(Vec<String>, usize)> {
    let translator = model.as_seq2seq().ok_or_else(|| {
        Error::Invalid(format!(
            "a {} model does not translate",
            model.config().architecture.model_type()
        ))
    })?;
    let targets = data.targets.as_ref().ok_or_else(|| {
        Error::Invalid("translation data without its references (task::translation::data)".into())
    })?;
    let sources: Vec<Vec<u32>> = data.examples.iter().map(|e| e.ids.clone()).collect();
    let outputs = decode_all(translator, &sources, opts, batch_size, &|_| {})?;
    let hypotheses = outputs
        .iter()
        .map(|ids| targets.tokenizer.decode(ids))
        .collect::<Result<Vec<_>>>()?;
    Ok((hypotheses, outputs.iter().map(Vec::len).sum()))
}

/// A parallel corpus (read by [`read`]) as its sources and its references, in order.
pub fn sides(corpus: &Corpus) -> Result<(Vec<String>, Vec<String>)> {
    corpus
        .items
        .iter()
        .map(|item| match (&item.input, item.gold.as_slice()) {
            (Input::Text(s), [Some(r)]) => Ok((s.clone(), r.clone())),
            _ => Err(Error::Data {
                path: corpus.path.clone(),
                line: item.line,
                message: "a translation example is a source text and its reference".into(),
            }),
        })
        .collect()
}

/// The scores of translations against their references: `bleu` (primary, sacrebleu's),
/// `brevity_penalty` and `length_ratio` (output / reference tokens, 13a tokenisation).
pub fn scores(hypotheses: &[String], references: &[String]) -> Result<Scores> {
    let bleu = corpus_bleu(hypotheses, &[references.to_vec()])?;
    let ratio = match bleu.ref_len {
        0 => 0.0,
        r => bleu.sys_len as f64 / r as f64,
    };
    Ok(Scores {
        primary: PRIMARY,
        values: vec![
            (PRIMARY, bleu.score),
            ("brevity_penalty", bleu.brevity_penalty),
            ("length_ratio", ratio),
        ],
        entities: None,
    })
}
