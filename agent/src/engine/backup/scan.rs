//! The pre-scan: a quick count of the files and bytes a files backup goes through, for the
//! progress bar's totals (as restic's scanner). It walks the same paths as the backup with
//! the same exclude rules, but only looks at metadata, and runs on its own thread beside
//! the backup, so it never holds it up. The count is the tree as the scan saw it: files
//! that appear or grow while the backup runs make the backup end a little past 100%.

use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::exclude::{ExcludeRules, Excluder};
use crate::engine::progress::Progress;

/// Counts the files and bytes under `paths` that the backup would read, left out what
/// `rules` exclude, into `progress`'s totals as it goes, and marks them final when done.
/// Returns early, totals not final, when `stop` is set (the backup ended first) or the
/// operation is cancelled. Unreadable folders are skipped, as the backup skips them.
pub fn count(paths: &[PathBuf], rules: &ExcludeRules, progress: &Progress, stop: &AtomicBool) {
    let Ok(excluder) = Excluder::new(rules, paths) else { return };
    let scan = Scan { excluder, progress, stop };
    for path in paths {
        if !scan.entry(path) {
            return;
        }
    }
    progress.totals_known.store(true, Ordering::Release);
}

struct Scan<'a> {
    excluder: Excluder,
    progress: &'a Progress,
    stop: &'a AtomicBool,
}

impl Scan<'_> {
    /// Counts one entry and what is under it; `false` once the scan should stop.
    fn entry(&self, path: &Path) -> bool {
        if self.stop.load(Ordering::Relaxed) || self.progress.cancel.is_cancelled() {
            return false;
        }
        // Not followed, as the backup stores a link as a link.
        let Ok(meta) = std::fs::symlink_metadata(path) else { return true };
        if self.excluder.excludes(path, &meta) {
            return true;
        }
        if meta.is_file() {
            self.progress.total_files.fetch_add(1, Ordering::Relaxed);
            self.progress.total_bytes.fetch_add(meta.len(), Ordering::Relaxed);
        } else if meta.is_dir() {
            let Ok(entries) = std::fs::read_dir(path) else { return true };
            for entry in entries.flatten() {
                if !self.entry(&entry.path()) {
                    return false;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, len: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; len]).unwrap();
    }

    #[test]
    fn the_pre_scan_counts_what_the_backup_reads_and_leaves_out_what_it_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let (imaging, db) = (dir.path().join("imaging"), dir.path().join("db.sql"));
        write(&imaging.join("2026").join("Nowak_Jan_CBCT.dcm"), 5000);
        write(&imaging.join("2026").join("Nowak_Jan_RTG.dcm"), 300);
        write(&imaging.join("scratch.tmp"), 1000);
        write(&imaging.join("cache").join("thumb.jpg"), 700);
        write(&imaging.join("old").join(".nobackup"), 0);
        write(&imaging.join("old").join("archive.dcm"), 9000);
        write(&imaging.join("huge.iso"), 20_000);
        write(&imaging.join("empty.txt"), 0);
        write(&db, 42);
        std::os::unix::fs::symlink("2026/Nowak_Jan_RTG.dcm", imaging.join("latest")).unwrap();
        let paths = vec![imaging.clone(), db.clone()];

        let everything = Progress::default();
        count(&paths, &ExcludeRules::default(), &everything, &AtomicBool::new(false));
        // Every regular file, the marker too; the link is not a file.
        assert_eq!(everything.totals(), Some((9, 5000 + 300 + 1000 + 700 + 9000 + 20_000 + 42)));

        let rules = ExcludeRules {
            patterns: vec!["*.tmp".into(), "/imaging/cache/".into()],
            if_present: vec![".nobackup".into()],
            larger_than: Some(10_000),
        };
        let excluded = Progress::default();
        count(&paths, &rules, &excluded, &AtomicBool::new(false));
        assert_eq!(excluded.totals(), Some((4, 5000 + 300 + 42)));
    }

    #[test]
    fn a_scan_the_backup_outran_leaves_the_totals_unknown() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.dcm"), 10);
        let progress = Progress::default();
        count(&[dir.path().to_path_buf()], &ExcludeRules::default(), &progress, &AtomicBool::new(true));
        assert_eq!(progress.totals(), None);
    }
}
