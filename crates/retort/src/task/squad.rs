//! SQuAD v1.1 files: the questions with their contexts and gold answers, and predictions.
//!
//! A data file is one JSON object: `{"data": [{"title", "paragraphs": [{"context", "qas":
//! [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}` (other keys, such as
//! `version`, are ignored). It is read into a flat list of [`Question`]s, each holding its
//! paragraph's context (shared, not copied). `answer_start` counts characters (Unicode code
//! points, as Python's `str` indexes them), and every answer is checked to stand at its
//! `answer_start` in the context: a span-extraction task trains on those offsets, so a wrong
//! one is an error, not a silently wrong label.
//!
//! Every error names the file and the line of the JSON value at fault (the official files
//! are one line long), and, below the article level, the question id. Ids are not required
//! to be unique: the rebuilt training set repeats them. Scoring predictions keyed by id does
//! need them unique, and checks that itself.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// A gold answer: its text, and where it starts in the context in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    /// Character (code point) offset of the answer's first character in the context.
    pub start: usize,
}

impl Answer {
    /// Character offset one past the answer's last character in the context.
    pub fn end(&self) -> usize {
        self.start + self.text.chars().count()
    }
}

/// One question about one paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: String,
    pub question: String,
    /// The paragraph's text, shared by all its questions.
    pub context: Arc<str>,
    /// The title of the paragraph's article.
    pub title: Arc<str>,
    /// The paragraph's index in the file (counted over all articles): questions with the same
    /// index share one context.
    pub paragraph: usize,
    /// The gold answers, in file order (several annotators may give the same one).
    pub answers: Vec<Answer>,
}

/// Whether every question must have a gold answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gold {
    /// Training and evaluation data: SQuAD v1.1 gives every question at least one answer, so
    /// a question without one is an error.
    Required,
    /// Questions to answer: `answers` may be missing or empty.
    Optional,
}

/// Reads a SQuAD v1.1 data file.
pub fn read_squad(path: &Path, gold: Gold) -> Result<Vec<Question>> {
    let text = read_text(path, "SQuAD file")?;
    parse_squad(path, &text, gold)
}

/// Parses SQuAD v1.1 JSON; `path` is only used in error messages.
pub fn parse_squad(path: &Path, text: &str, gold: Gold) -> Result<Vec<Question>> {
    let json = Json::parse(path, text)?;
    let file = json.object(json.root, "the file")?;
    let data = json.array(json.field(&file, json.root, "data", "the file")?, "`data`")?;
    let mut reader = Reader {
        json: &json,
        gold,
        questions: Vec::new(),
        paragraphs: 0,
    };
    for (i, article) in data.into_iter().enumerate() {
        reader.article(i, article)?;
    }
    Ok(reader.questions)
}

/// Reads predictions as the official script takes them: one JSON object `{id: answer text}`.
/// (A repeated id keeps its last answer, as Python's `json` does.)
pub fn read_predictions(path: &Path) -> Result<HashMap<String, String>> {
    let text = read_text(path, "predictions file")?;
    let json = Json::parse(path, &text)?;
    let what = "the predictions file ({id: answer text})";
    json.object(json.root, what)?
        .into_iter()
        .map(|(id, answer)| {
            let answer = json.string(answer, &format!("the prediction for question {id:?}"))?;
            Ok((id, answer))
        })
        .collect()
}

/// The file as UTF-8 text (an invalid byte is reported at its line), without a byte-order
/// mark.
fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e, what))?;
    let text = crate::text::dataset::utf8_text(path, bytes)?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Walks the articles, paragraphs and questions of one file.
struct Reader<'j, 'a> {
    json: &'j Json<'a>,
    gold: Gold,
    questions: Vec<Question>,
    /// Paragraphs read so far, over all articles.
    paragraphs: usize,
}

