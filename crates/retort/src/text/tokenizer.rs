//! Tokenisation: a Hugging Face `tokenizer.json`, or a WordPiece `vocab.txt` when there is none.

use std::path::Path;

use serde_json::Value;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, PostProcessor, Tokenizer, TruncationParams};

use crate::error::{Error, Result};

/// Default maximum sequence length (tokens, special tokens included).
pub const DEFAULT_MAX_LEN: usize = 128;

/// Token ids of one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

/// Token ids of a text and the word each token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordEncoded {
    pub encoded: Encoded,
    /// Per token: the index of its word, `None` for special tokens.
    pub word_ids: Vec<Option<u32>>,
}

impl WordEncoded {
    /// For each word that kept at least one token: (the position of its first token, the
    /// word's index), in order. A word cut off by truncation, or that gave no token, is absent.
    pub fn first_tokens(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (pos, word) in self.word_ids.iter().enumerate() {
            if let Some(w) = *word {
                if out.last().is_none_or(|&(_, last)| last != w) {
                    out.push((pos as u32, w));
                }
            }
        }
        out
    }
}

/// The ids and token type ids of an encoding.
pub(crate) fn encoded(enc: &tokenizers::Encoding) -> Encoded {
    Encoded {
        ids: enc.get_ids().to_vec(),
        type_ids: enc.get_type_ids().to_vec(),
    }
}

fn word_encoded(enc: &tokenizers::Encoding) -> WordEncoded {
    WordEncoded {
        encoded: encoded(enc),
        word_ids: enc.get_word_ids().to_vec(),
    }
}

/// A tokenizer that truncates to a maximum length and never pads (batches pad themselves).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("max_len", &self.max_len)
            .finish()
    }
}

