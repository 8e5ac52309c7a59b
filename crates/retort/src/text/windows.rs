//! Question–context windows for extractive question answering (SQuAD).
//!
//! A context longer than the model's input is read as several windows, each
//! `[CLS] question [SEP] context part [SEP]`, consecutive context parts overlapping by
//! `stride` tokens so that an answer cut by one window's edge can lie whole in the next:
//! Hugging Face's `truncation="only_second", return_overflowing_tokens=True,
//! stride=doc_stride`. The question is cut to `max_question_len` tokens first (the original
//! BERT SQuAD recipe: 64), so that a long question can never leave a window without context.
//!
//! Each window keeps the character offsets into the context of its context tokens
//! (characters, not bytes: right for multi-byte text), so that an answer given as a character
//! span maps to token positions ([`Windows::align_answer`]).

use std::ops::Range;

use tokenizers::{
    truncate_encodings, Encoding, Tokenizer, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use super::tokenizer::{encoded, Encoded, TextTokenizer};
use crate::error::{Error, Result};

/// How contexts are cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowParams {
    /// Tokens shared by consecutive context parts (Hugging Face's `doc_stride`).
    pub stride: usize,
    /// The question keeps at most this many tokens (Hugging Face's old `max_query_length`).
    pub max_question_len: usize,
}

/// One window: `[CLS] question [SEP] context part [SEP]`, at most `max_len` tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Token ids; token type 0 for `[CLS]`, the question and its `[SEP]`, 1 after.
    pub encoded: Encoded,
    /// Per token: its characters in the context (end exclusive), `None` for the question and
    /// the special tokens.
    pub context_offsets: Vec<Option<(usize, usize)>>,
    /// The position of the window's first context token.
    pub context_start: usize,
}

/// The windows of one question and its context, in context order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    pub windows: Vec<Window>,
    /// Tokens cut from the end of the question (0: it fit in `max_question_len`).
    pub question_tokens_cut: usize,
}

/// Where an answer lies in the windows of its example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerTokens {
    /// Per window: the positions of the answer's first and last tokens, or `None` where the
    /// window does not hold the whole answer (the training recipe then points at `[CLS]`,
    /// position 0).
    Aligned(Vec<Option<(usize, usize)>>),
    /// The answer starts or ends inside a token, or is only whitespace: no run of tokens
    /// spells it, so it can teach no span.
    Unaligned,
}

/// Answers of a dataset by how they align, so that none is lost without a word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerCounts {
    pub answers: usize,
    /// No run of tokens spells the answer ([`AnswerTokens::Unaligned`]).
    pub unaligned: usize,
    /// Aligned, but no window holds it whole (it is longer than a window's context part).
    pub in_no_window: usize,
}

/// Cuts question–context pairs into windows. Built once per tokenizer and parameters: it
/// holds a copy of the tokenizer that truncates nothing, since it cuts the question and the
/// context itself.
pub struct WindowTokenizer {
    plain: Tokenizer,
    truncation: TruncationParams,
    max_question_len: usize,
}

fn tok_err(context: &'static str) -> impl Fn(tokenizers::Error) -> Error {
    move |e| Error::Tokenizer(format!("{context}: {e}"))
}

impl WindowTokenizer {
    /// Windows of at most `tokenizer.max_len()` tokens. Refused when a question of
    /// `max_question_len` tokens, the special tokens and the stride would leave a window no
    /// new context token (`tokenizers` would panic on it).
    pub fn new(tokenizer: &TextTokenizer, params: WindowParams) -> Result<Self> {
        let max_len = tokenizer.max_len();
        let specials = tokenizer.pair_special_tokens();
        if params.max_question_len == 0 {
            return Err(Error::Invalid(
                "max_question_len must be at least 1 token".into(),
            ));
        }
        let needed = params.max_question_len + specials + params.stride;
        if max_len <= needed {
            return Err(Error::Invalid(format!(
                "max_len {max_len} leaves no room for context: a question of up to {} tokens, {specials} special tokens and a stride of {} need max_len above {needed}",
                params.max_question_len, params.stride
            )));
        }
        Ok(Self {
            plain: tokenizer.untruncated()?,
            // What `tokenizers` does with a pair when truncation is set: the special tokens
            // are counted out of max_length first.
            truncation: TruncationParams {
                max_length: max_len - specials,
                strategy: TruncationStrategy::OnlySecond,
                stride: params.stride,
                direction: TruncationDirection::Right,
            },
            max_question_len: params.max_question_len,
        })
    }

