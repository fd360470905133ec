//! The walker: the pipeline's first stage. It walks the source, reads files in large
//! buffers, chunks and hashes them, and hands blobs the repository lacks to the workers.
//! It builds each directory's tree and reference list bottom-up, so a directory is
//! finished once its entries are.

use std::collections::HashSet;
use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;

use arka_proto::pack::BlobKind;
use arka_proto::{AgentKey, BlobId, ContentList, Node, NodeKind, SnapshotStats, Tree, TreeRefs};

mod command;

use super::exclude::Excluder;
use super::files_cache::{CacheEntry, FilesCache};
use super::queued::Queued;
use super::stamp::FileStamp;
use super::{BlobJob, Problem};
use crate::engine::chunker::Chunker;
use crate::engine::progress::Progress;
use crate::error::{Error, Result};
use crate::platform::{name_to_bytes, platform_meta, same_name, time_to_ns, top_level_name};
use crate::repo::content::{ContentBuilder, Listing};
use crate::repo::index::Index;

pub struct Walker {
    key: AgentKey,
    chunker: Arc<Chunker>,
    index: Arc<Index>,
    queued: Queued,
    jobs: Sender<BlobJob>,
    pub old_cache: FilesCache,
    pub new_cache: FilesCache,
    /// Files modified at or after this instant (ns) are not cached: they may change again
    /// within the timestamp's resolution after we read them.
    pub cache_cutoff_ns: i64,
    pub stats: SnapshotStats,
    pub problems: Vec<Problem>,
    /// What a files backup leaves out (nothing unless set).
    pub excluder: Excluder,
    progress: Arc<Progress>,
    buf: Vec<u8>,
}

/// One file as the backup stores it: its listing and length, the modification time the
/// tree records, and whether it changed while read twice (stored as last read).
struct FileRead {
    listing: Listing,
    size: u64,
    mtime_ns: i64,
    changed: bool,
}

/// Why reading one file failed: the file's own problem (recorded, backup goes on) or the
/// backup's (it stops).
enum FileError {
    Unreadable(std::io::Error),
    Fatal(Error),
}

impl Walker {
    pub fn new(
        key: AgentKey,
        chunker: Chunker,
        index: Arc<Index>,
        jobs: Sender<BlobJob>,
        progress: Arc<Progress>,
    ) -> Self {
        Self {
            key,
            chunker: Arc::new(chunker),
            index,
            queued: Queued::default(),
            jobs,
            old_cache: FilesCache::default(),
            new_cache: FilesCache::default(),
            cache_cutoff_ns: i64::MAX,
            stats: SnapshotStats::default(),
            problems: Vec::new(),
            excluder: Excluder::default(),
            progress,
            buf: Vec::new(),
        }
    }

    /// How many of `ids` this backup stored.
    pub fn stored_again(&self, ids: &HashSet<BlobId>) -> u64 {
        ids.iter().filter(|id| self.queued.contains(id)).count() as u64
    }

