//! The agent key: the symmetric secrets an agent holds. It lets its holder add backups,
//! list snapshots and maintain the repository, but never read file contents or names.

use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};
use crate::id::{from_hex, to_hex, BlobId, BlobKind, RepoId};

/// First characters of an agent key line, so a key file is recognisable at a glance (and a
/// recovery-key prompt can tell the user they passed the wrong kind of key).
pub const AGENT_KEY_PREFIX: &str = "ARKA-AGENT-KEY-1-";
/// The line of a key that carries retired metadata keys (after `arka key rotate-agent`).
/// A key without retired ones keeps the version 1 line, so files made before stay valid.
pub const AGENT_KEY_PREFIX_V2: &str = "ARKA-AGENT-KEY-2-";
/// How many retired metadata keys a key carries at most: one per rotation, and a clinic
/// rotates after a leak, not weekly. The bound keeps the trial opening of old metadata cheap.
pub const MAX_RETIRED: usize = 64;

/// Repository-wide secrets held by agents and maintenance jobs.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AgentKey {
    repo_id: [u8; 32],
    /// Keys the blob-ID hash and seeds the chunker's gear table.
    chunk_key: [u8; 32],
    /// AEAD key for index segments, snapshots, blob tables, reference lists; MAC key root.
    meta_key: [u8; 32],
    /// The metadata keys of earlier rotations, oldest first: they open what was written
    /// before each rotation, and never seal anything.
    retired: Vec<[u8; 32]>,
}

/// Which of an agent key's metadata keys opened an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenedBy {
    Current,
    /// A retired metadata key, by its key ID: the reader checks when the object was stored.
    Retired(String),
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AgentKey(repo {}, id {}, {} retired, ***)",
            to_hex(&self.repo_id[..4]),
            self.id(),
            self.retired.len()
        )
    }
}

const RAW_LEN: usize = 96;
const CHECK_LEN: usize = 4;

/// The key ID of a metadata key (see [`AgentKey::id`]).
fn id_of(meta_key: &[u8; 32]) -> String {
    to_hex(&blake3::derive_key("arka 2026 agent key id", meta_key)[..4])
}

impl AgentKey {
    pub fn generate() -> Self {
        let mut k = Self { repo_id: [0; 32], chunk_key: [0; 32], meta_key: [0; 32], retired: Vec::new() };
        rand::rngs::OsRng.fill_bytes(&mut k.repo_id);
        rand::rngs::OsRng.fill_bytes(&mut k.chunk_key);
        rand::rngs::OsRng.fill_bytes(&mut k.meta_key);
        k
    }

    pub fn repo_id(&self) -> RepoId {
        RepoId(self.repo_id)
    }

    /// The current metadata key: the only one that seals. Opening goes through
    /// [`AgentKey::open_meta_with`], which also tries the retired ones.
    pub fn meta_key(&self) -> &[u8; 32] {
        &self.meta_key
    }

    /// Names the key without revealing it: 8 hex of a hash derived from the metadata key,
    /// which is what `arka key rotate-agent` changes.
    pub fn id(&self) -> String {
        id_of(&self.meta_key)
    }

    /// The successor of this key: the same repository and chunk key (so blob IDs, chunk
    /// boundaries and thus deduplication do not change), a fresh metadata key, and this
    /// one's metadata key retired so that metadata written so far still opens.
    pub fn rotated(&self) -> Result<Self> {
        if self.retired.len() >= MAX_RETIRED {
            return Err(Error::InvalidKey(format!(
                "this agent key was already rotated {MAX_RETIRED} times, the most a key can carry"
            )));
        }
        let mut retired = self.retired.clone();
        retired.push(self.meta_key);
        let mut k = Self { repo_id: self.repo_id, chunk_key: self.chunk_key, meta_key: [0; 32], retired };
        rand::rngs::OsRng.fill_bytes(&mut k.meta_key);
        Ok(k)
    }

    /// The IDs of the retired metadata keys, newest first.
    pub fn retired_ids(&self) -> Vec<String> {
        self.retired.iter().rev().map(id_of).collect()
    }

    /// Whether this key is a successor of `other`: only a holder of `other` could have
    /// made it (it carries `other`'s metadata key as retired).
    pub fn supersedes(&self, other: &AgentKey) -> bool {
        self.repo_id == other.repo_id && self.chunk_key == other.chunk_key && self.retired.contains(&other.meta_key)
    }

