//! The in-memory index: where each blob lives. Built once from the index segments, then
//! only read (a backup keeps its own set of what it has queued).
//!
//! Packs that a prune plan condemns are still readable until they are deleted, but new
//! snapshots must not come to depend on them: `contains` (what deduplication asks) is
//! false for a blob whose only copies are in condemned packs, so a backup stores it again.
//! Copies a damage report names are treated the same way, and readers are sent to another
//! copy when there is one.

use std::collections::{HashMap, HashSet};

use arka_proto::pack::{BlobKind, Compression, PackBlobEntry};
use arka_proto::{BlobId, IndexSegment, ObjectId};

use crate::repo::damage::DamageSet;

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
    /// Blobs whose every indexed copy is known damaged: readers still try the copy (part of
    /// a damaged pack may read fine), but deduplication must not trust it.
    damaged: HashSet<BlobId>,
    /// The other copies of blobs indexed more than once (rare: healing, a repack in
    /// progress, two agents racing), in order of preference, for a reader whose first
    /// copy turns out damaged.
    other_copies: HashMap<BlobId, Vec<Location>>,
}

impl Index {
    /// The index of `segments`. Packs that prune plans condemn (`condemned`) stay readable,
    /// but a blob with a copy elsewhere is located at that live copy; likewise a blob with
    /// a copy `damage` does not name is located at that healthy copy.
    pub fn build<'a>(
        condemned: &HashSet<ObjectId>,
        damage: &DamageSet,
        segments: impl IntoIterator<Item = &'a IndexSegment>,
    ) -> Self {
        let segments: Vec<&IndexSegment> = segments.into_iter().collect();
        let entries = segments.iter().flat_map(|s| &s.packs).map(|p| p.blobs.len()).sum();
        let mut index = Self { blobs: Vec::with_capacity(entries), ..Self::default() };
        let mut damaged_copies: HashSet<(u32, BlobId)> = HashSet::new();
        for p in segments.iter().flat_map(|s| &s.packs) {
            let pos = index.add_pack(p.pack_id, p.pack_len, condemned);
            for e in &p.blobs {
                if damage.is_damaged(&p.pack_id, &e.id) {
                    damaged_copies.insert((pos, e.id));
                }
                index.blobs.push((e.id, Location { pack: pos, ..Location::from(e) }));
            }
        }
        // Per blob: a healthy copy first, then a live one, then the copy indexed first;
        // keep that one.
        let condemned_pos = &index.condemned_pos;
        let is_damaged =
            |id: &BlobId, loc: &Location| !damaged_copies.is_empty() && damaged_copies.contains(&(loc.pack, *id));
        index
            .blobs
            .sort_unstable_by_key(|(id, loc)| (*id, is_damaged(id, loc), condemned_pos.contains(&loc.pack), loc.pack));
        index.keep_first_copies();
        index.damaged = index.blobs.iter().filter(|(id, loc)| is_damaged(id, loc)).map(|(id, _)| *id).collect();
        index
    }

    /// Keeps the first (preferred) copy of each blob in `blobs` and moves the rest to
    /// `other_copies`. `blobs` must be sorted by ID, preferred copy first.
    fn keep_first_copies(&mut self) {
        let mut kept = 0;
        for i in 0..self.blobs.len() {
            let (id, loc) = self.blobs[i];
            if kept > 0 && self.blobs[kept - 1].0 == id {
                self.other_copies.entry(id).or_default().push(loc);
            } else {
                self.blobs[kept] = (id, loc);
                kept += 1;
            }
        }
        self.blobs.truncate(kept);
        self.blobs.shrink_to_fit();
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

    /// The copies of a blob after the one `get` gives, best first.
    pub fn other_copies(&self, id: &BlobId) -> &[Location] {
        self.other_copies.get(id).map_or(&[], Vec::as_slice)
    }

    /// Whether a new snapshot may reference the blob without storing it: it has a copy in
    /// a pack no prune plan condemns.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.get(id).is_some_and(|l| !self.condemned_pos.contains(&l.pack)) && !self.is_damaged(id)
    }

    /// Whether every indexed copy of a blob is known damaged.
    pub fn is_damaged(&self, id: &BlobId) -> bool {
        !self.damaged.is_empty() && self.damaged.contains(id)
    }

    /// The blobs whose every indexed copy is known damaged.
    pub fn damaged(&self) -> &HashSet<BlobId> {
        &self.damaged
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
        let index = Index::build(&condemned, &DamageSet::default(), &segments);
        assert_eq!(index.len(), 3);
        assert_eq!(index.pack_of(index.get(&BlobId([7; 32])).unwrap()).0, ObjectId([2; 32]));
        assert!(index.contains(&BlobId([7; 32])));
        // Only in a condemned pack: still readable, but a backup must store it again.
        assert_eq!(index.pack_of(index.get(&BlobId([8; 32])).unwrap()).0, ObjectId([1; 32]));
        assert!(!index.contains(&BlobId([8; 32])));
        // Two live copies: the one indexed first, then the other for a reader to fall back on.
        assert_eq!(index.pack_of(index.get(&BlobId([9; 32])).unwrap()).0, ObjectId([2; 32]));
        let others: Vec<_> = index.other_copies(&BlobId([9; 32])).iter().map(|l| index.pack_of(l).0).collect();
        assert_eq!(others, [ObjectId([3; 32])]);
        let others: Vec<_> = index.other_copies(&BlobId([7; 32])).iter().map(|l| index.pack_of(l).0).collect();
        assert_eq!(others, [ObjectId([1; 32])]);
        assert!(index.other_copies(&BlobId([8; 32])).is_empty());
        assert!(index.get(&BlobId([5; 32])).is_none());
    }

    #[test]
    fn a_damaged_copy_is_read_only_when_there_is_no_other_and_never_deduplicated_against() {
        let damage = DamageSet {
            packs: HashSet::from([ObjectId([3; 32])]),
            blobs: HashSet::from([(ObjectId([1; 32]), BlobId([7; 32]))]),
        };
        let segments = [segment(1, &[7, 8]), segment(2, &[7]), segment(3, &[9])];
        let index = Index::build(&HashSet::new(), &damage, &segments);
        // Damaged in pack 1, healthy in pack 2: read from 2, and deduplicated against.
        assert_eq!(index.pack_of(index.get(&BlobId([7; 32])).unwrap()).0, ObjectId([2; 32]));
        assert!(index.contains(&BlobId([7; 32])) && !index.is_damaged(&BlobId([7; 32])));
        // Only in a damaged pack: still readable (part of it may be intact), but stored again.
        assert!(index.get(&BlobId([9; 32])).is_some());
        assert!(!index.contains(&BlobId([9; 32])) && index.is_damaged(&BlobId([9; 32])));
        assert!(index.contains(&BlobId([8; 32])));
        assert_eq!(index.damaged().len(), 1);
    }

    #[test]
    fn the_index_takes_under_64_bytes_a_blob() {
        let segments: Vec<IndexSegment> = (0..40u8).map(|p| segment(p, &(0..200).collect::<Vec<u8>>())).collect();
        let index = Index::build(&HashSet::new(), &DamageSet::default(), &segments);
        assert_eq!(index.len(), 200);
        let per_blob = index.blobs.capacity() * std::mem::size_of::<(BlobId, Location)>() / index.len();
        assert!(per_blob < 64, "{per_blob} bytes a blob");
    }
}
