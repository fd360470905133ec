//! Reachability through reference lists: every blob the given snapshots need, found with
//! the agent key alone (reference lists are sealed under the metadata key; trees, which
//! hold the names, are never opened).
//!
//! Strict by design: prune deletes what this does not return, so a reference list that
//! cannot be read is an error, never "nothing below here".

use std::collections::HashSet;

use arka_proto::{BlobId, TreeRefs};

use crate::blob::BlobReader;
use crate::error::{Error, Result};

/// The blob IDs (trees, reference lists and data) reached from snapshot roots, given as
/// (tree, reference list) pairs.
pub async fn reachable_from(reader: &BlobReader, roots: Vec<(BlobId, BlobId)>) -> Result<HashSet<BlobId>> {
    let mut seen = HashSet::new();
    // An explicit stack rather than recursion: trees can be deep.
    let mut pending = roots;
    while let Some((tree, refs)) = pending.pop() {
        seen.insert(tree);
        if !seen.insert(refs) {
            continue; // a subtree shared with another snapshot or directory: walked already
        }
        let plain = reader.read(&refs).await.map_err(|e| cannot_tell(&refs, e))?;
        let list = TreeRefs::decode(&plain).map_err(|e| cannot_tell(&refs, e))?;
        seen.extend(list.data);
        pending.extend(list.subtrees);
    }
    Ok(seen)
}

fn cannot_tell(refs: &BlobId, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        key: format!("reference list {}", refs.short()),
        reason: format!("{e}; what the snapshots reference cannot be determined (run `arka verify`)"),
    }
}
