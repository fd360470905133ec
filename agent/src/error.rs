//! Engine errors, each of a kind that decides the exit code and whether a retry may help.
//!
//! Policy: each variant carries the context an IT contractor needs to act ("the repository
//! at X has no config: is this the right path?"), never a secret; file paths appear only
//! in variants the interactive CLI prints to the user's own terminal, never in daemon logs.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Format(#[from] arka_proto::Error),
    #[error("storage: {op} {key}: {}{}", store_reason(source), advice.map(|a| format!("\n  hint: {a}")).unwrap_or_default())]
    Store { op: &'static str, key: String, source: Box<object_store::Error>, advice: Option<&'static str> },
    #[error("{0} is not an arka repository (it has no config object); check --repo, or run `arka init`")]
    NotARepository(String),
    /// A repository that was open is no longer there: a NAS share that is not mounted shows
    /// an empty folder at its mount point.
    #[error("{0}: the repository is gone (its config object is missing), as when the NAS share is not mounted; mount it or check the target's url")]
    RepositoryGone(String),
    #[error("{0} already holds an arka repository; refusing to overwrite it")]
    AlreadyARepository(String),
    #[error("object {key} is damaged: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("blob {blob} is not in the repository index: the snapshot references data that is missing")]
    MissingBlob { blob: String },
    /// A local file or folder (a backup source, a restore target, the state directory).
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the command {command:?} failed: {reason}; no snapshot was written")]
    CommandFailed { command: String, reason: String },
    #[error("no snapshot matches {0:?}; list them with `arka snapshots`")]
    NoSuchSnapshot(String),
    #[error("{0:?} is not in the snapshot")]
    NoSuchPath(String),
    /// The agent's or the server's configuration, or a setting derived from it.
    #[error("configuration: {0}")]
    Config(String),
    /// A key file that cannot be read or parsed, or a key this repository does not accept.
    #[error("{0}")]
    Key(String),
    /// Another operation or the server's limits hold what this needs; try again later.
    #[error("{0}")]
    Busy(String),
    /// The command line asked for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),
    /// A safety rule stopped the operation before it changed anything.
    #[error("{0}")]
    Refused(String),
    #[error("cancelled; no snapshot was written")]
    Cancelled,
    #[error("internal: {0}")]
    Internal(String),
}

/// What kind of failure an error is: the exit code, the retry decision and the word the
/// audit trail and the status page use come from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A setting in the configuration is wrong.
    Config,
    /// The key is wrong or missing.
    Key,
    /// The repository is not there.
    NoRepository,
    /// The repository holds damaged or missing objects.
    Damaged,
    /// The store cannot be reached or answered with an error.
    Unreachable,
    /// The store or another operation is busy.
    Busy,
    /// A backup source cannot be read (a file, a dump command).
    SourceUnreadable,
    Cancelled,
    Usage,
    /// A safety rule refused, or anything else.
    Failed,
}

impl ErrorKind {
    /// The process exit code (DESIGN.md §8, following restic): 0 ok, 1 failed, 2 usage,
    /// 3 partly done (set by the command, not by an error), 10 repository missing,
    /// 11 busy, 12 wrong key, 130 cancelled (as a shell reports Ctrl-C).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Usage | Self::Config => 2,
            Self::NoRepository => 10,
            Self::Busy => 11,
            Self::Key => 12,
            Self::Cancelled => 130,
            Self::Damaged | Self::Unreachable | Self::SourceUnreadable | Self::Failed => 1,
        }
    }

    /// A short name for logs, the audit trail and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "bad configuration",
            Self::Key => "wrong or missing key",
            Self::NoRepository => "repository missing",
            Self::Damaged => "repository damaged",
            Self::Unreachable => "store unreachable",
            Self::Busy => "busy",
            Self::SourceUnreadable => "source unreadable",
            Self::Cancelled => "cancelled",
            Self::Usage => "usage",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn kind(&self) -> ErrorKind {
        use arka_proto::Error as Format;
        match self {
            Self::Format(Format::NoMatchingIdentity | Format::InvalidKey(_)) | Self::Key(_) => ErrorKind::Key,
            Self::Format(_) | Self::Corrupt { .. } | Self::MissingBlob { .. } => ErrorKind::Damaged,
            Self::Store { source, .. } => store_kind(source),
            Self::NotARepository(_) => ErrorKind::NoRepository,
            // Like an unreachable store: the service fails over and retries.
            Self::RepositoryGone(_) => ErrorKind::Unreachable,
            Self::Io { .. } | Self::CommandFailed { .. } => ErrorKind::SourceUnreadable,
            Self::Config(_) => ErrorKind::Config,
            Self::Busy(_) => ErrorKind::Busy,
            Self::Usage(_) => ErrorKind::Usage,
            Self::Cancelled => ErrorKind::Cancelled,
            Self::NoSuchSnapshot(_) | Self::NoSuchPath(_) | Self::AlreadyARepository(_) => ErrorKind::Failed,
            Self::Refused(_) | Self::Internal(_) => ErrorKind::Failed,
        }
    }

    /// The reason alone, for a report that already names the object.
    pub fn into_reason(self) -> String {
        match self {
            Self::Corrupt { reason, .. } => reason,
            e => e.to_string(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }

    /// Whether running the same operation again in a minute may succeed: the store was
    /// unreachable or busy (network blips, throttling, a NAS rebooting). A bad config, a
    /// wrong key, damage, a failing dump command or a refusal stays until a person acts.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Unreachable | ErrorKind::Busy)
    }
}

