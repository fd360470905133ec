//! `arka repair snapshots`: for every snapshot that references lost data (a blob no index
//! names, or whose every copy is recorded damaged or sits in a pack gone from storage),
//! write a new snapshot that keeps every intact file and marks what was lost: a file keeps
//! its name, size and metadata with no content, a directory whose listing is lost becomes
//! empty, both with `Node::lost` set. The original stays until `forget` removes it, so a
//! repair never loses anything a later salvage might still bring back.
//!
//! Needs the recovery identity: trees hold the names. Trees and reference lists are
//! re-encoded the way a backup encodes them, so every unchanged directory keeps its IDs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arka_proto::{BlobId, Node, NodeKind, ObjectId, Snapshot, Tree, TreeRefs};

use crate::engine::erase::TreeWriter;
use crate::error::{ErrorKind, Result};
use crate::repo::blob::BlobReader;
use crate::repo::index::Index;
use crate::repo::Repository;
use crate::store::ObjectKind;

#[derive(Debug, Default, serde::Serialize)]
pub struct RepairSnapshotsReport {
    pub snapshots: usize,
    /// Indexed packs missing from storage (recorded as damaged unless --dry-run).
    pub packs_missing: usize,
    pub repaired: Vec<RepairedSnapshot>,
    /// (original, earlier repair) for originals an earlier run already repaired alike.
    pub already_repaired: Vec<(String, String)>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RepairedSnapshot {
    pub original: String,
    /// The new snapshot's ID; empty with --dry-run.
    pub repaired: String,
    /// Files and directories marked lost.
    pub lost_files: u64,
    /// Their paths within the snapshot: for the operator's terminal only, never logged or
    /// recorded (names are personal data).
    pub lost_paths: Vec<String>,
}

pub async fn repair_snapshots(repo: Arc<Repository>, dry_run: bool) -> Result<RepairSnapshotsReport> {
    repo.identities()?;
    let mut report = RepairSnapshotsReport::default();
    let index = Arc::new(load_index(&repo, dry_run, &mut report).await?);
    let reader = BlobReader::new(repo.clone(), index.clone());
    let mut rewrite = Rewrite {
        reader: &reader,
        writer: TreeWriter::new(&repo, index.clone()),
        dirs: HashMap::new(),
        lists: HashMap::new(),
    };
    let snapshots = repo.list_snapshots().await?;
    report.snapshots = snapshots.len();
    let earlier: HashMap<(ObjectId, BlobId), ObjectId> =
        snapshots.iter().filter_map(|(id, s)| s.repaired_from.map(|from| ((from, s.tree), *id))).collect();
    let mut pending = Vec::new();
    for (id, snap) in &snapshots {
        let root = rewrite.root(snap).await?;
        if !root.changed {
            continue;
        }
        if let Some(done) = earlier.get(&(*id, root.tree)) {
            report.already_repaired.push((id.to_hex(), done.to_hex()));
            continue;
        }
        let lost_paths: Vec<String> = root.lost.iter().map(|p| display(p)).collect();
        pending.push((*id, repaired(snap, *id, &root)));
        report.repaired.push(RepairedSnapshot {
            original: id.to_hex(),
            repaired: String::new(),
            lost_files: lost_paths.len() as u64,
            lost_paths,
        });
    }
    if dry_run {
        return Ok(report);
    }
    // Trees and their index first, then the snapshots that need them. (Reference lists
    // that were damaged but rebuilt with the same ID are stored again here too.)
    rewrite.writer.flush().await?;
    for ((_, snap), entry) in pending.into_iter().zip(&mut report.repaired) {
        entry.repaired = repo.put_object(ObjectKind::Snapshot, snap.encode(repo.key.meta_key())).await?.to_hex();
    }
    Ok(report)
}

/// The index, with packs gone from storage counted as damaged (a listing is cheap, and a
/// deleted pack must count as lost data even before any verify has recorded it).
async fn load_index(repo: &Repository, dry_run: bool, report: &mut RepairSnapshotsReport) -> Result<Index> {
    let condemned: HashSet<ObjectId> =
        repo.load_plans().await?.iter().flat_map(|(_, _, p)| p.packs.iter().copied()).collect();
    let known = repo.load_damage().await?;
    let segments = repo.load_segments().await?;
    let listed: HashSet<ObjectId> = repo.store.list(ObjectKind::Pack).await?.into_iter().map(|(id, _)| id).collect();
    let mut damage = known.clone();
    for p in segments.iter().flat_map(|(_, s)| &s.packs).filter(|p| !listed.contains(&p.pack_id)) {
        damage.packs.insert(p.pack_id);
    }
    report.packs_missing = damage.packs.len() - known.packs.len();
    if !dry_run {
        if let Err(e) = repo.record_damage("repair", &damage, &known).await {
            tracing::warn!("could not record the packs missing from storage: {e}");
        }
    }
    Ok(Index::build(&condemned, &damage, segments.iter().map(|(_, s)| s)))
}

/// The new snapshot: the original's time, host, source and tags, plus `repaired`.
fn repaired(original: &Snapshot, id: ObjectId, root: &Dir) -> Snapshot {
    let mut snap = original.clone();
    snap.tree = root.tree;
    snap.refs = root.refs;
    snap.written_ns = jiff::Timestamp::now().as_nanosecond() as i64;
    snap.repaired_from = Some(id);
    snap.lost_files = root.lost.len() as u64;
    snap.program = format!("arka {}", env!("CARGO_PKG_VERSION"));
    if !snap.tags.iter().any(|t| t == "repaired") {
        snap.tags.push("repaired".into());
    }
    snap
}

/// A snapshot path for the operator (`/` for the whole snapshot).
fn display(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join("/")
}

/// A directory as rewritten: its tree and reference list, whether they differ from the
/// original's, and the entries below it marked lost (paths relative to it).
#[derive(Clone)]
struct Dir {
    tree: BlobId,
    refs: BlobId,
    changed: bool,
    lost: Arc<Vec<Vec<Vec<u8>>>>,
}

/// One entry as rewritten: for a directory, its (tree, refs) pair; whether it differs from
/// the original; and the paths (relative to its parent) of what is lost at or below it.
struct NodeOut {
    node: Node,
    pair: Option<(BlobId, BlobId)>,
    changed: bool,
    lost: Vec<Vec<Vec<u8>>>,
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

struct Rewrite<'a> {
    reader: &'a BlobReader,
    writer: TreeWriter,
    /// Directories already rewritten, by original tree ID: snapshots share most of them.
    dirs: HashMap<BlobId, Dir>,
    /// Content lists already checked: whether the list and every blob it names are intact.
    lists: HashMap<BlobId, bool>,
}

impl Rewrite<'_> {
    async fn root(&mut self, snap: &Snapshot) -> Result<Dir> {
        match self.dir(snap.tree, Some(snap.refs)).await? {
            Some(dir) => Ok(dir),
            None => {
                // The root listing itself is lost: an empty snapshot that says so.
                let (tree, refs) = self.writer.store_tree(Vec::new(), Vec::new())?;
                Ok(Dir { tree, refs, changed: true, lost: Arc::new(vec![Vec::new()]) })
            }
        }
    }

