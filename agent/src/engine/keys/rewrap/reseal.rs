//! Re-encrypting packs: each source pack is read whole and every blob in it checked as a
//! restore checks it (open, decompress, recompute the ID). Data and Tree blobs are sealed
//! again under a fresh data key per new pack, sealed to the current reader key; Refs and
//! List blobs (sealed under the metadata key, which no reader key touches) are copied byte
//! for byte. New packs are stored, then indexed; the caller condemns the sources.
//!
//! Memory stays bounded: one pack being filled, and `IN_FLIGHT` source packs read ahead.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;

use arka_proto::pack::{self, PackBlobEntry};
use arka_proto::{BlobId, DataKey, IndexSegment, ObjectId, PackIndex};

use crate::engine::progress::Progress;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::blob::{decode, open_blob};
use crate::repo::damage::DamageSet;
use crate::repo::index::Location;
use crate::repo::packer::Packer;
use crate::repo::Repository;
use crate::store::ObjectKind;

/// Source packs read and checked ahead of the one being written: enough to keep the
/// network and a core busy, few enough that memory stays a few pack sizes.
const IN_FLIGHT: usize = 2;
/// New packs per index segment: a crash loses at most this many packs' worth of indexing
/// (they stay as unindexed packs, which prune removes), and entries do not pile up.
const PACKS_PER_SEGMENT: usize = 32;

/// A blob of a source pack that passed its checks.
struct Checked {
    entry: PackBlobEntry,
    body: Body,
}

enum Body {
    /// Data or Tree: the plaintext as stored (after compression), to seal again.
    Encoded(Vec<u8>),
    /// Refs or List: the sealed bytes, copied as they are.
    Sealed(Vec<u8>),
}

/// One source pack, read and checked.
struct Opened {
    pack: ObjectId,
    len: u64,
    blobs: Vec<Checked>,
    /// Blobs that failed their check: recorded as damage and left where they are.
    damaged: Vec<BlobId>,
    /// Why the pack cannot be rewrapped at all (it cannot be read, or a data key of it
    /// does not open); it stays as it is.
    unusable: Option<String>,
}

/// What re-encrypting the sources did.
#[derive(Default)]
pub(super) struct Resealed {
    /// Sources whose every blob now has a copy in a new, indexed pack.
    pub done: HashSet<ObjectId>,
    pub bytes_done: u64,
    pub blobs: u64,
    pub packs_written: usize,
    pub bytes_written: u64,
    /// Sources left as they were, and why (no names of files: pack keys only).
    pub left: Vec<(String, String)>,
    pub damage: DamageSet,
    pub cancelled: bool,
}

/// Re-encrypts `sources` (pack ID and length). Stops at the next pack when cancelled,
/// after storing and indexing what is done, so a cancelled run still counts.
pub(super) async fn reseal(
    repo: &Arc<Repository>,
    sources: Vec<(ObjectId, u64)>,
    progress: &Progress,
) -> Result<Resealed> {
    let mut w = Writer::new(repo);
    let opened = futures::stream::iter(sources).map(|(id, len)| open_source(repo.clone(), id, len)).buffered(IN_FLIGHT);
    futures::pin_mut!(opened);
    while let Some(source) = opened.next().await {
        if progress.cancel.is_cancelled() {
            w.out.cancelled = true;
            break;
        }
        let source = source?;
        progress.files.fetch_add(1, Ordering::Relaxed);
        progress.bytes.fetch_add(source.len, Ordering::Relaxed);
        w.take(source, progress).await?;
    }
    w.finish(progress).await
}

/// Reads one pack and checks every blob in it, off the async threads.
async fn open_source(repo: Arc<Repository>, pack: ObjectId, len: u64) -> Result<Opened> {
    let key = ObjectKind::Pack.key(&pack);
    let bytes = match repo.store.get(&key).await {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::Damaged => return Ok(Opened::unusable(pack, len, e.into_reason())),
        Err(e) => return Err(e),
    };
    tokio::task::spawn_blocking(move || check_pack(&repo, pack, len, &bytes))
        .await
        .map_err(|e| Error::Internal(e.to_string()))
}

impl Opened {
    fn unusable(pack: ObjectId, len: u64, why: String) -> Self {
        Self { pack, len, blobs: Vec::new(), damaged: Vec::new(), unusable: Some(why) }
    }
}

/// The pack's table and data keys, then each blob. A pack that fails its hash is still
/// read blob by blob: each blob is authenticated on its own, and the intact ones are saved.
fn check_pack(repo: &Repository, pack: ObjectId, len: u64, bytes: &[u8]) -> Opened {
    let table = match pack::decode_table(repo.key.meta_key(), bytes) {
        Ok(t) => t,
        Err(e) => return Opened::unusable(pack, len, format!("its blob table does not open: {e}")),
    };
    let sealed_keys = match pack::decode_header(bytes) {
        Ok(k) => k,
        Err(e) => return Opened::unusable(pack, len, format!("its header does not decode: {e}")),
    };
    let mut data_keys = Vec::with_capacity(sealed_keys.len());
    for sealed in sealed_keys {
        match repo.open_data_key(sealed) {
            Ok(k) => data_keys.push(k),
            Err(e) => {
                let why = format!("a data key of it does not open with this identity or the keyring ({e})");
                return Opened::unusable(pack, len, why);
            }
        }
    }
    let mut out = Opened { pack, len, blobs: Vec::new(), damaged: Vec::new(), unusable: None };
    let pack_key = ObjectKind::Pack.key(&pack);
    for entry in table {
        let checked = bytes
            .get(entry.offset as usize..entry.end() as usize)
            .ok_or_else(|| "it lies past the end of the pack".to_string())
            .and_then(|sealed| check_blob(repo, &pack_key, &data_keys, &entry, sealed));
        match checked {
            Ok(body) => out.blobs.push(Checked { entry, body }),
            Err(why) => {
                tracing::warn!("blob {} of {pack_key} is damaged ({why}); it is left where it is", entry.id.short());
                out.damaged.push(entry.id);
            }
        }
    }
    out
}

