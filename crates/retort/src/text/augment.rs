//! Transfer-set augmentation for distillation.
//!
//! A student learns more from the teacher when it sees more inputs than the labelled training
//! set holds. Following Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT into
//! Simple Neural Networks") and TinyBERT's data augmentation, each training sentence is perturbed
//! into several new ones. The new sentences carry no gold label: the teacher's soft labels are
//! the only targets, so this module only produces texts.
//!
//! Per whitespace-separated word, one uniform draw `x` decides (the rules are mutually
//! exclusive, as in Tang et al.):
//! - `x < p_mask`: the word becomes the mask token (`[MASK]`);
//! - `x < p_mask + p_replace`: the word becomes one of its nearest neighbours in the teacher's
//!   input-embedding space ([`WordNeighbours`]), or stays when it has none;
//! - otherwise the word stays.
//!
//! Then, with probability `p_ngram`, the whole sentence is cut down to a random n-gram of
//! itself, `n` uniform in `1..=5`.
//!
//! Every sentence draws from its own random stream, derived from the seed and the sentence's
//! index, so the output is reproducible and would not change if the work were split across
//! threads.

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::text::TextTokenizer;

/// Longest n-gram that n-gram sampling keeps (Tang et al. sample `n` from 1..=5).
pub const MAX_NGRAM: usize = 5;

/// Attempts per wanted output before giving up on a sentence: short sentences have few distinct
/// perturbations, and looping until `multiplier` new ones turn up could take forever.
const ATTEMPTS_PER_OUTPUT: usize = 3;

/// Query words per similarity matmul in [`WordNeighbours::build`]: bounds the
/// `[chunk, vocab]` score matrix to a few tens of megabytes.
const QUERY_CHUNK: usize = 512;

/// How to augment the transfer set (the `augment` section of a distillation config).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Augmented sentences to produce per training sentence (10 gives a transfer set about
    /// 11 times the training set: originals plus augmentations). 0 switches augmentation off.
    /// A sentence may yield fewer when it has few distinct perturbations (very short sentences).
    /// Single texts only: sentence-pair data is refused while this is above 0.
    pub multiplier: usize,
    /// Probability that a word is replaced by the mask token (`[MASK]`).
    pub p_mask: f64,
    /// Probability that a word is replaced by one of its nearest neighbours in the teacher's
    /// word-embedding space. Words without neighbours (punctuation, numbers, words split into
    /// several word pieces) stay unchanged. `p_mask + p_replace` must not exceed 1: one draw
    /// per word picks at most one of the two.
    pub p_replace: f64,
    /// Probability that an augmented sentence is cut down to a random n-gram of itself,
    /// with `n` uniform in 1..=5.
    pub p_ngram: f64,
    /// How many nearest neighbours are candidates for a word replacement (TinyBERT uses 15).
    pub neighbours: usize,
    /// Unlabelled text added to the transfer set as it is, one text per line (a tagger splits
    /// each into words as `retort predict` does): the teacher labels it, the hard term skips
    /// it. Unlike the perturbations above it works for every task, but not yet for
    /// sentence-pair data (its lines are single texts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlabelled: Option<std::path::PathBuf>,
    /// Use only the first N texts of `unlabelled` (0: all).
    pub unlabelled_limit: usize,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            multiplier: 0,
            p_mask: 0.1,
            p_replace: 0.1,
            p_ngram: 0.25,
            neighbours: 15,
            unlabelled: None,
            unlabelled_limit: 0,
        }
    }
}

impl AugmentConfig {
    /// Whether augmentation produces anything at all.
    pub fn enabled(&self) -> bool {
        self.multiplier > 0
    }

    /// Checks that the probabilities are probabilities and fit together.
    pub fn validate(&self) -> Result<()> {
        match self.problem() {
            None => Ok(()),
            Some((fields, message)) => Err(Error::Invalid(format!(
                "augmentation {} {message}",
                fields.join(" and ")
            ))),
        }
    }

