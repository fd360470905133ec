//! Packs: the objects that hold sealed blobs.
//!
//! ```text
//! "ARKP" version:u8 header_len:u32 header[header_len]
//!     header = key_count:u16 { key_len:u32 sealed_key[key_len] }*   each an age file of a 32-byte data key
//! blob bytes...                                          each sealed (see crypto.rs)
//! table[table_len]                                       blob table sealed under the metadata key
//! table_len:u32 "PEND"
//! ```
//! The pack's object ID is the BLAKE3 of all its bytes. A pack written by a backup has one
//! data key; a pack written by prune holds the sealed blobs it copied from older packs
//! unchanged, so it carries their packs' sealed data keys, and each entry names its key.

use crate::codec::{self, Reader};
use crate::crypto::{open_meta, seal_meta};
use crate::error::{Error, Result};
use crate::id::BlobId;

/// Defined with the IDs (a blob's ID and seal depend on its kind); also named here, where
/// the blob table stores it.
pub use crate::id::BlobKind;

pub const MAGIC: &[u8; 4] = b"ARKP";
pub const TRAILER_MAGIC: &[u8; 4] = b"PEND";
pub const TRAILER_LEN: usize = 8;
/// Upper bound on one blob's stored size; the chunker's maximum is far below it.
pub const MAX_BLOB_LEN: u32 = 64 << 20;
/// Upper bound on a pack's size, so offsets fit in u32 with room to spare.
pub const MAX_PACK_LEN: u64 = 1 << 31;
/// Upper bound on the data keys one pack carries (prune starts a new pack before this).
pub const MAX_PACK_KEYS: usize = 1024;
const TABLE_LABEL: &str = "arka pack blob table v1";

/// How a blob's plaintext was encoded before sealing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    None = 0,
    Zstd = 1,
    /// zstd of the plaintext with its bytes split by parity: every even-offset byte, then
    /// every odd-offset one. 16-bit image samples (CT, CBCT, RVG) put their noisy low bytes
    /// in one half and their smooth high bytes in the other, which compresses far better
    /// and faster than the interleaved samples (the shuffle filter of HDF5 and Blosc).
    ZstdShuffled16 = 2,
}

impl Compression {
    pub fn from_u8(b: u8) -> Result<Self> {
        match b {
            0 => Ok(Self::None),
            1 => Ok(Self::Zstd),
            2 => Ok(Self::ZstdShuffled16),
            _ => Err(Error::Malformed { what: "blob entry", reason: format!("unknown compression {b}") }),
        }
    }
}

/// One blob's place in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackBlobEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    pub compression: Compression,
    /// Which of the pack's data keys sealed the blob (always 0 for Refs blobs, which are
    /// sealed under the metadata key).
    pub key: u16,
    /// Offset of the sealed bytes from the start of the pack.
    pub offset: u32,
    /// Length of the sealed bytes (including the AEAD tag and, for Refs, the nonce).
    pub stored_len: u32,
    /// Length of the plaintext after decompression.
    pub raw_len: u32,
}

pub const ENTRY_LEN: usize = 32 + 1 + 1 + 2 + 4 + 4 + 4;

impl PackBlobEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.push(self.kind as u8);
        out.push(self.compression as u8);
        out.extend_from_slice(&self.key.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let e = Self {
            id: BlobId(r.array()?),
            kind: BlobKind::from_u8(r.u8()?)?,
            compression: Compression::from_u8(r.u8()?)?,
            key: r.u16()?,
            offset: r.u32()?,
            stored_len: r.u32()?,
            raw_len: r.u32()?,
        };
        if e.stored_len > MAX_BLOB_LEN || e.raw_len > MAX_BLOB_LEN {
            return Err(Error::Malformed { what: "blob entry", reason: "blob larger than the format allows".into() });
        }
        Ok(e)
    }

    pub fn end(&self) -> u64 {
        self.offset as u64 + self.stored_len as u64
    }
}

/// The start of a pack: magic, version and the data keys sealed to the recipients.
pub fn encode_header<K: AsRef<[u8]>>(sealed_keys: &[K]) -> Vec<u8> {
    assert!(sealed_keys.len() <= MAX_PACK_KEYS, "a pack carries at most MAX_PACK_KEYS keys");
    let body_len: usize = 2 + sealed_keys.iter().map(|k| 4 + k.as_ref().len()).sum::<usize>();
    let mut out = Vec::with_capacity(HEADER_PREFIX_LEN + body_len);
    codec::write_frame(&mut out, MAGIC, codec::FORMAT_VERSION);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&(sealed_keys.len() as u16).to_le_bytes());
    for k in sealed_keys {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(k.as_ref());
    }
    out
}

