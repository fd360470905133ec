//! The in-memory index: where each blob lives. Built from the index segments at start,
//! extended as packs are uploaded.
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
    blobs: HashMap<BlobId, Location>,
    condemned: HashSet<ObjectId>,
    condemned_pos: HashSet<u32>,
}

impl Index {
    /// An empty index that knows which packs prune plans condemn. Give it before adding
    /// segments, so that a live copy of a blob is preferred over a condemned one.
    pub fn with_condemned(condemned: HashSet<ObjectId>) -> Self {
        Self { condemned, ..Self::default() }
    }

    pub fn add_segment(&mut self, seg: &IndexSegment) {
        for p in &seg.packs {
            let pos = self.add_pack(p.pack_id, p.pack_len);
            for e in &p.blobs {
                self.add_blob(pos, e);
            }
        }
    }

    pub fn add_pack(&mut self, id: ObjectId, len: u64) -> u32 {
        if let Some(&pos) = self.pack_pos.get(&id) {
            return pos;
        }
        self.packs.push((id, len));
        let pos = (self.packs.len() - 1) as u32;
        self.pack_pos.insert(id, pos);
        if self.condemned.contains(&id) {
            self.condemned_pos.insert(pos);
        }
        pos
    }

    pub fn add_blob(&mut self, pack: u32, e: &PackBlobEntry) {
        let loc = Location { pack, ..Location::from(e) };
        match self.blobs.entry(e.id) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(loc);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if self.condemned_pos.contains(&o.get().pack) && !self.condemned_pos.contains(&pack) {
                    o.insert(loc);
                }
            }
        }
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
        self.blobs.get(id)
    }

    /// Whether a new snapshot may reference the blob without storing it: it has a copy in
    /// a pack no prune plan condemns.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.get(id).is_some_and(|l| !self.condemned_pos.contains(&l.pack))
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
