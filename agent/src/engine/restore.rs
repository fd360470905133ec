//! Reading snapshots back with a recovery identity: list (`ls`), restore to a directory,
//! and stream one file (`dump`). Every blob is verified against its ID before use; files
//! are written to a temporary name and renamed into place only when complete.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use arka_proto::status::human_bytes;
use arka_proto::{BlobId, Node, NodeKind, Snapshot, Tree};

use crate::engine::progress::Progress;
use crate::error::{Error, ErrorKind, Result};
use crate::platform::{apply_permissions, name_from_bytes, ns_to_time, symlink, Ownership};
use crate::repo::blob::BlobReader;
use crate::repo::content::content_ids;

/// Files restored at once.
const FILES_IN_FLIGHT: usize = 8;
/// Blobs of one file fetched ahead of the one being written.
const BLOBS_AHEAD: usize = 2;
/// Plaintext held in memory across all files being restored, in MiB. Permits are taken
/// in order (the semaphore is fair), so a file's earlier blobs always get theirs first and
/// the budget cannot deadlock.
const BUFFER_BUDGET_MIB: u32 = 32;

pub async fn load_tree(reader: &BlobReader, id: &BlobId) -> Result<Tree> {
    let bytes = reader.read(id).await?;
    Tree::decode(&bytes).map_err(|e| Error::Corrupt { key: format!("tree {}", id.short()), reason: e.to_string() })
}

/// A node of the snapshot with its path relative to the snapshot root.
pub struct Entry {
    pub path: Vec<Vec<u8>>,
    pub node: Node,
}

impl Entry {
    pub fn display_path(&self) -> String {
        display_path(&self.path)
    }
}

fn display_path(path: &[Vec<u8>]) -> String {
    path.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join("/")
}

/// Splits a user-given snapshot path (`imaging/2026/scan.dcm`) into components.
fn split_path(path: &str) -> Vec<Vec<u8>> {
    path.split(['/', '\\']).filter(|c| !c.is_empty() && *c != ".").map(|c| c.as_bytes().to_vec()).collect()
}

/// Finds the node at `path` (the root tree's entries are the top level).
pub async fn find(reader: &BlobReader, snapshot: &Snapshot, path: &str) -> Result<Entry> {
    let components = split_path(path);
    let mut tree = load_tree(reader, &snapshot.tree).await?;
    for (i, c) in components.iter().enumerate() {
        let node = tree.nodes.into_iter().find(|n| &n.name == c).ok_or_else(|| Error::NoSuchPath(path.into()))?;
        if i + 1 == components.len() {
            return Ok(Entry { path: components, node });
        }
        let sub = node.subtree.ok_or_else(|| Error::NoSuchPath(path.into()))?;
        tree = load_tree(reader, &sub).await?;
    }
    Err(Error::NoSuchPath(path.into()))
}

/// Every entry under `start` (or the whole snapshot), parents before children. A damaged
/// tree anywhere fails the walk; restore uses `walk_around_damage` instead.
pub async fn walk(reader: &BlobReader, snapshot: &Snapshot, start: Option<&str>) -> Result<Vec<Entry>> {
    let walked = walk_around_damage(reader, snapshot, start).await?;
    match walked.damaged.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(walked.entries),
    }
}

/// What a walk reached, and the folders whose listing could not be read.
pub struct Walked {
    pub entries: Vec<Entry>,
    /// A folder (its path) whose tree is damaged or missing: its contents are unknown.
    pub damaged: Vec<(String, Error)>,
}

/// Like `walk`, but a damaged folder below the start costs only its own contents: the
/// folder is listed in `damaged` and the walk goes on. The start itself must be readable.
pub async fn walk_around_damage(reader: &BlobReader, snapshot: &Snapshot, start: Option<&str>) -> Result<Walked> {
    let mut out = Walked { entries: Vec::new(), damaged: Vec::new() };
    let mut stack: Vec<(Vec<Vec<u8>>, BlobId)> = Vec::new();
    let root = match start.filter(|p| !split_path(p).is_empty()) {
        None => {
            stack.push((Vec::new(), snapshot.tree));
            None
        }
        Some(p) => {
            let e = find(reader, snapshot, p).await?;
            if let Some(sub) = e.node.subtree {
                stack.push((e.path.clone(), sub));
            }
            let path = e.path.clone();
            out.entries.push(e);
            Some(path)
        }
    };
    while let Some((prefix, tree_id)) = stack.pop() {
        let tree = match load_tree(reader, &tree_id).await {
            Ok(tree) => tree,
            Err(e) if e.kind() == ErrorKind::Damaged && (prefix.len() > root.as_ref().map_or(0, Vec::len)) => {
                out.damaged.push((format!("{}/", display_path(&prefix)), e));
                continue;
            }
            Err(e) => return Err(e),
        };
        for node in tree.nodes.into_iter().rev() {
            let mut path = prefix.clone();
            path.push(node.name.clone());
            if let Some(sub) = node.subtree {
                stack.push((path.clone(), sub));
            }
            out.entries.push(Entry { path, node });
        }
    }
    // Stack order visits siblings in reverse; sort by path for a stable listing.
    out.entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Files not restored because their data in the repository is damaged or missing,
    /// with the reason. Everything else was restored.
    pub damaged: Vec<(String, String)>,
    /// Files, folders and links that could not be written here (a name too long, something
    /// in the way, no permission), with the reason. The rest was restored.
    pub unwritable: Vec<(String, String)>,
    /// Files and folders `arka repair snapshots` marked lost: their data is gone from the
    /// repository, so they are not written (a lost folder is restored empty).
    pub lost: Vec<String>,
}

