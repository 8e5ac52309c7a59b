//! A translator's translations of a whole file kept on disk (`translate/cache.rs`): made once
//! and read back, resumed after an interruption (a line cut short included) with the lines an
//! uninterrupted run gives, and keyed by the decoding options.

use std::path::Path;

use retort::model::generate::DecodeOptions;
use retort::model::seq2seq::{Seq2Seq, Seq2SeqConfig};
use retort::text::subword::SubwordTokenizer;
use retort::translate::cache::{cached_translations, CacheOptions};
use retort::translate::Translator;

/// Eleven source lines (one blank) and a tiny random translator with a vocabulary of them.
fn setup(dir: &Path) -> (Translator, Vec<String>) {
    let words = [
        "a man",
        "two dogs",
        "ein Mann",
        "im Schnee",
        "rides",
        "play",
    ];
    let lines: Vec<String> = (0..11)
        .map(|i| match i {
            4 => String::new(),
            _ => format!("{} {} {}", words[i % 6], words[(i * 5 + 1) % 6], i),
        })
        .collect();
    let tokenizer = SubwordTokenizer::train(&lines, 290, 1).unwrap();
    let config = Seq2SeqConfig {
        dropout: 0.0,
        ..Seq2SeqConfig::shape(tokenizer.vocab_size(), 16, 1, 2, 32)
    };
    let model_dir = dir.join("mt");
    Seq2Seq::fresh(config, 5).unwrap().save(&model_dir).unwrap();
    tokenizer.save(&model_dir).unwrap();
    (Translator::load(&model_dir).unwrap(), lines)
}

fn options(beam: usize, stop_after_chunks: Option<usize>) -> CacheOptions {
    CacheOptions {
        decode: DecodeOptions {
            beam,
            max_len_b: 6,
            ..DecodeOptions::default()
        },
        batch_size: 3,
        chunk: 4,
        stop_after_chunks,
    }
}

#[test]
fn translations_are_made_once_read_back_and_resumed_after_an_interruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (translator, lines) = setup(tmp.path());
    let cache = tmp.path().join("cache");

    // Made in chunks of 4 (each as `translate` gives it), then read back.
    let made = cached_translations(&translator, &lines, &options(2, None), &cache, false).unwrap();
    assert!(!made.hit && made.resumed == 0);
    let mut want = Vec::new();
    for chunk in lines.chunks(4) {
        want.extend(
            translator
                .translate(chunk, &options(2, None).decode, 3, false)
                .unwrap()
                .lines,
        );
    }
    assert_eq!(made.lines, want);
    assert!(made.lines[4].is_empty());
    assert_eq!(made.path.extension().unwrap(), "jsonl");
    let again = cached_translations(&translator, &lines, &options(2, None), &cache, false).unwrap();
    assert!(again.hit);
    assert_eq!(again.lines, want);

    // Other decoding: another entry. Stopped after one chunk, with the last line then cut
    // short as a crash mid-write would leave it, and resumed: the uninterrupted lines.
    let stopped =
        cached_translations(&translator, &lines, &options(1, Some(1)), &cache, false).unwrap();
    assert_eq!(stopped.lines.len(), 4);
    assert!(stopped.path.to_str().unwrap().ends_with(".partial.jsonl"));
    let text = std::fs::read_to_string(&stopped.path).unwrap();
    std::fs::write(&stopped.path, &text[..text.len() - 3]).unwrap();
    let resumed =
        cached_translations(&translator, &lines, &options(1, None), &cache, false).unwrap();
    assert_eq!(resumed.resumed, 3, "the cut line is translated again");
    assert!(!resumed.hit && resumed.path.exists());
    let fresh = tmp.path().join("fresh");
    let straight =
        cached_translations(&translator, &lines, &options(1, None), &fresh, false).unwrap();
    assert_eq!(resumed.lines, straight.lines);
    assert_ne!(resumed.path, made.path);
    // The finished file holds one JSON string per line.
    let on_disk = std::fs::read_to_string(&resumed.path).unwrap();
    assert_eq!(on_disk.lines().count(), lines.len());
}

#[test]
fn a_finished_file_of_another_length_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (translator, lines) = setup(tmp.path());
    let cache = tmp.path().join("cache");
    let made = cached_translations(&translator, &lines, &options(1, None), &cache, false).unwrap();
    std::fs::write(&made.path, "\"only one\"\n").unwrap();
    let err = cached_translations(&translator, &lines, &options(1, None), &cache, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds 1 translations for 11 source lines"),
        "{err}"
    );
}