fn tok_err(context: &str) -> impl Fn(tokenizers::Error) -> Error + '_ {
    move |e| Error::Tokenizer(format!("{context}: {e}"))
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from `dir`, or builds a WordPiece tokenizer from `vocab.txt`
    /// (lower-casing unless `tokenizer_config.json` says `"do_lower_case": false`).
    pub fn from_dir(dir: &Path, max_len: usize) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let inner = if json.exists() {
            Tokenizer::from_file(&json)
                .map_err(|e| Error::Tokenizer(format!("cannot load {}: {e}", json.display())))?
        } else if vocab.exists() {
            wordpiece_from_vocab(&vocab, lower_case(dir)?)?
        } else {
            return Err(Error::MissingFile {
                path: json,
                what: format!(
                    "a tokenizer: neither tokenizer.json nor vocab.txt is in {}",
                    dir.display()
                ),
            });
        };
        Self::new(inner, max_len)
    }

    /// Wraps a tokenizer, setting truncation to `max_len` and switching padding off.
    pub fn new(mut inner: Tokenizer, max_len: usize) -> Result<Self> {
        if max_len < 2 {
            return Err(Error::Invalid(format!(
                "max length must be at least 2, got {max_len}"
            )));
        }
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(tok_err("cannot set truncation"))?;
        inner.with_padding(None);
        Ok(Self { inner, max_len })
    }

    /// Number of token ids the tokenizer can produce (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest token id plus one: what the embedding table must cover.
    pub fn id_bound(&self) -> usize {
        self.inner
            .get_vocab(true)
            .values()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// Maximum sequence length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether `other` turns every text into the same ids: the same vocabulary, normaliser,
    /// pre-tokeniser and post-processor (special tokens). Truncation and padding are not
    /// compared (Retort sets its own).
    pub fn same_tokens_as(&self, other: &TextTokenizer) -> bool {
        // The pipeline around the vocabulary, compared as its JSON.
        let pipeline = |t: &Tokenizer| {
            serde_json::to_string(&(
                t.get_normalizer(),
                t.get_pre_tokenizer(),
                t.get_post_processor(),
            ))
            .unwrap_or_default()
        };
        let (a, b) = (&self.inner, &other.inner);
        a.get_vocab(true) == b.get_vocab(true) && pipeline(a) == pipeline(b)
    }

    /// Id of a token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokenises one text, with special tokens, truncated.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(tok_err("cannot tokenise"))?;
        Ok(encoded(&enc))
    }

    /// Tokenises many texts (in parallel).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        let encs = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(tok_err("cannot tokenise"))?;
        Ok(encs.iter().map(encoded).collect())
    }

    /// Tokenises a sentence pair as BERT reads one: `[CLS] first [SEP] second [SEP]`, token
    /// type 0 up to the first `[SEP]`, 1 after it. Past `max_len`, tokens are cut from the end
    /// of the longer text first (Hugging Face's default for pairs, `longest_first`).
    pub fn encode_pair(&self, first: &str, second: &str) -> Result<Encoded> {
        self.check_room_for_pair()?;
        let enc = self
            .inner
            .encode((first, second), true)
            .map_err(tok_err("cannot tokenise a sentence pair"))?;
        Ok(encoded(&enc))
    }

    /// Tokenises many sentence pairs (in parallel), as [`Self::encode_pair`] does.
    pub fn encode_pair_batch(&self, pairs: &[(&str, &str)]) -> Result<Vec<Encoded>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        self.check_room_for_pair()?;
        let encs = self
            .inner
            .encode_batch(pairs.to_vec(), true)
            .map_err(tok_err("cannot tokenise a sentence pair"))?;
        Ok(encs.iter().map(encoded).collect())
    }

    /// The number of special tokens a sentence pair gets (3 for BERT).
    pub fn pair_special_tokens(&self) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true))
    }

    /// A pair needs room for its special tokens: `tokenizers` subtracts their number from
    /// `max_len` unchecked.
    fn check_room_for_pair(&self) -> Result<()> {
        let specials = self.pair_special_tokens();
        if self.max_len < specials {
            return Err(Error::Invalid(format!(
                "max length {} cannot hold the {specials} special tokens of a sentence pair",
                self.max_len
            )));
        }
        Ok(())
    }

    /// Tokenises sentences given as words (CoNLL-style data), with special tokens, truncated:
    /// each text's ids and, per token, the index of the word it comes from (`None` for the
    /// special tokens). A word may give several tokens, or none (e.g. only control characters).
    pub fn encode_words(&self, sentences: &[Vec<String>]) -> Result<Vec<WordEncoded>> {
        let inputs: Vec<tokenizers::EncodeInput> = sentences
            .iter()
            .map(|words| tokenizers::EncodeInput::from(words.as_slice()))
            .collect();
        let encs = self
            .inner
            .encode_batch(inputs, true)
            .map_err(tok_err("cannot tokenise"))?;
        Ok(encs.iter().map(word_encoded).collect())
    }

    /// Tokenises raw text, keeping for each token the word it belongs to (as the
    /// pre-tokeniser splits words: at spaces and punctuation) and its character offsets in
    /// `text` (characters, not bytes: right for multi-byte text).
    pub fn encode_with_offsets(&self, text: &str) -> Result<(WordEncoded, Vec<(usize, usize)>)> {
        let enc = self
            .inner
            .encode_char_offsets(text, true)
            .map_err(tok_err("cannot tokenise"))?;
        Ok((word_encoded(&enc), enc.get_offsets().to_vec()))
    }

    /// Writes `tokenizer.json` into `dir`, without this tokenizer's truncation: the file
    /// describes the vocabulary and pipeline; the length limit is the reader's choice.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join("tokenizer.json");
        self.untruncated()?
            .save(&path, true)
            .map_err(|e| Error::Tokenizer(format!("cannot write {}: {e}", path.display())))
    }

    /// The token of an id, if the vocabulary has it.
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// A WordPiece tokenizer over `tokens` (token `i` gets id `i`) that normalises and
    /// splits words as this one does: the tokenizer of a student with a pruned vocabulary.
    /// A word whose pieces are gone is spelt with the pieces that are left, or is `[UNK]`.
    pub fn with_vocabulary(&self, tokens: &[String]) -> Result<Self> {
        // `tokenizers` keeps its vocabularies in ahash maps.
        let vocab: ahash::AHashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        if vocab.len() != tokens.len() {
            return Err(Error::Tokenizer("a vocabulary lists a token twice".into()));
        }
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .build()
            .map_err(tok_err("cannot build a WordPiece vocabulary"))?;
        let mut tok = bert_pipeline(model, "the pruned vocabulary")?;
        tok.with_normalizer(self.inner.get_normalizer().cloned());
        tok.with_pre_tokenizer(self.inner.get_pre_tokenizer().cloned());
        Self::new(tok, self.max_len)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// A copy of the wrapped tokenizer that truncates nothing: for callers that cut
    /// sequences themselves (question–context windows).
    pub(crate) fn untruncated(&self) -> Result<Tokenizer> {
        let mut plain = self.inner.clone();
        plain
            .with_truncation(None)
            .map_err(tok_err("cannot clear truncation"))?;
        Ok(plain)
    }
}

