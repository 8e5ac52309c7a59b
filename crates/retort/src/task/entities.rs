//! Entity-level precision, recall and F1 for IOB2 taggers, as CoNLL scores them.
//!
//! The numbers are those of conlleval and of seqeval's default (non-strict) mode, which every
//! NER paper reports: entities are read from the tags leniently (an `I-X` without a `B-X`
//! still starts an entity), and an entity counts as correct only if its type and both its
//! boundaries match a gold entity. Precision, recall and F1 are micro-averaged over all
//! entities, and also given for each type. A test checks every number against seqeval.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};

/// An entity: its type and the words [start, end) it spans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entity {
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

/// The entities of one tag sequence, as seqeval's default (non-strict) mode reads them: an I-X
/// after O or after another type starts a new X entity; B-X always starts one; O ends one.
/// Tags other than O/B-/I- are treated as O.
///
/// "Other" includes `B-` and `I-` with an empty type, and the E-/S- tags of IOBES, which
/// seqeval would read as entities: no Retort tag set holds them (task::conll rejects them).
pub fn entities<S: AsRef<str>>(tags: &[S]) -> Vec<Entity> {
    let mut found = Vec::new();
    // The entity being read: its type and first word.
    let mut open: Option<(&str, usize)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let tag = read_tag(tag.as_ref());
        // Only an I- of the open entity's type continues it (conlleval's rule).
        if let (Tag::Inside(kind), Some((current, _))) = (&tag, open) {
            if *kind == current {
                continue;
            }
        }
        if let Some((kind, start)) = open.take() {
            found.push(entity(kind, start, i));
        }
        if let Tag::Begin(kind) | Tag::Inside(kind) = tag {
            open = Some((kind, i));
        }
    }
    // An entity still open at the end runs to the last word.
    if let Some((kind, start)) = open {
        found.push(entity(kind, start, tags.len()));
    }
    found
}

/// Precision, recall and F1 of one type, or of all entities together.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold entities.
    pub support: usize,
    /// Predicted entities.
    pub predicted: usize,
    /// Predicted entities that match a gold one exactly (type and both boundaries).
    pub correct: usize,
}

impl Prf {
    /// The scores of these counts. A ratio with nothing to divide by is 0, as in seqeval, and
    /// the formulas are written as seqeval computes them so that the floats agree exactly.
    fn from_counts(counts: Counts) -> Self {
        let precision = ratio(counts.correct, counts.predicted);
        let recall = ratio(counts.correct, counts.support);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self {
            precision,
            recall,
            f1,
            support: counts.support,
            predicted: counts.predicted,
            correct: counts.correct,
        }
    }
}

/// Entity-level scores of a tagger on a corpus.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EntityScores {
    /// Micro-averaged over all entities of all types.
    pub overall: Prf,
    /// One entry for every type found in the gold tags or in the predictions.
    pub per_type: BTreeMap<String, Prf>,
}

/// Scores predicted tag sequences against gold ones, sentence by sentence (same lengths
/// required: Error::Invalid naming the sentence index otherwise). An entity is correct only
/// if its type and both boundaries match. 0/0 gives 0 (as seqeval does).
pub fn score<S: AsRef<str>>(gold: &[Vec<S>], pred: &[Vec<S>]) -> Result<EntityScores> {
    if gold.len() != pred.len() {
        return Err(Error::Invalid(format!(
            "{} gold sentences but {} predicted ones",
            gold.len(),
            pred.len()
        )));
    }
    let mut per_type: BTreeMap<String, Counts> = BTreeMap::new();
    for (i, (g, p)) in gold.iter().zip(pred).enumerate() {
        if g.len() != p.len() {
            return Err(Error::Invalid(format!(
                "sentence {i}: {} gold tags but {} predicted ones",
                g.len(),
                p.len()
            )));
        }
        count_sentence(&entities(g), &entities(p), &mut per_type);
    }
    let overall = per_type.values().fold(Counts::default(), |a, &b| a + b);
    Ok(EntityScores {
        overall: Prf::from_counts(overall),
        per_type: per_type
            .into_iter()
            .map(|(kind, counts)| (kind, Prf::from_counts(counts)))
            .collect(),
    })
}