/// Checks one blob fully and returns what the new pack needs of it.
fn check_blob(
    repo: &Repository,
    pack_key: &str,
    data_keys: &[DataKey],
    e: &PackBlobEntry,
    sealed: &[u8],
) -> std::result::Result<Body, String> {
    if e.kind.meta_seal_label().is_some() {
        open_blob(&repo.key, None, pack_key, &e.id, &Location::from(e), sealed).map_err(|e| e.to_string())?;
        return Ok(Body::Sealed(sealed.to_vec()));
    }
    let key = data_keys.get(e.key as usize).ok_or("it names a data key the pack lacks")?;
    let encoded = key.open_blob(&e.id, e.kind, sealed).map_err(|e| e.to_string())?;
    let plain = decode(e.compression, e.raw_len, encoded.clone())?;
    if repo.key.blob_id(e.kind, &plain) != e.id {
        return Err("its content does not match its ID".into());
    }
    Ok(Body::Encoded(encoded))
}

/// Fills new packs, stores and indexes them.
struct Writer<'a> {
    repo: &'a Repository,
    packer: Packer,
    /// Blob IDs in the pack being filled: under one data key each ID is sealed once
    /// (FORMAT.md §3.5), so a blob two sources hold goes in once.
    in_packer: HashSet<BlobId>,
    /// Sources whose blobs are all in the pack being filled or in stored packs.
    sources: Vec<(ObjectId, u64)>,
    /// Stored packs not yet indexed.
    stored: Vec<PackIndex>,
    out: Resealed,
}

impl<'a> Writer<'a> {
    fn new(repo: &'a Repository) -> Self {
        Self {
            packer: Self::new_packer(repo),
            repo,
            in_packer: HashSet::new(),
            sources: Vec::new(),
            stored: Vec::new(),
            out: Resealed::default(),
        }
    }

    /// A pack under a fresh data key, sealed to the current reader key (`repo.recipients`).
    fn new_packer(repo: &Repository) -> Packer {
        Packer::new(&repo.recipients, *repo.key.meta_key(), repo.config.pack_size as usize + (1 << 20))
    }

    async fn take(&mut self, source: Opened, progress: &Progress) -> Result<()> {
        let pack_key = ObjectKind::Pack.key(&source.pack);
        if let Some(why) = source.unusable {
            tracing::warn!("{pack_key} is left as it is: {why}");
            self.out.left.push((pack_key, why));
            return Ok(());
        }
        for blob in source.blobs {
            if !self.in_packer.insert(blob.entry.id) {
                continue;
            }
            let e = blob.entry;
            match blob.body {
                Body::Encoded(encoded) => self.packer.add(e.id, e.kind, e.compression, e.raw_len as usize, &encoded),
                Body::Sealed(sealed) => self.packer.add_sealed(PackBlobEntry { key: 0, ..e }, &sealed),
            }
            self.out.blobs += 1;
            if self.packer.len() >= self.repo.config.pack_size as usize {
                self.flush(progress).await?;
            }
        }
        if source.damaged.is_empty() {
            self.sources.push((source.pack, source.len));
        } else {
            let n = source.damaged.len();
            self.out.damage.blobs.extend(source.damaged.into_iter().map(|b| (source.pack, b)));
            self.out.left.push((pack_key, format!("{n} damaged blobs stay in it (`arka repair packs`)")));
        }
        Ok(())
    }

    /// Stores the pack being filled, and indexes stored packs every `PACKS_PER_SEGMENT`.
    async fn flush(&mut self, progress: &Progress) -> Result<()> {
        let packer = std::mem::replace(&mut self.packer, Self::new_packer(self.repo));
        self.in_packer.clear();
        if !packer.is_empty() {
            let done = packer.finish();
            let len = done.bytes.len() as u64;
            self.repo.store.put_new(&ObjectKind::Pack.key(&done.id), done.bytes.into()).await?;
            progress.uploaded.fetch_add(len, Ordering::Relaxed);
            self.out.packs_written += 1;
            self.out.bytes_written += len;
            self.stored.push(PackIndex { pack_id: done.id, pack_len: len, blobs: done.entries });
        }
        if self.stored.len() >= PACKS_PER_SEGMENT {
            self.index().await?;
        }
        Ok(())
    }

    /// Indexes the stored packs: their blobs are now readable from the new copies.
    async fn index(&mut self) -> Result<()> {
        if self.stored.is_empty() {
            return Ok(());
        }
        let seg = IndexSegment { packs: std::mem::take(&mut self.stored) };
        self.repo.put_object(ObjectKind::Index, seg.encode(self.repo.key.meta_key())).await?;
        Ok(())
    }

    /// Stores and indexes the last pack; every source taken whole is then done.
    async fn finish(mut self, progress: &Progress) -> Result<Resealed> {
        self.flush(progress).await?;
        self.index().await?;
        for (pack, len) in self.sources {
            self.out.done.insert(pack);
            self.out.bytes_done += len;
        }
        Ok(self.out)
    }
}
