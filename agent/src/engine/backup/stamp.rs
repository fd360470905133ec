//! Whether a file changed while the walker read it: the facts `stat` gives before and
//! after, compared. A file rewritten mid-read is stored torn otherwise (a database file,
//! a document being saved), with nothing to tell the clinic.

use std::fs::Metadata;

use crate::platform::{platform_meta, time_to_ns};

/// What `stat` says of a file at one moment, as far as a change of its contents shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i64,
    /// Unix: the inode's change time; Windows: the creation time (a replaced file shows).
    pub ctime_ns: i64,
    /// 0 where the platform has none (Windows).
    pub inode: u64,
}

impl FileStamp {
    pub fn of(meta: &Metadata) -> Self {
        let pm = platform_meta(meta);
        Self {
            size: meta.len(),
            mtime_ns: meta.modified().map(time_to_ns).unwrap_or(0),
            ctime_ns: pm.ctime_ns,
            inode: pm.inode,
        }
    }

    /// Whether the file changed between `self` (taken before reading `bytes_read` bytes) and
    /// `after` (taken once they were read). Any difference counts, the change time and inode
    /// too: a write within the modification time's resolution still moves the change time
    /// on most systems, and an editor's save-by-rename gives a new inode. A length read that
    /// differs from the size at the end catches a file that grew or shrank meanwhile. (A
    /// same-size overwrite within one tick of both clocks stays invisible to any `stat`.)
    pub fn changed_while_read(&self, after: &FileStamp, bytes_read: u64) -> bool {
        self != after || bytes_read != after.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: FileStamp = FileStamp { size: 100, mtime_ns: 1_000, ctime_ns: 1_000, inode: 7 };

    #[test]
    fn an_untouched_file_read_whole_is_unchanged() {
        assert!(!BEFORE.changed_while_read(&BEFORE, 100));
    }

    #[test]
    fn any_difference_in_size_times_inode_or_bytes_read_is_a_change() {
        let cases = [
            (FileStamp { size: 120, ..BEFORE }, 100, "grew"),
            (FileStamp { mtime_ns: 2_000, ..BEFORE }, 100, "rewritten at the same size"),
            (FileStamp { ctime_ns: 2_000, ..BEFORE }, 100, "written within the mtime's resolution"),
            (FileStamp { inode: 8, ..BEFORE }, 100, "replaced by a rename"),
            (BEFORE, 120, "grew and shrank back while the clocks did not move"),
        ];
        for (after, read, what) in cases {
            assert!(BEFORE.changed_while_read(&after, read), "{what}");
        }
    }

    #[test]
    fn stamps_of_a_real_file_follow_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let before = FileStamp::of(&std::fs::metadata(&path).unwrap());
        assert!(!before.changed_while_read(&FileStamp::of(&std::fs::metadata(&path).unwrap()), 3));
        std::fs::write(&path, b"one and more").unwrap();
        assert!(before.changed_while_read(&FileStamp::of(&std::fs::metadata(&path).unwrap()), 3));
    }
}
