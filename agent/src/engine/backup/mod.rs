//! Backup: walk → read → chunk → keyed hash → dedup → compress → seal → pack → upload →
//! index → snapshot, as a pipeline with bounded queues so memory stays flat however
//! large the backup, and every core has work.
//!
//! Stages: one walker thread (read, chunk, hash, dedup), one worker thread per core
//! (compress, then seal into the one pack being filled), and an async uploader with a
//! bounded number of packs in flight.
//! Write order is packs, then index, then snapshot, so a crash anywhere leaves no listed
//! snapshot with missing data; index segments are also written every few packs, so an
//! interrupted backup's uploads are reused by the next run.

mod buffers;
pub mod exclude;
mod files_cache;
mod healing;
mod queued;
pub mod scan;
pub mod scrub;
mod stamp;
mod walk;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;

use arka_proto::pack::BlobKind;
use arka_proto::{BlobId, IndexSegment, ObjectId, PackIndex, Snapshot};

pub use files_cache::{default_cache_dir, FilesCache};
pub use healing::{healing_note, Healing};
pub(crate) use walk::encode_tree;

use crate::engine::chunker::Chunker;
use crate::engine::progress::Progress;
use crate::error::{Error, Result};
use crate::repo::blob::Compressor;
use crate::repo::packer::{FinishedPack, Packer};
use crate::repo::Repository;
use crate::store::ObjectKind;
use buffers::BufferPool;
use walk::Walker;

/// Blobs waiting for a worker. With chunks of at most 8 MiB this bounds the queue's memory.
const BLOB_QUEUE: usize = 4;
/// Closed packs waiting for, and in, upload.
const PACK_QUEUE: usize = 1;
const UPLOADS_IN_FLIGHT: usize = 2;
/// Write an index segment every this many packs, so an interrupted backup loses little,
/// or once it names this many blobs (48 bytes each, in memory until written; a pack of a
/// well-compressed dump holds thousands)...
const PACKS_PER_SEGMENT: usize = 32;
const BLOBS_PER_SEGMENT: usize = 16_384;
/// ...and at the latest this long after a pack was stored: prune takes packs that no
/// index names, once older than its grace period, for leftovers of a killed backup, so a
/// long backup that finds little new data must not keep its packs unindexed for hours.
const SEGMENT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// A blob the repository lacks, on its way to a worker.
pub struct BlobJob {
    pub id: BlobId,
    pub kind: BlobKind,
    pub data: Vec<u8>,
}

/// Something the backup could not include.
#[derive(Debug, Clone)]
pub enum Problem {
    Unreadable {
        path: PathBuf,
        error: String,
    },
    /// Sockets, FIFOs, devices: not backed up by design.
    Skipped {
        path: PathBuf,
    },
    /// It changed while read, and again while read a second time: stored as last read,
    /// which may be inconsistent.
    Changed {
        path: PathBuf,
    },
}

/// What files that changed while read mean and what to do, for the terminal, the logs and
/// notifications (no file names).
pub fn changed_advice(files: u64) -> String {
    let (they, were, them, are) = if files == 1 { ("it", "was", "it", "is") } else { ("they", "were", "them", "are") };
    let count = if files == 1 { "1 file".to_string() } else { format!("{files} files") };
    format!(
        "{count} changed while {they} {were} read; {they} {were} stored as last read, which may be \
         inconsistent: back {them} up again when {they} {are} not in use"
    )
}

pub enum Source {
    Paths(Vec<PathBuf>),
    /// A command's standard output, stored as one file `name` (checked by
    /// [`check_source_name`]). `debug_log`, if set, receives the command's full stderr;
    /// errors carry only its last line with paths removed.
    Command {
        command: String,
        name: String,
        debug_log: Option<PathBuf>,
    },
}

/// The longest source or dump name.
pub const MAX_SOURCE_NAME: usize = 64;

