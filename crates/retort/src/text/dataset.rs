//! Labelled text datasets: GLUE-style TSV, CSV and JSONL.
//!
//! TSV and CSV need a header naming a text column (`sentence` or `text`), or the two columns
//! of a sentence pair (`sentence1` and `sentence2`, as GLUE's MRPC, RTE, STS-B; also
//! `question1`/`question2`, QQP, and `premise`/`hypothesis`, MNLI), and, for labelled data, a
//! `label` column. JSONL holds one object per line with the same keys. Every error names the
//! file and the 1-based line.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// Column / key names accepted for the text.
const TEXT_KEYS: &[&str] = &["sentence", "text"];
/// Column / key names of the two texts of a sentence pair, looked for before [`TEXT_KEYS`].
const PAIR_KEYS: &[(&str, &str)] = &[
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("premise", "hypothesis"),
];
const LABEL_KEY: &str = "label";

/// One example: a text (or the two of a sentence pair) and, if the data has one, its label
/// as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The text, or the first text of a pair.
    pub text: String,
    /// The second text of a sentence pair; `None` for single-text data.
    pub pair: Option<String>,
    pub label: Option<String>,
    /// 1-based line in the source file.
    pub line: usize,
}

/// A dataset read from a file.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub examples: Vec<Example>,
}

impl Dataset {
    /// Reads a `.tsv`, `.csv` or `.jsonl` file (chosen by extension). An empty file is an error.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e, "dataset"))?;
        let text = utf8_text(path, bytes)?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let examples = match ext.as_str() {
            "tsv" => parse_delimited(path, &text, b'\t')?,
            "csv" => parse_delimited(path, &text, b',')?,
            "jsonl" | "json" => parse_jsonl(path, &text)?,
            _ => {
                return Err(Error::Invalid(format!(
                    "{}: unknown data format {ext:?}; use .tsv, .csv or .jsonl",
                    path.display()
                )))
            }
        };
        if examples.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: the dataset has no examples",
                path.display()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            examples,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when there are no examples (never, for a dataset read from a file).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The texts (the first of each pair), in order.
    pub fn texts(&self) -> Vec<&str> {
        self.examples.iter().map(|e| e.text.as_str()).collect()
    }

    /// Resolves every label to a class index of `labels`; an unlabelled or unknown one is an error.
    pub fn label_ids(&self, labels: &[String]) -> Result<Vec<usize>> {
        self.examples
            .iter()
            .map(|e| {
                let raw = e.label.as_deref().ok_or_else(|| self.error(e.line, "example has no label"))?;
                label_index(labels, raw).ok_or_else(|| {
                    self.error(
                        e.line,
                        &format!("label {raw:?} is not one of the model's labels {labels:?} (or an index below {})", labels.len()),
                    )
                })
            })
            .collect()
    }

    fn error(&self, line: usize, message: &str) -> Error {
        Error::Data {
            path: self.path.clone(),
            line,
            message: message.to_string(),
        }
    }
}

/// A label written as a class name, or as a class index.
pub fn label_index(labels: &[String], raw: &str) -> Option<usize> {
    let raw = raw.trim();
    labels
        .iter()
        .position(|l| l == raw)
        .or_else(|| raw.parse::<usize>().ok().filter(|&i| i < labels.len()))
}

fn data_error(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// The file's text; invalid UTF-8 is an error naming its line.
pub(crate) fn utf8_text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        data_error(
            path,
            line_of(valid, valid.len()),
            format!(
                "not valid UTF-8 (byte {} of the line); save the file as UTF-8",
                valid.len() - line_start + 1
            ),
        )
    })
}

/// The 1-based line of byte `offset` in `bytes`: one plus the newlines before it. (The csv
/// crate's own line count is one short after CRLF line ends.)
fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Where an example's text is: one column, or the two columns of a sentence pair.
#[derive(Debug, Clone, Copy)]
enum TextColumns {
    Single(usize),
    Pair(usize, usize),
}

impl TextColumns {
    /// The example's text and (for a pair) second text from a record's fields.
    fn texts(self, field: impl Fn(usize) -> String) -> (String, Option<String>) {
        match self {
            TextColumns::Single(c) => (field(c), None),
            TextColumns::Pair(a, b) => (field(a), Some(field(b))),
        }
    }
}

/// Where the texts are among `names` (a header's columns, a JSON object's keys): a pair of
/// [`PAIR_KEYS`] first, else one of [`TEXT_KEYS`]. Half a pair is an error: the other text
/// would be silently missing.
fn text_columns(names: &[&str]) -> std::result::Result<TextColumns, String> {
    let find = |name: &str| names.iter().position(|h| h.trim() == name);
    for (first, second) in PAIR_KEYS {
        match (find(first), find(second)) {
            (Some(a), Some(b)) => return Ok(TextColumns::Pair(a, b)),
            (None, None) => {}
            _ => {
                return Err(format!(
                    "{first:?} and {second:?} name the two texts of a sentence pair, but only one of them is there"
                ))
            }
        }
    }
    TEXT_KEYS
        .iter()
        .find_map(|k| find(k))
        .map(TextColumns::Single)
        .ok_or_else(|| {
            let pairs: Vec<String> = PAIR_KEYS
                .iter()
                .map(|(a, b)| format!("{a} + {b}"))
                .collect();
            format!(
                "no text column (one of {TEXT_KEYS:?}) nor the two columns of a sentence pair ({})",
                pairs.join(", ")
            )
        })
}

