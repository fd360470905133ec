//! The in-memory index: where each blob lives. Built from the index segments at start,
//! extended as packs are uploaded.

use std::collections::HashMap;

use arka_proto::pack::{BlobKind, Compression, PackBlobEntry};
use arka_proto::{BlobId, IndexSegment, ObjectId};

/// A blob's place: its pack (by position in `Index::packs`) and its entry.
#[derive(Clone, Copy, Debug)]
pub struct Location {
    pub pack: u32,
    pub kind: BlobKind,
    pub compression: Compression,
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
}

impl Index {
    pub fn add_segment(&mut self, seg: &IndexSegment) {
        for p in &seg.packs {
            let pos = self.add_pack(p.pack_id, p.pack_len);
            for e in &p.blobs {
                self.add_blob(pos, e);
            }
        }
    }

    pub fn add_pack(&mut self, id: ObjectId, len: u64) -> u32 {
        *self.pack_pos.entry(id).or_insert_with(|| {
            self.packs.push((id, len));
            (self.packs.len() - 1) as u32
        })
    }

    pub fn add_blob(&mut self, pack: u32, e: &PackBlobEntry) {
        self.blobs.entry(e.id).or_insert(Location {
            pack,
            kind: e.kind,
            compression: e.compression,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
        });
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

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// The pack holding a blob, and the pack's length.
    pub fn pack_of(&self, loc: &Location) -> (ObjectId, u64) {
        self.packs[loc.pack as usize]
    }
}
