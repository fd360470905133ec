//! Damage reports: what a verify, a restore or a backup found damaged or missing, written
//! where the agent key can read it so the next backup stores those blobs again instead of
//! deduplicating against them (docs/FORMAT.md, "Damage reports").
//!
//! ```text
//! "ARKH" version:u8 sealed(meta_key, "arka damage report v1", CBOR(DamageReport))
//! ```
//!
//! A report only ever makes a reader distrust a copy: a forged one (an append-only token
//! can write any object) costs an upload of blobs the repository already has, nothing more.

use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::error::{Error, Result};
use crate::id::{BlobId, ObjectId};

pub const MAGIC: &[u8; 4] = b"ARKH";
const LABEL: &str = "arka damage report v1";
/// Upper bound on the entries one report names (a 2 TB repository has ~130k packs).
pub const MAX_REPORT_ENTRIES: usize = 4 << 20;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageReport {
    /// When the damage was found, Unix nanoseconds (the finding machine's clock).
    pub found_ns: i64,
    /// The operation that found it: "verify", "restore", "backup" or "repair".
    pub found_by: String,
    /// Packs missing from the store or wrong as a whole: no copy in them is trusted.
    pub packs: Vec<ObjectId>,
    /// Blobs that failed to open where the index places them, each with its pack.
    pub blobs: Vec<(ObjectId, BlobId)>,
}

impl DamageReport {
    pub fn encode(&self, meta_key: &[u8; 32]) -> Vec<u8> {
        crypto::seal_cbor(meta_key, MAGIC, LABEL, self)
    }

    pub fn decode(meta_key: &[u8; 32], bytes: &[u8]) -> Result<Self> {
        let report: Self = crypto::open_cbor(meta_key, MAGIC, LABEL, "damage report", bytes)?;
        if report.packs.len() + report.blobs.len() > MAX_REPORT_ENTRIES {
            return Err(Error::Malformed { what: "damage report", reason: "names too many objects".into() });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn report_round_trips(t in any::<i64>(), packs in proptest::collection::vec(any::<[u8; 32]>(), 0..5), cut in 0usize..64) {
            let report = DamageReport {
                found_ns: t,
                found_by: "verify".into(),
                packs: packs.iter().map(|p| ObjectId(*p)).collect(),
                blobs: vec![(ObjectId([7; 32]), BlobId([8; 32]))],
            };
            let key = [5u8; 32];
            let bytes = report.encode(&key);
            prop_assert_eq!(DamageReport::decode(&key, &bytes).unwrap(), report);
            prop_assert!(DamageReport::decode(&key, &bytes[..cut.min(bytes.len() - 1)]).is_err());
            prop_assert!(DamageReport::decode(&[6u8; 32], &bytes).is_err());
        }
    }
}