/// The text columns and (optional) label column of a header.
fn header_columns(path: &Path, header: &[&str]) -> Result<(TextColumns, Option<usize>)> {
    let texts = text_columns(header)
        .map_err(|e| data_error(path, 1, format!("the header {header:?}: {e}")))?;
    let label = header.iter().position(|h| h.trim() == LABEL_KEY);
    Ok((texts, label))
}

fn parse_delimited(path: &Path, text: &str, delimiter: u8) -> Result<Vec<Example>> {
    // GLUE TSV files are not quoted: a `"` is part of the sentence, so quoting is off for TSV.
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(delimiter != b'\t')
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(r) => r.map_err(|e| data_error(path, 1, e.to_string()))?,
        None => {
            return Err(Error::Invalid(format!(
                "{}: the file is empty",
                path.display()
            )))
        }
    };
    let header: Vec<&str> = header.iter().collect();
    let (text_cols, label_col) = header_columns(path, &header)?;
    let mut examples = Vec::new();
    // Lines are counted from byte offsets, incrementally (records come in file order).
    let mut lines = LineCounter::new(text.as_bytes());
    for record in records {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| lines.line_at(p.byte() as usize));
            data_error(path, line, e.to_string())
        })?;
        let line = record
            .position()
            .map_or(0, |p| lines.line_at(p.byte() as usize));
        if record.len() == 1 && record[0].trim().is_empty() {
            continue; // blank line
        }
        if record.len() != header.len() {
            return Err(data_error(
                path,
                line,
                format!(
                    "expected {} fields like the header, found {}",
                    header.len(),
                    record.len()
                ),
            ));
        }
        let label = label_col.map(|c| record[c].trim().to_string());
        if label.as_deref() == Some("") {
            return Err(data_error(path, line, "empty label"));
        }
        let (text, pair) = text_cols.texts(|c| record[c].to_string());
        examples.push(Example {
            text,
            pair,
            label,
            line,
        });
    }
    Ok(examples)
}

/// Line numbers of increasing byte offsets, counted once through the text.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The 1-based line of the record that starts at byte `offset` (at or after the previous
    /// one asked for). After a CRLF the csv crate starts the next record at the `\n`, and
    /// after blank lines at the first of them: the record's line is that of its first byte.
    fn line_at(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.bytes.len());
        let offset = offset
            + self.bytes[offset..]
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
        if offset < self.offset {
            return line_of(self.bytes, offset);
        }
        self.line += self.bytes[self.offset..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = offset;
        self.line
    }
}

fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<Example>> {
    let mut examples = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| data_error(path, line, format!("invalid JSON: {e}")))?;
        let (text, pair) = json_texts(&v).map_err(|e| data_error(path, line, e))?;
        let label = match v.get(LABEL_KEY) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
            Some(other) => {
                return Err(data_error(
                    path,
                    line,
                    format!("label should be a string or a non-negative integer, found {other}"),
                ))
            }
        };
        examples.push(Example {
            text,
            pair,
            label,
            line,
        });
    }
    Ok(examples)
}

