//! Erase: remove files matching a pattern from every snapshot (a patient's right to erasure,
//! where the law allows it). Needs the recovery identity, because only it can read names.
//!
//! Each affected snapshot is written anew without the matching paths (same time, host and
//! source; tagged `erased`), then the original is deleted, then prune removes the blobs
//! nothing references any more. Only trees along the changed paths are rewritten; every
//! other tree, reference list and data blob is shared with the original.

use std::collections::HashMap;
use std::sync::Arc;

use arka_proto::pack::BlobKind;
use arka_proto::{BlobId, IndexSegment, Node, NodeKind, ObjectId, PackIndex, Snapshot, Tree, TreeRefs};

use crate::error::{Error, Result};
use crate::repo::blob::{BlobReader, Compressor};
use crate::repo::packer::Packer;
use crate::repo::Repository;
use crate::store::ObjectKind;

/// A path pattern over snapshot paths as `arka ls` shows them (`src/patients/1234`):
/// `*` matches within one component, `**` across components, `?` one character. A pattern
/// that matches a directory erases everything below it.
#[derive(Clone, Debug)]
pub struct PathPattern(Vec<u8>);

impl PathPattern {
    pub fn parse(s: &str) -> Result<Self> {
        let trimmed = s.trim().trim_matches('/');
        if trimmed.is_empty() || trimmed.split('/').all(|c| c == "**") {
            return Err(Error::Usage(format!("--path {s:?} would erase everything; name what to erase")));
        }
        Ok(Self(trimmed.as_bytes().to_vec()))
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        glob(&self.0, path)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) if rest.first() == Some(&b'*') => {
            let rest = &rest[1..];
            (0..=s.len()).any(|i| glob(rest, &s[i..]))
        }
        Some((b'*', rest)) => {
            let end = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=end).any(|i| glob(rest, &s[i..]))
        }
        Some((b'?', rest)) => s.first().is_some_and(|&c| c != b'/') && glob(rest, &s[1..]),
        Some((&c, rest)) => s.first() == Some(&c) && glob(rest, &s[1..]),
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct EraseReport {
    /// (original, rewritten) snapshot IDs.
    pub rewritten: Vec<(String, String)>,
    /// Files (and symlinks) removed, summed over all snapshots.
    pub files_erased: u64,
    pub bytes_erased: u64,
    /// Originals the storage refused to delete (append-only or object lock).
    pub delete_refused: Vec<String>,
    pub prune: Option<crate::engine::prune::PruneReport>,
}

/// Rewrites every snapshot holding a path that matches any of `patterns`. With `dry_run`,
/// only counts.
pub async fn erase(
    repo: Arc<Repository>,
    patterns: &[PathPattern],
    dry_run: bool,
    prune: Option<crate::engine::prune::PruneOptions>,
) -> Result<EraseReport> {
    repo.identities()?;
    let index = Arc::new(repo.load_index().await?);
    let reader = BlobReader::new(repo.clone(), index.clone());
    let mut writer = TreeWriter::new(&repo, index);
    let mut report = EraseReport::default();
    let mut pending: Vec<(ObjectId, Snapshot)> = Vec::new();
    for (id, snap) in repo.list_snapshots().await? {
        let mut rewrite = Rewrite { reader: &reader, writer: &mut writer, patterns, erased: 0, erased_bytes: 0 };
        if let Some((tree, refs)) = rewrite.tree(snap.tree, snap.refs, &[]).await? {
            let (erased, erased_bytes) = (rewrite.erased, rewrite.erased_bytes);
            report.files_erased += erased;
            report.bytes_erased += erased_bytes;
            let mut new = snap.clone();
            new.tree = tree;
            new.refs = refs;
            new.written_ns = jiff::Timestamp::now().as_nanosecond() as i64;
            new.stats.files = new.stats.files.saturating_sub(erased);
            new.stats.bytes = new.stats.bytes.saturating_sub(erased_bytes);
            if !new.tags.iter().any(|t| t == "erased") {
                new.tags.push("erased".into());
            }
            pending.push((id, new));
        }
    }
    if dry_run || pending.is_empty() {
        report.rewritten = pending.iter().map(|(id, _)| (id.to_hex(), String::new())).collect();
        return Ok(report);
    }
    // New trees, then the new snapshots, then the originals go: a crash in between leaves
    // both versions listed, never neither.
    writer.flush().await?;
    for (old, snap) in pending {
        let new = repo.put_object(ObjectKind::Snapshot, snap.encode(repo.key.meta_key())).await?;
        let key = ObjectKind::Snapshot.key(&old);
        if let Err(e) = repo.store.delete(&key).await {
            tracing::warn!("could not delete {key}: {e}");
            report.delete_refused.push(key);
        }
        report.rewritten.push((old.to_hex(), new.to_hex()));
    }
    if let Some(opts) = prune {
        report.prune = Some(crate::engine::prune::prune(&repo, &opts).await?);
    }
    Ok(report)
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

struct Rewrite<'a, 'w> {
    reader: &'a BlobReader,
    writer: &'w mut TreeWriter,
    patterns: &'a [PathPattern],
    erased: u64,
    erased_bytes: u64,
}

impl Rewrite<'_, '_> {
    /// The rewritten (tree, refs) of a directory, or `None` if nothing below it matches.
    fn tree<'s>(
        &'s mut self,
        tree_id: BlobId,
        refs_id: BlobId,
        path: &'s [u8],
    ) -> BoxFuture<'s, Result<Option<(BlobId, BlobId)>>> {
        Box::pin(async move {
            let tree = Tree::decode(&self.reader.read(&tree_id).await?)?;
            let refs = TreeRefs::decode(&self.reader.read(&refs_id).await?)?;
            let sub_refs: HashMap<BlobId, BlobId> = refs.subtrees.iter().copied().collect();
            let mut changed = false;
            let mut nodes = Vec::with_capacity(tree.nodes.len());
            let mut subtrees = Vec::new();
            for mut node in tree.nodes {
                let mut child = path.to_vec();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(&node.name);
                if self.patterns.iter().any(|p| p.matches(&child)) {
                    let (files, bytes) = self.files_in(&node).await?;
                    self.erased += files;
                    self.erased_bytes += bytes;
                    changed = true;
                    continue;
                }
                if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                    let sref = *sub_refs.get(&sub).ok_or_else(|| Error::Corrupt {
                        key: format!("reference list {}", refs_id.short()),
                        reason: "a subdirectory is missing from its parent's reference list".into(),
                    })?;
                    match self.tree(sub, sref, &child).await? {
                        Some((t, r)) => {
                            node.subtree = Some(t);
                            subtrees.push((t, r));
                            changed = true;
                        }
                        None => subtrees.push((sub, sref)),
                    }
                }
                nodes.push(node);
            }
            if !changed {
                return Ok(None);
            }
            self.writer.store_tree(nodes, subtrees).map(Some)
        })
    }

    /// Files and symlinks at or below a node that is being erased, and their bytes.
    async fn files_in(&self, node: &Node) -> Result<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        let mut stack = vec![node.clone()];
        while let Some(n) = stack.pop() {
            match (n.kind, n.subtree) {
                (NodeKind::Dir, Some(sub)) => stack.extend(Tree::decode(&self.reader.read(&sub).await?)?.nodes),
                (NodeKind::Dir, None) => {}
                _ => {
                    count += 1;
                    bytes += n.size;
                }
            }
        }
        Ok((count, bytes))
    }
}

