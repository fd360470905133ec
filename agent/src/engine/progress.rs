//! Counters the engine updates and the CLI (or the service's status) reads.

use std::sync::atomic::AtomicU64;

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Progress {
    /// Source bytes processed (read, or skipped thanks to the files cache).
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    /// Bytes written to the repository.
    pub uploaded: AtomicU64,
    /// Cancelled to stop the operation at the next safe point.
    pub cancel: CancellationToken,
}