    fn check_cancelled(&self) -> Result<()> {
        if self.progress.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    fn known(&self, id: &BlobId) -> bool {
        self.index.contains(id) || self.queued.contains(id)
    }

    /// Names a blob and queues it for packing unless the repository already has it.
    fn store_blob(&mut self, kind: BlobKind, data: &[u8]) -> Result<BlobId> {
        let id = self.key.blob_id(kind, data);
        if !self.known(&id) {
            self.queued.insert(&id);
            self.stats.blobs_new += 1;
            self.stats.bytes_new += data.len() as u64;
            self.jobs
                .send(BlobJob { id, kind, data: data.to_vec() })
                .map_err(|_| Error::Internal("the packing stage stopped".into()))?;
        }
        Ok(id)
    }

    fn store_list(&mut self, piece: &ContentList) -> Result<BlobId> {
        self.store_blob(BlobKind::List, &piece.encode())
    }

    /// Chunks a stream into data blobs; returns its listing and byte count. `keep_all`
    /// also returns every content ID (for the files cache) when the listing is in pieces.
    fn store_stream(&mut self, reader: impl Read, keep_all: bool) -> Result<(Listing, u64), FileError> {
        let mut listing = ContentBuilder::new(keep_all);
        let mut fatal = None;
        let mut buf = std::mem::take(&mut self.buf);
        let chunker = self.chunker.clone();
        let result = chunker.chunk_reader(reader, &mut buf, |chunk| {
            let stored = self.check_cancelled().and_then(|_| {
                let id = self.store_blob(BlobKind::Data, chunk)?;
                listing.push(id, &mut |piece| self.store_list(piece))
            });
            match stored {
                Ok(()) => {
                    self.stats.bytes_read += chunk.len() as u64;
                    self.progress.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok(())
                }
                Err(e) => {
                    fatal = Some(e);
                    Err(std::io::Error::other("backup stopped"))
                }
            }
        });
        self.buf = buf;
        match (result, fatal) {
            (_, Some(e)) => Err(FileError::Fatal(e)),
            (Err(e), None) => Err(FileError::Unreadable(e)),
            (Ok(n), None) => {
                let done = listing.finish(&mut |piece| self.store_list(piece));
                Ok((done.map_err(FileError::Fatal)?, n))
            }
        }
    }

    /// Stores a directory's tree and reference list; returns (tree ID, refs ID).
    fn store_tree(&mut self, nodes: Vec<Node>, subtrees: Vec<(BlobId, BlobId)>) -> Result<(BlobId, BlobId)> {
        let (tree, refs) = encode_tree(nodes, subtrees)?;
        let tree_id = self.store_blob(BlobKind::Tree, &tree)?;
        let refs_id = self.store_blob(BlobKind::Refs, &refs)?;
        Ok((tree_id, refs_id))
    }

    fn unreadable(&mut self, path: &Path, e: std::io::Error) {
        self.stats.unreadable += 1;
        self.problems.push(Problem::Unreadable { path: path.to_path_buf(), error: e.to_string() });
    }

    /// Backs up the given paths as the entries of one root tree, each named by its last
    /// component. A top-level path that does not exist is an error (a typo, not a partial).
    pub fn backup_paths(&mut self, paths: &[PathBuf]) -> Result<(BlobId, BlobId)> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut subtrees = Vec::new();
        for path in paths {
            let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
            let name = top_level_name(path);
            if nodes.iter().any(|n| same_name(&n.name, &name)) {
                return Err(Error::Usage(format!(
                    "two paths end in the same name {:?}; back them up as separate sources",
                    String::from_utf8_lossy(&name)
                )));
            }
            if let Some(node) = self.entry(path, name, &meta, &mut subtrees)? {
                nodes.push(node);
            }
        }
        self.store_tree(nodes, subtrees)
    }

    fn entry(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        meta: &Metadata,
        subtrees: &mut Vec<(BlobId, BlobId)>,
    ) -> Result<Option<Node>> {
        self.check_cancelled()?;
        if self.excluder.excludes(path, meta) {
            self.stats.excluded += 1;
            return Ok(None);
        }
        let pm = platform_meta(meta);
        let mut node = Node {
            name,
            kind: NodeKind::File,
            mode: pm.mode,
            mtime_ns: meta.modified().map(time_to_ns).unwrap_or(0),
            uid: pm.uid,
            gid: pm.gid,
            attributes: pm.attributes,
            size: 0,
            content: Vec::new(),
            lists: Vec::new(),
            subtree: None,
            target: None,
            lost: false,
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let Some((tree, refs)) = self.dir(path)? else { return Ok(None) };
            node.kind = NodeKind::Dir;
            node.subtree = Some(tree);
            subtrees.push((tree, refs));
            self.stats.dirs += 1;
        } else if ft.is_file() {
            if !self.file_node(path, meta, &mut node)? {
                return Ok(None);
            }
        } else if ft.is_symlink() {
            match std::fs::read_link(path) {
                Ok(target) => {
                    node.kind = NodeKind::Symlink;
                    node.target = Some(name_to_bytes(target.as_os_str()));
                }
                Err(e) => {
                    self.unreadable(path, e);
                    return Ok(None);
                }
            }
        } else {
            self.stats.skipped_special += 1;
            self.problems.push(Problem::Skipped { path: path.to_path_buf() });
            return Ok(None);
        }
        Ok(Some(node))
    }