    /// The windows of `question` over `context`. An empty context (no tokens) is an error:
    /// there is nothing to find an answer in.
    pub fn encode(&self, question: &str, context: &str) -> Result<Windows> {
        let mut question = self.encode_part(question)?;
        let question_tokens_cut = question.len().saturating_sub(self.max_question_len);
        question.truncate(self.max_question_len, 0, TruncationDirection::Right);
        // `truncate` keeps the cut tokens as an overflow, which would become windows of its own.
        question.take_overflowing();
        let mut context = self.encode_part(context)?;
        if context.is_empty() {
            return Err(Error::Invalid(
                "the context is empty (it gives no tokens): there is no window to find an answer in"
                    .into(),
            ));
        }
        // The second text of a pair has token type 1; the parts cut from it keep their types.
        context.set_type_ids(vec![1; context.len()]);
        let (question, context) = truncate_encodings(question, Some(context), &self.truncation)
            .map_err(tok_err("cannot cut the context into windows"))?;
        // `plain` truncates nothing more: this adds the special tokens to every window.
        let mut first = self
            .plain
            .post_process(question, context, true)
            .map_err(tok_err("cannot add special tokens to a window"))?;
        let rest = first.take_overflowing();
        let windows = std::iter::once(first)
            .chain(rest)
            .map(|e| window(&e))
            .collect::<Result<Vec<_>>>()?;
        Ok(Windows {
            windows,
            question_tokens_cut,
        })
    }

    /// One text's tokens with character offsets, no special tokens, nothing cut.
    fn encode_part(&self, text: &str) -> Result<Encoding> {
        self.plain
            .encode_char_offsets(text, false)
            .map_err(tok_err("cannot tokenise"))
    }
}

/// A window from its encoding: the context is sequence 1.
fn window(enc: &Encoding) -> Result<Window> {
    let sequences = enc.get_sequence_ids();
    let context_offsets: Vec<Option<(usize, usize)>> = sequences
        .iter()
        .zip(enc.get_offsets())
        .map(|(s, &o)| (*s == Some(1)).then_some(o))
        .collect();
    let context_start = context_offsets
        .iter()
        .position(Option::is_some)
        .ok_or_else(|| Error::Tokenizer("a question–context window has no context token".into()))?;
    Ok(Window {
        encoded: encoded(enc),
        context_offsets,
        context_start,
    })
}

impl Window {
    /// The positions of the first and last tokens of a character span of the context, when
    /// this window holds a token starting where the span starts and a later one ending where
    /// it ends; `None` otherwise (the answer is not whole in this window, or is unaligned).
    pub fn answer_tokens(&self, answer: &Range<usize>) -> Option<(usize, usize)> {
        let offsets = &self.context_offsets;
        let start = offsets
            .iter()
            .position(|o| o.is_some_and(|o| o.0 == answer.start))?;
        let end = offsets
            .iter()
            .rposition(|o| o.is_some_and(|o| o.1 == answer.end))?;
        (start <= end).then_some((start, end))
    }
}

impl Windows {
    /// Where an answer, given as characters `answer` of `context` (end exclusive), lies in
    /// each window. Whitespace at its ends is ignored (no token covers whitespace). A span
    /// outside the context is an error.
    pub fn align_answer(&self, context: &str, answer: Range<usize>) -> Result<AnswerTokens> {
        let Some(span) = trimmed(context, answer)? else {
            return Ok(AnswerTokens::Unaligned);
        };
        // The windows cover the whole context, so together they hold every context token.
        let offsets = || {
            self.windows
                .iter()
                .flat_map(|w| w.context_offsets.iter().flatten())
        };
        let starts = offsets().any(|o| o.0 == span.start);
        let ends = offsets().any(|o| o.1 == span.end);
        if !(starts && ends) {
            return Ok(AnswerTokens::Unaligned);
        }
        Ok(AnswerTokens::Aligned(
            self.windows
                .iter()
                .map(|w| w.answer_tokens(&span))
                .collect(),
        ))
    }
}

