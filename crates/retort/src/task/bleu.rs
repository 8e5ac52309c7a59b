//! Corpus BLEU exactly as sacrebleu 2.x computes it with its defaults (`sacrebleu REF < HYP`,
//! `BLEU()`): the `13a` tokeniser (mteval-v13a's, what WMT reports), n-grams up to 4, the
//! reference length closest to each hypothesis's (the shorter on a tie), brevity penalty,
//! and the `exp` smoothing of orders with no match (NIST's: each such order's precision is
//! 100 / (2^k · total), k counting them). Scores are on sacrebleu's 0–100 scale.
//!
//! sacrebleu's regular expressions are scanned here as `re.sub` scans them (leftmost match,
//! then on after it), and its whitespace is Python's (`text::python_str`), so the numbers are
//! sacrebleu's to the last bit on the same input; `scripts/check_bleu.py` compares the two on a
//! real file, and the unit tests on hand-made cases whose numbers sacrebleu gave
//! (`tests/fixtures/bleu/cases.json`).

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::text::lines::read_lines;
use crate::text::python_str;

/// BLEU's highest n-gram order.
pub const MAX_ORDER: usize = 4;

/// A corpus's BLEU and what it is made of, as sacrebleu reports them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bleu {
    /// 0–100.
    pub score: f64,
    /// Matched n-grams per order (1 to 4), clipped by the reference counts.
    pub correct: [u64; MAX_ORDER],
    /// The hypotheses' n-grams per order.
    pub total: [u64; MAX_ORDER],
    /// Per order: 100 × correct / total (smoothed where nothing matched).
    pub precisions: [f64; MAX_ORDER],
    pub brevity_penalty: f64,
    /// Tokens of the hypotheses, and of the references closest in length to each.
    pub sys_len: u64,
    pub ref_len: u64,
}

impl std::fmt::Display for Bleu {
    /// sacrebleu's line: `BLEU = 36.12 67.1/43.2/29.5/20.1 (BP = 1.000 ratio = 1.012 hyp_len = ...)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.precisions;
        let ratio = match self.ref_len {
            0 => 0.0,
            r => self.sys_len as f64 / r as f64,
        };
        write!(
            f,
            "BLEU = {:.2} {:.1}/{:.1}/{:.1}/{:.1} (BP = {:.3} ratio = {ratio:.3} hyp_len = {} ref_len = {})",
            self.score, p[0], p[1], p[2], p[3], self.brevity_penalty, self.sys_len, self.ref_len
        )
    }
}

/// BLEU of `hypotheses` against one or more reference sets: `references[k][i]` is the k-th
/// reference of hypothesis i (sacrebleu's reference streams). Every stream must have one
/// line per hypothesis.
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[Vec<R>],
) -> Result<Bleu> {
    if references.is_empty() {
        return Err(Error::Invalid(
            "BLEU needs at least one reference set".into(),
        ));
    }
    if let Some((k, stream)) = references
        .iter()
        .enumerate()
        .find(|(_, s)| s.len() != hypotheses.len())
    {
        return Err(Error::Invalid(format!(
            "BLEU: {} hypotheses but reference set {} has {} lines: they must be aligned line by line",
            hypotheses.len(),
            k + 1,
            stream.len()
        )));
    }
    let mut stats = Stats::default();
    for (i, hypothesis) in hypotheses.iter().enumerate() {
        let refs: Vec<&str> = references.iter().map(|s| s[i].as_ref()).collect();
        stats.add(&segment_stats(hypothesis.as_ref(), &refs));
    }
    Ok(stats.bleu())
}

/// BLEU of `hypotheses` (read from `hyp_name`: a file or stdin) against the lines of each
/// reference file, as `sacrebleu REF... < HYP` scores them. Files must be UTF-8 and hold a
/// line per hypothesis; an error names both sides and their counts.
pub fn score_against_files(
    hyp_name: &str,
    hypotheses: &[String],
    references: &[std::path::PathBuf],
) -> Result<Bleu> {
    let mut streams = Vec::with_capacity(references.len());
    for path in references {
        let lines = read_lines(path)?;
        if hypotheses.is_empty() {
            return Err(Error::Invalid(format!("{hyp_name} holds no line to score")));
        }
        if lines.len() != hypotheses.len() {
            return Err(Error::Invalid(format!(
                "{hyp_name} has {} lines but {} has {}: the translations and references must be aligned line by line",
                hypotheses.len(),
                path.display(),
                lines.len()
            )));
        }
        streams.push(lines);
    }
    corpus_bleu(hypotheses, &streams)
}

