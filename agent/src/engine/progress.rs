//! Counters the engine updates and the CLI (or the service's status) reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Progress {
    /// Source bytes processed (read, or skipped thanks to the files cache).
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    /// Bytes written to the repository.
    pub uploaded: AtomicU64,
    /// What the whole operation goes through: a backup's pre-scan of its paths counts
    /// these up as it walks, a restore sets them from the snapshot's tree. Final once
    /// `totals_known` is set; a command source has none.
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
    pub totals_known: AtomicBool,
    /// Cancelled to stop the operation at the next safe point.
    pub cancel: CancellationToken,
}

impl Progress {
    /// Records the operation's totals, known before it starts (a restore's files).
    pub fn set_totals(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
        self.totals_known.store(true, Ordering::Release);
    }

    /// The totals, if final.
    pub fn totals(&self) -> Option<(u64, u64)> {
        self.totals_known
            .load(Ordering::Acquire)
            .then(|| (self.total_files.load(Ordering::Relaxed), self.total_bytes.load(Ordering::Relaxed)))
    }
}
