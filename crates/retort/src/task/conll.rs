//! The CoNLL column format of named-entity corpora (CoNLL-2003 and its kin).
//!
//! One token a line, columns separated by spaces or tabs: the word first, the NER tag last
//! (`EU NNP B-NP B-ORG`); the columns between (POS, chunk) are ignored. A blank line ends a
//! sentence, and so does a `-DOCSTART-` line, which is skipped. Tags are IOB2: `O`, `B-TYPE`
//! or `I-TYPE`. Every error names the file and the 1-based line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The first column of the document separators of the original CoNLL-2003 files.
const DOCSTART: &str = "-DOCSTART-";

/// What separates columns. Not all Unicode whitespace: a word may hold a no-break space. A
/// '\r' counts so that the last line of a CRLF file without a final newline (which
/// `str::lines` leaves with its '\r') still reads right.
const SEPARATORS: [char; 3] = [' ', '\t', '\r'];

/// One sentence: its words and their IOB2 tags, and the 1-based line of its first word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedSentence {
    pub words: Vec<String>,
    pub tags: Vec<String>,
    pub line: usize,
}

/// Reads a CoNLL file; see [`parse_conll`] for the format and the errors.
pub fn read_conll(path: &Path) -> Result<Vec<TaggedSentence>> {
    // Read bytes, not a String: an invalid byte is then reported at its line, not as a bare
    // "stream did not contain valid UTF-8".
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e, "CoNLL file"))?;
    let text = decode_utf8(path, &bytes)?;
    parse_conll(path, text)
}

/// Parses CoNLL text; `path` is only used in error messages. A malformed line (fewer than two
/// columns), a tag that is not IOB2, or a text without any sentence is an error.
pub fn parse_conll(path: &Path, text: &str) -> Result<Vec<TaggedSentence>> {
    let mut sentences = Vec::new();
    let mut current: Option<TaggedSentence> = None;
    // Editors that write CRLF often start the file with a byte-order mark too.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // `lines` splits on '\n' and drops a '\r' before it, so CRLF files keep their line numbers.
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let columns: Vec<&str> = raw.split(SEPARATORS).filter(|c| !c.is_empty()).collect();
        let (word, tag) = match columns.as_slice() {
            [] => {
                sentences.extend(current.take());
                continue;
            }
            [first, ..] if *first == DOCSTART => {
                sentences.extend(current.take());
                continue;
            }
            [_] => {
                return Err(data_error(
                    path,
                    line,
                    format!(
                        "expected a word and a tag separated by whitespace, found 1 column: {raw:?}"
                    ),
                ))
            }
            [word, .., tag] => (*word, *tag),
        };
        if !is_iob2_tag(tag) {
            return Err(data_error(
                path,
                line,
                format!("unknown tag {tag:?}: expected O, B-TYPE or I-TYPE"),
            ));
        }
        let sentence = current.get_or_insert_with(|| TaggedSentence {
            words: Vec::new(),
            tags: Vec::new(),
            line,
        });
        sentence.words.push(word.to_string());
        sentence.tags.push(tag.to_string());
    }
    // The last sentence needs no blank line after it.
    sentences.extend(current);
    if sentences.is_empty() {
        return Err(data_error(path, 1, "no sentence in the file"));
    }
    Ok(sentences)
}

/// The label set of a corpus: "O" first, then for every entity type, sorted, its B- and its I-
/// tag (O, B-LOC, I-LOC, B-MISC, I-MISC, ...), so that it is deterministic. Both tags of a type
/// are listed even if the corpus only has one of them (single-word entities only): a tagger
/// should be able to predict either, and another split of the corpus may hold the other.
pub fn tag_set<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let types: BTreeSet<&str> = tags.into_iter().filter_map(entity_type).collect();
    std::iter::once("O".to_string())
        .chain(
            types
                .into_iter()
                .flat_map(|t| [format!("B-{t}"), format!("I-{t}")]),
        )
        .collect()
}

/// The TYPE of a `B-TYPE` or `I-TYPE` tag with a non-empty TYPE; `None` for anything else.
fn entity_type(tag: &str) -> Option<&str> {
    tag.strip_prefix("B-")
        .or_else(|| tag.strip_prefix("I-"))
        .filter(|t| !t.is_empty())
}

/// True for `O`, `B-TYPE` and `I-TYPE` (TYPE non-empty).
fn is_iob2_tag(tag: &str) -> bool {
    tag == "O" || entity_type(tag).is_some()
}

/// The bytes as UTF-8, or an error at the line of the first invalid byte.
fn decode_utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        data_error(path, line, "invalid UTF-8")
    })
}