/// The sufficient statistics of BLEU, summed over segments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub correct: [u64; MAX_ORDER],
    pub total: [u64; MAX_ORDER],
    pub sys_len: u64,
    pub ref_len: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        for n in 0..MAX_ORDER {
            self.correct[n] += other.correct[n];
            self.total[n] += other.total[n];
        }
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
    }

    /// sacrebleu's `compute_bleu` with `smooth_method = "exp"` and no effective order.
    pub fn bleu(&self) -> Bleu {
        let brevity_penalty = match (self.sys_len, self.ref_len) {
            (s, r) if s >= r => 1.0,
            (0, _) => 0.0,
            (s, r) => (1.0 - r as f64 / s as f64).exp(),
        };
        let mut precisions = [0.0; MAX_ORDER];
        let mut bleu = Bleu {
            score: 0.0,
            correct: self.correct,
            total: self.total,
            precisions,
            brevity_penalty,
            sys_len: self.sys_len,
            ref_len: self.ref_len,
        };
        if self.correct.iter().all(|&c| c == 0) {
            return bleu;
        }
        let mut smooth = 1.0;
        let orders = precisions
            .iter_mut()
            .zip(self.correct.iter().zip(&self.total));
        for (precision, (&correct, &total)) in orders {
            // Hypotheses too short for this order: it and the higher ones stay 0.
            if total == 0 {
                break;
            }
            *precision = match correct {
                0 => {
                    smooth *= 2.0;
                    100.0 / (smooth * total as f64)
                }
                c => 100.0 * c as f64 / total as f64,
            };
        }
        // sacrebleu's `my_log`: log 0 is a very low number, not -inf.
        let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
        let mean_log = precisions.iter().map(|&p| log(p)).sum::<f64>() / MAX_ORDER as f64;
        bleu.precisions = precisions;
        bleu.score = brevity_penalty * mean_log.exp();
        bleu
    }
}

/// One hypothesis against its references: n-gram matches (each clipped by the largest count
/// of that n-gram in any one reference), and the reference length closest to the
/// hypothesis's.
pub fn segment_stats(hypothesis: &str, references: &[&str]) -> Stats {
    // sacrebleu strips trailing whitespace before tokenising, hypotheses and references alike.
    let tokenized = |s: &str| tokenize_13a(s.trim_end_matches(python_str::is_space));
    let hyp = tokenized(hypothesis);
    let hyp: Vec<&str> = python_str::split(&hyp).collect();
    let refs: Vec<String> = references.iter().map(|r| tokenized(r)).collect();
    let mut ref_counts: HashMap<&[&str], u64> = HashMap::new();
    let mut ref_lens = Vec::with_capacity(refs.len());
    let ref_tokens: Vec<Vec<&str>> = refs
        .iter()
        .map(|r| python_str::split(r).collect())
        .collect();
    for tokens in &ref_tokens {
        ref_lens.push(tokens.len() as u64);
        for (ngram, count) in ngram_counts(tokens) {
            let c = ref_counts.entry(ngram).or_insert(0);
            *c = (*c).max(count);
        }
    }
    let mut stats = Stats {
        sys_len: hyp.len() as u64,
        ref_len: closest_length(hyp.len() as u64, &ref_lens),
        ..Stats::default()
    };
    for (ngram, count) in ngram_counts(&hyp) {
        let n = ngram.len() - 1;
        stats.total[n] += count;
        stats.correct[n] += count.min(ref_counts.get(ngram).copied().unwrap_or(0));
    }
    stats
}

/// Every n-gram of `tokens` (orders 1 to 4) with its count.
fn ngram_counts<'a, 'b>(tokens: &'b [&'a str]) -> HashMap<&'b [&'a str], u64> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER.min(tokens.len()) {
        for ngram in tokens.windows(n) {
            *counts.entry(ngram).or_insert(0) += 1;
        }
    }
    counts
}

/// The reference length closest to `hyp_len`, the shorter of two equally close.
fn closest_length(hyp_len: u64, ref_lens: &[u64]) -> u64 {
    let mut best: Option<(u64, u64)> = None; // (distance, length)
    for &len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            Some((d, l)) if d < diff || (d == diff && l <= len) => Some((d, l)),
            _ => Some((diff, len)),
        };
    }
    best.map_or(0, |(_, len)| len)
}

/// sacrebleu's `13a` tokeniser (mteval-v13a): markup and escapes undone, punctuation and
/// symbols split off, periods and commas split off unless between digits, a dash split off
/// after a digit; tokens joined by single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let line = format!(" {line} ");
    // r'([\{-\~\[-\` -\&\(-\+\:-\@\/])' → r' \1 '
    let mut spaced = String::with_capacity(line.len() * 2);
    for c in line.chars() {
        match is_13a_symbol(c) {
            true => {
                spaced.push(' ');
                spaced.push(c);
                spaced.push(' ');
            }
            false => spaced.push(c),
        }
    }
    let is_digit = |c: char| c.is_ascii_digit();
    let is_period_or_comma = |c: char| c == '.' || c == ',';
    // r'([^0-9])([\.,])' → r'\1 \2 '
    let line = sub_pairs(
        &spaced,
        |a| !is_digit(a),
        is_period_or_comma,
        |a, b, out| out.extend([a, ' ', b, ' ']),
    );
    // r'([\.,])([^0-9])' → r' \1 \2'
    let line = sub_pairs(
        &line,
        is_period_or_comma,
        |b| !is_digit(b),
        |a, b, out| out.extend([' ', a, ' ', b]),
    );
    // r'([0-9])(-)' → r'\1 \2 '
    let line = sub_pairs(
        &line,
        is_digit,
        |b| b == '-',
        |a, b, out| out.extend([a, ' ', b, ' ']),
    );
    python_str::split(&line).collect::<Vec<_>>().join(" ")
}

