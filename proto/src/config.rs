//! The repository config: the one object readable without keys. It names the recipients
//! and carries the agent key sealed to them; a MAC under the agent key makes any change
//! (say, a swapped recipient that would send new backups to an attacker) detectable.
//!
//! ```text
//! "ARKC" version:u8 body_len:u32 CBOR(RepoConfig)[body_len] mac[32]
//! mac = keyed BLAKE3 (key derived from the metadata key) over "arka config v1" 0x00 body
//! ```

use serde::{Deserialize, Serialize};

use crate::codec::{self, Reader};
use crate::error::{Error, Result};
use crate::id::{ObjectId, RepoId};
use crate::keys::AgentKey;

pub const MAGIC: &[u8; 4] = b"ARKC";
const MAC_LABEL: &str = "arka config v1";

/// Content-defined chunking sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    /// Large imaging files: big chunks keep the index small and packs full.
    pub const FILES: Self = Self { min: 512 << 10, avg: 1 << 20, max: 8 << 20 };
    /// Database dumps: an hour of clinic activity changes scattered rows, so smaller chunks
    /// keep each hour's new data small; but every snapshot repeats the dump's whole chunk
    /// list, which grows as chunks shrink. 64 KiB sits at the measured optimum for a ~200 MiB
    /// pg_dump (docs/BENCHMARKS.md: 2.3x less per hour than 256 KiB). Repositories made before
    /// keep the sizes their config names.
    pub const STREAM: Self = Self { min: 16 << 10, avg: 64 << 10, max: 256 << 10 };

    pub fn validate(&self) -> Result<()> {
        let ok = self.min >= 1024
            && self.min <= self.avg
            && self.avg <= self.max
            && self.max <= 16 << 20
            && self.avg.is_power_of_two()
            && self.min % 2 == 0
            && self.max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Malformed { what: "config", reason: format!("invalid chunker sizes {self:?}") })
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub repo_id: RepoId,
    /// Unix seconds.
    pub created: i64,
    pub chunker_files: ChunkerParams,
    pub chunker_stream: ChunkerParams,
    pub zstd_level: i32,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// age X25519 recipients (age1…) that every pack and the agent key are sealed to.
    pub recipients: Vec<String>,
    /// The agent key (96 raw bytes) as an age file sealed to `recipients`.
    #[serde(with = "codec::bytes")]
    pub sealed_agent_key: Vec<u8>,
    /// Bumped by every change `arka key` makes; of several authentic configs, readers use
    /// the highest. 0 for a repository whose keys were never changed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    /// The current reader key's recipient (age1…): writers seal each pack's data key to it
    /// alone, and the keyring holds its secret for the recipients. Absent in repositories
    /// made before keyrings, whose packs are sealed to `recipients` directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<String>,
    /// The keyring object (`keys/<id>`) written with this config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<ObjectId>,
    /// Agent keys retired by `arka key rotate-agent`, oldest first. Metadata that opens only
    /// under one of them and was stored after its retirement (plus clock skew) is refused:
    /// the old key may have leaked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_agent_keys: Vec<RetiredAgentKey>,
}

/// An agent key that `arka key rotate-agent` replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredAgentKey {
    /// Its key ID ([`AgentKey::id`]).
    pub id: String,
    /// When it was retired, in Unix seconds.
    pub retired: i64,
}

