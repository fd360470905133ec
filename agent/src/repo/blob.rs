//! A blob's plaintext encoding (zstd, skipped when it does not pay) and reading blobs
//! back: ranged GET, open the seal, decompress, and check the content against its ID.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arka_proto::crypto::open_meta;
use arka_proto::pack::{self, Compression};
use arka_proto::{BlobId, DataKey, ObjectId};

use crate::error::{Error, ErrorKind, Result};
use crate::repo::damage::DamageSet;
use crate::repo::index::{Index, Location};
use crate::repo::Repository;
use crate::store::{ObjectKind, Store};

/// Blobs larger than this are probed before compressing in full.
const PROBE_THRESHOLD: usize = 256 << 10;
const PROBE_LEN: usize = 64 << 10;
/// A probe that does not shrink below this share of its length is taken for data that is
/// already compressed (JPEG, JPEG 2000 DICOM): the blob is stored as is.
const INCOMPRESSIBLE_PERCENT: usize = 95;
/// Byte-shuffling is chosen when the shuffled probe compresses to at most this share of the
/// plain one: 16-bit image samples come out around 70%, text and SQL well above 100%.
const SHUFFLE_PERCENT: usize = 90;
/// Shuffled blobs are compressed at most at this level. Measured on the benchmark's CT
/// series (docs/BENCHMARKS.md): level 3 took 3x the time of level 1 for 3% less, because
/// its match finder searches the noisy low-byte half in vain.
const SHUFFLED_MAX_LEVEL: i32 = 1;