impl RestoreSummary {
    fn unwritable(&mut self, path: &Path, e: impl std::fmt::Display) {
        self.unwritable.push((path.display().to_string(), e.to_string()));
    }
}

/// Restores the snapshot (or `start` within it) under `target`, keeping the snapshot's
/// directory structure. A file whose data is damaged, or that cannot be written here, is
/// left out and reported, and the restore goes on with the rest; a full disk or a failing
/// store stops it.
pub async fn restore(
    reader: Arc<BlobReader>,
    snapshot: &Snapshot,
    start: Option<&str>,
    target: &Path,
    progress: Arc<Progress>,
    ownership: Ownership,
) -> Result<RestoreSummary> {
    let walked = walk_around_damage(&reader, snapshot, start).await?;
    let entries = walked.entries;
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let mut summary = RestoreSummary::default();
    summary.damaged.extend(walked.damaged.into_iter().map(|(path, e)| (path, e.into_reason())));
    let local = |e: &Entry| -> PathBuf {
        let mut p = target.to_path_buf();
        for c in &e.path {
            p.push(name_from_bytes(c));
        }
        p
    };
    // Directories first, so files have somewhere to go; with --path, that includes the
    // parents of the starting point, which are not entries themselves.
    if let Some(parent) = entries.first().map(&local).as_deref().and_then(Path::parent) {
        std::fs::create_dir_all(parent).map_err(|err| Error::io(parent, err))?;
    }
    for e in entries.iter().filter(|e| e.node.kind == NodeKind::Dir) {
        let p = local(e);
        match std::fs::create_dir_all(&p) {
            Ok(()) => summary.dirs += 1,
            Err(err) if is_disk_full(&err) => return Err(Error::io(&p, err)),
            Err(err) => summary.unwritable(&p, err),
        }
    }
    // Entries `arka repair snapshots` marked lost have no data to write: reported, not written.
    summary.lost = entries.iter().filter(|e| e.node.lost).map(|e| local(e).display().to_string()).collect();
    let files: Vec<(PathBuf, &Node)> =
        entries.iter().filter(|e| e.node.kind == NodeKind::File && !e.node.lost).map(|e| (local(e), &e.node)).collect();
    restore_files(&reader, files, target, (&progress, ownership), &mut summary).await?;
    for e in entries.iter().filter(|e| e.node.kind == NodeKind::Symlink) {
        let p = local(e);
        let _ = std::fs::remove_file(&p);
        let made = symlink(e.node.target.as_deref().unwrap_or_default(), &p)
            .and_then(|()| apply_permissions(&p, &e.node, true, ownership));
        match made {
            Ok(()) => summary.symlinks += 1,
            Err(err) => summary.unwritable(&p, err),
        }
    }
    // Directory metadata last and deepest first: writing into a directory changes its mtime.
    for e in entries.iter().rev().filter(|e| e.node.kind == NodeKind::Dir) {
        let p = local(e);
        if p.is_dir() {
            if let Err(err) = apply_permissions(&p, &e.node, false, ownership) {
                summary.unwritable(&p, err);
            }
            set_dir_mtime(&p, e.node.mtime_ns);
        }
    }
    Ok(summary)
}

