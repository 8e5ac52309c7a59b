//! The official SQuAD v1.1 metric (`evaluate-v1.1.py`): exact match and token F1, each the
//! best over a question's gold answers, averaged over the questions × 100.
//!
//! Both compare answers after `normalize_answer`: lower-case, drop ASCII punctuation, drop
//! the articles a / an / the, collapse whitespace. Published SQuAD numbers are this script's,
//! so it is reproduced to the bit, Python's own string semantics included (`python_str`):
//! the same sums in the same order give the same f64s. `scripts/check_squad_metric.py`
//! compares the two on perturbed predictions.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::task::squad::Question;
use crate::text::python_str;

/// Scores of predictions on a set of questions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SquadScores {
    /// 100 × the share of questions whose prediction equals a gold answer (normalised).
    pub exact_match: f64,
    /// 100 × the mean over questions of the best token F1 against a gold answer.
    pub f1: f64,
    /// Questions scored, those without a prediction included.
    pub questions: usize,
    /// Questions without a prediction (each scores 0, as in the official script).
    pub missing: usize,
}

/// Scores `{id: answer}` predictions against `questions` as the official script does, in
/// file order. Predictions for ids that are not among the questions are ignored (so does the
/// official script). Refused: no questions, a question without gold answers, and an id
/// shared by two questions (a prediction keyed by it would be scored against both).
pub fn score(questions: &[Question], predictions: &HashMap<String, String>) -> Result<SquadScores> {
    check_scorable(questions)?;
    let mut exact = 0usize;
    let mut f1_sum = 0.0;
    let mut missing = 0;
    for question in questions {
        let Some(prediction) = predictions.get(&question.id) else {
            missing += 1;
            continue;
        };
        let golds = question.answers.iter().map(|a| a.text.as_str());
        let (em, f1) = best_scores(prediction, golds);
        exact += usize::from(em);
        f1_sum += f1;
    }
    // `100.0 * x / total`, as the script writes it: the same rounding, the same f64.
    let total = questions.len() as f64;
    Ok(SquadScores {
        exact_match: 100.0 * exact as f64 / total,
        f1: 100.0 * f1_sum / total,
        questions: questions.len(),
        missing,
    })
}

/// The official `normalize_answer`: lower → remove punctuation → remove articles → collapse
/// whitespace, each step with Python's semantics.
pub fn normalize_answer(text: &str) -> String {
    let lower = python_str::lower(text);
    let no_punctuation: String = lower.chars().filter(|c| !is_punctuation(*c)).collect();
    let no_articles = remove_articles(&no_punctuation);
    python_str::split(&no_articles)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The official `exact_match_score`: the normalised texts are equal.
pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// The official `f1_score`: token F1 of the normalised texts (0 without a common token).
pub fn f1(prediction: &str, gold: &str) -> f64 {
    token_f1(&normalize_answer(prediction), &normalize_answer(gold))
}

/// Exact match and F1 of `prediction`, each the maximum over the gold answers (the script's
/// `metric_max_over_ground_truths`), normalising each text once.
pub(crate) fn best_scores<'g>(
    prediction: &str,
    golds: impl Iterator<Item = &'g str>,
) -> (bool, f64) {
    let prediction = normalize_answer(prediction);
    golds.fold((false, 0.0), |(em, f1), gold| {
        let gold = normalize_answer(gold);
        (
            em || prediction == gold,
            f1_max(f1, token_f1(&prediction, &gold)),
        )
    })
}

/// `max` of two F1 values (never NaN).
fn f1_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// Token F1 of two normalised texts: tokens in common counted with multiplicity (the
/// script's `Counter` intersection); precision, recall and F1 in the script's order of
/// operations.
fn token_f1(prediction: &str, gold: &str) -> f64 {
    let predicted: Vec<&str> = python_str::split(prediction).collect();
    let gold: Vec<&str> = python_str::split(gold).collect();
    let common = common_tokens(&predicted, &gold);
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / predicted.len() as f64;
    let recall = common as f64 / gold.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// How many tokens the two lists share, each token counted min(times in a, times in b).
fn common_tokens(a: &[&str], b: &[&str]) -> usize {
    let mut available: HashMap<&str, usize> = HashMap::new();
    for token in a {
        *available.entry(token).or_default() += 1;
    }
    b.iter()
        .filter(|token| match available.get_mut(**token) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count()
}

/// Python's `string.punctuation`, which is exactly ASCII punctuation.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)`: each article standing alone between non-word
/// characters (Python's `\w`, see `python_str::is_word`) becomes one space. Scans as `re.sub`
/// does: left to right, the word-ness of neighbours read from the original text.
fn remove_articles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_is_word = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let article = if previous_is_word {
            None
        } else {
            article_at(rest)
        };
        let taken = match article {
            Some(len) => {
                out.push(' ');
                len
            }
            None => {
                out.push(c);
                c.len_utf8()
            }
        };
        // The character before the next position: an article's last letter, or `c`.
        previous_is_word = article.is_some() || python_str::is_word(c);
        rest = &rest[taken..];
    }
    out
}

/// The byte length of the article `text` starts with, if one ends at a word boundary there;
/// tried in the pattern's order (a, an, the).
fn article_at(text: &str) -> Option<usize> {
    ["a", "an", "the"].into_iter().find_map(|article| {
        let after = text.strip_prefix(article)?;
        let at_boundary = after.chars().next().is_none_or(|c| !python_str::is_word(c));
        at_boundary.then_some(article.len())
    })
}

