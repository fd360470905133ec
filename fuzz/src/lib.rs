//! Helpers shared by the fuzz targets and the seed generator (`examples/gen_seeds.rs`).
//!
//! Sealed objects (pack tables, index segments, snapshots) are authenticated, so random
//! bytes never get past `open_meta`. Each such target therefore also treats its input as
//! the *plaintext*, seals it with [`KEY`] and the object's label, and frames it the way
//! the writer does, so the parsing that runs after authentication is fuzzed too.

use arka_proto::{codec, crypto, pack, Error};

/// The fixed metadata key every target and seed uses.
pub const KEY: [u8; 32] = [0x4b; 32];

// The AEAD labels (private constants in arka-proto; see docs/FORMAT.md). If one drifts the
// targets' "sealed input must authenticate" assertions fail at once.
pub const PACK_TABLE_LABEL: &str = "arka pack blob table v1";
pub const INDEX_LABEL: &str = "arka index segment v1";
pub const SNAPSHOT_LABEL: &str = "arka snapshot v1";
pub const AUDIT_LABEL: &str = "arka audit record v1";
pub const PLAN_LABEL: &str = "arka prune plan v1";
pub const DAMAGE_LABEL: &str = "arka damage report v1";

/// `magic`, version 1, then `plain` sealed under [`KEY`] with a random nonce, as
/// `IndexSegment::encode` and `Snapshot::encode` lay it out.
pub fn sealed_object(magic: &[u8; 4], label: &str, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    codec::write_frame(&mut out, magic, 1);
    out.extend(crypto::seal_meta(&KEY, label, plain));
    out
}

/// Feeds `data` to a sealed object's decoder twice: as stored bytes (which almost never
/// authenticate), and as the plaintext of an object sealed with [`KEY`] and `label`, which
/// must authenticate. `check` runs on every value the decoder accepts; what it returns for
/// the sealed input is returned, for targets that also check the plaintext is canonical.
pub fn raw_and_sealed<T, R>(
    data: &[u8],
    magic: &[u8; 4],
    label: &str,
    decode: impl Fn(&[u8]) -> Result<T, Error>,
    check: impl Fn(&T) -> R,
) -> Option<R> {
    if let Ok(value) = decode(data) {
        check(&value);
    }
    match decode(&sealed_object(magic, label, data)) {
        Ok(value) => Some(check(&value)),
        Err(Error::Authentication { .. }) => {
            panic!("an object sealed with the right key ({label}) failed authentication")
        }
        Err(_) => None,
    }
}

/// How a structured pack input is laid out: `key_len:u8 pad:u16le table_plaintext...`.
/// The header carries `1 + key_len % 3` dummy sealed keys of `key_len` bytes each.
#[derive(Clone, Copy, Debug)]
pub struct PackLayout {
    /// Length of each (dummy) sealed data key in the header.
    pub key_len: usize,
    /// Bytes of blob area between the header and the table.
    pub pad: usize,
}

impl PackLayout {
    /// Largest blob area a structured input can ask for (keeps executions fast).
    pub const MAX_PAD: usize = 8192;

    pub fn split(data: &[u8]) -> Option<(Self, &[u8])> {
        let (head, plain) = data.split_first_chunk::<3>()?;
        let pad = u16::from_le_bytes([head[1], head[2]]) as usize % (Self::MAX_PAD + 1);
        Some((Self { key_len: head[0] as usize, pad }, plain))
    }

    pub fn prefix(&self) -> [u8; 3] {
        let pad = (self.pad as u16).to_le_bytes();
        [self.key_len as u8, pad[0], pad[1]]
    }

    pub fn key_count(&self) -> usize {
        1 + self.key_len % 3
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        (0..self.key_count()).map(|i| vec![0xa5 ^ i as u8; self.key_len]).collect()
    }

    /// Length of the header's key table (what `pack::header_len` reports).
    pub fn key_table_len(&self) -> usize {
        2 + self.key_count() * (4 + self.key_len)
    }

    /// Offset of the first blob byte (just after the header).
    pub fn blobs_start(&self) -> usize {
        pack::HEADER_PREFIX_LEN + self.key_table_len()
    }

    /// Offset of the sealed table (just after the blob area).
    pub fn table_start(&self) -> usize {
        self.blobs_start() + self.pad
    }

    /// Header, zeroed blob area, then `table` (a sealed table followed by its trailer, as
    /// `pack::encode_table` returns it).
    pub fn pack_with_table(&self, table: &[u8]) -> Vec<u8> {
        let mut out = pack::encode_header(&self.keys());
        out.resize(self.table_start(), 0);
        out.extend_from_slice(table);
        out
    }

    /// The pack `pack::encode_table` would close, but around an arbitrary table plaintext.
    pub fn pack_with_plaintext(&self, plain: &[u8]) -> Vec<u8> {
        let mut table = crypto::seal_meta(&KEY, PACK_TABLE_LABEL, plain);
        let len = table.len() as u32;
        table.extend_from_slice(&len.to_le_bytes());
        table.extend_from_slice(pack::TRAILER_MAGIC);
        self.pack_with_table(&table)
    }
}

/// The table plaintext `pack::encode_table` seals for `entries`.
pub fn table_plaintext(entries: &[pack::PackBlobEntry]) -> Vec<u8> {
    let mut plain = (entries.len() as u32).to_le_bytes().to_vec();
    for e in entries {
        e.encode(&mut plain);
    }
    plain
}