/// Writes the files, several at once. A damaged or unwritable file is left out and noted
/// in `summary`; a full disk stops everything with how much is left.
async fn restore_files(
    reader: &BlobReader,
    files: Vec<(PathBuf, &Node)>,
    target: &Path,
    (progress, ownership): (&Progress, Ownership),
    summary: &mut RestoreSummary,
) -> Result<()> {
    summary.files = files.len() as u64;
    summary.bytes = files.iter().map(|(_, n)| n.size).sum();
    progress.set_totals(summary.files, summary.bytes);
    let budget = tokio::sync::Semaphore::new(BUFFER_BUDGET_MIB as usize);
    let mut results = futures::stream::iter(files)
        .map(|(path, node)| async {
            let result = restore_file(reader, path.clone(), node, &budget, (progress, ownership)).await;
            (path, node.size, result)
        })
        .buffer_unordered(FILES_IN_FLIGHT);
    let (total, mut written) = (summary.bytes, 0u64);
    while let Some((path, size, result)) = results.next().await {
        match result {
            Ok(()) => written += size,
            Err(Error::Io { source, .. }) if is_disk_full(&source) => {
                return Err(Error::Refused(format!(
                    "the target disk is full: {} of {} restored, {} still to go; free at least that much \
                     under {} (or restore elsewhere) and run the restore again",
                    human_bytes(written),
                    human_bytes(total),
                    human_bytes(total.saturating_sub(written)),
                    target.display()
                )));
            }
            Err(e @ (Error::Corrupt { .. } | Error::MissingBlob { .. } | Error::Io { .. })) => {
                summary.files -= 1;
                summary.bytes -= size;
                match e {
                    Error::Io { source, .. } => summary.unwritable(&path, source),
                    e => summary.damaged.push((path.display().to_string(), e.to_string())),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// ENOSPC (or a quota): nothing more can be written anywhere on that disk.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

#[cfg(unix)]
fn set_dir_mtime(path: &Path, mtime_ns: i64) {
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.set_modified(ns_to_time(mtime_ns));
    }
}

#[cfg(windows)]
fn set_dir_mtime(path: &Path, mtime_ns: i64) {
    use std::os::windows::fs::OpenOptionsExt;
    // A directory handle needs FILE_FLAG_BACKUP_SEMANTICS; setting times needs only
    // FILE_WRITE_ATTRIBUTES.
    const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
    const FILE_WRITE_ATTRIBUTES: u32 = 0x0100;
    let opened = std::fs::OpenOptions::new()
        .access_mode(FILE_WRITE_ATTRIBUTES)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path);
    if let Ok(f) = opened {
        let _ = f.set_modified(ns_to_time(mtime_ns));
    }
}

async fn restore_file(
    reader: &BlobReader,
    path: PathBuf,
    node: &Node,
    budget: &tokio::sync::Semaphore,
    with: (&Progress, Ownership),
) -> Result<()> {
    let dir = path.parent().expect("restored files live in a directory");
    let tmp = TempFile(dir.join(format!(".arka-restore-{}", arka_proto::id::to_hex(&rand::random::<[u8; 8]>()))));
    write_file(reader, &tmp.0, node, budget, with).await?;
    std::fs::rename(&tmp.0, &path).map_err(|e| Error::io(&path, e))?;
    std::mem::forget(tmp);
    Ok(())
}

/// A file being restored under a temporary name. It is removed if the restore of it does
/// not finish, including when another file's failure cancels this one mid-way.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn write_file(
    reader: &BlobReader,
    tmp: &Path,
    node: &Node,
    budget: &tokio::sync::Semaphore,
    (progress, ownership): (&Progress, Ownership),
) -> Result<()> {
    let mut file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
    let mut blobs = std::pin::pin!(content_ids(reader, node)
        .map(|id| async move {
            let id = id?;
            let mib = reader.location(&id)?.raw_len.div_ceil(1 << 20).clamp(1, BUFFER_BUDGET_MIB);
            let permit = budget.acquire_many(mib).await.map_err(|e| Error::Internal(e.to_string()))?;
            Ok::<_, Error>((reader.read(&id).await?, permit))
        })
        .buffered(BLOBS_AHEAD));
    let mut written = 0u64;
    while let Some((data, _permit)) = blobs.try_next().await? {
        tokio::task::block_in_place(|| {
            // All-zero blobs become holes, so sparse files stay sparse.
            if data.iter().all(|&b| b == 0) {
                file.seek(SeekFrom::Current(data.len() as i64)).map(|_| ())
            } else {
                file.write_all(&data)
            }
        })
        .map_err(|e| Error::io(tmp, e))?;
        written += data.len() as u64;
        progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    if written != node.size {
        return Err(Error::Corrupt {
            key: format!("tree entry {:?}", String::from_utf8_lossy(&node.name)),
            reason: format!("content adds up to {written} bytes, the entry says {}", node.size),
        });
    }
    file.set_len(written).map_err(|e| Error::io(tmp, e))?;
    file.set_modified(ns_to_time(node.mtime_ns)).map_err(|e| Error::io(tmp, e))?;
    drop(file);
    apply_permissions(tmp, node, false, ownership).map_err(|e| Error::io(tmp, e))?;
    progress.files.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Streams one file's content to `out`, verifying every blob.
pub async fn dump(reader: &BlobReader, node: &Node, out: &mut (impl Write + Send), progress: &Progress) -> Result<u64> {
    if node.kind != NodeKind::File {
        return Err(Error::Usage(format!("{:?} is not a file", String::from_utf8_lossy(&node.name))));
    }
    progress.set_totals(1, node.size);
    let mut blobs = std::pin::pin!(content_ids(reader, node)
        .map(|id| async move { reader.read(&id?).await })
        .buffered(BLOBS_AHEAD));
    let mut n = 0u64;
    while let Some(data) = blobs.try_next().await? {
        tokio::task::block_in_place(|| out.write_all(&data)).map_err(|e| Error::io("standard output", e))?;
        n += data.len() as u64;
        progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    progress.files.fetch_add(1, Ordering::Relaxed);
    out.flush().map_err(|e| Error::io("standard output", e))?;
    Ok(n)
}
