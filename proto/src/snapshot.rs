//! Snapshot headers: what was backed up, when, from where, and the root of its tree.
//! Readable with the agent key (for listing and retention), never containing file names
//! beyond the source paths the administrator configured.
//!
//! ```text
//! "ARKS" version:u8 sealed(meta_key, "arka snapshot v1", CBOR(Snapshot))
//! ```

use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::error::Result;
use crate::id::{BlobId, ObjectId};

pub const MAGIC: &[u8; 4] = b"ARKS";
const LABEL: &str = "arka snapshot v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started, Unix nanoseconds (UTC). Nanoseconds, so that snapshots
    /// taken within one second still have an order.
    pub time_ns: i64,
    /// When the snapshot was written, Unix nanoseconds (UTC).
    pub written_ns: i64,
    pub hostname: String,
    /// "files" or "command".
    pub source_kind: String,
    /// The configured source: paths for files, the name for a command.
    pub source: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root directory tree (sealed to the recipients).
    pub tree: BlobId,
    /// The root tree's reference list (sealed under the metadata key).
    pub refs: BlobId,
    /// True when some files could not be read: the snapshot holds everything else.
    pub partial: bool,
    pub stats: SnapshotStats,
    /// arka version that wrote it, for support.
    pub program: String,
    /// Written by `arka repair snapshots` from this snapshot, which referenced lost data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired_from: Option<ObjectId>,
    /// Files (and directories) of the original whose data was lost: they are listed as
    /// lost entries (`Node::lost`) in this snapshot.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_files: u64,
    /// The configured source's name (agent.toml `name`), for backups the service made;
    /// absent for CLI backups and snapshots written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Bytes read from disk (the rest came from the files cache).
    pub bytes_read: u64,
    pub blobs_new: u64,
    /// Plaintext bytes of blobs not already in the repository.
    pub bytes_new: u64,
    /// Bytes those new blobs take in packs (compressed and sealed).
    pub bytes_stored: u64,
    pub unreadable: u64,
    pub skipped_special: u64,
    pub duration_ms: u64,
    /// Files that changed while they were read, twice in a row: stored as last read, which
    /// may be inconsistent (a database file mid-write). Absent in older snapshots.
    #[serde(default)]
    pub changed_while_read: u64,
    /// Files and folders left out by the source's exclude rules (a folder counts once,
    /// whatever it holds). Absent in snapshots written before excludes existed.
    #[serde(default)]
    pub excluded: u64,
}

impl Snapshot {
    pub fn encode(&self, meta_key: &[u8; 32]) -> Vec<u8> {
        crypto::seal_cbor(meta_key, MAGIC, LABEL, self)
    }

    pub fn decode(meta_key: &[u8; 32], bytes: &[u8]) -> Result<Self> {
        crypto::open_cbor(meta_key, MAGIC, LABEL, "snapshot", bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn snapshot_round_trips(time in any::<i64>(), host in ".*", src in proptest::collection::vec(".*", 0..3), partial in any::<bool>(), files in any::<u64>()) {
            let s = Snapshot {
                time_ns: time, written_ns: time, hostname: host, source_kind: "files".into(), source: src, tags: vec![],
                tree: BlobId([1; 32]), refs: BlobId([2; 32]), partial,
                stats: SnapshotStats { files, ..Default::default() }, program: "arka test".into(),
                repaired_from: partial.then_some(ObjectId([3; 32])), lost_files: files % 3,
                source_name: partial.then(|| "clinic-db".into()),
            };
            let key = [5u8; 32];
            let bytes = s.encode(&key);
            prop_assert_eq!(Snapshot::decode(&key, &bytes).unwrap(), s);
            prop_assert!(Snapshot::decode(&key, &bytes[..bytes.len() - 1]).is_err());
        }
    }
}