    /// The first value out of range: the fields concerned (`p_mask`, ...) and what is wrong.
    /// A run config names them by their keys (`augment.p_mask`).
    pub fn problem(&self) -> Option<(Vec<&'static str>, String)> {
        for (name, p) in [
            ("p_mask", self.p_mask),
            ("p_replace", self.p_replace),
            ("p_ngram", self.p_ngram),
        ] {
            // `contains` is false for NaN, so NaN is rejected too.
            if !(0.0..=1.0).contains(&p) {
                return Some((
                    vec![name],
                    format!("must be a probability between 0 and 1, got {p}"),
                ));
            }
        }
        if self.p_mask + self.p_replace > 1.0 {
            return Some((
                vec!["p_mask", "p_replace"],
                format!(
                    "must add up to at most 1 (a word is masked or replaced, never both), got {} + {}",
                    self.p_mask, self.p_replace
                ),
            ));
        }
        if self.p_replace > 0.0 && self.neighbours == 0 {
            return Some((
                vec!["neighbours"],
                "must be at least 1 when p_replace is above 0".into(),
            ));
        }
        None
    }
}

/// One augmented sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Augmented {
    /// The new text: words joined by single spaces.
    pub text: String,
    /// Index of the sentence it was made from.
    pub source: usize,
}

/// The mask token of a tokenizer's vocabulary: `[MASK]` (BERT) or `<mask>` (RoBERTa), if any.
pub fn mask_token(tokenizer: &TextTokenizer) -> Option<&'static str> {
    ["[MASK]", "<mask>"]
        .into_iter()
        .find(|t| tokenizer.token_id(t).is_some())
}

/// Nearest neighbours of words in the teacher's input-embedding space.
///
/// Only vocabulary tokens that are whole alphabetic words can be neighbours: word pieces
/// (`##ly`), special tokens (`[CLS]`, `[unused12]`), punctuation and numbers would make
/// replacements that are not words. Similarity is the cosine of the embedding rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordNeighbours {
    map: HashMap<String, Vec<String>>,
}

impl WordNeighbours {
    /// Finds the `k` nearest whole-word vocabulary tokens of every distinct word in `words`.
    ///
    /// `embeddings` is the teacher's word-embedding matrix `[vocab, hidden]` (any float dtype,
    /// any device). A word gets neighbours only when the tokenizer turns it into a single
    /// whole-word token (after its normalisation, e.g. lower-casing); the token itself is never
    /// its own neighbour. Only the given words are computed, which keeps the cost at
    /// `[distinct words × vocab]` rather than `[vocab × vocab]`.
    pub fn build<'a>(
        embeddings: &Tensor,
        tokenizer: &TextTokenizer,
        words: impl IntoIterator<Item = &'a str>,
        k: usize,
    ) -> Result<Self> {
        let (rows, _hidden) = embeddings.dims2().map_err(|_| {
            Error::Invalid(format!(
                "word embeddings must be a [vocab, hidden] matrix, got shape {:?}",
                embeddings.dims()
            ))
        })?;
        let inner = tokenizer.inner();
        let added = inner.get_added_vocabulary();

        // Candidates in id order, so ties and results never depend on HashMap order.
        let mut candidates: Vec<(u32, String)> = inner
            .get_vocab(true)
            .into_iter()
            .filter(|(token, id)| {
                (*id as usize) < rows && is_whole_word(token) && !added.is_special_token(token)
            })
            .map(|(token, id)| (id, token))
            .collect();
        candidates.sort_unstable();
        let position: HashMap<u32, usize> = candidates
            .iter()
            .enumerate()
            .map(|(pos, (id, _))| (*id, pos))
            .collect();

        // Distinct words that are a single candidate token, each with that token's position.
        let mut distinct: Vec<&str> = words
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        distinct.sort_unstable();
        let encodings = inner
            .encode_batch(distinct.clone(), false)
            .map_err(|e| Error::Tokenizer(format!("cannot tokenise words: {e}")))?;
        let queries: Vec<(&str, usize)> = distinct
            .iter()
            .zip(&encodings)
            .filter_map(|(word, enc)| match enc.get_ids() {
                [id] => position.get(id).map(|&pos| (*word, pos)),
                _ => None,
            })
            .collect();

        let mut map = HashMap::new();
        if k == 0 || queries.is_empty() || candidates.len() < 2 {
            return Ok(Self { map });
        }

        let device = embeddings.device();
        let ids: Vec<u32> = candidates.iter().map(|(id, _)| *id).collect();
        let table = embeddings
            .to_dtype(DType::F32)?
            .index_select(&Tensor::new(ids.as_slice(), device)?, 0)?;
        // L2-normalise rows so that dot products are cosines; the floor keeps all-zero rows
        // (untrained tokens) from turning into NaN.
        let norms = table
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        let table = table.broadcast_div(&norms)?;
        let table_t = table.t()?.contiguous()?;

        for chunk in queries.chunks(QUERY_CHUNK) {
            let pos: Vec<u32> = chunk.iter().map(|&(_, p)| p as u32).collect();
            let q = table.index_select(&Tensor::new(pos.as_slice(), device)?, 0)?;
            let scores = q.matmul(&table_t)?.to_vec2::<f32>()?;
            for (&(word, own), mut row) in chunk.iter().zip(scores) {
                let nearest = top_k(&mut row, own, k)
                    .into_iter()
                    .map(|c| candidates[c].1.clone())
                    .collect();
                map.insert(word.to_string(), nearest);
            }
        }
        Ok(Self { map })
    }

    /// Neighbours of `word`, nearest first; empty when it has none.
    pub fn get(&self, word: &str) -> &[String] {
        self.map.get(word).map_or(&[], Vec::as_slice)
    }

    /// Number of words that have neighbours.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no word has neighbours.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Neighbour lists given directly (precomputed, or from another embedding space).