/// Length of the fixed prefix before the header's key table.
pub const HEADER_PREFIX_LEN: usize = codec::FRAME_LEN + 4;
const MAX_HEADER_LEN: usize = 1 << 20;

/// Reads the prefix of a pack; returns the length of the key table that follows it (to
/// fetch more if a ranged read got only part of it).
pub fn header_len(prefix: &[u8]) -> Result<usize> {
    let (_, rest) = codec::read_frame(prefix, MAGIC, "pack header")?;
    let len = Reader::new(rest, "pack header").u32()? as usize;
    if len > MAX_HEADER_LEN {
        return Err(Error::Malformed { what: "pack header", reason: format!("key table of {len} bytes") });
    }
    Ok(len)
}

/// Returns the sealed data keys from the start of a pack.
pub fn decode_header(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let len = header_len(bytes)?;
    let mut outer = Reader::new(&bytes[HEADER_PREFIX_LEN.min(bytes.len())..], "pack header");
    let mut r = Reader::new(outer.take(len)?, "pack header");
    let n = r.u16()? as usize;
    if n > MAX_PACK_KEYS {
        return Err(Error::Malformed { what: "pack header", reason: format!("{n} data keys") });
    }
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let klen = r.u32()? as usize;
        keys.push(r.take(klen)?);
    }
    r.finish()?;
    Ok(keys)
}

/// The sealed blob table and trailer that close a pack.
pub fn encode_table(meta_key: &[u8; 32], entries: &[PackBlobEntry]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(4 + entries.len() * ENTRY_LEN);
    plain.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        e.encode(&mut plain);
    }
    let mut out = seal_meta(meta_key, TABLE_LABEL, &plain);
    let len = out.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(TRAILER_MAGIC);
    out
}

/// Length of the sealed table, read from a pack's last `TRAILER_LEN` bytes.
pub fn table_len(trailer: &[u8]) -> Result<usize> {
    let mut r = Reader::new(trailer, "pack trailer");
    let len = r.u32()? as usize;
    if r.take(4)? != TRAILER_MAGIC {
        return Err(Error::BadMagic { what: "pack trailer" });
    }
    Ok(len)
}

/// Decodes a whole pack's blob table and checks every entry lies inside the blob area.
pub fn decode_table(meta_key: &[u8; 32], pack: &[u8]) -> Result<Vec<PackBlobEntry>> {
    decode_table_from(meta_key, pack.len() as u64, pack, pack)
}

