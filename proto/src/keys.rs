//! The agent key: the symmetric secrets an agent holds. It lets its holder add backups,
//! list snapshots and maintain the repository, but never read file contents or names.

use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::id::{from_hex, to_hex, BlobId, BlobKind, RepoId};

/// First characters of an agent key line, so a key file is recognisable at a glance (and a
/// recovery-key prompt can tell the user they passed the wrong kind of key).
pub const AGENT_KEY_PREFIX: &str = "ARKA-AGENT-KEY-1-";

/// Repository-wide secrets held by agents and maintenance jobs.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AgentKey {
    repo_id: [u8; 32],
    /// Keys the blob-ID hash and seeds the chunker's gear table.
    chunk_key: [u8; 32],
    /// AEAD key for index segments, snapshots, blob tables, reference lists; MAC key root.
    meta_key: [u8; 32],
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgentKey(repo {}, ***)", to_hex(&self.repo_id[..4]))
    }
}

const RAW_LEN: usize = 96;
const CHECK_LEN: usize = 4;

impl AgentKey {
    pub fn generate() -> Self {
        let mut k = Self { repo_id: [0; 32], chunk_key: [0; 32], meta_key: [0; 32] };
        rand::rngs::OsRng.fill_bytes(&mut k.repo_id);
        rand::rngs::OsRng.fill_bytes(&mut k.chunk_key);
        rand::rngs::OsRng.fill_bytes(&mut k.meta_key);
        k
    }

    pub fn repo_id(&self) -> RepoId {
        RepoId(self.repo_id)
    }

    pub fn meta_key(&self) -> &[u8; 32] {
        &self.meta_key
    }

    /// Names the key without revealing it: 8 hex of a hash derived from the metadata key,
    /// which is what `arka key rotate-agent` changes.
    pub fn id(&self) -> String {
        to_hex(&self.derived("arka 2026 agent key id", &self.meta_key)[..4])
    }

    fn derived(&self, context: &str, root: &[u8; 32]) -> [u8; 32] {
        blake3::derive_key(context, root)
    }

    /// The keyed hash that names a blob. Each kind has its own key, so a data blob and a
    /// tree with identical bytes never share an ID.
    pub fn blob_hasher(&self, kind: BlobKind) -> blake3::Hasher {
        match kind {
            BlobKind::Data => blake3::Hasher::new_keyed(&self.chunk_key),
            BlobKind::Tree => blake3::Hasher::new_keyed(&self.derived("arka 2026 tree blob id", &self.chunk_key)),
            BlobKind::Refs => blake3::Hasher::new_keyed(&self.derived("arka 2026 refs blob id", &self.chunk_key)),
            BlobKind::List => {
                blake3::Hasher::new_keyed(&self.derived("arka 2026 content list blob id", &self.chunk_key))
            }
        }
    }

    pub fn blob_id(&self, kind: BlobKind, plaintext: &[u8]) -> BlobId {
        BlobId(*self.blob_hasher(kind).update(plaintext).finalize().as_bytes())
    }

    /// The 256-entry gear table of the content-defined chunker, derived from the chunk key
    /// so that chunk boundaries (and thus blob sizes) do not fingerprint known files.
    pub fn gear_table(&self) -> Box<[u64; 256]> {
        let mut xof = blake3::Hasher::new_derive_key("arka 2026 fastcdc gear table");
        xof.update(&self.chunk_key);
        let mut reader = xof.finalize_xof();
        let mut bytes = [0u8; 256 * 8];
        reader.fill(&mut bytes);
        let mut table = Box::new([0u64; 256]);
        for (t, b) in table.iter_mut().zip(bytes.chunks_exact(8)) {
            *t = u64::from_le_bytes(b.try_into().expect("chunks_exact(8)"));
        }
        table
    }

    /// MAC key authenticating the repository config and other unsealed-but-signed objects.
    pub fn mac(&self, label: &str, bytes: &[u8]) -> [u8; 32] {
        let key = self.derived("arka 2026 metadata mac", &self.meta_key);
        let mut h = blake3::Hasher::new_keyed(&key);
        h.update(label.as_bytes());
        h.update(&[0]);
        h.update(bytes);
        *h.finalize().as_bytes()
    }

