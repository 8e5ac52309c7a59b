//! The pieces of Python 3's `str` behaviour that official metric scripts rest on (SQuAD's
//! normalisation, sacrebleu's tokeniser), where Rust's look-alikes differ: `str.lower()`,
//! `str.split()` and `str.isspace()`, and the word characters of `re`.
//!
//! Python's Unicode properties come from tables generated from Python 3.11 (Unicode 14).
//! `scripts/check_squad_metric.py --unicode-sweep` compares the whole normalisation with
//! Python's on every character Unicode 14 assigns. Characters assigned later are outside
//! that promise: Python 3.11 leaves them as they are, `lower` here lowercases the 55 of them
//! that Unicode 15-17 gave lowercase forms (as later Pythons do).

mod unicode_tables;

use unicode_tables::{CASED, CASE_IGNORABLE, WORD_CHARS};

/// Capital sigma, the one character whose lowercase depends on its neighbours.
const CAPITAL_SIGMA: char = '\u{3a3}';

/// Python's `str.lower()`: each character's full lowercase mapping (`İ` → `i̇`; Rust's
/// `char::to_lowercase` has Python's mappings for every character Unicode 14 assigns), and
/// Σ → ς at the end of a word. Rust's `str::to_lowercase` has that rule too, but judges it
/// with a later Unicode's properties, which moved a few characters (U+0295 `ʕ` is no longer
/// cased, U+1171E no longer case-ignorable: Python writes `ʕΣ` as `ʕς`, Rust's std as `ʕσ`);
/// here it uses Python's.
pub fn lower(text: &str) -> String {
    if !text.contains(CAPITAL_SIGMA) {
        return text.chars().flat_map(char::to_lowercase).collect();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            CAPITAL_SIGMA if is_final_sigma(&chars, i) => out.push('\u{3c2}'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// CPython's `handle_capital_sigma`: the Σ at `i` is final when, case-ignorable characters
/// skipped, a cased character comes before it and none after it.
fn is_final_sigma(chars: &[char], i: usize) -> bool {
    first_is_cased(chars[..i].iter().rev()) && !first_is_cased(chars[i + 1..].iter())
}

/// Whether the first character that is not case-ignorable is cased (false if there is none).
fn first_is_cased<'a>(mut chars: impl Iterator<Item = &'a char>) -> bool {
    chars
        .find(|&&c| !in_table(&CASE_IGNORABLE, c))
        .is_some_and(|&c| in_table(&CASED, c))
}

/// Python's `str.isspace()`, what `str.split()` splits on: Rust's `char::is_whitespace` plus
/// the four ASCII separators U+001C..U+001F, which Python counts (bidirectional class B or S).
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` without arguments: the runs of non-space characters.
pub fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_space).filter(|word| !word.is_empty())
}

/// A word character of Python's `re` (`\w` in a str pattern: `str.isalnum()` or `_`). Rust's
/// `char::is_alphanumeric` is wider (combining vowel signs such as U+093E, circled letters),
/// so the set comes from a table generated from Python.
pub fn is_word(c: char) -> bool {
    in_table(&WORD_CHARS, c)
}

/// Whether `c` is in a table of sorted, disjoint, inclusive code-point ranges.
fn in_table(ranges: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    ranges
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_sorted_and_disjoint() {
        for table in [&WORD_CHARS[..], &CASE_IGNORABLE, &CASED] {
            for pair in table.windows(2) {
                assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
            }
        }
    }

    #[test]
    fn word_characters_are_pythons() {
        for c in ['a', 'Z', '0', '_', 'é', 'ß', 'Ω', '中', '٣', '²', '½', 'ⅷ'] {
            assert!(is_word(c), "{c:?} is a word character in Python");
        }
        // Rust calls these alphanumeric; Python's `re` does not.
        for c in [
            '\u{93E}', '\u{345}', 'ⓐ', 'Ⓐ', '\u{301}', '-', ' ', '\u{a0}',
        ] {
            assert!(!is_word(c), "{c:?} is no word character in Python");
        }
        assert!('\u{93E}'.is_alphanumeric() && 'ⓐ'.is_alphanumeric());
    }

    #[test]
    fn split_is_pythons() {
        let text = "a\u{1c}b\u{1f}c\u{a0}d\u{3000}e\u{85}f\u{200b}g \t\n";
        let words: Vec<&str> = split(text).collect();
        // U+200B (zero width space) is no space for Python either.
        assert_eq!(words, ["a", "b", "c", "d", "e", "f\u{200b}g"]);
        assert_eq!(split("").count(), 0);
        assert_eq!(split(" \u{2003} ").count(), 0);
    }

    #[test]
    fn lower_is_pythons() {
        assert_eq!(lower("İstanbul"), "i\u{307}stanbul");
        assert_eq!(lower("ΟΔΟΣ ΣΑ"), "οδος σα");
        assert_eq!(lower("ΑΣ\u{301}"), "ας\u{301}");
        assert_eq!(lower("ẞ"), "ß");
        assert_eq!(
            lower("Σ ΑΣ ΑΣΑ Α.Σ"),
            "σ ας ασα α.ς",
            "'.' is case-ignorable"
        );
        // Python 3.11's properties, not those of Rust's newer Unicode.
        assert_eq!(lower("\u{295}Σ"), "\u{295}ς");
        assert_eq!(lower("Α\u{1171e}Σ"), "α\u{1171e}ς");
    }
}