/// Writes new tree and reference-list blobs into one pack, skipping those already stored
/// (also used by `repair snapshots`).
pub(crate) struct TreeWriter {
    repo: Arc<Repository>,
    index: Arc<crate::repo::index::Index>,
    packer: Packer,
    compressor: Compressor,
    written: std::collections::HashSet<BlobId>,
}

impl TreeWriter {
    pub(crate) fn new(repo: &Arc<Repository>, index: Arc<crate::repo::index::Index>) -> Self {
        Self {
            packer: Packer::new(&repo.recipients, *repo.key.meta_key(), 1 << 20),
            compressor: Compressor::new(repo.config.zstd_level),
            repo: repo.clone(),
            index,
            written: Default::default(),
        }
    }

    /// The backup's encoding, so that unchanged directories keep their IDs.
    pub(crate) fn store_tree(&mut self, nodes: Vec<Node>, subtrees: Vec<(BlobId, BlobId)>) -> Result<(BlobId, BlobId)> {
        let (tree, refs) = crate::engine::backup::encode_tree(nodes, subtrees)?;
        Ok((self.store_blob(BlobKind::Tree, &tree), self.store_blob(BlobKind::Refs, &refs)))
    }

    fn store_blob(&mut self, kind: BlobKind, plain: &[u8]) -> BlobId {
        let id = self.repo.key.blob_id(kind, plain);
        if !self.index.contains(&id) && self.written.insert(id) {
            let (compression, compressed) = self.compressor.encode(plain);
            self.packer.add(id, kind, compression, plain.len(), compressed.as_deref().unwrap_or(plain));
        }
        id
    }

    /// Stores the pack and its index segment.
    pub(crate) async fn flush(self) -> Result<()> {
        if self.packer.is_empty() {
            return Ok(());
        }
        let done = self.packer.finish();
        let pack_len = done.bytes.len() as u64;
        self.repo.store.put_new(&ObjectKind::Pack.key(&done.id), done.bytes.into()).await?;
        let seg = IndexSegment { packs: vec![PackIndex { pack_id: done.id, pack_len, blobs: done.entries }] };
        self.repo.put_object(ObjectKind::Index, seg.encode(self.repo.key.meta_key())).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_components_and_subtrees() {
        let p = |s: &str| PathPattern::parse(s).unwrap();
        assert!(p("src/patients/1234").matches(b"src/patients/1234"));
        assert!(!p("src/patients/1234").matches(b"src/patients/12345"));
        assert!(p("src/patients/12*").matches(b"src/patients/12345"));
        assert!(!p("src/*/1234").matches(b"src/a/b/1234"));
        assert!(p("src/**/1234").matches(b"src/a/b/1234"));
        assert!(p("**/anna_*.dcm").matches(b"imaging/2026/anna_01.dcm"));
        assert!(p("/src/x?.txt/").matches(b"src/x1.txt"));
        assert!(!p("src/x?.txt").matches(b"src/x/.txt"));
        assert!(PathPattern::parse("**").is_err());
        assert!(PathPattern::parse("/").is_err());
    }
}
