//! Prune plans: what a prune has decided to delete, written before anything is deleted.
//! Readers treat the condemned packs as gone for deduplication; a later prune deletes
//! them once the plan is older than its grace period (see docs/FORMAT.md, "Prune").
//!
//! ```text
//! "ARKD" version:u8 sealed(meta_key, "arka prune plan v1", CBOR(PrunePlan))
//! ```

use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::error::{Error, Result};
use crate::id::ObjectId;

pub const MAGIC: &[u8; 4] = b"ARKD";
const LABEL: &str = "arka prune plan v1";
/// Upper bound on the objects one plan names (a 2 TB repository has ~130k packs of 16 MiB).
pub const MAX_PLAN_OBJECTS: usize = 4 << 20;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunePlan {
    /// When the plan was made, Unix nanoseconds (the pruning machine's clock).
    pub created_ns: i64,
    /// Not before this instant may the condemned objects be deleted: a backup that loaded
    /// the index before the plan existed must have written its snapshot by then.
    pub delete_after_ns: i64,
    /// Packs to delete: nothing reachable needs them, or their live blobs were copied.
    pub packs: Vec<ObjectId>,
    /// Index segments to delete: their surviving entries were rewritten into new ones.
    pub index: Vec<ObjectId>,
}

impl PrunePlan {
    pub fn encode(&self, meta_key: &[u8; 32]) -> Vec<u8> {
        crypto::seal_cbor(meta_key, MAGIC, LABEL, self)
    }

    pub fn decode(meta_key: &[u8; 32], bytes: &[u8]) -> Result<Self> {
        let plan: Self = crypto::open_cbor(meta_key, MAGIC, LABEL, "prune plan", bytes)?;
        if plan.packs.len() + plan.index.len() > MAX_PLAN_OBJECTS {
            return Err(Error::Malformed { what: "prune plan", reason: "names too many objects".into() });
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn plan_round_trips(t in any::<i64>(), packs in proptest::collection::vec(any::<[u8; 32]>(), 0..5), cut in 0usize..64) {
            let plan = PrunePlan {
                created_ns: t,
                delete_after_ns: t.saturating_add(1),
                packs: packs.iter().map(|p| ObjectId(*p)).collect(),
                index: vec![ObjectId([7; 32])],
            };
            let key = [5u8; 32];
            let bytes = plan.encode(&key);
            prop_assert_eq!(PrunePlan::decode(&key, &bytes).unwrap(), plan);
            prop_assert!(PrunePlan::decode(&key, &bytes[..cut.min(bytes.len() - 1)]).is_err());
            prop_assert!(PrunePlan::decode(&[6u8; 32], &bytes).is_err());
        }
    }
}
