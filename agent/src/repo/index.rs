//! The in-memory index: where each blob lives. Built once from the index segments, then
//! only read (a backup keeps its own set of what it has queued).
//!
//! Packs that a prune plan condemns are still readable until they are deleted, but new
//! snapshots must not come to depend on them: `contains` (what deduplication asks) is
//! false for a blob whose only copies are in condemned packs, so a backup stores it again.

use std::collections::{HashMap, HashSet};

use arka_proto::pack::{BlobKind, Compression, PackBlobEntry};
use arka_proto::{BlobId, IndexSegment, ObjectId};

/// A blob's place: its pack (by position in `Index::packs`) and its entry.
#[derive(Clone, Copy, Debug)]
pub struct Location {
    pub pack: u32,
    pub kind: BlobKind,
    pub compression: Compression,
    /// Which of the pack's data keys sealed the blob.
    pub key: u16,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

impl From<&PackBlobEntry> for Location {
    /// The location of an entry, for a caller that has the pack in hand (pack field unused).
    fn from(e: &PackBlobEntry) -> Self {
        Self {
            pack: u32::MAX,
            kind: e.kind,
            compression: e.compression,
            key: e.key,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
        }
    }
}

#[derive(Default)]
pub struct Index {
    packs: Vec<(ObjectId, u64)>,
    pack_pos: HashMap<ObjectId, u32>,
    /// One entry per blob, sorted by ID: 52 bytes a blob, where a hash map of the same
    /// entries takes 60 to 120 bytes depending on how full it happens to be. The index is
    /// built once and then only read, and a binary search costs nothing next to reading
    /// a chunk.
    blobs: Vec<(BlobId, Location)>,
    condemned_pos: HashSet<u32>,
}

impl Index {
    /// The index of `segments`. Packs that prune plans condemn (`condemned`) stay readable,
    /// but a blob with a copy elsewhere is located at that live copy.
    pub fn build<'a>(condemned: &HashSet<ObjectId>, segments: impl IntoIterator<Item = &'a IndexSegment>) -> Self {
        let segments: Vec<&IndexSegment> = segments.into_iter().collect();
        let entries = segments.iter().flat_map(|s| &s.packs).map(|p| p.blobs.len()).sum();
        let mut index = Self { blobs: Vec::with_capacity(entries), ..Self::default() };
        for p in segments.iter().flat_map(|s| &s.packs) {
            let pos = index.add_pack(p.pack_id, p.pack_len, condemned);
            index.blobs.extend(p.blobs.iter().map(|e| (e.id, Location { pack: pos, ..Location::from(e) })));
        }
        // Per blob, a live copy first, then the copy indexed first; keep that one.
        let condemned_pos = &index.condemned_pos;
        index.blobs.sort_unstable_by_key(|(id, loc)| (*id, condemned_pos.contains(&loc.pack), loc.pack));
        index.blobs.dedup_by_key(|(id, _)| *id);
        index.blobs.shrink_to_fit();
        index
    }

    fn add_pack(&mut self, id: ObjectId, len: u64, condemned: &HashSet<ObjectId>) -> u32 {
        if let Some(&pos) = self.pack_pos.get(&id) {
            return pos;
        }
        self.packs.push((id, len));
        let pos = (self.packs.len() - 1) as u32;
        self.pack_pos.insert(id, pos);
        if condemned.contains(&id) {
            self.condemned_pos.insert(pos);
        }
        pos
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every indexed pack with its recorded length.
    pub fn packs(&self) -> impl Iterator<Item = (ObjectId, u64)> + '_ {
        self.packs.iter().copied()
    }

    pub fn get(&self, id: &BlobId) -> Option<&Location> {
        self.blobs.binary_search_by(|(b, _)| b.cmp(id)).ok().map(|i| &self.blobs[i].1)
    }

    /// Whether a new snapshot may reference the blob without storing it: it has a copy in
    /// a pack no prune plan condemns.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.get(id).is_some_and(|l| !self.condemned_pos.contains(&l.pack))
    }

    /// Whether a pack (by position) is condemned by a prune plan.
    pub fn is_condemned(&self, pack: u32) -> bool {
        self.condemned_pos.contains(&pack)
    }

    /// A pack's position, if indexed.
    pub fn position(&self, id: &ObjectId) -> Option<u32> {
        self.pack_pos.get(id).copied()
    }

    /// The pack holding a blob, and the pack's length.
    pub fn pack_of(&self, loc: &Location) -> (ObjectId, u64) {
        self.packs[loc.pack as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arka_proto::PackIndex;

    fn entry(id: u8) -> PackBlobEntry {
        PackBlobEntry {
            id: BlobId([id; 32]),
            kind: BlobKind::Data,
            compression: Compression::Zstd,
            key: 0,
            offset: 100 * id as u32,
            stored_len: 50,
            raw_len: 60,
        }
    }

    fn segment(pack: u8, blobs: &[u8]) -> IndexSegment {
        IndexSegment {
            packs: vec![PackIndex {
                pack_id: ObjectId([pack; 32]),
                pack_len: 1000,
                blobs: blobs.iter().map(|&b| entry(b)).collect(),
            }],
        }
    }

    #[test]
    fn a_blob_is_found_at_its_live_copy_and_not_offered_for_dedup_when_only_condemned() {
        let condemned = HashSet::from([ObjectId([1; 32])]);
        let segments = [segment(1, &[7, 8]), segment(2, &[7, 9]), segment(3, &[9])];
        let index = Index::build(&condemned, &segments);
        assert_eq!(index.len(), 3);
        assert_eq!(index.pack_of(index.get(&BlobId([7; 32])).unwrap()).0, ObjectId([2; 32]));
        assert!(index.contains(&BlobId([7; 32])));
        // Only in a condemned pack: still readable, but a backup must store it again.
        assert_eq!(index.pack_of(index.get(&BlobId([8; 32])).unwrap()).0, ObjectId([1; 32]));
        assert!(!index.contains(&BlobId([8; 32])));
        // Two live copies: the one indexed first.
        assert_eq!(index.pack_of(index.get(&BlobId([9; 32])).unwrap()).0, ObjectId([2; 32]));
        assert!(index.get(&BlobId([5; 32])).is_none());
    }

    #[test]
    fn the_index_takes_under_64_bytes_a_blob() {
        let segments: Vec<IndexSegment> = (0..40u8).map(|p| segment(p, &(0..200).collect::<Vec<u8>>())).collect();
        let index = Index::build(&HashSet::new(), &segments);
        assert_eq!(index.len(), 200);
        let per_blob = index.blobs.capacity() * std::mem::size_of::<(BlobId, Location)>() / index.len();
        assert!(per_blob < 64, "{per_blob} bytes a blob");
    }
}
