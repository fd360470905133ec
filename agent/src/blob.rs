//! A blob's plaintext encoding (zstd, skipped when it does not pay) and reading blobs
//! back: ranged GET, open the seal, decompress, and check the content against its ID.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arka_proto::crypto::open_meta;
use arka_proto::pack::{self, BlobKind, Compression};
use arka_proto::tree::REFS_SEAL_LABEL;
use arka_proto::{BlobId, DataKey, ObjectId};

use crate::error::{Error, Result};
use crate::index::{Index, Location};
use crate::repo::Repository;
use crate::store::ObjectKind;

/// Blobs larger than this are probed before compressing in full.
const PROBE_THRESHOLD: usize = 256 << 10;
const PROBE_LEN: usize = 64 << 10;

/// Compresses blobs with a reusable zstd context; one per worker thread.
pub struct Compressor {
    ctx: zstd::bulk::Compressor<'static>,
    probe: zstd::bulk::Compressor<'static>,
    check: zstd::bulk::Decompressor<'static>,
}

impl Compressor {
    pub fn new(level: i32) -> Self {
        Self {
            ctx: zstd::bulk::Compressor::new(level).expect("valid zstd level"),
            probe: zstd::bulk::Compressor::new(1).expect("valid zstd level"),
            check: zstd::bulk::Decompressor::new().expect("zstd decompressor"),
        }
    }

    /// Returns the encoding to store. Already-compressed data (JPEG, JPEG-2000 DICOM) is
    /// detected with a cheap probe of its start and stored as is. Compressed output is
    /// decompressed and compared before it is used: a compressor bug (restic #4523) must
    /// never reach the repository, so on any mismatch the blob is stored uncompressed.
    pub fn encode(&mut self, data: &[u8]) -> (Compression, Option<Vec<u8>>) {
        if data.len() > PROBE_THRESHOLD {
            let probe = &data[..PROBE_LEN];
            match self.probe.compress(probe) {
                Ok(c) if c.len() * 100 < probe.len() * 95 => {}
                _ => return (Compression::None, None),
            }
        }
        match self.ctx.compress(data) {
            Ok(c) if c.len() < data.len() && self.round_trips(&c, data) => (Compression::Zstd, Some(c)),
            _ => (Compression::None, None),
        }
    }

    fn round_trips(&mut self, compressed: &[u8], data: &[u8]) -> bool {
        match self.check.decompress(compressed, data.len()) {
            Ok(back) if back == data => true,
            _ => {
                tracing::error!("zstd output did not decompress to its input; storing the blob uncompressed");
                false
            }
        }
    }
}

pub fn decode(compression: Compression, raw_len: u32, encoded: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    match compression {
        Compression::None if encoded.len() == raw_len as usize => Ok(encoded),
        Compression::None => Err(format!("stored length {} differs from the recorded {raw_len}", encoded.len())),
        Compression::Zstd => {
            let out = zstd::bulk::decompress(&encoded, raw_len as usize).map_err(|e| format!("zstd: {e}"))?;
            if out.len() != raw_len as usize {
                return Err(format!("decompressed to {} bytes, expected {raw_len}", out.len()));
            }
            Ok(out)
        }
    }
}

/// Opens one sealed blob read from `pack_key` and checks its content against its ID.
/// `data_key` is needed for Data and Tree blobs (a recovery identity unwrapped it);
/// Refs blobs open with the agent key alone.
pub fn open_blob(
    agent_key: &arka_proto::AgentKey,
    data_key: Option<&DataKey>,
    pack_key: &str,
    id: &BlobId,
    loc: &Location,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let corrupt =
        |reason: String| Error::Corrupt { key: pack_key.into(), reason: format!("blob {}: {reason}", id.short()) };
    let opened = match (loc.kind, data_key) {
        (BlobKind::Refs, _) => open_meta(agent_key.meta_key(), REFS_SEAL_LABEL, sealed),
        (_, Some(k)) => k.open_blob(id, loc.kind, sealed),
        (_, None) => return Err(Error::Usage("reading file contents needs a recovery identity".into())),
    }
    .map_err(|e| corrupt(e.to_string()))?;
    let plain = decode(loc.compression, loc.raw_len, opened).map_err(corrupt)?;
    if agent_key.blob_id(loc.kind, &plain) != *id {
        return Err(corrupt("content does not match its ID".into()));
    }
    Ok(plain)
}

/// Reads blobs for restore and verify. A pack's data keys are unwrapped once.
pub struct BlobReader {
    repo: Arc<Repository>,
    index: Arc<Index>,
    data_keys: Mutex<HashMap<ObjectId, Arc<Vec<DataKey>>>>,
    windows: Mutex<WindowCache>,
}

/// Packs are read in aligned windows of this size, and the last few windows are kept:
/// blobs written together are read together, so one GET serves many blobs. On S3 each
/// request costs a round trip; one per blob made restores latency-bound.
const WINDOW: u64 = 4 << 20;
const WINDOWS_KEPT: usize = 4;