/// The counts a score is computed from.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    support: usize,
    predicted: usize,
    correct: usize,
}

impl std::ops::Add for Counts {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            support: self.support + other.support,
            predicted: self.predicted + other.predicted,
            correct: self.correct + other.correct,
        }
    }
}

/// Adds one sentence's entities to the per-type counts. Sentences are counted apart so that
/// an entity never runs from one sentence into the next (seqeval puts an O between them).
fn count_sentence(gold: &[Entity], pred: &[Entity], per_type: &mut BTreeMap<String, Counts>) {
    let predicted: HashSet<&Entity> = pred.iter().collect();
    for e in gold {
        let c = per_type.entry(e.kind.clone()).or_default();
        c.support += 1;
        c.correct += usize::from(predicted.contains(e));
    }
    for e in pred {
        per_type.entry(e.kind.clone()).or_default().predicted += 1;
    }
}

/// `part / whole`, or 0 when `whole` is 0.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// An IOB2 tag as the scorer reads it.
enum Tag<'a> {
    Begin(&'a str),
    Inside(&'a str),
    Outside,
}

/// B-X and I-X with a non-empty X; anything else reads as O.
fn read_tag(tag: &str) -> Tag<'_> {
    let typed = |prefix| tag.strip_prefix(prefix).filter(|t: &&str| !t.is_empty());
    match (typed("B-"), typed("I-")) {
        (Some(kind), _) => Tag::Begin(kind),
        (_, Some(kind)) => Tag::Inside(kind),
        _ => Tag::Outside,
    }
}