impl<'a> Reader<'_, 'a> {
    fn article(&mut self, index: usize, raw: &'a RawValue) -> Result<()> {
        let json = self.json;
        let place = format!("article {index}");
        let article = json.object(raw, &place)?;
        let title = json.field(&article, raw, "title", &place)?;
        let title: Arc<str> = json.string(title, &format!("the title of {place}"))?.into();
        let place = format!("article {index} ({title:?})");
        let paragraphs = json.field(&article, raw, "paragraphs", &place)?;
        let paragraphs = json.array(paragraphs, &format!("`paragraphs` of {place}"))?;
        for (i, paragraph) in paragraphs.into_iter().enumerate() {
            let place = format!("paragraph {i} of article {title:?}");
            self.paragraph(&place, &title, paragraph)?;
            self.paragraphs += 1;
        }
        Ok(())
    }

    fn paragraph(&mut self, place: &str, title: &Arc<str>, raw: &'a RawValue) -> Result<()> {
        let json = self.json;
        let paragraph = json.object(raw, place)?;
        let qas = json.field(&paragraph, raw, "qas", place)?;
        let qas = json.array(qas, &format!("`qas` of {place}"))?;
        let context = json.field(&paragraph, raw, "context", place)?;
        let text = json.string(context, &format!("the context of {place}"))?;
        if text.trim().is_empty() {
            let first = qas.first().map_or_else(
                || "no questions".to_string(),
                |q| format!("first question {}", id_hint(json, q)),
            );
            return Err(json.error(context, format!("empty context in {place} ({first})")));
        }
        let paragraph = Paragraph {
            place: place.to_string(),
            title: title.clone(),
            index: self.paragraphs,
            starts: char_starts(&text),
            context: text.into(),
        };
        for (i, qa) in qas.into_iter().enumerate() {
            let question = self.question(&paragraph, i, qa)?;
            self.questions.push(question);
        }
        Ok(())
    }

    fn question(&self, paragraph: &Paragraph, index: usize, raw: &'a RawValue) -> Result<Question> {
        let json = self.json;
        let place = format!("question {index} of {}", paragraph.place);
        let qa = json.object(raw, &place)?;
        let id = json.field(&qa, raw, "id", &place)?;
        let id = json.string(id, &format!("the id of {place}"))?;
        let place = format!("question {id:?} ({})", paragraph.place);
        let question = json.field(&qa, raw, "question", &place)?;
        let question = json.string(question, &format!("the text of {place}"))?;
        let answers = match (qa.get("answers"), self.gold) {
            (Some(&answers), _) => json.array(answers, &format!("`answers` of {place}"))?,
            (None, Gold::Optional) => Vec::new(),
            (None, Gold::Required) => return Err(json.error(raw, format!("{place}: no `answers`"))),
        };
        if answers.is_empty() && self.gold == Gold::Required {
            return Err(json.error(
                raw,
                format!("{place} has no answer (SQuAD v1.1 gives every question at least one)"),
            ));
        }
        let answers = answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| answer(json, &format!("answer {i} of {place}"), a, paragraph))
            .collect::<Result<Vec<Answer>>>()?;
        Ok(Question {
            id,
            question,
            context: paragraph.context.clone(),
            title: paragraph.title.clone(),
            paragraph: paragraph.index,
            answers,
        })
    }
}

/// What a paragraph's questions share.
struct Paragraph {
    /// "paragraph P of article TITLE", for messages.
    place: String,
    title: Arc<str>,
    /// Its index in the file.
    index: usize,
    context: Arc<str>,
    /// The byte offset of each character of the context (see [`char_starts`]).
    starts: Vec<usize>,
}

/// One answer, checked against the context: a non-empty text found at `answer_start`.
fn answer(json: &Json, place: &str, raw: &RawValue, paragraph: &Paragraph) -> Result<Answer> {
    let answer = json.object(raw, place)?;
    let text = json.field(&answer, raw, "text", place)?;
    let text = json.string(text, &format!("the text of {place}"))?;
    let start = json.field(&answer, raw, "answer_start", place)?;
    let start = json.index(start, &format!("`answer_start` of {place}"))?;
    if text.is_empty() {
        return Err(json.error(raw, format!("{place}: empty answer text")));
    }
    let chars = paragraph.starts.len() - 1;
    if start >= chars {
        let message = format!(
            "{place}: answer_start {start} is past the end of the context ({chars} characters)"
        );
        return Err(json.error(raw, message));
    }
    let rest = &paragraph.context[paragraph.starts[start]..];
    if !rest.starts_with(&text) {
        let found: String = rest.chars().take(text.chars().count()).collect();
        let message = format!(
            "{place}: the answer {text:?} is not at its answer_start {start}: \
             the context there reads {found:?}"
        );
        return Err(json.error(raw, message));
    }
    Ok(Answer { text, start })
}