/// Words of S3's refusals of the credentials (also what `store::advice` matches).
pub(crate) const REFUSED_CREDENTIALS: [&str; 4] =
    ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden"];

/// Refused credentials or tokens are a key problem no retry fixes; 429 and 503 until the
/// retries ran out mean the store is there but overloaded; anything else, unreachable.
fn store_kind(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    if matches!(e, E::Unauthenticated { .. } | E::PermissionDenied { .. }) {
        return ErrorKind::Key;
    }
    let text = e.to_string();
    let has = |needle: &str| text.contains(needle);
    if REFUSED_CREDENTIALS.iter().any(|w| has(w)) {
        ErrorKind::Key
    } else if has("429 Too Many Requests") || has("503 Service Unavailable") {
        ErrorKind::Busy
    } else {
        ErrorKind::Unreachable
    }
}

/// A backend error in words. The local backend wraps the OS's reason as "Generic
/// LocalFileSystem error: Unable to create file /repo/packs/ab/…#3: …", which names a
/// temporary file and the crate, not what failed: the message already names the
/// repository key, so the OS's reason alone is said, in plain words where we know them.
pub(crate) fn store_reason(e: &object_store::Error) -> String {
    use std::io::ErrorKind as Io;
    if let Some(io) = local_io_error(e) {
        return match io.kind() {
            Io::PermissionDenied => "permission denied".into(),
            Io::StorageFull => "the disk is full".into(),
            Io::QuotaExceeded => "the disk quota is used up".into(),
            Io::ReadOnlyFilesystem => "the file system is read-only".into(),
            Io::NotADirectory => "a file is in the way where the repository has a folder".into(),
            Io::IsADirectory => "a folder is in the way where the repository has a file".into(),
            Io::NotFound => "a folder of the repository is missing".into(),
            _ => io.to_string(),
        };
    }
    match e {
        object_store::Error::Generic { store: "LocalFileSystem", source } => source.to_string(),
        e => e.to_string(),
    }
}

/// The OS error behind a local backend's error, if there is one.
pub(crate) fn local_io_error(e: &object_store::Error) -> Option<&std::io::Error> {
    let object_store::Error::Generic { store: "LocalFileSystem", source } = e else { return None };
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        next = err.source();
    }
    None
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_give_the_documented_exit_codes() {
        let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let cases: Vec<(Error, u8, bool)> = vec![
            (Error::Usage("x".into()), 2, false),
            (Error::Config("x".into()), 2, false),
            (Error::NotARepository("r".into()), 10, false),
            (Error::Busy("x".into()), 11, true),
            (Error::Key("x".into()), 12, false),
            (Error::Format(arka_proto::Error::NoMatchingIdentity), 12, false),
            (Error::Format(arka_proto::Error::Authentication { what: "pack" }), 1, false),
            (Error::Corrupt { key: "k".into(), reason: "r".into() }, 1, false),
            (Error::io("/x", not_found()), 1, false),
            (Error::Refused("x".into()), 1, false),
            (Error::Cancelled, 130, false),
        ];
        for (e, code, retry) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
            assert_eq!(e.is_retryable(), retry, "{e:?}");
        }
    }

    #[test]
    fn a_store_that_is_overloaded_is_busy_and_a_dead_one_unreachable() {
        let generic = |t: &str| object_store::Error::Generic { store: "S3", source: t.to_string().into() };
        let store = |t: &str| Error::Store { op: "get", key: "k".into(), source: Box::new(generic(t)), advice: None };
        assert_eq!(store("HTTP status server error (503 Service Unavailable)").kind(), ErrorKind::Busy);
        assert_eq!(store("error sending request").kind(), ErrorKind::Unreachable);
        assert!(store("error sending request").is_retryable());
        assert_eq!(store("Client error with status 403 Forbidden: AccessDenied").kind(), ErrorKind::Key);
        let denied = object_store::Error::PermissionDenied { path: "k".into(), source: "no".into() };
        let refused = Error::Store { op: "put", key: "k".into(), source: Box::new(denied), advice: None };
        assert_eq!((refused.exit_code(), refused.is_retryable()), (12, false));
    }
}
