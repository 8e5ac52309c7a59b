//! Vocabulary pruning: the tokens a small student keeps of its teacher's vocabulary.
//!
//! A BERT vocabulary has 30k tokens, and at a small width its embedding table is most of the
//! model. A task's text uses far fewer: SST-2's training set uses about 11.6k, and its 7k most
//! frequent tokens make up 99.7% of its tokens. A student that keeps only those frees most of
//! the table's parameters; words whose pieces are gone are spelt with the pieces that remain
//! (see [`TextTokenizer::with_vocabulary`]).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::text::tokenizer::{Encoded, TextTokenizer, SPECIAL_TOKENS};

/// The teacher token ids a pruned vocabulary of `size` tokens keeps, ascending: the special
/// tokens, every single-character piece the examples use (so that any word made of those
/// characters can still be spelt), then the most frequent tokens of `examples` (ties to the
/// lower id).
pub fn pruned_vocabulary(
    tokenizer: &TextTokenizer,
    examples: &[Encoded],
    size: usize,
) -> Result<Vec<u32>> {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for id in examples.iter().flat_map(|e| &e.ids) {
        *counts.entry(*id).or_default() += 1;
    }
    let specials = SPECIAL_TOKENS.iter().filter_map(|t| tokenizer.token_id(t));
    let characters = counts.keys().copied().filter(|&id| {
        tokenizer
            .token(id)
            .is_some_and(|t| t.trim_start_matches("##").chars().count() == 1)
    });
    let mut kept: Vec<u32> = specials.chain(characters).collect();
    kept.sort_unstable();
    kept.dedup();
    if size < kept.len() {
        return Err(Error::Invalid(format!(
            "a pruned vocabulary of {size} tokens is too small: it must keep at least the {} special tokens and single characters the training set uses",
            kept.len()
        )));
    }
    let mut by_count: Vec<(u32, usize)> = counts
        .into_iter()
        .filter(|(id, _)| kept.binary_search(id).is_err())
        .collect();
    by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    kept.extend(by_count.iter().take(size - kept.len()).map(|&(id, _)| id));
    kept.sort_unstable();
    Ok(kept)
}

/// The tokens of `ids` in order: a pruned tokenizer's vocabulary.
pub fn tokens_of(tokenizer: &TextTokenizer, ids: &[u32]) -> Result<Vec<String>> {
    ids.iter()
        .map(|&id| {
            tokenizer
                .token(id)
                .ok_or_else(|| Error::Tokenizer(format!("the vocabulary has no id {id}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> (tempfile::TempDir, TextTokenizer) {
        let dir = tempfile::tempdir().unwrap();
        let words = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\nmat\n##s\na\n##t\n";
        std::fs::write(dir.path().join("vocab.txt"), words).unwrap();
        let tok = TextTokenizer::from_dir(dir.path(), 32).unwrap();
        (dir, tok)
    }

    #[test]
    fn keeps_specials_characters_then_the_most_frequent() {
        let (_dir, tok) = tokenizer();
        let texts = ["the cat sat", "the cats sat", "the mat", "a cat", "the cat"];
        let examples = tok.encode_batch(&texts).unwrap();
        // Specials 0..=4, characters "##s" (9) and "a" (10); then "the" and "cat" (4 uses each).
        assert_eq!(
            pruned_vocabulary(&tok, &examples, 9).unwrap(),
            vec![0, 1, 2, 3, 4, 5, 6, 9, 10]
        );
        // "sat" has 2 uses, "mat" 1: the 10th token is "sat".
        assert_eq!(
            pruned_vocabulary(&tok, &examples, 10).unwrap(),
            vec![0, 1, 2, 3, 4, 5, 6, 7, 9, 10]
        );
        // Unused tokens ("##t") are never kept, however large the size.
        let all = pruned_vocabulary(&tok, &examples, 100).unwrap();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let err = pruned_vocabulary(&tok, &examples, 6).unwrap_err();
        assert!(err.to_string().contains("at least the 7"), "{err}");
        let words = tokens_of(&tok, &[5, 9]).unwrap();
        assert_eq!(words, vec!["the", "##s"]);
        assert!(tokens_of(&tok, &[99]).is_err());
    }
}