    fn dir(&mut self, path: &Path) -> Result<Option<(BlobId, BlobId)>> {
        let entries = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.unreadable(path, e);
                return Ok(None);
            }
        };
        let mut children = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => children.push(e),
                Err(e) => self.unreadable(path, e),
            }
        }
        children.sort_by_key(|e| e.file_name());
        let mut nodes = Vec::with_capacity(children.len());
        let mut subtrees = Vec::new();
        for child in children {
            let child_path = child.path();
            let meta = match std::fs::symlink_metadata(&child_path) {
                Ok(m) => m,
                Err(e) => {
                    self.unreadable(&child_path, e);
                    continue;
                }
            };
            if let Some(node) = self.entry(&child_path, name_to_bytes(&child.file_name()), &meta, &mut subtrees)? {
                nodes.push(node);
            }
        }
        self.store_tree(nodes, subtrees).map(Some)
    }

    /// Reads a file into `node`; `Ok(false)` when it could not be read (recorded).
    fn file_node(&mut self, path: &Path, meta: &Metadata, node: &mut Node) -> Result<bool> {
        match self.file(path, meta) {
            Ok(read) => {
                node.content = read.listing.content;
                node.lists = read.listing.lists;
                node.size = read.size;
                node.mtime_ns = read.mtime_ns;
                if read.changed {
                    self.stats.changed_while_read += 1;
                    self.problems.push(Problem::Changed { path: path.to_path_buf() });
                }
                self.stats.files += 1;
                self.stats.bytes += read.size;
                self.progress.files.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(FileError::Unreadable(e)) => {
                self.unreadable(path, e);
                Ok(false)
            }
            Err(FileError::Fatal(e)) => Err(e),
        }
    }

    /// The file's contents: from the files cache if it says the file is unchanged, else
    /// read. A file that changed while read (see `FileStamp`) is read once more, and if it
    /// changes again the second read is kept and marked `changed`. The first read's blobs
    /// may already be on their way to a pack; nothing references them then, and prune
    /// collects them.
    fn file(&mut self, path: &Path, meta: &Metadata) -> Result<FileRead, FileError> {
        let cache_key = self.key.path_hash(path.as_os_str().as_encoded_bytes());
        let mut before = FileStamp::of(meta);
        if let Some(hit) = self.cached(cache_key, &before) {
            return Ok(hit);
        }
        for attempt in 1.. {
            let file = std::fs::File::open(path).map_err(FileError::Unreadable)?;
            let (mut listing, size) = self.store_stream(file, true)?;
            // Gone or unreadable after it was read: keep what was read, uncached.
            let Ok(after) = std::fs::symlink_metadata(path).map(|m| FileStamp::of(&m)) else {
                return Ok(FileRead { listing, size, mtime_ns: before.mtime_ns, changed: false });
            };
            if !before.changed_while_read(&after, size) {
                if before.mtime_ns < self.cache_cutoff_ns && before.ctime_ns < self.cache_cutoff_ns {
                    let content = listing.all.take().unwrap_or_else(|| listing.content.clone());
                    let (lists, FileStamp { mtime_ns, ctime_ns, inode, .. }) = (listing.lists.clone(), before);
                    let entry = CacheEntry { size, mtime_ns, ctime_ns, inode, content, lists };
                    self.new_cache.insert(cache_key, entry);
                }
                return Ok(FileRead { listing, size, mtime_ns: before.mtime_ns, changed: false });
            }
            if attempt == 2 {
                return Ok(FileRead { listing, size, mtime_ns: after.mtime_ns, changed: true });
            }
            // The progress bar counts the file once, as read the second time.
            self.progress.bytes.fetch_sub(size, Ordering::Relaxed);
            before = after;
        }
        unreachable!("the loop returns by its second attempt")
    }

    /// The files cache's listing of a file `stamp` shows unchanged since the last backup,
    /// if every blob it names is still in the repository.
    fn cached(&mut self, cache_key: [u8; 16], stamp: &FileStamp) -> Option<FileRead> {
        let hit = self.old_cache.get(&cache_key)?;
        let unchanged = hit.size == stamp.size
            && hit.mtime_ns == stamp.mtime_ns
            && hit.ctime_ns == stamp.ctime_ns
            && hit.inode == stamp.inode
            // Every data blob, not only the lists: a content list can outlive in a kept
            // pack the data it names, once nothing references either.
            && hit.content.iter().chain(&hit.lists).all(|id| self.known(id));
        if !unchanged {
            return None;
        }
        let hit = hit.clone();
        self.progress.bytes.fetch_add(hit.size, Ordering::Relaxed);
        let listing = if hit.lists.is_empty() {
            Listing { content: hit.content.clone(), lists: Vec::new(), all: None }
        } else {
            Listing { content: Vec::new(), lists: hit.lists.clone(), all: None }
        };
        let size = hit.size;
        self.new_cache.insert(cache_key, hit);
        Some(FileRead { listing, size, mtime_ns: stamp.mtime_ns, changed: false })
    }
}

/// A directory's tree blob (entries sorted by name) and its reference list (the content
/// blobs and content lists its files use, once each, and its subdirectories): the one
/// encoding every writer uses, so that identical directories deduplicate.
pub(crate) fn encode_tree(mut nodes: Vec<Node>, subtrees: Vec<(BlobId, BlobId)>) -> Result<(Vec<u8>, Vec<u8>)> {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = HashSet::new();
    let data = nodes.iter().flat_map(|n| n.content.iter()).filter(|id| seen.insert(**id)).copied().collect();
    let lists = nodes.iter().flat_map(|n| n.lists.iter()).filter(|id| seen.insert(**id)).copied().collect();
    let tree = Tree { nodes }.encode();
    if tree.len() > arka_proto::pack::MAX_BLOB_LEN as usize {
        return Err(Error::Refused(format!(
            "a directory has too many entries ({} bytes of listing, the format allows {}); split it",
            tree.len(),
            arka_proto::pack::MAX_BLOB_LEN
        )));
    }
    Ok((tree, TreeRefs { data, subtrees, lists }.encode()))
}