impl From<HashMap<String, Vec<String>>> for WordNeighbours {
    fn from(map: HashMap<String, Vec<String>>) -> Self {
        Self { map }
    }
}

/// A vocabulary token that is a whole alphabetic word: this rules out word pieces (`##ly`),
/// bracketed specials (`[CLS]`, `[unused12]`, `<s>`), punctuation and numbers in one test.
fn is_whole_word(token: &str) -> bool {
    !token.is_empty() && token.chars().all(char::is_alphabetic)
}

/// Indices of the `k` highest scores except `exclude`, highest first; ties go to the lower
/// index so that the result is fully determined.
fn top_k(scores: &mut [f32], exclude: usize, k: usize) -> Vec<usize> {
    scores[exclude] = f32::NEG_INFINITY;
    let mut order: Vec<usize> = (0..scores.len()).filter(|&i| i != exclude).collect();
    let best_first = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    if k < order.len() {
        order.select_nth_unstable_by(k, best_first);
        order.truncate(k);
    }
    order.sort_unstable_by(best_first);
    order
}

/// Produces up to `config.multiplier` augmented sentences per input sentence.
///
/// Outputs come in input order; none equals its original (compared word by word) and none
/// repeats another output of the same sentence. Sentences with few possible perturbations
/// yield fewer outputs after a bounded number of attempts. `neighbours` of `None` leaves
/// words chosen for replacement unchanged. The same inputs, config and seed give the same
/// outputs (with the same `rand` version: `StdRng`'s algorithm may change between versions).
pub fn augment(
    sentences: &[&str],
    config: &AugmentConfig,
    neighbours: Option<&WordNeighbours>,
    mask_token: &str,
    seed: u64,
) -> Result<Vec<Augmented>> {
    config.validate()?;
    if config.p_mask > 0.0 && (mask_token.is_empty() || mask_token.contains(char::is_whitespace)) {
        return Err(Error::Invalid(format!(
            "augmentation mask token must be a single non-empty word, got {mask_token:?}"
        )));
    }
    let mut out = Vec::new();
    for (index, sentence) in sentences.iter().enumerate() {
        let mut rng = sentence_rng(seed, index);
        let texts = augment_sentence(sentence, config, neighbours, mask_token, &mut rng);
        out.extend(texts.into_iter().map(|text| Augmented {
            text,
            source: index,
        }));
    }
    Ok(out)
}