impl RepoConfig {
    /// When the agent key `id` was retired, if it was.
    pub fn retired_at(&self, id: &str) -> Option<i64> {
        self.retired_agent_keys.iter().find(|r| r.id == id).map(|r| r.retired)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RepoConfig {
    /// The recipients a writer seals pack data keys to: the reader key where there is one.
    pub fn sealing_recipients(&self) -> Result<crate::crypto::Recipients> {
        match &self.reader {
            Some(reader) => crate::crypto::Recipients::parse(std::slice::from_ref(reader)),
            None => crate::crypto::Recipients::parse(&self.recipients),
        }
    }
}

impl RepoConfig {
    pub fn encode(&self, key: &AgentKey) -> Vec<u8> {
        let body = codec::to_cbor(self);
        let mut out = Vec::with_capacity(codec::FRAME_LEN + 4 + body.len() + 32);
        codec::write_frame(&mut out, MAGIC, codec::FORMAT_VERSION);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&key.mac(MAC_LABEL, &body));
        out
    }

    /// Parses without authenticating: only for unsealing the agent key with a recovery
    /// identity, after which [`RepoConfig::decode`] must check the MAC.
    pub fn decode_unauthenticated(bytes: &[u8]) -> Result<(Self, &[u8], [u8; 32])> {
        let (_, rest) = codec::read_frame(bytes, MAGIC, "config")?;
        let mut r = Reader::new(rest, "config");
        let len = r.u32()? as usize;
        let body = r.take(len)?;
        let mac = r.array::<32>()?;
        r.finish()?;
        let cfg: RepoConfig = codec::from_cbor(body, "config")?;
        cfg.chunker_files.validate()?;
        cfg.chunker_stream.validate()?;
        if cfg.pack_size < 1 << 20 || cfg.pack_size as u64 > crate::pack::MAX_PACK_LEN / 2 {
            return Err(Error::Malformed { what: "config", reason: format!("pack size {}", cfg.pack_size) });
        }
        Ok((cfg, body, mac))
    }

    /// Parses and authenticates with the agent key.
    pub fn decode(bytes: &[u8], key: &AgentKey) -> Result<Self> {
        let (cfg, body, mac) = Self::decode_unauthenticated(bytes)?;
        if cfg.repo_id != key.repo_id() {
            return Err(Error::InvalidKey(format!(
                "this agent key belongs to repository {}, not to this repository ({})",
                key.repo_id().short(),
                cfg.repo_id.short()
            )));
        }
        // Constant-time comparison is not needed for a public MAC check, but cheap.
        if !constant_time_eq(&key.mac(MAC_LABEL, body), &mac) {
            return Err(Error::Authentication { what: "config" });
        }
        Ok(cfg)
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &AgentKey) -> RepoConfig {
        RepoConfig {
            repo_id: key.repo_id(),
            created: 1,
            chunker_files: ChunkerParams::FILES,
            chunker_stream: ChunkerParams::STREAM,
            zstd_level: 3,
            pack_size: 16 << 20,
            recipients: vec!["age1x".into()],
            sealed_agent_key: vec![1, 2, 3],
            generation: 0,
            reader: None,
            keyring: None,
            retired_agent_keys: Vec::new(),
        }
    }

    #[test]
    fn config_round_trips_and_detects_tampering() {
        let key = AgentKey::generate();
        let cfg = sample(&key);
        let bytes = cfg.encode(&key);
        assert_eq!(RepoConfig::decode(&bytes, &key).unwrap(), cfg);
        // Any change to the body breaks the MAC.
        let mut evil = cfg.clone();
        evil.recipients = vec!["age1attacker".into()];
        let mut forged = evil.encode(&AgentKey::generate());
        assert!(RepoConfig::decode(&forged, &key).is_err());
        let n = forged.len();
        forged[n - 40] ^= 1;
        assert!(RepoConfig::decode(&forged, &key).is_err());
        for cut in 0..bytes.len() {
            assert!(RepoConfig::decode(&bytes[..cut], &key).is_err());
        }
        assert!(RepoConfig::decode(&bytes, &AgentKey::generate()).is_err());
    }

    #[test]
    fn retired_keys_are_mac_covered_and_absent_when_empty() {
        let key = AgentKey::generate();
        let plain = sample(&key).encode(&key);
        let mut cfg = sample(&key);
        cfg.retired_agent_keys.push(RetiredAgentKey { id: "0a1b2c3d".into(), retired: 7 });
        let bytes = cfg.encode(&key);
        assert!(bytes.len() > plain.len());
        assert_eq!(RepoConfig::decode(&bytes, &key).unwrap().retired_at("0a1b2c3d"), Some(7));
        // The field is in the MAC'd body: dropping it from a retired config breaks the MAC.
        let mut stripped = cfg.clone();
        stripped.retired_agent_keys.clear();
        let forged = stripped.encode(&AgentKey::generate());
        assert!(RepoConfig::decode(&forged, &key).is_err());
    }
}