type WindowKey = (ObjectId, u64);

/// Recently read pack windows. A window being fetched is a cell that concurrent readers
/// of the same window wait on, so it is fetched once.
#[derive(Default)]
struct WindowCache {
    cells: HashMap<WindowKey, Arc<tokio::sync::OnceCell<(u64, bytes::Bytes)>>>,
    order: std::collections::VecDeque<WindowKey>,
}

impl WindowCache {
    fn cell(&mut self, key: WindowKey) -> Arc<tokio::sync::OnceCell<(u64, bytes::Bytes)>> {
        if let Some(c) = self.cells.get(&key) {
            return c.clone();
        }
        if self.order.len() >= WINDOWS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.cells.remove(&old);
            }
        }
        self.order.push_back(key);
        self.cells.entry(key).or_default().clone()
    }
}

impl BlobReader {
    pub fn new(repo: Arc<Repository>, index: Arc<Index>) -> Self {
        Self { repo, index, data_keys: Mutex::new(HashMap::new()), windows: Mutex::new(WindowCache::default()) }
    }

    /// The sealed bytes of a blob, from a cached window of its pack when possible.
    async fn sealed_bytes(&self, pack_id: ObjectId, pack_len: u64, loc: &Location) -> Result<bytes::Bytes> {
        let key = ObjectKind::Pack.key(&pack_id);
        let (start, end) = (loc.offset as u64, loc.offset as u64 + loc.stored_len as u64);
        let first = start / WINDOW * WINDOW;
        let window_end = (first + WINDOW).max(end).min(pack_len);
        if end > window_end {
            // The index says the blob lies past the pack's end: let the store say so.
            return self.repo.store.get_range(&key, start..end).await;
        }
        let cell = self.windows.lock().expect("no panics while locked").cell((pack_id, first));
        let (at, bytes) = cell
            .get_or_try_init(|| async {
                Ok::<_, Error>((first, self.repo.store.get_range(&key, first..window_end).await?))
            })
            .await?;
        if end <= at + bytes.len() as u64 {
            Ok(bytes.slice((start - at) as usize..(end - at) as usize))
        } else {
            // The cached window was fetched for a blob ending earlier.
            self.repo.store.get_range(&key, start..end).await
        }
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn location(&self, id: &BlobId) -> Result<Location> {
        self.index.get(id).copied().ok_or_else(|| Error::MissingBlob { blob: id.to_hex() })
    }

    /// Reads, opens and verifies one blob.
    pub async fn read(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.location(id)?;
        let (pack_id, pack_len) = self.index.pack_of(&loc);
        let key = ObjectKind::Pack.key(&pack_id);
        let data_key = match loc.kind {
            BlobKind::Refs => None,
            _ => Some(self.pack_data_key(&pack_id, pack_len, loc.key).await?),
        };
        let sealed = self.sealed_bytes(pack_id, pack_len, &loc).await?;
        let repo = self.repo.clone();
        let id = *id;
        tokio::task::spawn_blocking(move || open_blob(&repo.key, data_key.as_ref(), &key, &id, &loc, &sealed))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Data key `key` of a pack.
    pub async fn pack_data_key(&self, pack_id: &ObjectId, pack_len: u64, key: u16) -> Result<DataKey> {
        let keys = self.pack_data_keys(pack_id, pack_len).await?;
        keys.get(key as usize).cloned().ok_or_else(|| Error::Corrupt {
            key: ObjectKind::Pack.key(pack_id),
            reason: format!("a blob names data key {key}, but the pack has {}", keys.len()),
        })
    }

    /// All data keys of a pack, unwrapped with the recovery identity.
    pub async fn pack_data_keys(&self, pack_id: &ObjectId, pack_len: u64) -> Result<Arc<Vec<DataKey>>> {
        if let Some(k) = self.data_keys.lock().expect("no panics while locked").get(pack_id) {
            return Ok(k.clone());
        }
        let identities = self.repo.identities()?;
        let key = ObjectKind::Pack.key(pack_id);
        let corrupt = |e: arka_proto::Error| Error::Corrupt { key: key.clone(), reason: e.to_string() };
        let mut head = self.repo.store.get_range(&key, 0..pack_len.min(4096)).await?;
        let need = (pack::HEADER_PREFIX_LEN + pack::header_len(&head).map_err(corrupt)?) as u64;
        if need > head.len() as u64 {
            head = self.repo.store.get_range(&key, 0..need.min(pack_len)).await?;
        }
        let keys = pack::decode_header(&head)
            .map_err(corrupt)?
            .into_iter()
            .map(|sealed| {
                let raw = zeroize::Zeroizing::new(identities.open(sealed).map_err(corrupt)?);
                DataKey::from_bytes(&raw).map_err(corrupt)
            })
            .collect::<Result<Vec<_>>>()?;
        let keys = Arc::new(keys);
        self.data_keys.lock().expect("no panics while locked").insert(*pack_id, keys.clone());
        Ok(keys)
    }
}