/// The random stream of sentence `index`: independent of the other sentences, so the output
/// does not depend on the order or the thread in which sentences are processed.
fn sentence_rng(seed: u64, index: usize) -> StdRng {
    StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(index as u64)))
}

/// SplitMix64's finaliser: mixes seed and index so that nearby pairs get unrelated streams
/// (a plain `seed + index` would give sentence 1 of seed 0 the stream of sentence 0 of seed 1).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The distinct new versions of one sentence.
fn augment_sentence(
    sentence: &str,
    config: &AugmentConfig,
    neighbours: Option<&WordNeighbours>,
    mask_token: &str,
    rng: &mut StdRng,
) -> Vec<String> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    if words.is_empty() || config.multiplier == 0 {
        return Vec::new();
    }
    let mut seen = HashSet::from([words.join(" ")]);
    let mut out = Vec::with_capacity(config.multiplier);
    for _ in 0..config.multiplier * ATTEMPTS_PER_OUTPUT {
        if out.len() == config.multiplier {
            break;
        }
        let text = perturb(&words, config, neighbours, mask_token, rng);
        if seen.insert(text.clone()) {
            out.push(text);
        }
    }
    out
}

/// One random perturbation: mask or replace words, then maybe keep only an n-gram.
fn perturb(
    words: &[&str],
    config: &AugmentConfig,
    neighbours: Option<&WordNeighbours>,
    mask_token: &str,
    rng: &mut StdRng,
) -> String {
    let mut new: Vec<&str> = Vec::with_capacity(words.len());
    for &word in words {
        let x: f64 = rng.random();
        let chosen = if x < config.p_mask {
            mask_token
        } else if x < config.p_mask + config.p_replace {
            match neighbours.map(|n| n.get(word)).unwrap_or(&[]) {
                [] => word,
                near => near[rng.random_range(0..near.len())].as_str(),
            }
        } else {
            word
        };
        new.push(chosen);
    }
    if rng.random_bool(config.p_ngram) {
        let n = rng.random_range(1..=MAX_NGRAM).min(new.len());
        let start = rng.random_range(0..=new.len() - n);
        new = new[start..start + n].to_vec();
    }
    new.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    const CORPUS: [&str; 4] = [
        "it 's a charming and often affecting journey . ",
        "unflinchingly bleak and desperate ",
        "the movie is a mess",
        "hide new secretions from the parental units ",
    ];

    fn config(multiplier: usize, p_mask: f64, p_replace: f64, p_ngram: f64) -> AugmentConfig {
        AugmentConfig {
            multiplier,
            p_mask,
            p_replace,
            p_ngram,
            neighbours: 15,
            ..AugmentConfig::default()
        }
    }

    /// A tokenizer over a tiny vocabulary, with embeddings where good≈great and bad≈awful,
    /// and where word pieces and specials copy real words' vectors: if they were allowed as
    /// neighbours they would be the nearest.
    fn tiny_teacher() -> (tempfile::TempDir, TextTokenizer, Tensor) {
        let vocab = [
            "[PAD]",
            "[UNK]",
            "[CLS]",
            "[SEP]",
            "[MASK]",
            "good",
            "great",
            "bad",
            "awful",
            "##ly",
            "[unused1]",
            ".",
        ];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
        let tok = TextTokenizer::from_dir(dir.path(), 32).unwrap();
        let good = [1.0, 0.1, 0.0, 0.0];
        let great = [0.9, 0.3, 0.0, 0.0];
        let bad = [0.0, 0.0, 1.0, 0.1];
        let awful = [0.0, 0.05, 0.9, 0.3];
        let rows: [[f32; 4]; 12] = [
            [0.0; 4], // [PAD]: all zero, must not become NaN
            good,     // [UNK]
            good,     // [CLS]
            bad,      // [SEP]
            bad,      // [MASK]
            good, great, bad, awful, good, // ##ly
            bad,  // [unused1]
            good, // .
        ];
        let emb = Tensor::new(&rows, &Device::Cpu).unwrap();
        (dir, tok, emb)
    }

    #[test]
    fn default_config_is_off_and_valid_and_reads_partial_json() {
        let c = AugmentConfig::default();
        assert!(!c.enabled());
        c.validate().unwrap();
        let c: AugmentConfig = serde_json::from_str(r#"{"multiplier": 10}"#).unwrap();
        assert_eq!(
            c,
            AugmentConfig {
                multiplier: 10,
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<AugmentConfig>(r#"{"p_masc": 0.1}"#).is_err());
    }

    #[test]
    fn invalid_probabilities_are_errors() {
        for (bad, field) in [
            (config(1, 1.5, 0.0, 0.0), "p_mask"),
            (config(1, 0.1, -0.1, 0.0), "p_replace"),
            (config(1, 0.1, 0.1, f64::NAN), "p_ngram"),
            (
                config(1, 0.6, 0.5, 0.0),
                "p_mask and p_replace must add up to at most 1",
            ),
        ] {
            let err = augment(&CORPUS, &bad, None, "[MASK]", 0).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{err:?}");
            assert!(err.to_string().contains(field), "{err}");
        }
        let no_neighbours = AugmentConfig {
            neighbours: 0,
            ..config(1, 0.1, 0.1, 0.0)
        };
        assert!(no_neighbours.validate().is_err());
        let empty_mask = augment(&CORPUS, &config(1, 0.1, 0.0, 0.0), None, "", 0);
        assert!(matches!(empty_mask, Err(Error::Invalid(_))));
    }

    #[test]
    fn empty_input_or_multiplier_zero_gives_nothing() {
        let c = config(5, 0.2, 0.0, 0.5);
        assert!(augment(&[], &c, None, "[MASK]", 0).unwrap().is_empty());
        assert!(augment(&["", "   "], &c, None, "[MASK]", 0)
            .unwrap()
            .is_empty());
        let off = config(0, 0.2, 0.0, 0.5);
        assert!(augment(&CORPUS, &off, None, "[MASK]", 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn same_seed_same_output_different_seed_different_output() {
        let c = config(5, 0.2, 0.0, 0.3);
        let a = augment(&CORPUS, &c, None, "[MASK]", 42).unwrap();
        let b = augment(&CORPUS, &c, None, "[MASK]", 42).unwrap();
        let other = augment(&CORPUS, &c, None, "[MASK]", 43).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, other);
    }

    #[test]
    fn a_sentence_output_does_not_depend_on_the_other_sentences() {
        let c = config(5, 0.2, 0.0, 0.3);
        let only = |out: Vec<Augmented>, source| -> Vec<String> {
            out.into_iter()
                .filter(|a| a.source == source)
                .map(|a| a.text)
                .collect()
        };
        let full = augment(&CORPUS, &c, None, "[MASK]", 7).unwrap();
        let changed = [CORPUS[0], "something else entirely", CORPUS[2], CORPUS[3]];
        let partial = augment(&changed, &c, None, "[MASK]", 7).unwrap();
        assert_eq!(only(full, 2), only(partial, 2));
    }

    #[test]
    fn multiplier_outputs_are_distinct_and_never_the_original() {
        let c = config(10, 0.15, 0.0, 0.25);
        let out = augment(&CORPUS, &c, None, "[MASK]", 1).unwrap();
        for (i, sentence) in CORPUS.iter().enumerate() {
            let texts: Vec<&str> = out
                .iter()
                .filter(|a| a.source == i)
                .map(|a| a.text.as_str())
                .collect();
            // A long sentence has plenty of perturbations; a short one may run out of
            // attempts (most draws leave 4 words unchanged) and give fewer.
            if i == 0 {
                assert_eq!(texts.len(), 10, "{texts:?}");
            }
            assert!((1..=10).contains(&texts.len()), "sentence {i}: {texts:?}");
            let distinct: HashSet<&str> = texts.iter().copied().collect();
            assert_eq!(distinct.len(), texts.len(), "duplicates: {texts:?}");
            let original = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(!distinct.contains(original.as_str()));
        }
        // Sources come in input order.
        assert!(out.windows(2).all(|w| w[0].source <= w[1].source));
    }

    #[test]
    fn sentences_with_few_perturbations_give_fewer_outputs() {
        // Masking everything has a single outcome, whatever the multiplier.
        let out = augment(&CORPUS, &config(3, 1.0, 0.0, 0.0), None, "[MASK]", 0).unwrap();
        assert_eq!(out.len(), CORPUS.len());
        for a in &out {
            let n = CORPUS[a.source].split_whitespace().count();
            assert_eq!(a.text, vec!["[MASK]"; n].join(" "));
        }
        // Nothing ever changes: no outputs at all, and the loop ends.
        let none = augment(&CORPUS, &config(3, 0.0, 0.0, 0.0), None, "[MASK]", 0).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn ngram_sampling_gives_contiguous_pieces_of_one_to_five_words() {
        let out = augment(&CORPUS, &config(10, 0.0, 0.0, 1.0), None, "[MASK]", 3).unwrap();
        assert!(!out.is_empty());
        for a in &out {
            let original: Vec<&str> = CORPUS[a.source].split_whitespace().collect();
            let piece: Vec<&str> = a.text.split_whitespace().collect();
            assert!((1..=MAX_NGRAM).contains(&piece.len()), "{:?}", a.text);
            assert!(
                original.windows(piece.len()).any(|w| w == piece.as_slice()),
                "{:?} is not an n-gram of {:?}",
                a.text,
                CORPUS[a.source]
            );
        }
    }

    #[test]
    fn neighbours_are_nearest_whole_words_only() {
        let (_dir, tok, emb) = tiny_teacher();
        let words = ["good", "bad", "GOOD", "goodly", ".", "unknown"];
        let nearest = WordNeighbours::build(&emb, &tok, words, 1).unwrap();
        assert_eq!(nearest.get("good"), ["great"]);
        assert_eq!(nearest.get("bad"), ["awful"]);
        // Lower-cased by the tokenizer's normaliser.
        assert_eq!(nearest.get("GOOD"), ["great"]);
        // Several word pieces, punctuation, unknown words, words not asked for: none.
        for w in ["goodly", ".", "unknown", "great"] {
            assert!(nearest.get(w).is_empty(), "{w}: {:?}", nearest.get(w));
        }
        assert_eq!(nearest.len(), 3);

        // With room for everything, only the real whole words come back, nearest first.
        let all = WordNeighbours::build(&emb, &tok, ["good", "awful"], 10).unwrap();
        assert_eq!(all.get("good"), ["great", "awful", "bad"]);
        assert_eq!(all.get("awful"), ["bad", "great", "good"]);
    }

    #[test]
    fn word_replacement_uses_the_neighbours() {
        let (_dir, tok, emb) = tiny_teacher();
        let sentences = ["good and bad", "nothing to replace"];
        let words = sentences.iter().flat_map(|s| s.split_whitespace());
        let nearest = WordNeighbours::build(&emb, &tok, words, 1).unwrap();
        let c = config(4, 0.0, 1.0, 0.0);
        let out = augment(&sentences, &c, Some(&nearest), "[MASK]", 0).unwrap();
        assert_eq!(
            out,
            [Augmented {
                text: "great and awful".into(),
                source: 0
            }]
        );
        // Without neighbours, replacement changes nothing.
        assert!(augment(&sentences, &c, None, "[MASK]", 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn embeddings_must_be_a_matrix() {
        let (_dir, tok, _) = tiny_teacher();
        let flat = Tensor::zeros(12, DType::F32, &Device::Cpu).unwrap();
        let err = WordNeighbours::build(&flat, &tok, ["good"], 1).unwrap_err();
        assert!(err.to_string().contains("[vocab, hidden]"), "{err}");
    }

    #[test]
    fn top_k_breaks_ties_by_index_and_skips_the_excluded() {
        let mut scores = [0.5, 0.9, 0.5, 1.0, 0.5];
        assert_eq!(top_k(&mut scores, 3, 3), [1, 0, 2]);
    }

    #[test]
    fn mask_token_is_found_in_the_vocabulary() {
        let (_dir, tok, _) = tiny_teacher();
        assert_eq!(mask_token(&tok), Some("[MASK]"));
    }
}