/// A source or dump name is one file name in the snapshot and a label in status and
/// logs: letters A-Z a-z, digits and `.` `_` `-`, at most [`MAX_SOURCE_NAME`], and not
/// `.` or `..` (a `/` or `..` made a tree that restore, ls and dump refused as malformed).
pub fn check_source_name(name: &str) -> std::result::Result<(), String> {
    let allowed = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if name.is_empty() || name.len() > MAX_SOURCE_NAME || !allowed || name == "." || name == ".." {
        return Err(format!(
            "name {:?} is not valid: use 1 to {MAX_SOURCE_NAME} letters A-Z a-z, digits and . _ - (not \".\" or \"..\"), \
             e.g. \"clinic-db\"",
            name.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

pub struct BackupOptions {
    pub hostname: String,
    pub tags: Vec<String>,
    /// Where the files cache lives; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    pub progress: Arc<Progress>,
    /// List the packs to find any that went missing since they were indexed.
    pub check_packs: bool,
    /// What a files backup leaves out.
    pub excludes: exclude::ExcludeRules,
    /// The configured source's name, recorded in the snapshot (service backups).
    pub source_name: Option<String>,
}

pub struct BackupOutcome {
    pub id: ObjectId,
    pub snapshot: Snapshot,
    pub problems: Vec<Problem>,
    pub healing: Healing,
}

pub async fn run(repo: Arc<Repository>, source: Source, opts: BackupOptions) -> Result<BackupOutcome> {
    if let Source::Command { name, .. } = &source {
        check_source_name(name).map_err(Error::Usage)?;
    }
    let started = Instant::now();
    let start_time = jiff::Timestamp::now();
    let index = Arc::new(healing::index_for_backup(&repo, opts.check_packs).await?);
    let index_loaded = Instant::now();
    let damaged = index.damaged().clone();
    let (pipeline, job_tx) = Pipeline::start(&repo, &opts.progress);

    let (source_kind, source_names, cache_file) = describe(&repo, &source, opts.cache_dir.as_deref());
    let chunker = Chunker::new(
        &repo.key,
        if matches!(source, Source::Command { .. }) { repo.config.chunker_stream } else { repo.config.chunker_files },
    );
    let mut walker = Walker::new(repo.key.clone(), chunker, index, job_tx, opts.progress.clone());
    if let Some(path) = &cache_file {
        walker.old_cache = FilesCache::load(path);
    }
    if let Source::Paths(paths) = &source {
        walker.excluder = exclude::Excluder::new(&opts.excludes, paths)?;
    }
    walker.cache_cutoff_ns = start_time.as_nanosecond().saturating_sub(2_000_000_000) as i64;
    let walked = tokio::task::spawn_blocking(move || {
        let root = match &source {
            Source::Paths(paths) => walker.backup_paths(paths),
            Source::Command { command, name, debug_log } => walker.backup_command(command, name, debug_log.as_deref()),
        };
        let healing = Healing { damaged: damaged.len() as u64, healed: walker.stored_again(&damaged) };
        // Dropping the walker closes the queue, which lets the workers flush and stop.
        (root, walker.stats, walker.problems, walker.new_cache, healing)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    let uploaded = pipeline.finish().await?;

    let (root, mut stats, problems, new_cache, healing) = walked;
    // The uploader's error explains a walker that stopped because packing stopped.
    stats.bytes_stored = uploaded?;
    let (tree, refs) = root?;
    if index_loaded.elapsed() > crate::engine::prune::SAFE_GRACE / 2 {
        check_against_new_plans(&repo, tree, refs).await?;
    }
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        time_ns: start_time.as_nanosecond() as i64,
        written_ns: jiff::Timestamp::now().as_nanosecond() as i64,
        hostname: opts.hostname,
        source_kind: source_kind.into(),
        source: source_names,
        tags: opts.tags,
        tree,
        refs,
        partial: stats.unreadable > 0,
        stats,
        program: format!("arka {}", env!("CARGO_PKG_VERSION")),
        repaired_from: None,
        lost_files: 0,
        source_name: opts.source_name.clone(),
    };
    let id = repo.put_object(ObjectKind::Snapshot, snapshot.encode(repo.key.meta_key())).await?;
    if let Some(path) = cache_file {
        // A cache that cannot be saved only costs re-reading next time.
        if let Err(e) = new_cache.save(&path) {
            tracing::warn!("could not save the files cache: {e}");
        }
    }
    Ok(BackupOutcome { id, snapshot, problems, healing })
}

/// The stages behind the walker: worker threads that compress and seal blobs into packs
/// (sharing one open pack), and the task that uploads and indexes the finished packs.
struct Pipeline {
    workers: Vec<std::thread::JoinHandle<()>>,
    shared_pack: Arc<Mutex<Packer>>,
    pack_tx: tokio::sync::mpsc::Sender<FinishedPack>,
    uploader: tokio::task::JoinHandle<Result<u64>>,
}

impl Pipeline {
    /// Starts the stages; the walker sends blobs to the returned queue.
    fn start(repo: &Arc<Repository>, progress: &Arc<Progress>) -> (Self, crossbeam_channel::Sender<BlobJob>) {
        let (job_tx, job_rx) = crossbeam_channel::bounded::<BlobJob>(BLOB_QUEUE);
        let (pack_tx, pack_rx) = tokio::sync::mpsc::channel::<FinishedPack>(PACK_QUEUE);
        let buffers = BufferPool::new(repo.config.pack_size as usize + (1 << 20));
        let shared_pack = Arc::new(Mutex::new(new_packer(repo, &buffers)));
        let workers: Vec<_> = (0..worker_count())
            .map(|_| {
                let (rx, tx, repo, shared) = (job_rx.clone(), pack_tx.clone(), repo.clone(), shared_pack.clone());
                let buffers = buffers.clone();
                std::thread::spawn(move || pack_worker(&repo, &shared, &buffers, rx, tx))
            })
            .collect();
        let uploader = tokio::spawn(upload_packs(repo.clone(), pack_rx, buffers, progress.clone()));
        (Self { workers, shared_pack, pack_tx, uploader }, job_tx)
    }

    /// Once the blob queue is closed: waits for the workers, sends the last open pack, and
    /// returns the uploader's result (the bytes stored).
    async fn finish(self) -> Result<Result<u64>> {
        let Self { workers, shared_pack, pack_tx, uploader } = self;
        tokio::task::spawn_blocking(move || {
            workers.into_iter().for_each(|w| w.join().expect("pack worker panicked"));
            // The workers are gone, and with them every other handle on the shared pack.
            let last = Arc::into_inner(shared_pack).and_then(|m| m.into_inner().ok());
            if let Some(last) = last.filter(|p| !p.is_empty()) {
                let _ = pack_tx.blocking_send(last.finish());
            }
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        uploader.await.map_err(|e| Error::Internal(e.to_string()))
    }
}

/// A backup that ran for longer than half the safe prune grace period may have deduplicated
/// against packs a prune has since condemned, or even deleted. Before its snapshot is
/// written, everything it references must still have a live copy; otherwise it fails
/// without a snapshot and the next run stores the data again (see `prune`).
async fn check_against_new_plans(repo: &Arc<Repository>, tree: BlobId, refs: BlobId) -> Result<()> {
    let fresh = Arc::new(repo.load_index().await?);
    let reader = crate::repo::blob::BlobReader::new(repo.clone(), fresh.clone());
    let used = crate::engine::reach::reachable_from(&reader, vec![(tree, refs)]).await?;
    let gone = used.iter().filter(|id| !fresh.contains(id)).count();
    if gone > 0 {
        return Err(Error::Refused(format!(
            "a prune removed or scheduled for deletion {gone} blobs this long backup reused; \
             no snapshot was written: run the backup again (it stores them anew)"
        )));
    }
    Ok(())
}

fn worker_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// What the snapshot says it backed up, and the files cache that goes with it.
fn describe(
    repo: &Repository,
    source: &Source,
    cache_dir: Option<&std::path::Path>,
) -> (&'static str, Vec<String>, Option<PathBuf>) {
    match source {
        Source::Paths(paths) => {
            let names: Vec<String> = paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let cache = cache_dir.map(|d| files_cache::cache_path(d, &repo.config.repo_id, &names.join("\0")));
            ("files", names, cache)
        }
        Source::Command { name, .. } => ("command", vec![name.clone()], None),
    }
}

/// A worker: compresses blobs, then seals them into the pack the workers share, and hands
/// full packs on. Compression, the costly part, runs in parallel; sealing and appending
/// take the lock briefly. One shared pack instead of one per worker keeps a pack's worth
/// of memory (16 MiB) per worker out of the backup's peak.
fn pack_worker(
    repo: &Repository,
    shared: &Mutex<Packer>,
    buffers: &BufferPool,
    jobs: crossbeam_channel::Receiver<BlobJob>,
    packs: tokio::sync::mpsc::Sender<FinishedPack>,
) {
    let target = repo.config.pack_size as usize;
    let mut compressor = Compressor::new(repo.config.zstd_level);
    for job in jobs {
        let (compression, compressed) = compressor.encode(&job.data);
        let encoded = compressed.as_deref().unwrap_or(&job.data);
        let (full_before, full_after) = {
            let mut packer = shared.lock().expect("no panics while locked");
            let next = |packer: &mut Packer| std::mem::replace(packer, new_packer(repo, buffers));
            // A pack closes before a blob that would outgrow its buffer (a grown buffer
            // doubles, and the pool would keep it), and once it reaches the target size.
            let before = (!packer.is_empty() && !packer.fits(encoded.len())).then(|| next(&mut packer));
            packer.add(job.id, job.kind, compression, job.data.len(), encoded);
            (before, (packer.len() >= target).then(|| next(&mut packer)))
        };
        for full in [full_before, full_after].into_iter().flatten() {
            if packs.blocking_send(full.finish()).is_err() {
                return; // the uploader failed; its error is reported
            }
        }
    }
}

fn new_packer(repo: &Repository, buffers: &BufferPool) -> Packer {
    Packer::new_in(&repo.recipients, *repo.key.meta_key(), buffers.take())
}

/// Uploads packs with bounded concurrency and indexes them. Returns the bytes stored.
async fn upload_packs(
    repo: Arc<Repository>,
    packs: tokio::sync::mpsc::Receiver<FinishedPack>,
    buffers: BufferPool,
    progress: Arc<Progress>,
) -> Result<u64> {
    let incoming = futures::stream::unfold(packs, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
    let mut uploads = incoming
        .map(|pack| {
            let (repo, bytes) = (repo.clone(), buffers.bytes(pack.bytes));
            async move {
                let len = bytes.len() as u64;
                repo.store.put_new(&ObjectKind::Pack.key(&pack.id), bytes).await?;
                Ok::<_, Error>(PackIndex { pack_id: pack.id, pack_len: len, blobs: pack.entries })
            }
        })
        .buffer_unordered(UPLOADS_IN_FLIGHT)
        .boxed();
    let mut pending = IndexSegment::default();
    let mut oldest_pending: Option<tokio::time::Instant> = None;
    let mut stored = 0u64;
    loop {
        let next = match oldest_pending {
            Some(since) => tokio::select! {
                next = uploads.next() => Some(next),
                _ = tokio::time::sleep_until(since + SEGMENT_MAX_AGE) => None,
            },
            None => Some(uploads.next().await),
        };
        let done = match next {
            None => {
                write_segment(&repo, &mut pending).await?;
                oldest_pending = None;
                continue;
            }
            Some(None) => break,
            Some(Some(Ok(d))) => d,
            Some(Some(Err(e))) => {
                // Index what did arrive so a retry reuses it; the original error is what matters.
                let _ = write_segment(&repo, &mut pending).await;
                return Err(e);
            }
        };
        stored += done.pack_len;
        progress.uploaded.fetch_add(done.pack_len, Ordering::Relaxed);
        pending.packs.push(done);
        oldest_pending.get_or_insert_with(tokio::time::Instant::now);
        let blobs: usize = pending.packs.iter().map(|p| p.blobs.len()).sum();
        if pending.packs.len() >= PACKS_PER_SEGMENT || blobs >= BLOBS_PER_SEGMENT {
            write_segment(&repo, &mut pending).await?;
            oldest_pending = None;
        }
    }
    write_segment(&repo, &mut pending).await?;
    Ok(stored)
}

async fn write_segment(repo: &Repository, pending: &mut IndexSegment) -> Result<()> {
    if pending.packs.is_empty() {
        return Ok(());
    }
    let seg = std::mem::take(pending);
    repo.put_object(ObjectKind::Index, seg.encode(repo.key.meta_key())).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
