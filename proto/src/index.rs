//! Index segments: which pack holds which blob. Written after the packs they describe
//! and before any snapshot that needs them.
//!
//! ```text
//! "ARKI" version:u8 sealed(meta_key, "arka index segment v1", plaintext)
//! plaintext = pack_count:u32 { pack_id[32] pack_len:u64 blob_count:u32 entry[48]* }*
//! ```

use crate::codec::{self, Reader};
use crate::crypto::{open_meta, seal_meta};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::{PackBlobEntry, ENTRY_LEN, MAX_PACK_LEN};

pub const MAGIC: &[u8; 4] = b"ARKI";
const LABEL: &str = "arka index segment v1";

/// The blobs of one pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackIndex {
    pub pack_id: ObjectId,
    pub pack_len: u64,
    pub blobs: Vec<PackBlobEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexSegment {
    pub packs: Vec<PackIndex>,
}

impl IndexSegment {
    pub fn encode(&self, meta_key: &[u8; 32]) -> Vec<u8> {
        let mut plain = Vec::new();
        plain.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            plain.extend_from_slice(&p.pack_id.0);
            plain.extend_from_slice(&p.pack_len.to_le_bytes());
            plain.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for b in &p.blobs {
                b.encode(&mut plain);
            }
        }
        let mut out = Vec::new();
        codec::write_frame(&mut out, MAGIC, codec::FORMAT_VERSION);
        out.extend(seal_meta(meta_key, LABEL, &plain));
        out
    }

    pub fn decode(meta_key: &[u8; 32], bytes: &[u8]) -> Result<Self> {
        let (_, sealed) = codec::read_frame(bytes, MAGIC, "index segment")?;
        let plain = open_meta(meta_key, LABEL, sealed)?;
        let mut r = Reader::new(&plain, "index segment");
        let n = r.count(32 + 8 + 4)?;
        let mut packs = Vec::with_capacity(n);
        for _ in 0..n {
            let pack_id = ObjectId(r.array()?);
            let pack_len = r.u64()?;
            if pack_len > MAX_PACK_LEN {
                return Err(Error::Malformed { what: "index segment", reason: format!("pack of {pack_len} bytes") });
            }
            let m = r.count(ENTRY_LEN)?;
            let mut blobs = Vec::with_capacity(m);
            for _ in 0..m {
                let e = PackBlobEntry::decode(&mut r)?;
                if e.end() > pack_len {
                    return Err(Error::Malformed {
                        what: "index segment",
                        reason: "blob past the end of its pack".into(),
                    });
                }
                blobs.push(e);
            }
            packs.push(PackIndex { pack_id, pack_len, blobs });
        }
        r.finish()?;
        Ok(Self { packs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobId;
    use crate::pack::{BlobKind, Compression};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn index_round_trips(packs in proptest::collection::vec((any::<[u8; 32]>(), 0usize..5), 0..6)) {
            let seg = IndexSegment { packs: packs.into_iter().map(|(id, n)| PackIndex {
                pack_id: ObjectId(id),
                pack_len: 10_000,
                blobs: (0..n).map(|i| PackBlobEntry {
                    id: BlobId([i as u8; 32]), kind: BlobKind::Data, compression: Compression::Zstd, key: 0,
                    offset: 100 * i as u32, stored_len: 50, raw_len: 70,
                }).collect(),
            }).collect() };
            let key = [1u8; 32];
            let bytes = seg.encode(&key);
            prop_assert_eq!(IndexSegment::decode(&key, &bytes).unwrap(), seg);
            for cut in [0, 3, 5, bytes.len() / 2, bytes.len() - 1] {
                prop_assert!(IndexSegment::decode(&key, &bytes[..cut]).is_err());
            }
            prop_assert!(IndexSegment::decode(&[2u8; 32], &bytes).is_err());
        }
    }
}
