//! A translator's translations of a whole source file, kept on disk as they are made: the
//! transfer set of sequence-level distillation (Kim & Rush 2016: the student learns the
//! teacher's beam outputs), which takes a teacher an hour or more to write.
//!
//! The entry is keyed by the translator's files, the decoding options and the exact source
//! lines. Translations are appended chunk by chunk to `<key>.partial.jsonl` (one JSON string
//! per line: a translation may hold any character); an interrupted run leaves the chunks it
//! finished, and the next run goes on from there. The finished file is renamed to
//! `<key>.jsonl`, which later runs read back.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Translator;
use crate::error::{Error, Result};
use crate::fingerprint::Fnv;
use crate::model::generate::DecodeOptions;
use crate::progress::Progress;

/// Source lines translated per chunk (each chunk is one call of [`Translator::translate`]).
pub const CHUNK: usize = 512;

/// A file of translations and how it was obtained.
#[derive(Debug, Clone)]
pub struct CachedTranslations {
    /// One translation per source line, in order (all of them unless the run was stopped).
    pub lines: Vec<String>,
    /// True when every line was read from disk.
    pub hit: bool,
    /// Lines found on disk from an interrupted run and not translated again.
    pub resumed: usize,
    /// The finished file, or the partial one when stopped early.
    pub path: PathBuf,
    pub seconds: f64,
}

/// How to translate a file: the decoding, the batch size and the chunk size, and, to pause a
/// run (as an interruption would), the number of chunks after which to stop.
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    pub decode: DecodeOptions,
    pub batch_size: usize,
    pub chunk: usize,
    pub stop_after_chunks: Option<usize>,
}

/// Where the translations of `sources` by the translator in `dir` with `opts` live.
pub fn cache_path(
    cache_dir: &Path,
    dir: &Path,
    opts: &DecodeOptions,
    sources: &[String],
) -> Result<PathBuf> {
    let mut h = Fnv::default();
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        h.file(dir, name, "translator checkpoint")?;
    }
    let decoding = format!(
        "beam {} lp {} a {} b {}",
        opts.beam, opts.length_penalty, opts.max_len_a, opts.max_len_b
    );
    h.bytes(decoding.as_bytes());
    for line in sources {
        h.bytes(&(line.len() as u64).to_le_bytes());
        h.bytes(line.as_bytes());
    }
    Ok(cache_dir.join(format!("translations-{:016x}", h.finish())))
}

/// The translations of `sources` by `translator`, read from `cache_dir` or made (with a
/// progress bar) and stored there, going on from an interrupted run's chunks.
pub fn cached_translations(
    translator: &Translator,
    sources: &[String],
    opts: &CacheOptions,
    cache_dir: &Path,
    progress: bool,
) -> Result<CachedTranslations> {
    let start = Instant::now();
    let base = cache_path(cache_dir, &translator.dir, &opts.decode, sources)?;
    let (done_path, partial_path) = (
        base.with_extension("jsonl"),
        base.with_extension("partial.jsonl"),
    );
    if done_path.exists() {
        let lines = read_translations(&done_path)?;
        if lines.len() != sources.len() {
            return Err(Error::Checkpoint {
                path: done_path,
                message: format!(
                    "holds {} translations for {} source lines: delete it to translate again",
                    lines.len(),
                    sources.len()
                ),
            });
        }
        return Ok(CachedTranslations {
            resumed: lines.len(),
            lines,
            hit: true,
            path: done_path,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| Error::create(cache_dir, e, "cache directory"))?;
    let mut lines = match partial_path.exists() {
        true => keep_complete_lines(&partial_path)?,
        false => Vec::new(),
    };
    lines.truncate(sources.len());
    let resumed = lines.len();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial_path)
        .map_err(|e| Error::create(&partial_path, e, "translations"))?;
    let bar = Progress::new(
        sources.len(),
        progress,
        "[{elapsed_precise}] {wide_bar} {pos}/{len} lines translated · ETA {eta}",
        "lines translated",
    );
    bar.resume_at(resumed);
    for (done, chunk) in sources[resumed..].chunks(opts.chunk.max(1)).enumerate() {
        if opts.stop_after_chunks == Some(done) {
            bar.abandon();
            return Ok(CachedTranslations {
                lines,
                hit: false,
                resumed,
                path: partial_path,
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        let out = translator.translate(chunk, &opts.decode, opts.batch_size, false)?;
        let mut text = String::new();
        for line in &out.lines {
            text += &serde_json::to_string(line).expect("a string serialises");
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::create(&partial_path, e, "translations"))?;
        lines.extend(out.lines);
        bar.inc(chunk.len());
    }
    bar.finish_and_clear();
    drop(file);
    std::fs::rename(&partial_path, &done_path)
        .map_err(|e| Error::create(&done_path, e, "translations"))?;
    Ok(CachedTranslations {
        lines,
        hit: false,
        resumed,
        path: done_path,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The translations of a finished file.
fn read_translations(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e, "translations"))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let line = line.map_err(|e| Error::io(path, e, "translations"))?;
            serde_json::from_str(&line).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("line {}: not a JSON string ({e})", i + 1),
            })
        })
        .collect()
}

/// The translations of a partial file up to its last complete line; a line cut short by an
/// interruption is dropped from the file too, so that appending goes on after it.
fn keep_complete_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e, "translations"))?;
    let mut lines = Vec::new();
    let mut end = 0;
    for (i, piece) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let parsed = match piece.last() {
            Some(b'\n') => serde_json::from_slice::<String>(piece).ok(),
            _ => None,
        };
        let Some(line) = parsed else {
            eprintln!(
                "{}: line {} is incomplete (an interrupted write): translating again from there",
                path.display(),
                i + 1
            );
            break;
        };
        lines.push(line);
        end += piece.len();
    }
    if end < bytes.len() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::create(path, e, "translations"))?;
        file.set_len(end as u64)
            .map_err(|e| Error::create(path, e, "translations"))?;
    }
    Ok(lines)
}
