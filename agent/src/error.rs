//! Engine errors.
//!
//! Policy: each variant carries the context an IT contractor needs to act ("the repository
//! at X has no config: is this the right path?"), never a secret; file paths appear only
//! in variants the interactive CLI prints to the user's own terminal, never in daemon logs.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Format(#[from] arka_proto::Error),
    #[error("storage: {op} {key}: {source}{}", advice.map(|a| format!("\n  hint: {a}")).unwrap_or_default())]
    Store { op: &'static str, key: String, source: Box<object_store::Error>, advice: Option<&'static str> },
    #[error("{0} is not an arka repository (it has no config object); check --repo, or run `arka init`")]
    NotARepository(String),
    #[error("{0} already holds an arka repository; refusing to overwrite it")]
    AlreadyARepository(String),
    #[error("object {key} is damaged: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("blob {blob} is not in the repository index: the snapshot references data that is missing")]
    MissingBlob { blob: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the command {command:?} failed: {reason}; no snapshot was written")]
    CommandFailed { command: String, reason: String },
    #[error("no snapshot matches {0:?}; list them with `arka snapshots`")]
    NoSuchSnapshot(String),
    #[error("{0:?} is not in the snapshot")]
    NoSuchPath(String),
    #[error("{0}")]
    Usage(String),
    /// A safety rule stopped the operation before it changed anything.
    #[error("{0}")]
    Refused(String),
    #[error("interrupted; no snapshot was written")]
    Interrupted,
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// Whether retrying the same operation may succeed (network blips, throttling).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store { source, .. } => matches!(**source, object_store::Error::Generic { .. }),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