    /// Opens a metadata object with `open`, trying the current metadata key, then the
    /// retired ones, newest first; says which opened it. Only a failure to authenticate
    /// moves on to the next key: a malformed object is malformed under every key. Sealing
    /// always uses [`AgentKey::meta_key`], the current one.
    pub fn open_meta_with<T>(&self, open: impl Fn(&[u8; 32]) -> Result<T>) -> Result<(T, OpenedBy)> {
        let first = match open(&self.meta_key) {
            Ok(v) => return Ok((v, OpenedBy::Current)),
            Err(e @ Error::Authentication { .. }) => e,
            Err(e) => return Err(e),
        };
        for old in self.retired.iter().rev() {
            if let Ok(v) = open(old) {
                return Ok((v, OpenedBy::Retired(id_of(old))));
            }
        }
        Err(first)
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

    /// The raw key: `repo_id chunk_key meta_key` (96 bytes) for a key never rotated;
    /// otherwise followed by `count:u8` and `count` retired metadata keys, oldest first.
    pub fn to_raw(&self) -> Zeroizing<Vec<u8>> {
        let mut raw = Zeroizing::new(Vec::with_capacity(RAW_LEN + 1 + 32 * self.retired.len()));
        raw.extend_from_slice(&self.repo_id);
        raw.extend_from_slice(&self.chunk_key);
        raw.extend_from_slice(&self.meta_key);
        if !self.retired.is_empty() {
            raw.push(self.retired.len() as u8);
            for old in &self.retired {
                raw.extend_from_slice(old);
            }
        }
        raw
    }

    pub fn from_raw(raw: &[u8]) -> Result<Self> {
        let wrong = || {
            Error::InvalidKey(format!(
                "an agent key is {RAW_LEN} bytes, or {} plus 32 per retired key (at most {MAX_RETIRED}); got {}",
                RAW_LEN + 1,
                raw.len()
            ))
        };
        if raw.len() < RAW_LEN {
            return Err(wrong());
        }
        let (head, tail) = raw.split_at(RAW_LEN);
        let retired = match tail.split_first() {
            None => Vec::new(),
            Some((&count, rest)) => {
                let count = count as usize;
                if count == 0 || count > MAX_RETIRED || rest.len() != 32 * count {
                    return Err(wrong());
                }
                rest.chunks_exact(32).map(|c| c.try_into().expect("chunks_exact(32)")).collect()
            }
        };
        let mut k = Self { repo_id: [0; 32], chunk_key: [0; 32], meta_key: [0; 32], retired };
        k.repo_id.copy_from_slice(&head[..32]);
        k.chunk_key.copy_from_slice(&head[32..64]);
        k.meta_key.copy_from_slice(&head[64..]);
        Ok(k)
    }

    /// The key file text: one comment line and one key line with a checksum.
    pub fn to_file_text(&self) -> String {
        let raw = self.to_raw();
        let hash = blake3::hash(&raw);
        let check = &hash.as_bytes()[..CHECK_LEN];
        let prefix = if self.retired.is_empty() { AGENT_KEY_PREFIX } else { AGENT_KEY_PREFIX_V2 };
        format!(
            "# arka agent key {} for repository {}. It can add backups and list snapshots; it cannot read them.\n\
             # Keep it readable by the arka service only.\n{prefix}{}{}\n",
            self.id(),
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
        let damaged = || Error::InvalidKey("the agent key line is damaged (wrong length or not hex)".into());
        let raw = if let Some(hex) = line.strip_prefix(AGENT_KEY_PREFIX) {
            Zeroizing::new(from_hex::<{ RAW_LEN + CHECK_LEN }>(hex).ok_or_else(damaged)?.to_vec())
        } else if let Some(hex) = line.strip_prefix(AGENT_KEY_PREFIX_V2) {
            // Bounded before decoding: a v2 line is at most the key with MAX_RETIRED keys.
            if hex.len() % 2 != 0
                || hex.len() / 2 < RAW_LEN + 1 + 32 + CHECK_LEN
                || hex.len() / 2 > RAW_LEN + 1 + 32 * MAX_RETIRED + CHECK_LEN
            {
                return Err(damaged());
            }
            Zeroizing::new(hex_bytes(hex).ok_or_else(damaged)?)
        } else {
            return Err(Error::InvalidKey(format!(
                "not an arka agent key (expected a line starting {AGENT_KEY_PREFIX} or {AGENT_KEY_PREFIX_V2})"
            )));
        };
        let (raw, check) = raw.split_at(raw.len() - CHECK_LEN);
        if &blake3::hash(raw).as_bytes()[..CHECK_LEN] != check {
            return Err(Error::InvalidKey("the agent key line is damaged (checksum mismatch)".into()));
        }
        let key = Self::from_raw(raw)?;
        // A v2 line is only written for a key with retired keys; anything else is not ours.
        if line.starts_with(AGENT_KEY_PREFIX_V2) == key.retired.is_empty() {
            return Err(Error::InvalidKey("the agent key line's version does not match its length".into()));
        }
        Ok(key)
    }
}

/// Decodes lower- or upper-case hex of any even length.
fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.as_bytes().chunks_exact(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
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

#[cfg(test)]
mod rotation_tests {
    use super::*;

    #[test]
    fn a_rotated_key_keeps_dedup_and_round_trips_as_v2() {
        let a = AgentKey::generate();
        let b = a.rotated().unwrap();
        assert_eq!(a.blob_id(BlobKind::Data, b"x"), b.blob_id(BlobKind::Data, b"x"));
        assert_eq!(a.repo_id(), b.repo_id());
        assert_ne!(a.meta_key(), b.meta_key());
        assert_ne!(a.id(), b.id());
        assert_eq!(b.retired_ids(), vec![a.id()]);
        assert!(b.supersedes(&a) && !a.supersedes(&b));
        let text = b.to_file_text();
        assert!(text.contains(AGENT_KEY_PREFIX_V2), "{text}");
        let back = AgentKey::parse(&text).unwrap();
        assert_eq!(*back.to_raw(), *b.to_raw());
        let c = back.rotated().unwrap();
        assert_eq!(c.retired_ids(), vec![b.id(), a.id()]);
        assert_eq!(AgentKey::from_raw(&c.to_raw()).unwrap().retired_ids(), c.retired_ids());
        assert!(!format!("{c:?}").contains(&to_hex(&c.meta_key)));
        assert!(!format!("{c:?}").contains(&to_hex(&a.meta_key)));
    }

    #[test]
    fn version_1_files_still_parse_and_lengths_are_checked() {
        let a = AgentKey::generate();
        let text = a.to_file_text();
        assert!(text.contains(AGENT_KEY_PREFIX) && !text.contains(AGENT_KEY_PREFIX_V2));
        assert_eq!(a.to_raw().len(), RAW_LEN);
        // A v1 file from before rotation existed: the same line, parsed as before.
        let raw = a.to_raw();
        let line = format!("{AGENT_KEY_PREFIX}{}{}", to_hex(&raw), to_hex(&blake3::hash(&raw).as_bytes()[..4]));
        assert_eq!(*AgentKey::parse(&line).unwrap().to_raw(), *raw);
        // The same key under the v2 prefix, or a v2 key under the v1 prefix, is refused.
        assert!(AgentKey::parse(&line.replace(AGENT_KEY_PREFIX, AGENT_KEY_PREFIX_V2)).is_err());
        let b = a.rotated().unwrap();
        let v2 = b.to_file_text();
        assert!(AgentKey::parse(&v2.replace(AGENT_KEY_PREFIX_V2, AGENT_KEY_PREFIX)).is_err());
        // Damage anywhere in the v2 line is caught by the checksum.
        let at = v2.find(AGENT_KEY_PREFIX_V2).unwrap() + AGENT_KEY_PREFIX_V2.len() + 200;
        let mut damaged = v2.clone().into_bytes();
        damaged[at] = if damaged[at] == b'0' { b'1' } else { b'0' };
        assert!(AgentKey::parse(std::str::from_utf8(&damaged).unwrap()).unwrap_err().to_string().contains("checksum"));
        // Raw lengths: a count that disagrees with the bytes, zero, or too many.
        let raw = b.to_raw();
        assert!(AgentKey::from_raw(&raw[..raw.len() - 1]).is_err());
        assert!(AgentKey::from_raw(&raw[..RAW_LEN + 1]).is_err());
        assert!(AgentKey::from_raw(&raw[..RAW_LEN - 1]).is_err());
        let mut zero = raw[..RAW_LEN].to_vec();
        zero.push(0);
        assert!(AgentKey::from_raw(&zero).is_err());
        let mut many = raw[..RAW_LEN].to_vec();
        many.push(MAX_RETIRED as u8 + 1);
        many.extend(std::iter::repeat_n(0u8, 32 * (MAX_RETIRED + 1)));
        assert!(AgentKey::from_raw(&many).is_err());
        assert!(AgentKey::parse(&format!("{AGENT_KEY_PREFIX_V2}00")).is_err());
    }
}