fn entity(kind: &str, start: usize, end: usize) -> Entity {
    Entity {
        kind: kind.to_string(),
        start,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: &str, start: usize, end: usize) -> Entity {
        entity(kind, start, end)
    }

    fn tags(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    /// Scores one corpus written as one line of tags per sentence, `|` between sentences.
    fn score_text(gold: &str, pred: &str) -> EntityScores {
        let split = |t: &str| t.split('|').map(tags).collect::<Vec<_>>();
        score(&split(gold), &split(pred)).unwrap()
    }

    fn counts(p: &Prf) -> (usize, usize, usize) {
        (p.support, p.predicted, p.correct)
    }

    #[test]
    fn reads_well_formed_entities_with_exclusive_ends() {
        let t = tags("B-PER I-PER O B-LOC B-LOC I-LOC I-LOC O");
        assert_eq!(
            entities(&t),
            [e("PER", 0, 2), e("LOC", 3, 4), e("LOC", 4, 7)]
        );
        assert!(entities::<&str>(&[]).is_empty());
        assert!(entities(&["O", "O"]).is_empty());
    }

    #[test]
    fn an_entity_at_the_end_of_the_sentence_runs_to_its_last_word() {
        assert_eq!(entities(&["O", "B-ORG", "I-ORG"]), [e("ORG", 1, 3)]);
        assert_eq!(entities(&["B-MISC"]), [e("MISC", 0, 1)]);
    }

    #[test]
    fn i_after_o_or_at_the_start_starts_an_entity() {
        assert_eq!(
            entities(&["I-PER", "I-PER", "O", "I-LOC"]),
            [e("PER", 0, 2), e("LOC", 3, 4)]
        );
    }

    #[test]
    fn i_of_another_type_starts_a_new_entity() {
        assert_eq!(
            entities(&["B-PER", "I-LOC", "I-LOC", "I-PER"]),
            [e("PER", 0, 1), e("LOC", 1, 3), e("PER", 3, 4)]
        );
    }

    #[test]
    fn other_tags_read_as_o() {
        assert_eq!(
            entities(&["B-PER", "X", "I-PER", "B-", "I-", "S-LOC", "E-LOC"]),
            [e("PER", 0, 1), e("PER", 2, 3)]
        );
    }

    #[test]
    fn a_perfect_prediction_scores_one() {
        let s = score_text("B-PER I-PER O B-LOC", "B-PER I-PER O B-LOC");
        assert_eq!(
            (s.overall.precision, s.overall.recall, s.overall.f1),
            (1.0, 1.0, 1.0)
        );
        assert_eq!(counts(&s.overall), (2, 2, 2));
    }

    #[test]
    fn a_boundary_one_word_off_is_wrong_both_ways() {
        // Gold PER [0, 2): predicted one word too long, then one word too short.
        for pred in ["B-PER I-PER I-PER O", "B-PER O O O"] {
            let s = score_text("B-PER I-PER O O", pred);
            assert_eq!(counts(&s.overall), (1, 1, 0), "{pred}");
            assert_eq!(s.overall.f1, 0.0);
        }
        // A missing B- splits nothing, so I- I- matches B- I-.
        let s = score_text("B-PER I-PER O", "I-PER I-PER O");
        assert_eq!(counts(&s.overall), (1, 1, 1));
    }

    #[test]
    fn a_wrong_type_counts_against_both_types() {
        let s = score_text("B-ORG I-ORG O B-PER", "B-LOC I-LOC O B-PER");
        assert_eq!(counts(&s.overall), (2, 2, 1));
        assert_eq!(counts(&s.per_type["ORG"]), (1, 0, 0));
        assert_eq!(counts(&s.per_type["LOC"]), (0, 1, 0));
        assert_eq!(counts(&s.per_type["PER"]), (1, 1, 1));
        // Every type of gold or prediction has a row, scored 0 where nothing matched.
        assert_eq!(s.per_type.keys().collect::<Vec<_>>(), ["LOC", "ORG", "PER"]);
        let loc = &s.per_type["LOC"];
        assert_eq!((loc.precision, loc.recall, loc.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn sentences_are_scored_apart() {
        // The PER at the end of the first sentence and the I-PER starting the second are two
        // entities, not one running across the break.
        let s = score_text("O B-PER | I-PER O", "O B-PER | I-PER O");
        assert_eq!(counts(&s.overall), (2, 2, 2));
        // The same entity at the same offsets in two sentences counts twice.
        let s = score_text("B-LOC | B-LOC", "B-LOC | O");
        assert_eq!(counts(&s.overall), (2, 1, 1));
        assert_eq!((s.overall.precision, s.overall.recall), (1.0, 0.5));
    }

    #[test]
    fn overall_is_micro_averaged_not_the_mean_of_types() {
        // PER: 3 gold, 3 predicted, 3 correct. LOC: 1 gold, 1 predicted, 0 correct.
        let s = score_text(
            "B-PER O B-PER O B-PER | B-LOC I-LOC",
            "B-PER O B-PER O B-PER | B-LOC O",
        );
        assert_eq!(s.per_type["PER"].f1, 1.0);
        assert_eq!(s.per_type["LOC"].f1, 0.0);
        assert_eq!(counts(&s.overall), (4, 4, 3));
        assert_eq!(s.overall.precision, 0.75);
        assert_eq!(s.overall.recall, 0.75);
        assert_eq!(s.overall.f1, 2.0 * 0.75 * 0.75 / 1.5);
    }

    #[test]
    fn precision_and_recall_differ_when_counts_do() {
        // The I-ORG after B-LOC starts an ORG, which matches the gold one.
        let s = score_text("B-PER O B-ORG O", "B-PER B-LOC I-ORG B-MISC");
        assert_eq!(counts(&s.overall), (2, 4, 2));
        // 2 gold; 3 predicted, 1 correct: p = 1/3, r = 1/2, f1 = 2pr/(p+r) = 0.4.
        let s = score_text("B-PER O B-ORG O", "B-PER B-LOC O B-MISC");
        assert_eq!(counts(&s.overall), (2, 3, 1));
        assert_eq!(s.overall.precision, 1.0 / 3.0);
        assert_eq!(s.overall.recall, 0.5);
        assert!((s.overall.f1 - 0.4).abs() < 1e-15);
    }

    #[test]
    fn nothing_to_divide_by_gives_zero() {
        let s = score_text("O O", "O O");
        assert_eq!(counts(&s.overall), (0, 0, 0));
        assert_eq!(
            (s.overall.precision, s.overall.recall, s.overall.f1),
            (0.0, 0.0, 0.0)
        );
        assert!(s.per_type.is_empty());
        let s = score::<&str>(&[], &[]).unwrap();
        assert_eq!(s.overall.f1, 0.0);
    }

    #[test]
    fn sequences_of_different_lengths_are_refused_naming_the_sentence() {
        let gold = vec![tags("O"), tags("B-PER O")];
        let err = score(&gold, &[tags("O"), tags("B-PER")]).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)));
        assert!(err.to_string().contains("sentence 1"), "{err}");
        let err = score(&gold, &[tags("O")]).unwrap_err();
        assert!(err.to_string().contains("2 gold sentences but 1"), "{err}");
    }

    /// scripts/make_entity_fixture.py wrote seqeval's own entities and scores for random gold
    /// and predicted sequences, well-formed or not: every one must agree.
    #[test]
    fn agrees_with_seqeval_on_random_sequences() {
        use serde_json::Value;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/entities/seqeval_cases.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let fixture: Value = serde_json::from_str(&text).unwrap();
        let sentences =
            |v: &Value| -> Vec<Vec<String>> { serde_json::from_value(v.clone()).unwrap() };
        let close = |what: &str, ours: f64, theirs: &Value| {
            let theirs = theirs.as_f64().unwrap();
            assert!(
                (ours - theirs).abs() <= 1e-9,
                "{what}: {ours} vs seqeval {theirs}"
            );
        };
        let check = |what: &str, ours: &Prf, theirs: &Value| {
            close(
                &format!("{what} precision"),
                ours.precision,
                &theirs["precision"],
            );
            close(&format!("{what} recall"), ours.recall, &theirs["recall"]);
            close(&format!("{what} f1"), ours.f1, &theirs["f1"]);
            assert_eq!(
                ours.support as u64,
                theirs["support"].as_u64().unwrap(),
                "{what}"
            );
        };
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.len() > 50);
        let mut sentences_checked = 0;
        for (n, case) in cases.iter().enumerate() {
            let (gold, pred) = (sentences(&case["gold"]), sentences(&case["pred"]));
            // Entities: seqeval writes [type, start, end] with an inclusive end.
            for (side, seqs) in [("gold", &gold), ("pred", &pred)] {
                let expected = case[format!("{side}_entities")].as_array().unwrap();
                for (tags, want) in seqs.iter().zip(expected) {
                    let want: Vec<Entity> = want
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| {
                            let at = |i: usize| r[i].as_u64().unwrap() as usize;
                            e(r[0].as_str().unwrap(), at(1), at(2) + 1)
                        })
                        .collect();
                    assert_eq!(entities(tags), want, "case {n} {side} {tags:?}");
                    sentences_checked += 1;
                }
            }
            let ours = score(&gold, &pred).unwrap();
            check(
                &format!("case {n} overall"),
                &ours.overall,
                &case["overall"],
            );
            let types = case["per_type"].as_object().unwrap();
            assert_eq!(
                ours.per_type.keys().collect::<Vec<_>>(),
                types.keys().collect::<Vec<_>>(),
                "case {n}"
            );
            for (kind, theirs) in types {
                check(&format!("case {n} {kind}"), &ours.per_type[kind], theirs);
            }
        }
        assert!(sentences_checked >= 600, "{sentences_checked}");
    }
}