/// `do_lower_case` from `tokenizer_config.json`; true when absent (uncased BERT).
fn lower_case(dir: &Path) -> Result<bool> {
    let path = dir.join("tokenizer_config.json");
    if !path.exists() {
        return Ok(true);
    }
    let text =
        std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e, "tokenizer config"))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Tokenizer(format!("{} is not valid JSON: {e}", path.display())))?;
    Ok(v.get("do_lower_case")
        .and_then(Value::as_bool)
        .unwrap_or(true))
}

/// BERT's WordPiece pipeline: BERT normaliser, BERT pre-tokeniser, `[CLS] … [SEP]`.
fn wordpiece_from_vocab(vocab: &Path, lowercase: bool) -> Result<Tokenizer> {
    let path = vocab.to_string_lossy();
    let model = WordPiece::from_file(&path)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| {
            Error::Tokenizer(format!("cannot read vocabulary {}: {e}", vocab.display()))
        })?;
    let mut tok = bert_pipeline(model, &vocab.display().to_string())?;
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    Ok(tok)
}

/// A tokenizer around a WordPiece model with BERT's pre-tokeniser, `[CLS] … [SEP]` around
/// each text, the special tokens kept whole, and the WordPiece decoder. `what` names the
/// vocabulary in errors.
fn bert_pipeline(model: WordPiece, what: &str) -> Result<Tokenizer> {
    let special = |t: &str| {
        tokenizers::Model::token_to_id(&model, t)
            .ok_or_else(|| Error::Tokenizer(format!("{what} has no {t} token")))
    };
    let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
    special("[UNK]")?;
    // Specials in the vocabulary are added tokens, so that e.g. "[MASK]" in a text (as
    // augmentation writes it) stays one token instead of being split at its brackets.
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .into_iter()
        .filter(|t| tokenizers::Model::token_to_id(&model, t).is_some())
        .map(|t| AddedToken::from(t, true))
        .collect();
    let mut tok = Tokenizer::new(model);
    tok.add_special_tokens(&specials);
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    tok.with_decoder(Some(WordPieceDecoder::default()));
    Ok(tok)
}