/// The text (or the two texts of a pair) of a JSON object, found as in a header.
fn json_texts(v: &Value) -> std::result::Result<(String, Option<String>), String> {
    let keys: Vec<&str> = match v.as_object() {
        Some(o) => o.keys().map(String::as_str).collect(),
        None => return Err(format!("expected a JSON object, found {v}")),
    };
    let string = |c: usize| -> std::result::Result<String, String> {
        v[keys[c]]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{:?} should be a string, found {}", keys[c], v[keys[c]]))
    };
    match text_columns(&keys)? {
        TextColumns::Single(c) => Ok((string(c)?, None)),
        TextColumns::Pair(a, b) => Ok((string(a)?, Some(string(b)?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_glue_tsv_with_quotes() {
        let (_d, p) = write("a.tsv", "sentence\tlabel\nit 's \"great\" \t1\nbad .\t0\n");
        let ds = Dataset::read(&p).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.examples[0].text, "it 's \"great\" ");
        assert_eq!(ds.examples[1].line, 3);
        let labels = vec!["negative".to_string(), "positive".to_string()];
        assert_eq!(ds.label_ids(&labels).unwrap(), vec![1, 0]);
    }

    #[test]
    fn malformed_tsv_row_names_its_line() {
        let (_d, p) = write("a.tsv", "sentence\tlabel\nfine\t1\nno label here\n");
        let err = Dataset::read(&p).unwrap_err().to_string();
        assert!(err.contains("a.tsv:3:"), "{err}");
        assert!(err.contains("expected 2 fields"), "{err}");
    }

    #[test]
    fn reads_csv_and_jsonl() {
        let (_d, p) = write("a.csv", "label,text\npos,\"a, b\"\n");
        let ds = Dataset::read(&p).unwrap();
        assert_eq!(ds.examples[0].text, "a, b");
        assert_eq!(ds.examples[0].label.as_deref(), Some("pos"));
        let (_d, p) = write(
            "a.jsonl",
            "{\"text\": \"x\", \"label\": 1}\n\n{\"sentence\": \"y\"}\n",
        );
        let ds = Dataset::read(&p).unwrap();
        assert_eq!(ds.examples[0].label.as_deref(), Some("1"));
        assert_eq!(ds.examples[1].label, None);
        let (_d, p) = write("b.jsonl", "{\"text\": \"x\"}\n{oops\n");
        assert!(Dataset::read(&p)
            .unwrap_err()
            .to_string()
            .contains("b.jsonl:2:"));
    }

    #[test]
    fn empty_and_headerless_files_are_errors() {
        let (_d, p) = write("a.tsv", "");
        assert!(Dataset::read(&p).unwrap_err().to_string().contains("empty"));
        let (_d, p) = write("a.tsv", "sentence\tlabel\n");
        assert!(Dataset::read(&p)
            .unwrap_err()
            .to_string()
            .contains("no examples"));
        let (_d, p) = write("a.tsv", "words\tlabel\nx\t1\n");
        assert!(Dataset::read(&p)
            .unwrap_err()
            .to_string()
            .contains("no text column"));
    }

    #[test]
    fn crlf_files_name_the_right_line() {
        let (_d, p) = write("c.tsv", "sentence\tlabel\r\nfine\t1\r\nno label\r\n");
        let err = Dataset::read(&p).unwrap_err().to_string();
        assert!(err.contains("c.tsv:3:"), "{err}");
        let (_d, p) = write("c.csv", "text,label\r\na,1\r\nb,2\r\n");
        let ds = Dataset::read(&p).unwrap();
        assert_eq!(ds.examples[1].line, 3);
        assert_eq!(ds.examples[1].text, "b");
        let (_d, p) = write("c.jsonl", "{\"text\": \"a\"}\r\n{oops\r\n");
        let err = Dataset::read(&p).unwrap_err().to_string();
        assert!(err.contains("c.jsonl:2:"), "{err}");
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.tsv");
        std::fs::write(&p, b"sentence\tlabel\nfine\t1\nbad \xff\t0\n").unwrap();
        let err = Dataset::read(&p).unwrap_err().to_string();
        assert!(
            err.contains("u.tsv:3: not valid UTF-8 (byte 5 of the line)"),
            "{err}"
        );
    }

    #[test]
    fn reads_sentence_pairs_from_tsv_csv_and_jsonl() {
        let (_d, p) = write(
            "p.tsv",
            "index\tsentence1\tsentence2\tlabel\n0\tA man sings.\tA man is singing.\tentailment\n",
        );
        let ex = &Dataset::read(&p).unwrap().examples[0];
        assert_eq!(ex.text, "A man sings.");
        assert_eq!(ex.pair.as_deref(), Some("A man is singing."));
        assert_eq!(ex.label.as_deref(), Some("entailment"));
        let (_d, p) = write("p.csv", "question1,question2,label\n\"a, b\",c,1\n");
        let ex = &Dataset::read(&p).unwrap().examples[0];
        assert_eq!((ex.text.as_str(), ex.pair.as_deref()), ("a, b", Some("c")));
        let (_d, p) = write(
            "p.jsonl",
            "{\"premise\": \"x\", \"hypothesis\": \"y\", \"label\": 0}\n{\"text\": \"z\"}\n",
        );
        let ds = Dataset::read(&p).unwrap();
        assert_eq!(ds.examples[0].pair.as_deref(), Some("y"));
        assert_eq!(ds.examples[1].pair, None);
        assert_eq!(ds.texts(), ["x", "z"]);
    }

    #[test]
    fn half_a_pair_is_an_error() {
        let (_d, p) = write("h.tsv", "sentence1\tsentence\tlabel\na\tb\t1\n");
        let err = Dataset::read(&p).unwrap_err().to_string();
        assert!(
            err.contains("h.tsv:1:") && err.contains("only one of them"),
            "{err}"
        );
        let (_d, p) = write(
            "h.jsonl",
            "{\"sentence1\": \"a\", \"sentence2\": \"b\"}\n{\"sentence1\": \"a\", \"sentence2\": 3}\n",
        );
        let err = Dataset::read(&p).unwrap_err().to_string();
        assert!(
            err.contains("h.jsonl:2:") && err.contains("should be a string"),
            "{err}"
        );
    }

    #[test]
    fn unknown_label_is_an_error_with_line() {
        let (_d, p) = write("a.tsv", "sentence\tlabel\nx\t7\n");
        let ds = Dataset::read(&p).unwrap();
        let err = ds
            .label_ids(&["a".into(), "b".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.tsv:2:") && err.contains("\"7\""), "{err}");
    }
}