/// `answer` without whitespace at its ends; `None` when nothing else is left. An answer
/// reaching past the context, or ending before it starts, is an error.
fn trimmed(context: &str, answer: Range<usize>) -> Result<Option<Range<usize>>> {
    let len = context.chars().count();
    if answer.start > answer.end || answer.end > len {
        return Err(Error::Invalid(format!(
            "answer characters {}..{} are not within the context ({len} characters)",
            answer.start, answer.end
        )));
    }
    let chars: Vec<char> = context
        .chars()
        .skip(answer.start)
        .take(answer.len())
        .collect();
    let lead = chars.iter().take_while(|c| c.is_whitespace()).count();
    if lead == chars.len() {
        return Ok(None);
    }
    let trail = chars.iter().rev().take_while(|c| c.is_whitespace()).count();
    Ok(Some(answer.start + lead..answer.end - trail))
}

impl AnswerCounts {
    /// Counts one answer.
    pub fn add(&mut self, answer: &AnswerTokens) {
        self.answers += 1;
        match answer {
            AnswerTokens::Unaligned => self.unaligned += 1,
            AnswerTokens::Aligned(w) if w.iter().all(Option::is_none) => self.in_no_window += 1,
            AnswerTokens::Aligned(_) => {}
        }
    }

    /// What a user should be told about the answers that teach no span; `None` when every
    /// answer lies whole in some window.
    pub fn warning(&self) -> Option<String> {
        if self.unaligned == 0 && self.in_no_window == 0 {
            return None;
        }
        Some(format!(
            "{} of {} answers teach no span: {} start or end inside a token (no run of tokens spells them), {} are longer than a window's context",
            self.unaligned + self.in_no_window,
            self.answers,
            self.unaligned,
            self.in_no_window
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tokenizer over a few whole words (WordPiece, lower-cased) and its window maker.
    fn windows(max_len: usize, stride: usize, max_question_len: usize) -> WindowTokenizer {
        let dir = tempfile::tempdir().unwrap();
        let words = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nwho\nwhat\nis\nit\na\nb\nc\nd\ne\nf\ng\nh\n##s\n.\n";
        std::fs::write(dir.path().join("vocab.txt"), words).unwrap();
        let tok = TextTokenizer::from_dir(dir.path(), max_len).unwrap();
        WindowTokenizer::new(
            &tok,
            WindowParams {
                stride,
                max_question_len,
            },
        )
        .unwrap()
    }

    fn ids(w: &Window) -> &[u32] {
        &w.encoded.ids
    }

    #[test]
    fn a_long_context_is_read_in_overlapping_windows_with_the_question_in_each() {
        // 10 - 3 specials - 2 question tokens: 5 context tokens a window, 2 shared.
        let wt = windows(10, 2, 4);
        let w = wt.encode("who is", "a b c d e f g h").unwrap();
        assert_eq!(w.question_tokens_cut, 0);
        let got: Vec<&[u32]> = w.windows.iter().map(ids).collect();
        // [CLS] who is [SEP] ... [SEP]; parts a–e, d–h.
        assert_eq!(
            got,
            [
                &[2, 5, 7, 3, 9, 10, 11, 12, 13, 3][..],
                &[2, 5, 7, 3, 12, 13, 14, 15, 16, 3][..],
            ]
        );
        for win in &w.windows {
            assert_eq!(win.encoded.type_ids, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
            assert_eq!(win.context_start, 4);
            assert_eq!(win.context_offsets[..4], [None; 4]);
            assert_eq!(win.context_offsets[9], None);
        }
        assert_eq!(w.windows[1].context_offsets[4], Some((6, 7)));
    }

    #[test]
    fn a_long_question_is_cut_so_that_every_window_keeps_context() {
        let wt = windows(8, 1, 3);
        let w = wt.encode("who is it a b c", "d e f").unwrap();
        assert_eq!(w.question_tokens_cut, 3);
        // 8 - 3 - 3: two context tokens a window, one shared: d–e, e–f.
        assert_eq!(w.windows.len(), 2);
        assert_eq!(ids(&w.windows[0]), [2, 5, 7, 8, 3, 12, 13, 3]);
        assert_eq!(ids(&w.windows[1]), [2, 5, 7, 8, 3, 13, 14, 3]);
        assert!(w.windows.iter().all(|w| w.context_start == 5));
    }

    #[test]
    fn a_context_shorter_than_the_question_is_one_window() {
        let wt = windows(16, 4, 8);
        let w = wt.encode("who is it a b c", "d").unwrap();
        assert_eq!(w.windows.len(), 1);
        assert_eq!(ids(&w.windows[0]), [2, 5, 7, 8, 9, 10, 11, 3, 12, 3]);
        assert_eq!(w.windows[0].context_start, 8);
        assert_eq!(w.windows[0].context_offsets[8], Some((0, 1)));
    }

    #[test]
    fn an_empty_context_and_parameters_without_room_are_clear_errors() {
        let wt = windows(10, 2, 3);
        for context in ["", "   "] {
            let err = wt.encode("who", context).unwrap_err().to_string();
            assert!(err.contains("the context is empty"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n").unwrap();
        let tok = TextTokenizer::from_dir(dir.path(), 10).unwrap();
        let params = |stride, max_question_len| WindowParams {
            stride,
            max_question_len,
        };
        // 4 + 3 + 3 = 10: no context token would be new in a window.
        let err = WindowTokenizer::new(&tok, params(3, 4)).err().unwrap();
        assert!(err.to_string().contains("need max_len above 10"), "{err}");
        assert!(WindowTokenizer::new(&tok, params(2, 4)).is_ok());
        assert!(WindowTokenizer::new(&tok, params(0, 0)).is_err());
    }

    #[test]
    fn an_answer_maps_to_the_windows_holding_it_whole() {
        // Context parts a–e and d–h (two tokens shared); "a b c d e f g h" in characters:
        // a 0..1, b 2..3, c 4..5, d 6..7, e 8..9, f 10..11, g 12..13, h 14..15.
        let wt = windows(10, 2, 4);
        let context = "a b c d e f g h";
        let w = wt.encode("who is", context).unwrap();
        let align = |r: Range<usize>| w.align_answer(context, r).unwrap();
        // "e" ends the first window and lies in the second's overlap: both hold it.
        assert_eq!(
            align(8..9),
            AnswerTokens::Aligned(vec![Some((8, 8)), Some((5, 5))])
        );
        // "c d e f" spans the two: neither holds it whole.
        assert_eq!(align(4..11), AnswerTokens::Aligned(vec![None, None]));
        // "e f" is whole only in the second.
        assert_eq!(
            align(8..11),
            AnswerTokens::Aligned(vec![None, Some((5, 6))])
        );
        // Whitespace at the ends is ignored; whitespace alone is unaligned.
        assert_eq!(align(1..4), AnswerTokens::Aligned(vec![Some((5, 5)), None]));
        assert_eq!(align(1..2), AnswerTokens::Unaligned);
        assert!(w.align_answer(context, 3..16).is_err());
        let mut counts = AnswerCounts::default();
        for a in [align(8..9), align(4..11), align(1..2)] {
            counts.add(&a);
        }
        assert_eq!(
            counts,
            AnswerCounts {
                answers: 3,
                unaligned: 1,
                in_no_window: 1
            }
        );
        assert!(counts.warning().unwrap().contains("2 of 3 answers"));
    }

    #[test]
    fn an_answer_inside_a_token_is_unaligned() {
        let wt = windows(16, 2, 8);
        // "its" is it ##s: "it" aligns, "t" and "ts" do not.
        let context = "its a";
        let w = wt.encode("what", context).unwrap();
        assert_eq!(
            w.align_answer(context, 0..2).unwrap(),
            AnswerTokens::Aligned(vec![Some((3, 3))])
        );
        assert_eq!(
            w.align_answer(context, 0..3).unwrap(),
            AnswerTokens::Aligned(vec![Some((3, 4))])
        );
        assert_eq!(
            w.align_answer(context, 1..3).unwrap(),
            AnswerTokens::Unaligned
        );
        assert_eq!(
            w.align_answer(context, 0..1).unwrap(),
            AnswerTokens::Unaligned
        );
    }
}
