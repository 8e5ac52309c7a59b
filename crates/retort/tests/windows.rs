//! Sentence pairs and question–context windows of the real all-MiniLM-L6-v2 tokenizer against
//! transformers' fast tokenizer (`tests/fixtures/windows/`, written by
//! `scripts/make_window_fixture.py`): ids, token types, which tokens are context, their
//! character offsets (multi-byte text included) and the answers' token spans are equal.

mod common;

use retort::text::windows::{AnswerTokens, Window, WindowParams, WindowTokenizer, Windows};
use retort::text::TextTokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture<T> {
    cases: Vec<T>,
}

#[derive(Deserialize)]
struct PairCase {
    first: String,
    second: String,
    max_len: usize,
    input_ids: Vec<u32>,
    token_type_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct WindowCase {
    name: String,
    question: String,
    question_used: String,
    context: String,
    max_len: usize,
    stride: usize,
    max_question_len: usize,
    answer: Answer,
    windows: Vec<HfWindow>,
}

#[derive(Deserialize)]
struct Answer {
    start: usize,
    end: usize,
    text: String,
}

/// One window as transformers gives it: offsets of question tokens are into the question,
/// special tokens have (0, 0); `sequence_ids` says which is which.
#[derive(Deserialize)]
struct HfWindow {
    input_ids: Vec<u32>,
    token_type_ids: Vec<u32>,
    offset_mapping: Vec<(usize, usize)>,
    sequence_ids: Vec<Option<usize>>,
    answer_tokens: Option<(usize, usize)>,
}

fn read<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let path = common::fixture("windows").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str::<Fixture<T>>(&text).unwrap().cases
}

fn tokenizer(max_len: usize) -> TextTokenizer {
    TextTokenizer::from_dir(&common::minilm_dir(), max_len).unwrap()
}

#[test]
fn pairs_equal_transformers_longest_first() {
    for case in read::<PairCase>("pairs.json") {
        let tok = tokenizer(case.max_len);
        let e = tok.encode_pair(&case.first, &case.second).unwrap();
        assert_eq!(e.ids, case.input_ids, "{:?}", case.first);
        assert_eq!(e.type_ids, case.token_type_ids, "{:?}", case.first);
        let batch = tok
            .encode_pair_batch(&[(&case.first, &case.second)])
            .unwrap();
        assert_eq!(batch, [e]);
    }
}

/// What Retort keeps of transformers' window: the offsets of context tokens only.
fn context_offsets(hf: &HfWindow) -> Vec<Option<(usize, usize)>> {
    hf.sequence_ids
        .iter()
        .zip(&hf.offset_mapping)
        .map(|(s, &o)| (*s == Some(1)).then_some(o))
        .collect()
}

fn windows_of(case: &WindowCase) -> Windows {
    let params = WindowParams {
        stride: case.stride,
        max_question_len: case.max_question_len,
    };
    WindowTokenizer::new(&tokenizer(case.max_len), params)
        .unwrap()
        .encode(&case.question, &case.context)
        .unwrap()
}

/// Every window, the overflowing ones too, is `[CLS] question [SEP] context [SEP]` with
/// token type 0 up to the question's `[SEP]` and 1 after.
fn check_shape(w: &Window, max_len: usize, name: &str) {
    let (cls, sep) = (101, 102);
    let ids = &w.encoded.ids;
    assert!(ids.len() <= max_len, "{name}");
    assert_eq!(ids[0], cls, "{name}");
    assert_eq!(ids[w.context_start - 1], sep, "{name}");
    assert_eq!(*ids.last().unwrap(), sep, "{name}");
    let types: Vec<u32> = (0..ids.len())
        .map(|i| u32::from(i >= w.context_start))
        .collect();
    assert_eq!(w.encoded.type_ids, types, "{name}");
}

#[test]
fn windows_equal_transformers_only_second_with_stride() {
    let cases = read::<WindowCase>("windows.json");
    assert!(cases.iter().any(|c| c.windows.len() > 2));
    for case in &cases {
        let name = case.name.as_str();
        let got = windows_of(case);
        assert_eq!(got.windows.len(), case.windows.len(), "{name}");
        assert_eq!(
            got.question_tokens_cut > 0,
            case.question_used != case.question,
            "{name}"
        );
        for (w, hf) in got.windows.iter().zip(&case.windows) {
            assert_eq!(w.encoded.ids, hf.input_ids, "{name}");
            assert_eq!(w.encoded.type_ids, hf.token_type_ids, "{name}");
            assert_eq!(w.context_offsets, context_offsets(hf), "{name}");
            let first = hf.sequence_ids.iter().position(|s| *s == Some(1));
            assert_eq!(Some(w.context_start), first, "{name}");
            check_shape(w, case.max_len, name);
        }
    }
}

#[test]
fn answers_map_to_the_token_spans_of_the_training_recipe() {
    for case in read::<WindowCase>("windows.json") {
        let name = case.name.as_str();
        let a = &case.answer;
        // The fixture's offsets are characters: the answer's text is those characters.
        let text: String = case
            .context
            .chars()
            .skip(a.start)
            .take(a.end - a.start)
            .collect();
        assert_eq!(text, a.text, "{name}");
        let got = windows_of(&case)
            .align_answer(&case.context, a.start..a.end)
            .unwrap();
        let expected: Vec<Option<(usize, usize)>> =
            case.windows.iter().map(|w| w.answer_tokens).collect();
        assert!(expected.iter().any(Option::is_some), "{name}");
        assert_eq!(got, AnswerTokens::Aligned(expected), "{name}");
    }
}

#[test]
fn an_answer_inside_a_real_word_piece_is_unaligned() {
    let case = read::<WindowCase>("windows.json").remove(0);
    let windows = windows_of(&case);
    // "Paix" is pa ##ix: "Pa" aligns, "aix" (inside the word) does not.
    let paix = case.context.find("Paix").unwrap();
    let chars = case.context[..paix].chars().count();
    let align = |r| windows.align_answer(&case.context, r).unwrap();
    assert!(matches!(align(chars..chars + 2), AnswerTokens::Aligned(_)));
    assert_eq!(align(chars + 1..chars + 4), AnswerTokens::Unaligned);
}