/// Decodes a pack's blob table from its two ends, as ranged reads fetch them (an index
/// rebuilt from the packs reads kilobytes, not whole packs): `head`, the pack's first bytes,
/// holding at least the whole header; and `tail`, its last bytes, holding at least the
/// sealed table and the trailer. `pack_len` is the whole pack's length.
pub fn decode_table_from(meta_key: &[u8; 32], pack_len: u64, head: &[u8], tail: &[u8]) -> Result<Vec<PackBlobEntry>> {
    let truncated = |what, needed: u64, have: usize| Error::Truncated { what, needed: needed as usize, have };
    if (tail.len() as u64) < TRAILER_LEN as u64 || pack_len < tail.len() as u64 || pack_len < head.len() as u64 {
        return Err(truncated("pack", TRAILER_LEN as u64, tail.len()));
    }
    let tlen = table_len(&tail[tail.len() - TRAILER_LEN..])?;
    let table_start = (pack_len - TRAILER_LEN as u64)
        .checked_sub(tlen as u64)
        .ok_or_else(|| truncated("pack table", (tlen + TRAILER_LEN) as u64, pack_len as usize))?;
    let in_tail = tail
        .len()
        .checked_sub(TRAILER_LEN + tlen)
        .ok_or_else(|| truncated("pack table", (tlen + TRAILER_LEN) as u64, tail.len()))?;
    let blobs_start = (HEADER_PREFIX_LEN + header_len(head)?) as u64;
    if blobs_start > table_start {
        return Err(Error::Malformed { what: "pack", reason: "the blob table overlaps the header".into() });
    }
    let key_count = decode_header(head)?.len();
    let plain = open_meta(meta_key, TABLE_LABEL, &tail[in_tail..tail.len() - TRAILER_LEN])?;
    let mut r = Reader::new(&plain, "pack table");
    let n = r.count(ENTRY_LEN)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let e = PackBlobEntry::decode(&mut r)?;
        if (e.offset as u64) < blobs_start || e.end() > table_start {
            return Err(Error::Malformed { what: "pack table", reason: "blob outside the pack's blob area".into() });
        }
        let key_ok = match e.kind {
            // Sealed under the metadata key, not a data key.
            BlobKind::Refs | BlobKind::List => e.key == 0,
            BlobKind::Data | BlobKind::Tree => (e.key as usize) < key_count,
        };
        if !key_ok {
            return Err(Error::Malformed { what: "pack table", reason: format!("blob sealed with key {}", e.key) });
        }
        entries.push(e);
    }
    r.finish()?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry_strategy() -> impl Strategy<Value = PackBlobEntry> {
        (any::<[u8; 32]>(), 1u8..=3, 0u8..=2, 0u16..3, 0u32..1000, 0u32..1000, 0u32..MAX_BLOB_LEN).prop_map(
            |(id, k, c, key, off, len, raw)| PackBlobEntry {
                id: BlobId(id),
                kind: BlobKind::from_u8(k).unwrap(),
                compression: Compression::from_u8(c).unwrap(),
                key: if BlobKind::from_u8(k).unwrap().meta_seal_label().is_some() { 0 } else { key },
                offset: 200 + off,
                stored_len: len,
                raw_len: raw,
            },
        )
    }

    proptest! {
        #[test]
        fn pack_table_round_trips(entries in proptest::collection::vec(entry_strategy(), 0..20)) {
            let key = [9u8; 32];
            let keys = [vec![1u8; 100], vec![2u8; 30], vec![3u8; 1]];
            let mut pack = encode_header(&keys);
            pack.resize(2300, 0);
            pack.extend(encode_table(&key, &entries));
            prop_assert_eq!(decode_table(&key, &pack).unwrap(), entries);
            prop_assert_eq!(decode_header(&pack).unwrap(), keys.iter().map(|k| &k[..]).collect::<Vec<_>>());
        }

        #[test]
        fn truncated_or_flipped_packs_are_errors(cut in 0usize..400, flip in 0usize..400) {
            let key = [9u8; 32];
            let e = PackBlobEntry { id: BlobId([1; 32]), kind: BlobKind::Data, compression: Compression::None, key: 0, offset: 200, stored_len: 10, raw_len: 10 };
            let mut pack = encode_header(&[[1u8; 100]]);
            pack.resize(300, 0);
            pack.extend(encode_table(&key, &[e]));
            let truncated = &pack[..cut.min(pack.len() - 1)];
            prop_assert!(decode_table(&key, truncated).is_err());
            let mut flipped = pack.clone();
            let at = 300 + flip % (pack.len() - 300);
            flipped[at] ^= 1;
            prop_assert!(decode_table(&key, &flipped).is_err());
        }
    }

    #[test]
    fn a_table_decodes_from_the_two_ends_of_a_pack() {
        let meta = [9u8; 32];
        let e = PackBlobEntry {
            id: BlobId([1; 32]),
            kind: BlobKind::Data,
            compression: Compression::None,
            key: 0,
            offset: 200,
            stored_len: 10,
            raw_len: 10,
        };
        let mut pack = encode_header(&[[1u8; 100]]);
        pack.resize(5000, 0);
        pack.extend(encode_table(&meta, &[e]));
        let len = pack.len() as u64;
        let (head, tail) = (&pack[..300], &pack[pack.len() - 200..]);
        assert_eq!(decode_table_from(&meta, len, head, tail).unwrap(), vec![e]);
        // A tail too short for the table, or a head without the whole header, is an error.
        assert!(decode_table_from(&meta, len, head, &pack[pack.len() - 20..]).is_err());
        assert!(decode_table_from(&meta, len, &pack[..50], tail).is_err());
    }

    #[test]
    fn entries_naming_a_missing_key_are_refused() {
        let meta = [9u8; 32];
        let e = PackBlobEntry {
            id: BlobId([1; 32]),
            kind: BlobKind::Data,
            compression: Compression::None,
            key: 1,
            offset: 200,
            stored_len: 10,
            raw_len: 10,
        };
        let mut pack = encode_header(&[[1u8; 100]]);
        pack.resize(300, 0);
        pack.extend(encode_table(&meta, &[e]));
        assert!(decode_table(&meta, &pack).is_err());
    }
}