    /// The rewritten directory, or `None` when its listing cannot be read.
    fn dir(&mut self, tree_id: BlobId, refs_id: Option<BlobId>) -> BoxFuture<'_, Result<Option<Dir>>> {
        Box::pin(async move {
            if let Some(done) = self.dirs.get(&tree_id) {
                return Ok(Some(done.clone()));
            }
            let Some(tree) = self.read(&tree_id).await?.and_then(|b| Tree::decode(&b).ok()) else {
                return Ok(None);
            };
            // The original reference list gives unchanged subdirectories their pairs; when
            // it is lost, this directory's is written anew.
            let refs = match refs_id {
                Some(r) => self.read(&r).await?.and_then(|b| TreeRefs::decode(&b).ok()),
                None => None,
            };
            let sub_refs: HashMap<BlobId, BlobId> = refs.iter().flat_map(|r| r.subtrees.iter().copied()).collect();
            let mut changed = refs.is_none();
            let (mut nodes, mut subtrees, mut lost) = (Vec::with_capacity(tree.nodes.len()), Vec::new(), Vec::new());
            for node in tree.nodes {
                let out = self.node(node, &sub_refs).await?;
                changed |= out.changed;
                subtrees.extend(out.pair);
                lost.extend(out.lost);
                nodes.push(out.node);
            }
            let (tree_out, refs_out) = match (changed, refs_id) {
                (false, Some(r)) => (tree_id, r),
                _ => self.writer.store_tree(nodes, subtrees)?,
            };
            let changed = tree_out != tree_id || Some(refs_out) != refs_id;
            let dir = Dir { tree: tree_out, refs: refs_out, changed, lost: Arc::new(lost) };
            self.dirs.insert(tree_id, dir.clone());
            Ok(Some(dir))
        })
    }

    /// One entry as rewritten.
    async fn node(&mut self, mut node: Node, sub_refs: &HashMap<BlobId, BlobId>) -> Result<NodeOut> {
        let here = vec![node.name.clone()];
        let intact = node.kind != NodeKind::File || node.lost || self.content_intact(&node).await?;
        let mut out = NodeOut { pair: None, changed: false, lost: Vec::new(), node: Node::new(b"-", node.kind) };
        match (node.kind, node.subtree) {
            (NodeKind::File, _) if node.lost => out.lost.push(here),
            (NodeKind::File, _) if !intact => {
                node.content.clear();
                node.lists.clear();
                node.lost = true;
                out.changed = true;
                out.lost.push(here);
            }
            (NodeKind::Dir, Some(sub)) => match self.dir(sub, sub_refs.get(&sub).copied()).await? {
                Some(d) => {
                    node.subtree = Some(d.tree);
                    out.pair = Some((d.tree, d.refs));
                    out.changed = d.changed;
                    if node.lost {
                        out.lost.push(here.clone());
                    }
                    out.lost.extend(d.lost.iter().map(|p| [here.clone(), p.clone()].concat()));
                }
                None => {
                    let (tree, refs) = self.writer.store_tree(Vec::new(), Vec::new())?;
                    node.subtree = Some(tree);
                    node.lost = true;
                    out.pair = Some((tree, refs));
                    out.changed = true;
                    out.lost.push(here);
                }
            },
            _ => {}
        }
        out.node = node;
        Ok(out)
    }

    /// Whether every content blob of a file has a copy not known to be damaged.
    async fn content_intact(&mut self, node: &Node) -> Result<bool> {
        if !node.content.iter().all(|id| usable(self.reader.index(), id)) {
            return Ok(false);
        }
        for list in &node.lists {
            if let Some(&ok) = self.lists.get(list) {
                if !ok {
                    return Ok(false);
                }
                continue;
            }
            let ok = match self.read(list).await? {
                Some(b) => arka_proto::ContentList::decode(&b)
                    .is_ok_and(|l| l.data.iter().all(|id| usable(self.reader.index(), id))),
                None => false,
            };
            self.lists.insert(*list, ok);
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A blob's plaintext, or `None` when it is damaged or missing; a store that cannot
    /// be reached is an error (an outage must not make data look lost).
    async fn read(&self, id: &BlobId) -> Result<Option<Vec<u8>>> {
        match self.reader.read(id).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::Damaged => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether a data blob can be read intact as far as the repository knows.
fn usable(index: &Index, id: &BlobId) -> bool {
    index.get(id).is_some() && !index.is_damaged(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arka_proto::SnapshotStats;

    #[test]
    fn a_repaired_snapshot_keeps_time_host_and_source_and_says_what_was_lost() {
        let original = Snapshot {
            time_ns: 100,
            written_ns: 200,
            hostname: "clinic".into(),
            source_kind: "files".into(),
            source: vec!["/srv/imaging".into()],
            tags: vec!["hourly".into(), "repaired".into()],
            tree: BlobId([1; 32]),
            refs: BlobId([2; 32]),
            partial: false,
            stats: SnapshotStats { files: 9, ..Default::default() },
            program: "arka 0.0.1".into(),
            repaired_from: None,
            lost_files: 0,
            source_name: None,
        };
        let lost = vec![vec![b"src".to_vec(), b"a.dcm".to_vec()], vec![b"src".to_vec(), b"b".to_vec()]];
        let root = Dir { tree: BlobId([3; 32]), refs: BlobId([4; 32]), changed: true, lost: Arc::new(lost) };
        let id = ObjectId([7; 32]);
        let new = repaired(&original, id, &root);
        assert_eq!((new.time_ns, &new.hostname, &new.source), (100, &original.hostname, &original.source));
        assert_eq!((new.tree, new.refs), (root.tree, root.refs));
        assert_eq!((new.repaired_from, new.lost_files), (Some(id), 2));
        assert_eq!(new.tags, ["hourly", "repaired"], "the tag is added once");
        assert!(new.written_ns > original.written_ns);
        assert_eq!(display(&root.lost[0]), "src/a.dcm");
        assert_eq!(display(&[]), "/");
    }
}