/// Questions can be scored: there is at least one, each has a gold answer and its own id.
fn check_scorable(questions: &[Question]) -> Result<()> {
    if questions.is_empty() {
        return Err(Error::Invalid("no questions to score".into()));
    }
    let mut seen = HashSet::new();
    for question in questions {
        if question.answers.is_empty() {
            return Err(Error::Invalid(format!(
                "question {:?} has no gold answer to score against",
                question.id
            )));
        }
        if !seen.insert(question.id.as_str()) {
            return Err(Error::Invalid(format!(
                "question id {:?} is used by more than one question: predictions keyed by id \
                 cannot tell them apart",
                question.id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::task::squad::Answer;

    /// Expected values below are the official script's (Python 3.11).
    #[test]
    fn normalisation_is_the_official_one() {
        let cases = [
            ("The  Quick, brown-fox!", "quick brownfox"),
            ("an apple a day", "apple day"),
            ("theatre", "theatre"),
            ("A", ""),
            ("the_end", "theend"),
            ("a-an-the", "aanthe"),
            ("Ä THE Ö", "ä ö"),
            ("An\u{a0}answer\u{3000}here", "answer here"),
            ("x\u{1c}the\u{1f}y", "x y"),
            ("ΟΔΟΣ", "οδος"),
            ("İstanbul", "i\u{307}stanbul"),
        ];
        for (text, normalised) in cases {
            assert_eq!(normalize_answer(text), normalised, "{text:?}");
        }
    }

    #[test]
    fn article_boundaries_are_pythons_word_boundaries() {
        // Combining marks and circled letters are no word characters for Python's `re`, so
        // the article before or after them goes; digits and superscripts are, so it stays.
        assert_eq!(normalize_answer("a\u{93e} b"), "\u{93e} b");
        assert_eq!(normalize_answer("the\u{301}"), "\u{301}");
        assert_eq!(normalize_answer("\u{24d0} the x"), "\u{24d0} x");
        assert_eq!(normalize_answer("the\u{b2} a\u{663}"), "the\u{b2} a\u{663}");
    }

    #[test]
    fn the_punctuation_is_pythons_string_punctuation() {
        let python = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
        let ours: String = (0..128u8)
            .map(char::from)
            .filter(|&c| is_punctuation(c))
            .collect();
        assert_eq!(ours, python);
        assert!(!is_punctuation('\u{2019}') && !is_punctuation('\u{201c}'));
    }

    #[test]
    fn exact_match_and_f1_of_one_pair() {
        assert!(exact_match("The Denver Broncos", "denver broncos!"));
        assert!(!exact_match("Denver", "denver broncos"));
        assert!(exact_match("the", "a"), "both normalise to nothing");
        assert_eq!(f1("Denver Broncos won", "the Denver Broncos"), 0.8);
        assert_eq!(f1("Köln am Rhein", "in KÖLN"), 0.4);
        // Tokens in common count with multiplicity: two of the three y's.
        assert_eq!(f1("x y y", "y y y"), 0.666_666_666_666_666_6);
        assert_eq!(f1("Denver", "Carolina Panthers"), 0.0, "no common token");
        assert_eq!(f1("", ""), 0.0, "two empty answers share no token");
        assert_eq!(f1("the", "a"), 0.0);
    }

    fn question(id: &str, golds: &[&str]) -> Question {
        let answers = golds
            .iter()
            .map(|g| Answer {
                text: g.to_string(),
                start: 0,
            })
            .collect();
        Question {
            id: id.into(),
            question: "?".into(),
            context: Arc::from("context"),
            title: Arc::from("T"),
            paragraph: 0,
            answers,
        }
    }

    fn predictions(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(id, answer)| (id.to_string(), answer.to_string()))
            .collect()
    }

    #[test]
    fn scores_take_the_best_gold_answer_and_count_missing_questions() {
        let questions = [
            question("1", &["Denver Broncos", "the Broncos", "Broncos"]),
            question("2", &["Santa Clara, California", "Levi's Stadium"]),
            question("3", &["February 7, 2016"]),
            question("4", &["gold"]),
        ];
        let predictions = predictions(&[
            ("1", "Broncos"),
            ("2", "Levi's Stadium in Santa Clara"),
            ("4", "silver"),
            ("9", "not a question: ignored"),
        ]);
        let scores = score(&questions, &predictions).unwrap();
        // Question 2: F1 0.5 against the first gold answer, 4/7 against the second.
        assert_eq!(
            scores,
            SquadScores {
                exact_match: 25.0,
                f1: 39.285_714_285_714_29,
                questions: 4,
                missing: 1,
            }
        );
    }

    #[test]
    fn unscorable_questions_are_refused() {
        let err = score(&[], &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("no questions"), "{err}");
        let twice = [question("q", &["a"]), question("q", &["b"])];
        let err = score(&twice, &HashMap::new()).unwrap_err().to_string();
        assert!(
            err.contains("\"q\" is used by more than one question"),
            "{err}"
        );
        let err = score(&[question("q", &[])], &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("question \"q\" has no gold answer"), "{err}");
    }
}
