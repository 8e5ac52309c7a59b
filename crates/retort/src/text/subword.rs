//! Sub-word vocabularies trained from text, for models trained from scratch (translation):
//! byte-level BPE, so no text is ever unknown, and decoding gives back the exact text.
//!
//! Encoding prefixes one space to every text (so a sentence's first word is the same token as
//! that word inside a sentence, as GPT-2's `add_prefix_space` does) and decoding removes it;
//! every other byte, spaces and line-internal control characters included, comes back as it
//! was. The vocabulary is saved as a `tokenizer.json` that Hugging Face `tokenizers` loads.

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

/// The special tokens, first in the vocabulary, in this order (ids 0 to 3).
pub const PAD: &str = "<pad>";
pub const BOS: &str = "<s>";
pub const EOS: &str = "</s>";
pub const UNK: &str = "<unk>";
const SPECIALS: [&str; 4] = [PAD, BOS, EOS, UNK];

/// A byte-level BPE tokenizer: text to ids and back, exactly.
#[derive(Clone)]
pub struct SubwordTokenizer {
    inner: Tokenizer,
}

/// What `retort vocab` reports of a trained vocabulary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VocabSummary {
    pub vocab_size: usize,
    pub lines: usize,
    /// Mean tokens per line over the training text (special tokens not counted).
    pub tokens_per_line: f64,
    /// Lines whose decoding differs from the text (0: every line comes back exactly).
    pub round_trip_failures: usize,
}

impl SubwordTokenizer {
    /// Trains a vocabulary of at most `vocab_size` tokens (specials and the 256 byte symbols
    /// included) on `lines`; merges seen fewer than `min_frequency` times are not made.
    pub fn train(lines: &[String], vocab_size: usize, min_frequency: u64) -> Result<Self> {
        let floor = SPECIALS.len() + ByteLevel::alphabet().len();
        if vocab_size <= floor {
            return Err(Error::Invalid(format!(
                "a vocabulary of {vocab_size} tokens cannot hold the {floor} byte symbols and special tokens: ask for more"
            )));
        }
        if lines.iter().all(|l| l.trim().is_empty()) {
            return Err(Error::Invalid(
                "no text to learn a vocabulary from: every line is empty".into(),
            ));
        }
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .special_tokens(
                SPECIALS
                    .iter()
                    .map(|s| AddedToken::from(*s, true))
                    .collect(),
            )
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .show_progress(false)
            .build();
        let mut trainer: TrainerWrapper = trainer.into();
        let mut inner = Tokenizer::new(BPE::default());
        inner.with_pre_tokenizer(Some(byte_level()));
        inner.with_decoder(Some(byte_level()));
        inner
            .train(&mut trainer, lines.iter().map(|l| prefixed(l)))
            .map_err(|e| Error::Invalid(format!("training the vocabulary failed: {e}")))?;
        Ok(Self { inner })
    }

    /// Reads `dir/tokenizer.json`, which must hold the special tokens at ids 0 to 3.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::MissingFile {
                path,
                what: "sub-word vocabulary".into(),
            });
        }
        let inner = Tokenizer::from_file(&path).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            message: format!("unreadable tokenizer: {e}"),
        })?;
        let tokenizer = Self { inner };
        for (id, token) in SPECIALS.iter().enumerate() {
            if tokenizer.inner.token_to_id(token) != Some(id as u32) {
                return Err(Error::Checkpoint {
                    path,
                    message: format!(
                        "{token} must be token {id}: is this a vocabulary trained by retort vocab?"
                    ),
                });
            }
        }
        Ok(tokenizer)
    }

    /// Writes `dir/tokenizer.json`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::create(dir, e, "vocabulary directory"))?;
        let path = dir.join("tokenizer.json");
        self.inner
            .save(&path, true)
            .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", path.display())))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(prefixed(text), false)
            .map_err(|e| Error::Invalid(format!("cannot tokenise {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`: `decode(encode(t)) == t`. Special tokens are written out (a text
    /// that spells one, e.g. `</s>`, encodes to it); a decoder's output is cut at its end of
    /// sequence before it is decoded.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let text = self
            .inner
            .decode(ids, false)
            .map_err(|e| Error::Invalid(format!("cannot decode {ids:?}: {e}")))?;
        Ok(text.strip_prefix(' ').map(str::to_string).unwrap_or(text))
    }

    /// Token counts and exact round trips over `lines`.
    pub fn summary(&self, lines: &[String]) -> Result<VocabSummary> {
        let mut tokens = 0usize;
        let mut failures = 0usize;
        for line in lines {
            let ids = self.encode(line)?;
            tokens += ids.len();
            failures += usize::from(self.decode(&ids)? != *line);
        }
        Ok(VocabSummary {
            vocab_size: self.vocab_size(),
            lines: lines.len(),
            tokens_per_line: tokens as f64 / lines.len().max(1) as f64,
            round_trip_failures: failures,
        })
    }
}

/// GPT-2's byte-level mapping, without its own prefix space (encoding adds one always, so
/// decoding can always remove it).
fn byte_level() -> ByteLevel {
    ByteLevel::new(false, false, true)
}

fn prefixed(text: &str) -> String {
    format!(" {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let base = [
            "Ein Mann fährt Fahrrad.",
            "Zwei Hunde spielen im Schnee.",
            "A man rides a bike.",
            "Two dogs play in the snow.",
        ];
        (0..50).map(|i| base[i % 4].to_string()).collect()
    }

    #[test]
    fn every_text_comes_back_exactly_even_unseen_bytes() {
        let tok = SubwordTokenizer::train(&corpus(), 400, 2).unwrap();
        assert!(tok.vocab_size() <= 400);
        for text in [
            "Ein Mann fährt Fahrrad.",
            "  leading and  double spaces ",
            "中文 😀 tab\there",
            "",
            "a </s> in the text comes back",
        ] {
            let ids = tok.encode(text).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), text, "{ids:?}");
        }
        // Frequent words became single tokens (plus the space before them).
        assert!(tok.encode("Hunde").unwrap().len() <= 2);
        assert_eq!(tok.summary(&corpus()).unwrap().round_trip_failures, 0);
    }

    #[test]
    fn the_specials_come_first_and_a_saved_vocabulary_reloads() {
        let tok = SubwordTokenizer::train(&corpus(), 400, 2).unwrap();
        let dir = tempfile::tempdir().unwrap();
        tok.save(dir.path()).unwrap();
        let again = SubwordTokenizer::load(dir.path()).unwrap();
        let text = "Two dogs ride.";
        assert_eq!(again.encode(text).unwrap(), tok.encode(text).unwrap());
        assert_eq!(again.inner.token_to_id(EOS), Some(2));
        let err = SubwordTokenizer::load(&dir.path().join("none"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }

    #[test]
    fn too_small_a_vocabulary_or_no_text_is_refused() {
        let err = SubwordTokenizer::train(&corpus(), 100, 2).err().unwrap();
        assert!(err.to_string().contains("byte symbols"), "{err}");
        let err = SubwordTokenizer::train(&["".into(), " ".into()], 400, 2)
            .err()
            .unwrap();
        assert!(err.to_string().contains("every line is empty"), "{err}");
    }
}