/// The characters 13a pads with spaces: `{|}~`, `[\]^_` and the backtick, space to `&`,
/// `(` to `+`, `:` to `@`, and `/`.
fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// `re.sub` of a two-character pattern (`first` then `second`): scans left to right, writes
/// each match through `replace` and goes on after it, as Python's `re.sub` does.
fn sub_pairs(
    text: &str,
    first: impl Fn(char) -> bool,
    second: impl Fn(char) -> bool,
    replace: impl Fn(char, char, &mut String),
) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && first(chars[i]) && second(chars[i + 1]) {
            replace(chars[i], chars[i + 1], &mut out);
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_a_splits_symbols_and_keeps_numbers_whole() {
        assert_eq!(
            tokenize_13a("Hello, world! It costs $3.50 (or 1,000.5), a 5-year plan."),
            "Hello , world ! It costs $ 3.50 ( or 1,000.5 ) , a 5 - year plan ."
        );
        assert_eq!(tokenize_13a("A &amp;lt; b &quot;x&quot;"), "A < b \" x \"");
        assert_eq!(tokenize_13a("<skipped>x-\ny"), "xy");
    }

    #[test]
    fn a_perfect_match_scores_100_and_nothing_in_common_scores_0() {
        let hyp = ["the cat sat on the mat ."];
        let b = corpus_bleu(&hyp, &[vec!["the cat sat on the mat ."]]).unwrap();
        assert!((b.score - 100.0).abs() < 1e-9, "{b}");
        let b = corpus_bleu(&["a b c d"], &[vec!["e f g h"]]).unwrap();
        assert_eq!(b.score, 0.0);
    }

    /// Every hand-made case of `scripts/make_bleu_fixture.py` gives sacrebleu's numbers: the
    /// tokens, the n-gram counts, the lengths, the score (to 1e-9) and the printed line.
    #[test]
    fn hand_made_cases_give_sacrebleus_numbers() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/bleu/cases.json");
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let counts = |v: &serde_json::Value| -> Vec<u64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .collect()
        };
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let hyps = strings(&case["hypotheses"]);
            let refs: Vec<Vec<String>> = case["references"]
                .as_array()
                .unwrap()
                .iter()
                .map(strings)
                .collect();
            let tokens: Vec<String> = hyps
                .iter()
                .map(|h| tokenize_13a(h.trim_end_matches(python_str::is_space)))
                .collect();
            assert_eq!(tokens, strings(&case["tokenized"]), "{name}");
            let b = corpus_bleu(&hyps, &refs).unwrap();
            assert_eq!(b.correct.to_vec(), counts(&case["correct"]), "{name}");
            assert_eq!(b.total.to_vec(), counts(&case["total"]), "{name}");
            assert_eq!(b.sys_len, case["sys_len"].as_u64().unwrap(), "{name}");
            assert_eq!(b.ref_len, case["ref_len"].as_u64().unwrap(), "{name}");
            let want = case["score"].as_f64().unwrap();
            assert!(
                (b.score - want).abs() < 1e-9,
                "{name}: {} vs {want}",
                b.score
            );
            assert_eq!(b.to_string(), case["line"].as_str().unwrap(), "{name}");
        }
    }

    #[test]
    fn misaligned_files_are_an_error_naming_both_and_their_counts() {
        let dir = tempfile::tempdir().unwrap();
        let reference = dir.path().join("val.de");
        std::fs::write(&reference, "a\nb\nc\n").unwrap();
        let hyps = vec!["a".to_string(), "b".to_string()];
        let err = score_against_files("out.de", &hyps, std::slice::from_ref(&reference))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("out.de has 2 lines") && err.contains("val.de has 3"),
            "{err}"
        );
        let err = score_against_files("stdin", &[], &[reference])
            .unwrap_err()
            .to_string();
        assert!(err.contains("stdin holds no line"), "{err}");
    }

    #[test]
    fn misaligned_references_are_an_error_naming_the_counts() {
        let err = corpus_bleu(&["a", "b"], &[vec!["a"]])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 hypotheses") && err.contains("1 lines"),
            "{err}"
        );
    }

    #[test]
    fn the_closest_reference_length_prefers_the_shorter_on_a_tie() {
        assert_eq!(closest_length(5, &[7, 3]), 3);
        assert_eq!(closest_length(5, &[3, 7]), 3);
        assert_eq!(closest_length(5, &[9, 6, 4]), 4);
    }
}
