//! Builds one pack: seals blobs into a buffer and closes it with the sealed blob table.
//! Backups seal new blobs under a fresh data key; prune copies blobs that are already
//! sealed, together with the sealed data keys that open them.

use arka_proto::crypto::seal_meta;
use arka_proto::pack::{self, BlobKind, Compression, PackBlobEntry};
use arka_proto::{BlobId, DataKey, ObjectId, Recipients};

pub struct Packer {
    /// The key new blobs are sealed with (key 0); `None` for a pack of copied blobs.
    data_key: Option<DataKey>,
    /// The data keys, sealed to the recipients, that the header will carry.
    sealed_keys: Vec<Vec<u8>>,
    meta_key: [u8; 32],
    /// A backup's pack knows its one key up front, so its header starts `buf` and offsets
    /// are final; a pack of copies learns its keys as it goes, so its header is put in
    /// front of the blobs when it is finished.
    header_in_buf: bool,
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
    /// A pack for new blobs, sealed under a fresh data key.
    pub fn new(recipients: &Recipients, meta_key: [u8; 32], capacity: usize) -> Self {
        Self::new_in(recipients, meta_key, Vec::with_capacity(capacity))
    }

    /// The same, built in `buf` (emptied first), such as a buffer from a pool.
    pub fn new_in(recipients: &Recipients, meta_key: [u8; 32], mut buf: Vec<u8>) -> Self {
        let data_key = DataKey::random();
        let sealed_keys = vec![recipients.seal(data_key.as_bytes())];
        buf.clear();
        buf.extend(pack::encode_header(&sealed_keys));
        Self { data_key: Some(data_key), sealed_keys, meta_key, header_in_buf: true, buf, entries: Vec::new() }
    }

    /// A pack for blobs copied from other packs, which keep their seals.
    pub fn for_copies(meta_key: [u8; 32], capacity: usize) -> Self {
        Self {
            data_key: None,
            sealed_keys: Vec::new(),
            meta_key,
            header_in_buf: false,
            buf: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes so far, without the blob table (and for a pack of copies, without the header).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether a blob of `encoded_len` bytes, sealed, and the finished pack's blob table
    /// still fit in the buffer without growing it.
    pub fn fits(&self, encoded_len: usize) -> bool {
        const SEAL_AND_TRAILER: usize = 256; // nonce, tag, table length, magic, and spare
        let table = (self.entries.len() + 1) * pack::ENTRY_LEN;
        self.buf.len() + encoded_len + table + SEAL_AND_TRAILER <= self.buf.capacity()
    }

    pub fn key_count(&self) -> usize {
        self.sealed_keys.len()
    }

    /// Seals `encoded` (the plaintext after compression) and appends it.
    pub fn add(&mut self, id: BlobId, kind: BlobKind, compression: Compression, raw_len: usize, encoded: &[u8]) {
        let offset = self.buf.len();
        match (kind.meta_seal_label(), &self.data_key) {
            (Some(label), _) => self.buf.extend(seal_meta(&self.meta_key, label, encoded)),
            (None, Some(k)) => k.seal_blob_into(&id, kind, encoded, &mut self.buf),
            (_, None) => unreachable!("a pack of copies is never given plaintext"),
        }
        self.entries.push(PackBlobEntry {
            id,
            kind,
            compression,
            key: 0,
            offset: offset as u32,
            stored_len: (self.buf.len() - offset) as u32,
            raw_len: raw_len as u32,
        });
    }

    /// Adds a sealed data key this pack's copied blobs refer to; returns its index.
    pub fn add_sealed_key(&mut self, sealed_key: &[u8]) -> u16 {
        assert!(self.data_key.is_none(), "only a pack of copies carries other packs' keys");
        self.sealed_keys.push(sealed_key.to_vec());
        (self.sealed_keys.len() - 1) as u16
    }

    /// Appends a blob exactly as it was sealed in another pack. `entry.key` must be the
    /// index `add_sealed_key` returned for the key that sealed it.
    pub fn add_sealed(&mut self, entry: PackBlobEntry, sealed: &[u8]) {
        self.push(entry, sealed);
    }

    fn push(&mut self, mut entry: PackBlobEntry, sealed: &[u8]) {
        entry.offset = self.buf.len() as u32;
        self.buf.extend_from_slice(sealed);
        self.entries.push(entry);
    }

    pub fn finish(mut self) -> FinishedPack {
        let mut bytes = if self.header_in_buf {
            std::mem::take(&mut self.buf)
        } else {
            let mut bytes = pack::encode_header(&self.sealed_keys);
            let header_len = bytes.len() as u32;
            bytes.reserve(self.buf.len() + self.entries.len() * pack::ENTRY_LEN + 64);
            bytes.extend_from_slice(&self.buf);
            for e in &mut self.entries {
                e.offset += header_len;
            }
            bytes
        };
        bytes.extend(pack::encode_table(&self.meta_key, &self.entries));
        FinishedPack { id: ObjectId::of(&bytes), bytes, entries: std::mem::take(&mut self.entries) }
    }
}
