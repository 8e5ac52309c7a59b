//! Text files of one item per line (plain text, parallel corpora, translations), read as
//! sacrebleu and most MT tools read them: split at `\n`, UTF-8 checked line by line.

use std::path::Path;

use crate::error::{Error, Result};

/// The lines of a UTF-8 text file (split at `\n`, as sacrebleu reads them; a final newline
/// ends the last line rather than starting an empty one).
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e, "text"))?;
    split_lines(&bytes)
        .map_err(|line| Error::Invalid(format!("{}:{line}: not valid UTF-8", path.display())))
}

/// `bytes` as lines; `Err(line number)` at the first line that is not UTF-8.
pub fn split_lines(bytes: &[u8]) -> std::result::Result<Vec<String>, usize> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            std::str::from_utf8(line)
                .map(str::to_string)
                .map_err(|_| i + 1)
        })
        .collect()
}

/// A parallel corpus: line `i` of the source file translates to line `i` of the target file.
#[derive(Debug, Clone, PartialEq)]
pub struct Parallel {
    pub source: Vec<String>,
    pub target: Vec<String>,
}

/// Reads two files aligned by line. Different line counts are an error naming both files and
/// their counts; so is a line empty (or only whitespace) on either side, named by file and
/// line, with how many there are: a pair with nothing to translate or nothing to learn
/// from is a broken corpus, not a pair to skip silently.
pub fn read_parallel(source: &Path, target: &Path) -> Result<Parallel> {
    let (src, tgt) = (read_lines(source)?, read_lines(target)?);
    if src.len() != tgt.len() {
        return Err(Error::Invalid(format!(
            "{} has {} lines but {} has {}: a parallel corpus is aligned line by line",
            source.display(),
            src.len(),
            target.display(),
            tgt.len()
        )));
    }
    if src.is_empty() {
        return Err(Error::Invalid(format!(
            "{} and {} hold no sentence pair",
            source.display(),
            target.display()
        )));
    }
    for (path, lines) in [(source, &src), (target, &tgt)] {
        let empty: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].trim().is_empty())
            .collect();
        if let Some(&first) = empty.first() {
            return Err(Error::Invalid(format!(
                "{}:{}: empty line ({} empty line(s) in all): every line must hold a sentence",
                path.display(),
                first + 1,
                empty.len()
            )));
        }
    }
    Ok(Parallel {
        source: src,
        target: tgt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parallel_corpus_is_aligned_and_has_no_empty_line() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let en = write("train.en", "A dog.\nTwo cats.\n");
        let de = write("train.de", "Ein Hund.\nZwei Katzen.\n");
        let p = read_parallel(&en, &de).unwrap();
        assert_eq!(p.target, ["Ein Hund.", "Zwei Katzen."]);
        let short = write("short.de", "Ein Hund.\n");
        let err = read_parallel(&en, &short).unwrap_err().to_string();
        assert!(
            err.contains("train.en has 2 lines but") && err.contains("short.de has 1"),
            "{err}"
        );
        let gap = write("gap.de", "Ein Hund.\n  \n");
        let err = read_parallel(&en, &gap).unwrap_err().to_string();
        assert!(err.contains("gap.de:2: empty line (1 empty"), "{err}");
        let none = write("none.en", "");
        let err = read_parallel(&none, &write("none.de", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hold no sentence pair"), "{err}");
    }

    #[test]
    fn lines_split_at_newlines_and_name_the_first_invalid_one() {
        assert_eq!(split_lines(b"a\nb\n").unwrap(), ["a", "b"]);
        assert_eq!(split_lines(b"a\n\nb").unwrap(), ["a", "", "b"]);
        assert_eq!(split_lines(b"a\r\n").unwrap(), ["a\r"]);
        assert!(split_lines(b"").unwrap().is_empty());
        assert_eq!(split_lines(b"\n").unwrap(), [""]);
        assert_eq!(split_lines(b"ok\n\xff\n"), Err(2));
    }
}
