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

#[cfg(test)]
mod tests {
    use super::*;

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
