//! The blobs this backup has queued for packing: the index loaded at its start does not
//! know them, and a stream of new data makes one per 64 KiB, 800,000 for a 50 GB dump.
//!
//! Held as the first 128 bits of each ID, hashed by those bits themselves (IDs are keyed
//! BLAKE3, uniformly random to anyone without the chunk key): 17 bytes a blob in the table
//! instead of 33. Two different IDs of one run sharing 128 bits (odds about n²/2¹²⁹, 10⁻²⁷
//! for a million blobs) would leave one blob unstored, which `arka verify` reports as
//! referenced but not in the index: never a silent wrong restore.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use arka_proto::BlobId;

#[derive(Default)]
pub struct Queued(HashSet<u128, BuildHasherDefault<PrefixHasher>>);

impl Queued {
    /// Whether the blob was not queued before.
    pub fn insert(&mut self, id: &BlobId) -> bool {
        self.0.insert(prefix(id))
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.0.contains(&prefix(id))
    }
}

fn prefix(id: &BlobId) -> u128 {
    u128::from_le_bytes(id.0[..16].try_into().expect("16 of 32 bytes"))
}

/// The hash of a random 128-bit key is its low 64 bits.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; a fold keeps any other use correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exactly_what_was_queued() {
        let id = |i: u32| BlobId(*blake3::hash(&i.to_le_bytes()).as_bytes());
        let mut q = Queued::default();
        for i in 0..10_000 {
            assert!(q.insert(&id(i)));
        }
        assert!(!q.insert(&id(42)), "a second insert reports the blob as new");
        assert!((0..10_000).all(|i| q.contains(&id(i))));
        assert!((10_000..20_000).all(|i| !q.contains(&id(i))));
    }
}
