//! The library's error type: every failure a user can cause says what went wrong and where.

use std::path::PathBuf;

/// Errors raised by the Retort library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the operation needs does not exist.
    #[error("missing file: {path} ({what})")]
    MissingFile { path: PathBuf, what: String },

    /// A file exists but could not be read. (`cause` is in the message, so it is no `source`:
    /// a chain printed whole, as the binary does, would say it twice.)
    #[error("cannot read {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    /// A file or directory could not be created or written (no permission, no space, a
    /// parent that is missing or takes no new entries, ...).
    #[error("cannot create {path} ({what}): {reason}")]
    Create {
        path: PathBuf,
        what: String,
        reason: String,
    },

    /// `config.json` could not be understood.
    #[error("invalid model config {path}: {message}")]
    Config { path: PathBuf, message: String },

    /// The checkpoint's `model_type` is not one Retort implements.
    #[error("unsupported model_type {found:?} in {path}; supported: {supported}")]
    UnsupportedModel {
        path: PathBuf,
        found: String,
        supported: String,
    },

    /// The weights file does not fit the config (missing tensor, wrong shape, ...).
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    /// The tokenizer could not be loaded or does not fit the model.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A data file is malformed; `line` is 1-based.
    #[error("{path}:{line}: {message}")]
    Data {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A request that cannot be carried out as asked (empty input, unknown label, ...).
    #[error("{0}")]
    Invalid(String),

    /// An error from the tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it happened on; a missing file gets its own message.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error, what: &str) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path,
                what: what.to_string(),
            }
        } else {
            Error::Io {
                path,
                cause: source,
            }
        }
    }

    /// Wraps an I/O error met while creating or writing `path`. Unlike [`Error::io`], a
    /// "not found" here is no missing input: a parent directory is missing, or (as in
    /// `/proc`) takes no new entries.
    pub fn create(path: impl Into<PathBuf>, source: std::io::Error, what: &str) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::NotFound => {
                ": a parent directory is missing or does not accept new entries"
            }
            _ => "",
        };
        Error::Create {
            path: path.into(),
            what: what.to_string(),
            reason: format!("{source}{hint}"),
        }
    }
}