/// BERT's special tokens.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let words = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\n##s\n.\n";
        std::fs::write(dir.path().join("vocab.txt"), words).unwrap();
        dir
    }

    #[test]
    fn wordpiece_from_vocab_lowercases_splits_and_truncates() {
        let dir = vocab_dir();
        let tok = TextTokenizer::from_dir(dir.path(), 16).unwrap();
        let e = tok.encode("The cats SAT on.").unwrap();
        // [CLS] the cat ##s sat [UNK] . [SEP]
        assert_eq!(e.ids, vec![2, 5, 6, 8, 7, 1, 9, 3]);
        assert_eq!(
            tok.encode("the [MASK] sat").unwrap().ids,
            vec![2, 5, 4, 7, 3]
        );
        let short = TextTokenizer::from_dir(dir.path(), 4).unwrap();
        assert_eq!(short.encode("the cat sat").unwrap().ids, vec![2, 5, 6, 3]);
    }

    #[test]
    fn a_pruned_vocabulary_spells_lost_words_with_the_pieces_left() {
        let dir = vocab_dir();
        let full = TextTokenizer::from_dir(dir.path(), 16).unwrap();
        // "cats" lost "cat": it is spelt from what is left, or is [UNK].
        let tokens: Vec<String> = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "sat", "##s",
        ]
        .map(String::from)
        .to_vec();
        let small = full.with_vocabulary(&tokens).unwrap();
        assert_eq!(small.vocab_size(), 8);
        // [CLS] the [UNK] sat [SEP]: "cats" cannot be spelt without "cat"; the rest keeps its pieces.
        assert_eq!(
            small.encode("The cats sat").unwrap().ids,
            vec![2, 5, 1, 6, 3]
        );
        assert_eq!(small.encode("the [MASK]").unwrap().ids, vec![2, 5, 4, 3]);
        assert_eq!(small.token(7).as_deref(), Some("##s"));
        let twice = [tokens.clone(), vec!["the".into()]].concat();
        assert!(full.with_vocabulary(&twice).is_err());
        let no_cls: Vec<String> = tokens.iter().filter(|t| *t != "[CLS]").cloned().collect();
        assert!(full.with_vocabulary(&no_cls).is_err());
    }

    #[test]
    fn words_map_to_their_first_token_and_truncation_cuts_whole_words() {
        let dir = vocab_dir();
        let tok = TextTokenizer::from_dir(dir.path(), 16).unwrap();
        let words: Vec<String> = ["The", "cats", "sat", "."].map(String::from).to_vec();
        let e = &tok.encode_words(std::slice::from_ref(&words)).unwrap()[0];
        // [CLS] the cat ##s sat . [SEP]: "cats" is split in two pieces.
        assert_eq!(e.encoded.ids, vec![2, 5, 6, 8, 7, 9, 3]);
        assert_eq!(e.first_tokens(), vec![(1, 0), (2, 1), (4, 2), (5, 3)]);
        // Five tokens: [CLS] the cat ##s [SEP]; "sat" and "." are cut.
        let short = TextTokenizer::from_dir(dir.path(), 5).unwrap();
        let e = &short.encode_words(&[words]).unwrap()[0];
        assert_eq!(e.first_tokens(), vec![(1, 0), (2, 1)]);
    }

    #[test]
    fn a_pair_is_cls_first_sep_second_sep_with_type_ids() {
        let dir = vocab_dir();
        let tok = TextTokenizer::from_dir(dir.path(), 16).unwrap();
        let e = tok.encode_pair("The cat", "sat .").unwrap();
        // [CLS] the cat [SEP] sat . [SEP]
        assert_eq!(e.ids, vec![2, 5, 6, 3, 7, 9, 3]);
        assert_eq!(e.type_ids, vec![0, 0, 0, 0, 1, 1, 1]);
        let batch = tok
            .encode_pair_batch(&[("The cat", "sat ."), ("sat", "")])
            .unwrap();
        assert_eq!(batch[0], e);
        // An empty second text still gets its [SEP].
        assert_eq!(batch[1].ids, vec![2, 7, 3, 3]);
        assert_eq!(batch[1].type_ids, vec![0, 0, 0, 1]);
    }

    #[test]
    fn a_long_pair_loses_tokens_from_the_longer_text_first() {
        let dir = vocab_dir();
        // Room for 3 tokens besides the specials: the shorter text keeps half, rounded down.
        let tok = TextTokenizer::from_dir(dir.path(), 6).unwrap();
        let e = tok.encode_pair("the cat sat", "cats .").unwrap();
        // [CLS] the [SEP] cat ##s [SEP]
        assert_eq!(e.ids, vec![2, 5, 3, 6, 8, 3]);
        // Only the longer text is cut while the shorter one fits in its share.
        let tok = TextTokenizer::from_dir(dir.path(), 7).unwrap();
        let e = tok.encode_pair("the cat sat . the cat", "sat").unwrap();
        // [CLS] the cat sat [SEP] sat [SEP]
        assert_eq!(e.ids, vec![2, 5, 6, 7, 3, 7, 3]);
        let tiny = TextTokenizer::from_dir(dir.path(), 2).unwrap();
        let err = tiny.encode_pair("the", "cat").unwrap_err().to_string();
        assert!(err.contains("cannot hold the 3 special tokens"), "{err}");
    }

    #[test]
    fn offsets_are_in_characters() {
        let dir = vocab_dir();
        let tok = TextTokenizer::from_dir(dir.path(), 16).unwrap();
        // "é" is two bytes: the offsets of "cat" must count it as one character.
        let (e, offsets) = tok.encode_with_offsets("é cat").unwrap();
        let cat = e.word_ids.iter().position(|w| *w == Some(1)).unwrap();
        assert_eq!(offsets[cat], (2, 5));
    }

    #[test]
    fn missing_tokenizer_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = TextTokenizer::from_dir(dir.path(), 16).unwrap_err();
        assert!(
            err.to_string()
                .contains("neither tokenizer.json nor vocab.txt"),
            "{err}"
        );
    }
}