/// The byte offset of each character of `text`, then its length: `starts[i]` is where
/// character `i` begins, for turning character offsets into byte offsets.
fn char_starts(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(byte, _)| byte)
        .chain(std::iter::once(text.len()))
        .collect()
}

/// `"ID"` for a question whose id can be read, else `without an id`; for messages about its
/// paragraph.
fn id_hint(json: &Json, qa: &RawValue) -> String {
    let id = json
        .object(qa, "")
        .ok()
        .and_then(|qa| qa.get("id").copied())
        .and_then(|id| json.string(id, "").ok());
    match id {
        Some(id) => format!("{id:?}"),
        None => "without an id".to_string(),
    }
}

/// A JSON text kept whole, walked one level at a time through `RawValue`s that point into
/// it: each value's line is then known, for error messages.
struct Json<'a> {
    path: &'a Path,
    text: &'a str,
    root: &'a RawValue,
}

/// A JSON object's members, each left unparsed.
type Object<'a> = BTreeMap<String, &'a RawValue>;

impl<'a> Json<'a> {
    /// Checks that `text` is JSON; a syntax error is reported at its line and column.
    fn parse(path: &'a Path, text: &'a str) -> Result<Self> {
        let root = serde_json::from_str(text).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line: e.line().max(1),
            message: format!("not valid JSON (column {}): {}", e.column(), message_of(&e)),
        })?;
        Ok(Json { path, text, root })
    }

    /// An error at the line where `raw` starts.
    fn error(&self, raw: &RawValue, message: String) -> Error {
        let offset = (raw.get().as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize);
        let before = self.text.as_bytes().get(..offset).unwrap_or_default();
        Error::Data {
            path: self.path.to_path_buf(),
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            message,
        }
    }

    /// An error saying `what` should be `expected` but is something else.
    fn wrong_kind(&self, raw: &RawValue, what: &str, expected: &str) -> Error {
        self.error(
            raw,
            format!("{what} should be {expected}, found {}", kind(raw)),
        )
    }

    fn object(&self, raw: &'a RawValue, what: &str) -> Result<Object<'a>> {
        if kind(raw) != "an object" {
            return Err(self.wrong_kind(raw, what, "an object"));
        }
        serde_json::from_str(raw.get())
            .map_err(|e| self.error(raw, format!("{what}: {}", message_of(&e))))
    }

    fn array(&self, raw: &'a RawValue, what: &str) -> Result<Vec<&'a RawValue>> {
        if kind(raw) != "a list" {
            return Err(self.wrong_kind(raw, what, "a list"));
        }
        serde_json::from_str(raw.get())
            .map_err(|e| self.error(raw, format!("{what}: {}", message_of(&e))))
    }

    fn string(&self, raw: &RawValue, what: &str) -> Result<String> {
        if kind(raw) != "a string" {
            return Err(self.wrong_kind(raw, what, "a string"));
        }
        serde_json::from_str(raw.get())
            .map_err(|e| self.error(raw, format!("{what}: {}", message_of(&e))))
    }

    /// A non-negative integer that fits a `usize`.
    fn index(&self, raw: &RawValue, what: &str) -> Result<usize> {
        serde_json::from_str::<u64>(raw.get())
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.wrong_kind(raw, what, "a non-negative integer"))
    }

    /// The member `key` of an object (`raw`), or an error saying it is missing from `what`.
    fn field(
        &self,
        object: &Object<'a>,
        raw: &RawValue,
        key: &str,
        what: &str,
    ) -> Result<&'a RawValue> {
        object
            .get(key)
            .copied()
            .ok_or_else(|| self.error(raw, format!("{what}: no `{key}`")))
    }
}

/// What kind of JSON value `raw` is, from its first character (it is valid JSON).
fn kind(raw: &RawValue) -> String {
    match raw.get().chars().next() {
        Some('{') => "an object".into(),
        Some('[') => "a list".into(),
        Some('"') => "a string".into(),
        Some('t' | 'f') => "a boolean".into(),
        Some('n') => "null".into(),
        _ => format!("the number {}", raw.get()),
    }
}

