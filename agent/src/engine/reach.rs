//! Reachability through reference lists and the content lists they name: every blob the
//! given snapshots need, found with the agent key alone (both kinds of list are sealed
//! under the metadata key; trees, which hold the names, are never opened).
//!
//! Strict by design: prune deletes what this does not return, so a list that cannot be
//! read is an error, never "nothing below here".

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};

use arka_proto::{BlobId, TreeRefs};

use crate::error::{Error, Result};
use crate::repo::blob::BlobReader;

/// Content lists read at once.
const LISTS_IN_FLIGHT: usize = 8;

/// The blob IDs (trees, reference lists, content lists and data) reached from snapshot roots, given as
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
        let plain = reader.read(&refs).await.map_err(|e| cannot_tell("reference list", &refs, e))?;
        let list = TreeRefs::decode(&plain).map_err(|e| cannot_tell("reference list", &refs, e))?;
        seen.extend(list.data);
        pending.extend(list.subtrees);
        // Content lists shared with earlier snapshots (an hourly dump's unchanged parts) are
        // read once; new ones a few at a time, as a remote store answers each slowly.
        let new_lists: Vec<BlobId> = list.lists.into_iter().filter(|id| seen.insert(*id)).collect();
        // Owned IDs: a closure over borrowed ones would not be Send for every lifetime.
        let mut contents = futures::stream::iter(new_lists)
            .map(|id| async move {
                crate::repo::content::read_list(reader, &id).await.map_err(|e| cannot_tell("content list", &id, e))
            })
            .buffer_unordered(LISTS_IN_FLIGHT);
        while let Some(content) = contents.try_next().await? {
            seen.extend(content.data);
        }
    }
    Ok(seen)
}

fn cannot_tell(what: &str, id: &BlobId, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        key: format!("{what} {}", id.short()),
        reason: format!("{e}; what the snapshots reference cannot be determined (run `arka verify`)"),
    }
}
