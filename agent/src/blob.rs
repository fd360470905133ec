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
        (_, Some(k)) => k.open_blob(loc.offset as u64, id, loc.kind, sealed),
        (_, None) => return Err(Error::Usage("reading file contents needs a recovery identity".into())),
    }
    .map_err(|e| corrupt(e.to_string()))?;
    let plain = decode(loc.compression, loc.raw_len, opened).map_err(corrupt)?;
    if agent_key.blob_id(loc.kind, &plain) != *id {
        return Err(corrupt("content does not match its ID".into()));
    }
    Ok(plain)
}

/// Reads blobs for restore and verify. Pack data keys are unwrapped once per pack.
pub struct BlobReader {
    repo: Arc<Repository>,
    index: Arc<Index>,
    data_keys: Mutex<HashMap<ObjectId, DataKey>>,
}

impl BlobReader {
    pub fn new(repo: Arc<Repository>, index: Arc<Index>) -> Self {
        Self { repo, index, data_keys: Mutex::new(HashMap::new()) }
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
            _ => Some(self.data_key(&pack_id, pack_len).await?),
        };
        let sealed =
            self.repo.store.get_range(&key, loc.offset as u64..loc.offset as u64 + loc.stored_len as u64).await?;
        let repo = self.repo.clone();
        let id = *id;
        tokio::task::spawn_blocking(move || open_blob(&repo.key, data_key.as_ref(), &key, &id, &loc, &sealed))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// The data key of a pack, for callers that hold the pack's bytes already.
    pub async fn pack_data_key(&self, pack_id: &ObjectId, pack_len: u64) -> Result<DataKey> {
        self.data_key(pack_id, pack_len).await
    }

    async fn data_key(&self, pack_id: &ObjectId, pack_len: u64) -> Result<DataKey> {
        if let Some(k) = self.data_keys.lock().expect("no panics while locked").get(pack_id) {
            return Ok(k.clone());
        }
        let identities = self.repo.identities()?;
        let key = ObjectKind::Pack.key(pack_id);
        let corrupt = |e: arka_proto::Error| Error::Corrupt { key: key.clone(), reason: e.to_string() };
        let mut head = self.repo.store.get_range(&key, 0..pack_len.min(4096)).await?;
        let sealed_len = pack::header_len(&head).map_err(corrupt)?;
        let need = (pack::HEADER_PREFIX_LEN + sealed_len) as u64;
        if need > head.len() as u64 {
            head = self.repo.store.get_range(&key, 0..need.min(pack_len)).await?;
        }
        let sealed = pack::decode_header(&head).map_err(corrupt)?;
        let raw = zeroize::Zeroizing::new(identities.open(sealed).map_err(corrupt)?);
        let dk = DataKey::from_bytes(&raw).map_err(corrupt)?;
        self.data_keys.lock().expect("no panics while locked").insert(*pack_id, dk.clone());
        Ok(dk)
    }
}