/// A serde_json error's message without its " at line L column C" (ours names the line).
fn message_of(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&position).unwrap_or(&full).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: &serde_json::Value, gold: Gold) -> Result<Vec<Question>> {
        let text = serde_json::to_string_pretty(value).unwrap();
        parse_squad(Path::new("s.json"), &text, gold)
    }

    /// One article, one paragraph, one question with `answers`.
    fn file_with(context: &str, answers: serde_json::Value) -> serde_json::Value {
        json!({"version": "1.1", "data": [{"title": "T", "paragraphs": [{
            "context": context,
            "qas": [{"id": "q1", "question": "Which?", "answers": answers}]}]}]})
    }

    fn error_of(value: &serde_json::Value) -> String {
        parse(value, Gold::Required).unwrap_err().to_string()
    }

    #[test]
    fn a_small_file_reads_with_character_offsets() {
        // "🦀" is one character (two UTF-16 units, four bytes): offsets count characters.
        let context = "Der 🦀 Krebs lebt in Köln. Köln liegt am Rhein.";
        let file = json!({"data": [
        {"title": "Krebs", "paragraphs": [{"context": context, "qas": [
            {"id": "a", "question": "Wo?", "answers": [
                {"text": "Köln", "answer_start": 20},
                {"text": "in Köln", "answer_start": 17}]},
            {"id": "b", "question": "Woran?", "answers": [{"text": "Rhein", "answer_start": 40}]}
        ]}]},
        {"title": "Zwei", "paragraphs": [
            {"context": "x", "qas": []},
            {"context": "y z", "qas": [{"id": "c", "question": "?", "answers": [{"text": "z", "answer_start": 2}]}]}
        ]}]});
        let questions = parse(&file, Gold::Required).unwrap();
        let ids: Vec<&str> = questions.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let (a, b, c) = (&questions[0], &questions[1], &questions[2]);
        assert_eq!(
            a.answers[0],
            Answer {
                text: "Köln".into(),
                start: 20
            }
        );
        assert_eq!(a.answers[0].end(), 24);
        let span: String = context.chars().skip(17).take(7).collect();
        assert_eq!(span, a.answers[1].text);
        assert!(
            Arc::ptr_eq(&a.context, &b.context),
            "one context per paragraph"
        );
        assert_eq!(
            (&*a.title, a.paragraph, a.question.as_str()),
            ("Krebs", 0, "Wo?")
        );
        assert_eq!((&*c.title, c.paragraph, &*c.context), ("Zwei", 2, "y z"));
    }

    #[test]
    fn a_file_that_is_not_squad_says_what_is_missing() {
        assert!(error_of(&json!({"version": "1.1"})).contains("the file: no `data`"));
        let err = error_of(&json!([1, 2]));
        assert!(
            err.contains("the file should be an object, found a list"),
            "{err}"
        );
        let err = error_of(&json!({"data": {"title": "T"}}));
        assert!(
            err.contains("`data` should be a list, found an object"),
            "{err}"
        );
        let err = error_of(&json!({"data": [{"title": "T"}]}));
        assert!(err.contains("article 0 (\"T\"): no `paragraphs`"), "{err}");
        let err = error_of(&json!({"data": [{"title": "T", "paragraphs": [{"context": "c"}]}]}));
        assert!(
            err.contains("paragraph 0 of article \"T\": no `qas`"),
            "{err}"
        );
        let no_id = json!({"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [
            {"question": "?", "answers": []}]}]}]});
        let err = error_of(&no_id);
        assert!(
            err.contains("question 0 of paragraph 0 of article \"T\": no `id`"),
            "{err}"
        );
    }

    #[test]
    fn a_misplaced_answer_shows_both_texts_and_the_id() {
        let file = file_with("one two three", json!([{"text": "two", "answer_start": 5}]));
        let err = error_of(&file);
        assert!(err.starts_with("s.json:"), "{err}");
        assert!(err.contains("question \"q1\""), "{err}");
        assert!(
            err.contains(
                "the answer \"two\" is not at its answer_start 5: the context there reads \"wo \""
            ),
            "{err}"
        );
        let file = file_with("one two", json!([{"text": "two", "answer_start": 7}]));
        let err = error_of(&file);
        assert!(
            err.contains("\"q1\"")
                && err.contains("answer_start 7 is past the end of the context (7 characters)"),
            "{err}"
        );
        let file = file_with("one two", json!([{"text": "two", "answer_start": "4"}]));
        let err = error_of(&file);
        assert!(
            err.contains("`answer_start` of answer 0 of question \"q1\""),
            "{err}"
        );
        assert!(
            err.contains("should be a non-negative integer, found a string"),
            "{err}"
        );
        let file = file_with("one two", json!([{"text": "two", "answer_start": -1}]));
        assert!(error_of(&file).contains("found the number -1"));
        let file = file_with("one two", json!([{"text": "", "answer_start": 0}]));
        assert!(error_of(&file).contains(
            "answer 0 of question \"q1\" (paragraph 0 of article \"T\"): empty answer text"
        ));
    }

    #[test]
    fn an_empty_context_names_its_first_question() {
        let err = error_of(&file_with(" \n", json!([{"text": "x", "answer_start": 0}])));
        assert!(
            err.contains("empty context in paragraph 0 of article \"T\" (first question \"q1\")"),
            "{err}"
        );
    }

    #[test]
    fn answers_are_required_unless_told_otherwise() {
        let err = error_of(&file_with("c", json!([])));
        assert!(
            err.contains("question \"q1\" (paragraph 0 of article \"T\") has no answer"),
            "{err}"
        );
        let no_key = json!({"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [
            {"id": "q2", "question": "?"}]}]}]});
        assert!(error_of(&no_key)
            .contains("question \"q2\" (paragraph 0 of article \"T\"): no `answers`"));
        assert!(parse(&no_key, Gold::Optional).unwrap()[0]
            .answers
            .is_empty());
        assert!(parse(&file_with("c", json!([])), Gold::Optional).is_ok());
    }

    #[test]
    fn errors_name_the_line_of_the_value_at_fault() {
        let text = "{\"data\": [{\"title\": \"T\", \"paragraphs\": [{\n\
                    \"context\": \"abc\",\n\
                    \"qas\": [{\"id\": \"q7\", \"question\": \"?\",\n\
                    \"answers\": [\n\
                    {\"text\": \"b\", \"answer_start\": 0}]}]}]}]}";
        let err = parse_squad(Path::new("s.json"), text, Gold::Required)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("s.json:5: answer 0 of question \"q7\""),
            "{err}"
        );
        let err = parse_squad(Path::new("s.json"), "{\"data\": [\n1,,]}", Gold::Required)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("s.json:2: not valid JSON (column 3)"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, b"{\"data\": [\n\"\xff\"]}").unwrap();
        let err = read_squad(&path, Gold::Required).unwrap_err().to_string();
        assert!(err.contains("bad.json:2: not valid UTF-8"), "{err}");
        let err = read_squad(&dir.path().join("none.json"), Gold::Required).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
        // A byte-order mark is no error.
        let bom = format!(
            "\u{feff}{}",
            file_with("ab", json!([{"text": "b", "answer_start": 1}]))
        );
        std::fs::write(&path, bom).unwrap();
        assert_eq!(read_squad(&path, Gold::Required).unwrap().len(), 1);
    }

    #[test]
    fn predictions_are_an_object_of_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, r#"{"a": "Köln", "b": "", "a": "last"}"#).unwrap();
        let predictions = read_predictions(&path).unwrap();
        assert_eq!(predictions.len(), 2);
        assert_eq!(
            (predictions["a"].as_str(), predictions["b"].as_str()),
            ("last", "")
        );
        std::fs::write(&path, "{\"a\": \"x\",\n\"b\": 3}").unwrap();
        let err = read_predictions(&path).unwrap_err().to_string();
        assert!(err.contains("p.json:2: the prediction for question \"b\" should be a string, found the number 3"), "{err}");
        std::fs::write(&path, "[\"x\"]").unwrap();
        let err = read_predictions(&path).unwrap_err().to_string();
        assert!(err.contains("should be an object, found a list"), "{err}");
    }
}
