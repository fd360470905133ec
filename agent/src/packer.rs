//! Builds one pack: seals blobs into a buffer and closes it with the sealed blob table.

use arka_proto::crypto::seal_meta;
use arka_proto::pack::{self, BlobKind, Compression, PackBlobEntry};
use arka_proto::tree::REFS_SEAL_LABEL;
use arka_proto::{BlobId, DataKey, ObjectId, Recipients};

pub struct Packer {
    data_key: DataKey,
    meta_key: [u8; 32],
    buf: Vec<u8>,
    entries: Vec<PackBlobEntry>,
}

/// A closed pack ready to upload.
pub struct FinishedPack {
    pub id: ObjectId,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackBlobEntry>,
}

impl Packer {
    pub fn new(recipients: &Recipients, meta_key: [u8; 32], capacity: usize) -> Self {
        let data_key = DataKey::random();
        let mut buf = Vec::with_capacity(capacity);
        buf.extend(pack::encode_header(&recipients.seal(data_key.as_bytes())));
        Self { data_key, meta_key, buf, entries: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Seals `encoded` (the plaintext after compression) and appends it.
    pub fn add(&mut self, id: BlobId, kind: BlobKind, compression: Compression, raw_len: usize, encoded: &[u8]) {
        let offset = self.buf.len();
        let sealed = match kind {
            BlobKind::Refs => seal_meta(&self.meta_key, REFS_SEAL_LABEL, encoded),
            BlobKind::Data | BlobKind::Tree => self.data_key.seal_blob(offset as u64, &id, kind, encoded),
        };
        self.buf.extend_from_slice(&sealed);
        self.entries.push(PackBlobEntry {
            id,
            kind,
            compression,
            offset: offset as u32,
            stored_len: sealed.len() as u32,
            raw_len: raw_len as u32,
        });
    }

    pub fn finish(mut self) -> FinishedPack {
        self.buf.extend(pack::encode_table(&self.meta_key, &self.entries));
        let bytes = std::mem::take(&mut self.buf);
        FinishedPack { id: ObjectId::of(&bytes), bytes, entries: std::mem::take(&mut self.entries) }
    }
}