fn data_error(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Data {
        path: PathBuf::from(path),
        line,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<TaggedSentence>> {
        parse_conll(Path::new("x.conll"), text)
    }

    fn tags_of(sentences: &[TaggedSentence]) -> impl Iterator<Item = &str> {
        sentences
            .iter()
            .flat_map(|s| s.tags.iter().map(String::as_str))
    }

    fn error(text: &str) -> (usize, String) {
        match parse(text).unwrap_err() {
            Error::Data { line, message, .. } => (line, message),
            other => panic!("expected a data error, got {other}"),
        }
    }

    #[test]
    fn reads_sentences_words_tags_and_lines() {
        let text = "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman\tJJ\tB-NP\tB-MISC\n\n\n\
                    Peter NNP B-NP B-PER\nBlackburn NNP B-NP I-PER\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].words, ["EU", "rejects", "German"]);
        assert_eq!(s[0].tags, ["B-ORG", "O", "B-MISC"]);
        assert_eq!(s[0].line, 1);
        assert_eq!(s[1].words, ["Peter", "Blackburn"]);
        assert_eq!(s[1].tags, ["B-PER", "I-PER"]);
        assert_eq!(s[1].line, 6);
    }

    #[test]
    fn two_columns_suffice_and_the_last_sentence_needs_no_blank_line() {
        let s = parse("\n\nParis B-LOC\nis O").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].tags, ["B-LOC", "O"]);
        assert_eq!(s[0].line, 3);
    }

    #[test]
    fn docstart_lines_are_skipped_and_break_sentences() {
        let text = "-DOCSTART- -X- -X- O\n\nA NN O\n-DOCSTART- -X- O O\nB NN B-PER\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].words.as_slice(), s[0].line),
            (&["A".to_string()][..], 3)
        );
        assert_eq!(
            (s[1].words.as_slice(), s[1].line),
            (&["B".to_string()][..], 5)
        );
    }

    #[test]
    fn crlf_line_endings_keep_tags_clean_and_line_numbers_right() {
        let text = "EU B-ORG\r\nsaid O\r\n\r\nBonn B-LOC\r\n\r\nbad\r\n";
        assert_eq!(error(text).0, 6);
        let s = parse("EU B-ORG\r\nsaid O\r\n\r\nBonn B-LOC\r\n").unwrap();
        assert_eq!(s[0].tags, ["B-ORG", "O"]);
        assert_eq!(s[1].tags, ["B-LOC"]);
        assert_eq!(s[1].line, 4);
        // No newline after the last line, and a byte-order mark before the first.
        let s = parse("\u{feff}EU B-ORG\r\nsaid O\r").unwrap();
        assert_eq!(s[0].words, ["EU", "said"]);
        assert_eq!(s[0].tags, ["B-ORG", "O"]);
    }

    #[test]
    fn columns_are_split_on_spaces_and_tabs_only() {
        let s = parse("New\u{a0}York NNP\t B-LOC\n").unwrap();
        assert_eq!(s[0].words, ["New\u{a0}York"]);
        assert_eq!(s[0].tags, ["B-LOC"]);
    }

    #[test]
    fn a_line_with_one_column_is_an_error_at_its_line() {
        let (line, message) = error("EU NNP B-NP B-ORG\nrejects\n");
        assert_eq!(line, 2);
        assert!(message.contains("1 column"), "{message}");
        let shown = parse("a O\n\nrejects\n").unwrap_err().to_string();
        assert!(shown.starts_with("x.conll:3: "), "{shown}");
    }

    #[test]
    fn unknown_tags_are_errors_at_their_line() {
        for tag in ["B-", "I-", "E-PER", "PER", "b-per", "X"] {
            let (line, message) = error(&format!("a O\nb {tag}\n"));
            assert_eq!(line, 2, "{tag}");
            assert_eq!(
                message,
                format!("unknown tag \"{tag}\": expected O, B-TYPE or I-TYPE")
            );
        }
    }

    #[test]
    fn a_file_without_sentences_is_an_error() {
        for text in ["", "\n\n", "-DOCSTART- -X- -X- O\n\n", " \t\r\n"] {
            let (line, message) = error(text);
            assert!(line <= 1, "{text:?}");
            assert!(message.contains("no sentence"), "{message}");
        }
    }

    #[test]
    fn tag_set_is_o_then_types_sorted_b_before_i() {
        let s = parse("a B-PER\nb I-PER\nc O\n\nd B-MISC\ne B-LOC\nf I-ORG\n").unwrap();
        assert_eq!(
            tag_set(tags_of(&s)),
            ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
        );
        assert_eq!(tag_set(tags_of(&parse("a O\n").unwrap())), ["O"]);
    }

    #[test]
    fn read_conll_reports_the_line_of_invalid_utf8_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"a O\r\n\r\nb\xff B-PER\n").unwrap();
        match read_conll(&path).unwrap_err() {
            Error::Data { line, message, .. } => {
                assert_eq!(line, 3);
                assert!(message.contains("UTF-8"), "{message}");
            }
            other => panic!("{other}"),
        }
        let missing = read_conll(&dir.path().join("none.txt")).unwrap_err();
        assert!(matches!(missing, Error::MissingFile { .. }), "{missing}");
    }

    #[test]
    fn read_conll_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.txt");
        std::fs::write(&path, "EU NNP B-NP B-ORG\n. . O O\n").unwrap();
        let s = read_conll(&path).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].words, ["EU", "."]);
    }

    /// The real corpus, where the checkout has `shared/` beside it: the sentence, token and
    /// entity counts that shared/README.md states (the official CoNLL-2003 table).
    #[test]
    fn reads_the_shared_conll2003_splits_with_their_official_counts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/conll2003");
        if !dir.join("train.txt").exists() {
            eprintln!("skipped: no {}", dir.display());
            return;
        }
        for (split, sentences, tokens) in [
            ("train", 14_041, 203_621),
            ("valid", 3_250, 51_362),
            ("test", 3_453, 46_435),
        ] {
            let s = read_conll(&dir.join(format!("{split}.txt"))).unwrap();
            assert_eq!(s.len(), sentences, "{split}");
            assert_eq!(
                s.iter().map(|s| s.words.len()).sum::<usize>(),
                tokens,
                "{split}"
            );
            assert!(s.iter().all(|s| s.words.len() == s.tags.len()));
            assert_eq!(tag_set(tags_of(&s)).len(), 9, "{split}");
            if split == "train" {
                // IOB2: one B- tag per entity.
                let count = |kind: &str| {
                    let b = format!("B-{kind}");
                    s.iter().flat_map(|s| &s.tags).filter(|t| **t == b).count()
                };
                let counts: Vec<usize> = ["LOC", "MISC", "ORG", "PER"].map(count).to_vec();
                assert_eq!(counts, [7_140, 3_438, 6_321, 6_600]);
            }
        }
    }
}