/// Compresses blobs with reusable zstd contexts; one per worker thread.
pub struct Compressor {
    ctx: zstd::bulk::Compressor<'static>,
    shuffled_ctx: zstd::bulk::Compressor<'static>,
    probe: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Compressor {
    pub fn new(level: i32) -> Self {
        let new = |level| zstd::bulk::Compressor::new(level).expect("valid zstd level");
        Self { ctx: new(level), shuffled_ctx: new(level.min(SHUFFLED_MAX_LEVEL)), probe: new(1), scratch: Vec::new() }
    }

    /// Returns the encoding to store. Large blobs are probed first: a cheap compression of
    /// their start, plain and byte-shuffled, tells already-compressed data (stored as is)
    /// and 16-bit samples (shuffled) from the rest. Compressed output is decompressed and
    /// compared before it is used: a compressor bug (restic #4523) must never reach the
    /// repository, so on any mismatch the blob is stored uncompressed.
    pub fn encode(&mut self, data: &[u8]) -> (Compression, Option<Vec<u8>>) {
        let mut how = Compression::Zstd;
        if data.len() > PROBE_THRESHOLD {
            let probe = &data[..PROBE_LEN];
            let plain = self.probe.compress(probe).map_or(usize::MAX, |c| c.len());
            shuffle16(probe, &mut self.scratch);
            let shuffled = self.probe.compress(&self.scratch).map_or(usize::MAX, |c| c.len());
            if plain.min(shuffled).saturating_mul(100) >= probe.len() * INCOMPRESSIBLE_PERCENT {
                return (Compression::None, None);
            }
            if shuffled.saturating_mul(100) <= plain.saturating_mul(SHUFFLE_PERCENT) {
                how = Compression::ZstdShuffled16;
            }
        }
        let compressed = match how {
            Compression::ZstdShuffled16 => {
                shuffle16(data, &mut self.scratch);
                self.shuffled_ctx.compress(&self.scratch)
            }
            _ => self.ctx.compress(data),
        };
        match compressed {
            Ok(c) if c.len() < data.len() && round_trips(how, &c, data) => (how, Some(c)),
            _ => (Compression::None, None),
        }
    }
}

/// Whether `compressed` decompresses to exactly `data`.
fn round_trips(how: Compression, compressed: &[u8], data: &[u8]) -> bool {
    match decompress(how, data.len() as u32, compressed) {
        Ok(back) if back == data => true,
        _ => {
            tracing::error!("zstd output did not decompress to its input; storing the blob uncompressed");
            false
        }
    }
}

/// Even-offset bytes, then odd-offset bytes (`Compression::ZstdShuffled16`).
pub fn shuffle16(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(data.len(), 0);
    let (evens, odds) = out.split_at_mut(data.len().div_ceil(2));
    let pairs = data.chunks_exact(2);
    if let ([last], Some(slot)) = (pairs.remainder(), evens.last_mut()) {
        *slot = *last;
    }
    for ((pair, e), o) in pairs.zip(evens.iter_mut()).zip(odds.iter_mut()) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// The inverse of `shuffle16`.
pub fn unshuffle16(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(data.len(), 0);
    let (evens, odds) = data.split_at(data.len().div_ceil(2));
    let mut pairs = out.chunks_exact_mut(2);
    for ((pair, e), o) in pairs.by_ref().zip(evens).zip(odds) {
        pair[0] = *e;
        pair[1] = *o;
    }
    if let ([slot], Some(last)) = (pairs.into_remainder(), evens.last()) {
        *slot = *last;
    }
}

thread_local! {
    /// One zstd context per thread: making one per blob cost 4% of a restore.
    static DECOMPRESSOR: std::cell::RefCell<zstd::bulk::Decompressor<'static>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().expect("zstd decompressor"));
}

pub fn decode(compression: Compression, raw_len: u32, encoded: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    match compression {
        Compression::None if encoded.len() == raw_len as usize => Ok(encoded),
        Compression::None => Err(format!("stored length {} differs from the recorded {raw_len}", encoded.len())),
        Compression::Zstd | Compression::ZstdShuffled16 => decompress(compression, raw_len, &encoded),
    }
}

/// Undoes `Zstd` or `ZstdShuffled16`, producing exactly `raw_len` bytes. Readers use it, and
/// so does the writer to check each compressed blob before sealing it.
fn decompress(compression: Compression, raw_len: u32, encoded: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let out =
        DECOMPRESSOR.with_borrow_mut(|d| d.decompress(encoded, raw_len as usize)).map_err(|e| format!("zstd: {e}"))?;
    if out.len() != raw_len as usize {
        return Err(format!("decompressed to {} bytes, expected {raw_len}", out.len()));
    }
    if compression == Compression::ZstdShuffled16 {
        let mut plain = Vec::new();
        unshuffle16(&out, &mut plain);
        return Ok(plain);
    }
    Ok(out)
}

/// Opens one sealed blob read from `pack_key` and checks its content against its ID.
/// `data_key` is needed for Data and Tree blobs (a recovery identity unwrapped it);
/// Refs and List blobs open with the agent key alone.
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
    let opened = match (loc.kind.meta_seal_label(), data_key) {
        // Under a retired key too: a Refs or List blob is reached only through snapshots
        // and index segments, which are refused when a retired key wrote them late.
        (Some(label), _) => agent_key.open_meta_with(|k| open_meta(k, label, sealed)).map(|(plain, _)| plain),
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
    /// Copies that failed to open (or whose pack is gone), for the operation to record so
    /// the next backup stores them again.
    found: Mutex<DamageSet>,
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
        Self {
            repo,
            index,
            data_keys: Mutex::new(HashMap::new()),
            windows: Mutex::new(WindowCache::default()),
            found: Mutex::new(DamageSet::default()),
        }
    }

    /// The damaged copies this reader ran into so far.
    pub fn damage_found(&self) -> DamageSet {
        self.found.lock().expect("no panics while locked").clone()
    }

    /// Notes that the copy of `blob` in `pack` is damaged.
    pub fn note_damage(&self, pack: ObjectId, blob: BlobId) {
        self.found.lock().expect("no panics while locked").blobs.insert((pack, blob));
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
        let window = cell
            .get_or_try_init(|| async {
                Ok::<_, Error>((first, self.repo.store.get_range(&key, first..window_end).await?))
            })
            .await;
        let (at, bytes) = match window {
            Ok(w) => w,
            // A truncated pack fails every window that reaches past its end: the blobs
            // before the cut are intact and read one by one.
            Err(e) if e.kind() == ErrorKind::Damaged => return self.repo.store.get_range(&key, start..end).await,
            Err(e) => return Err(e),
        };
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

    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    pub fn location(&self, id: &BlobId) -> Result<Location> {
        self.index.get(id).copied().ok_or_else(|| Error::MissingBlob { blob: id.to_hex() })
    }

    /// Reads, opens and verifies one blob. A damaged copy is noted (`damage_found`) and the
    /// blob's other indexed copies are tried in turn; the first copy's error is returned
    /// when none reads.
    pub async fn read(&self, id: &BlobId) -> Result<Vec<u8>> {
        let first = self.location(id)?;
        let mut first_error = None;
        for loc in std::iter::once(first).chain(self.index.other_copies(id).iter().copied()) {
            match self.read_at(id, loc).await {
                Err(e) if e.kind() == ErrorKind::Damaged => {
                    self.note_damage(self.index.pack_of(&loc).0, *id);
                    first_error.get_or_insert(e);
                }
                // Another copy may be sealed to a key this identity has.
                Err(e) if e.kind() == ErrorKind::Key => {
                    first_error.get_or_insert(e);
                }
                read => return read,
            }
        }
        Err(first_error.expect("a blob with a location has at least one copy"))
    }

    async fn read_at(&self, id: &BlobId, loc: Location) -> Result<Vec<u8>> {
        let (pack_id, pack_len) = self.index.pack_of(&loc);
        let key = ObjectKind::Pack.key(&pack_id);
        let data_key = match loc.kind.meta_seal_label() {
            Some(_) => None,
            None => Some(self.pack_data_key(&pack_id, pack_len, loc.key).await?),
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
        let key = ObjectKind::Pack.key(pack_id);
        let corrupt = |e: arka_proto::Error| Error::Corrupt { key: key.clone(), reason: e.to_string() };
        let keys = sealed_data_keys(&self.repo.store, pack_id, pack_len)
            .await?
            .iter()
            .map(|sealed| match self.repo.open_data_key(sealed) {
                Err(Error::Format(e)) => Err(corrupt(e)),
                other => other,
            })
            .collect::<Result<Vec<_>>>()?;
        let keys = Arc::new(keys);
        self.data_keys.lock().expect("no panics while locked").insert(*pack_id, keys.clone());
        Ok(keys)
    }
}

/// The sealed data keys in a pack's header: a ranged read of its first 4 KiB, and of the
/// rest of the header when it is longer.
pub async fn sealed_data_keys(store: &Store, pack_id: &ObjectId, pack_len: u64) -> Result<Vec<Vec<u8>>> {
    let key = ObjectKind::Pack.key(pack_id);
    let corrupt = |e: arka_proto::Error| Error::Corrupt { key: key.clone(), reason: e.to_string() };
    let mut head = store.get_range(&key, 0..pack_len.min(4096)).await?;
    let need = (pack::HEADER_PREFIX_LEN + pack::header_len(&head).map_err(corrupt)?) as u64;
    if need > head.len() as u64 {
        head = store.get_range(&key, 0..need.min(pack_len)).await?;
    }
    Ok(pack::decode_header(&head).map_err(corrupt)?.into_iter().map(<[u8]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::test_data::pseudo_random as xorshift;
    use proptest::prelude::*;

    /// 16-bit little-endian samples like a CT slice: a smooth high byte, 6 bits of noise low.
    fn ct_like(len: usize) -> Vec<u8> {
        let noise = xorshift(len / 2, 7);
        (0..len / 2).flat_map(|i| [noise[i] & 0x3f, (4.0 + 3.0 * (i as f64 / 700.0).sin()) as u8]).collect()
    }

    fn text(len: usize) -> Vec<u8> {
        let words = ["patient", "visit", "2026-11-23", "crown", "molar", "INSERT", "invoice", "paid"];
        let pick = xorshift(len, 3);
        let mut out = Vec::new();
        for b in pick {
            out.extend_from_slice(words[b as usize % words.len()].as_bytes());
            out.push(if b % 7 == 0 { b'\n' } else { b' ' });
            if out.len() >= len {
                break;
            }
        }
        out.truncate(len);
        out
    }

    fn round_trip(data: &[u8]) -> Compression {
        let (how, encoded) = Compressor::new(3).encode(data);
        let stored = encoded.unwrap_or_else(|| data.to_vec());
        assert_eq!(decode(how, data.len() as u32, stored).unwrap(), data);
        how
    }

    #[test]
    fn each_kind_of_content_gets_its_encoding_and_decodes_back() {
        assert_eq!(round_trip(&ct_like(1 << 20)), Compression::ZstdShuffled16);
        assert_eq!(round_trip(&text(1 << 20)), Compression::Zstd);
        assert_eq!(round_trip(&xorshift(1 << 20, 11)), Compression::None);
        // Small blobs are not probed: plain zstd or nothing.
        assert_eq!(round_trip(&text(4000)), Compression::Zstd);
        assert_eq!(round_trip(&xorshift(4000, 5)), Compression::None);
    }

    #[test]
    fn shuffling_pays_on_16_bit_samples() {
        let data = ct_like(1 << 20);
        let plain = zstd::bulk::compress(&data, 3).unwrap().len();
        let (_, shuffled) = Compressor::new(3).encode(&data);
        let shuffled = shuffled.unwrap().len();
        assert!(shuffled * 100 < plain * 90, "shuffled {shuffled} vs plain {plain}");
    }

    #[test]
    fn a_wrong_length_or_a_damaged_frame_is_refused() {
        let data = ct_like(1 << 20);
        let (how, encoded) = Compressor::new(3).encode(&data);
        let encoded = encoded.unwrap();
        assert!(decode(how, data.len() as u32 + 1, encoded.clone()).is_err());
        assert!(decode(how, data.len() as u32 - 1, encoded.clone()).is_err());
        assert!(decode(how, data.len() as u32, encoded[..encoded.len() / 2].to_vec()).is_err());
    }

    proptest! {
        #[test]
        fn unshuffle_inverts_shuffle(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (mut shuffled, mut back) = (Vec::new(), Vec::new());
            shuffle16(&data, &mut shuffled);
            unshuffle16(&shuffled, &mut back);
            prop_assert_eq!(back, data);
        }
    }
}