    /// A keyed hash of a local path, so the files cache on the agent holds no file names.
    pub fn path_hash(&self, path: &[u8]) -> [u8; 16] {
        let key = self.derived("arka 2026 files cache path", &self.chunk_key);
        let mut out = [0u8; 16];
        out.copy_from_slice(&blake3::keyed_hash(&key, path).as_bytes()[..16]);
        out
    }

    pub fn to_raw(&self) -> [u8; RAW_LEN] {
        let mut raw = [0u8; RAW_LEN];
        raw[..32].copy_from_slice(&self.repo_id);
        raw[32..64].copy_from_slice(&self.chunk_key);
        raw[64..].copy_from_slice(&self.meta_key);
        raw
    }

    pub fn from_raw(raw: &[u8]) -> Result<Self> {
        if raw.len() != RAW_LEN {
            return Err(Error::InvalidKey(format!("agent key must be {RAW_LEN} bytes, got {}", raw.len())));
        }
        let mut k = Self { repo_id: [0; 32], chunk_key: [0; 32], meta_key: [0; 32] };
        k.repo_id.copy_from_slice(&raw[..32]);
        k.chunk_key.copy_from_slice(&raw[32..64]);
        k.meta_key.copy_from_slice(&raw[64..]);
        Ok(k)
    }

    /// The key file text: one comment line and one key line with a checksum.
    pub fn to_file_text(&self) -> String {
        let raw = self.to_raw();
        let hash = blake3::hash(&raw);
        let check = &hash.as_bytes()[..CHECK_LEN];
        format!(
            "# arka agent key for repository {}. It can add backups and list snapshots; it cannot read them.\n\
             # Keep it readable by the arka service only.\n{AGENT_KEY_PREFIX}{}{}\n",
            self.repo_id().short(),
            to_hex(&raw),
            to_hex(check)
        )
    }

    pub fn parse(text: &str) -> Result<Self> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| Error::InvalidKey("the agent key file is empty".into()))?;
        if line.starts_with("AGE-SECRET-KEY-") {
            return Err(Error::InvalidKey(
                "this is a recovery identity, not an agent key: keep recovery keys off the clinic server \
                 and pass the agent key written by `arka init`"
                    .into(),
            ));
        }
        let hex = line.strip_prefix(AGENT_KEY_PREFIX).ok_or_else(|| {
            Error::InvalidKey(format!("not an arka agent key (expected a line starting {AGENT_KEY_PREFIX})"))
        })?;
        let raw: [u8; RAW_LEN + CHECK_LEN] = from_hex(hex)
            .ok_or_else(|| Error::InvalidKey("the agent key line is damaged (wrong length or not hex)".into()))?;
        let (raw, check) = raw.split_at(RAW_LEN);
        if &blake3::hash(raw).as_bytes()[..CHECK_LEN] != check {
            return Err(Error::InvalidKey("the agent key line is damaged (checksum mismatch)".into()));
        }
        Self::from_raw(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_detects_damage() {
        let k = AgentKey::generate();
        let text = k.to_file_text();
        let back = AgentKey::parse(&text).unwrap();
        assert_eq!(back.to_raw(), k.to_raw());
        let at = text.find(AGENT_KEY_PREFIX).unwrap() + AGENT_KEY_PREFIX.len() + 10;
        let mut damaged = text.clone().into_bytes();
        damaged[at] = if damaged[at] == b'0' { b'1' } else { b'0' };
        let err = AgentKey::parse(std::str::from_utf8(&damaged).unwrap()).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(AgentKey::parse("AGE-SECRET-KEY-1ABC").unwrap_err().to_string().contains("recovery identity"));
        assert!(!format!("{k:?}").contains(&to_hex(&k.chunk_key)));
    }

    #[test]
    fn blob_ids_are_keyed_and_separated_by_kind() {
        let a = AgentKey::generate();
        let b = AgentKey::generate();
        assert_ne!(a.blob_id(BlobKind::Data, b"x"), b.blob_id(BlobKind::Data, b"x"));
        assert_ne!(a.blob_id(BlobKind::Data, b"x"), a.blob_id(BlobKind::Tree, b"x"));
        assert_eq!(a.blob_id(BlobKind::Data, b"x"), a.blob_id(BlobKind::Data, b"x"));
        assert_ne!(a.gear_table()[..], b.gear_table()[..]);
    }
}
