//! Audit records: one per repository operation (init, backup, restore, verify, forget,
//! prune, erase, key changes), each naming the record before it, so the records form a
//! hash chain an auditor can check. Readable with the agent key; they never hold file
//! names, only IDs and counts.
//!
//! ```text
//! "ARKL" version:u8 sealed(meta_key, "arka audit record v1", CBOR(AuditRecord))
//! ```
//!
//! A record's ObjectId is the BLAKE3 of these stored bytes, and `prev` is the ObjectId of
//! the record it follows, so altering, removing or swapping a record breaks the chain.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::error::{Error, Result};
use crate::id::ObjectId;

pub const MAGIC: &[u8; 4] = b"ARKL";
const LABEL: &str = "arka audit record v1";

/// Largest stored record a reader accepts; checked before anything is decrypted.
pub const MAX_RECORD_LEN: usize = 4 << 20;
/// Longest `host`, `user` and `program`, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest `detail`, in bytes.
pub const MAX_DETAIL_LEN: usize = 4096;
/// Most entries in `counts`, and the longest count name, in bytes.
pub const MAX_COUNTS: usize = 64;
pub const MAX_COUNT_NAME_LEN: usize = 64;
/// Most snapshot IDs one record names (a forget of years of hourly snapshots fits).
pub const MAX_SNAPSHOTS: usize = 100_000;

/// What was done. The names (`as_str`) are part of the format and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Init,
    Backup,
    Restore,
    Dump,
    Verify,
    Forget,
    Prune,
    Erase,
    Key,
    /// A copy of the repository to another target (recorded in the source repository,
    /// which the next sync carries to the copy).
    Sync,
    /// `arka repair …`: what was repaired is in the record's detail.
    Repair,
}

impl Operation {
    pub const ALL: [Operation; 11] = [
        Self::Init,
        Self::Backup,
        Self::Restore,
        Self::Dump,
        Self::Verify,
        Self::Forget,
        Self::Prune,
        Self::Erase,
        Self::Key,
        Self::Sync,
        Self::Repair,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Dump => "dump",
            Self::Verify => "verify",
            Self::Forget => "forget",
            Self::Prune => "prune",
            Self::Erase => "erase",
            Self::Key => "key",
            Self::Sync => "sync",
            Self::Repair => "repair",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain: 0 for the first record, then the previous record's + 1.
    pub seq: u64,
    /// ObjectId of the record this one follows; absent exactly for seq 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<ObjectId>,
    /// When the operation finished, Unix nanoseconds (UTC), by the writer's clock.
    pub time_ns: i64,
    /// Machine and account that ran it.
    pub host: String,
    pub user: String,
    pub operation: Operation,
    /// Snapshots the operation made, read or removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<ObjectId>,
    /// What it did in numbers (`files`, `bytes`, `packs_deleted`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    /// A short free-text note; never a file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The arka version that wrote it.
    pub program: String,
}

impl AuditRecord {
    /// Checks the chain rule for `seq`/`prev` and every size limit. Writers call it
    /// through `encode`; readers after decoding.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::Malformed { what: "audit record", reason });
        if (self.seq == 0) != self.prev.is_none() {
            return bad(format!(
                "seq {} with{} a previous record",
                self.seq,
                if self.prev.is_some() { "" } else { "out" }
            ));
        }
        for (field, value) in [("host", &self.host), ("user", &self.user), ("program", &self.program)] {
            if value.len() > MAX_NAME_LEN {
                return bad(format!("{field} of {} bytes (at most {MAX_NAME_LEN})", value.len()));
            }
        }
        if let Some(d) = self.detail.as_ref().filter(|d| d.len() > MAX_DETAIL_LEN) {
            return bad(format!("detail of {} bytes (at most {MAX_DETAIL_LEN})", d.len()));
        }
        if self.snapshots.len() > MAX_SNAPSHOTS {
            return bad(format!("{} snapshot IDs (at most {MAX_SNAPSHOTS})", self.snapshots.len()));
        }
        if self.counts.len() > MAX_COUNTS {
            return bad(format!("{} counts (at most {MAX_COUNTS})", self.counts.len()));
        }
        if let Some(k) = self.counts.keys().find(|k| k.is_empty() || k.len() > MAX_COUNT_NAME_LEN) {
            return bad(format!("a count name of {} bytes (1 to {MAX_COUNT_NAME_LEN})", k.len()));
        }
        Ok(())
    }

    /// The stored bytes. Fails only if the record breaks a limit of `validate`.
    pub fn encode(&self, meta_key: &[u8; 32]) -> Result<Vec<u8>> {
        self.validate()?;
        let out = crypto::seal_cbor(meta_key, MAGIC, LABEL, self);
        if out.len() > MAX_RECORD_LEN {
            return Err(Error::Malformed {
                what: "audit record",
                reason: format!("{} bytes (at most {MAX_RECORD_LEN})", out.len()),
            });
        }
        Ok(out)
    }

    pub fn decode(meta_key: &[u8; 32], bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_RECORD_LEN {
            return Err(Error::Malformed {
                what: "audit record",
                reason: format!("{} bytes (at most {MAX_RECORD_LEN})", bytes.len()),
            });
        }
        let record: Self = crypto::open_cbor(meta_key, MAGIC, LABEL, "audit record", bytes)?;
        record.validate()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::crypto::seal_meta;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7; 32];

    fn record() -> AuditRecord {
        AuditRecord {
            seq: 3,
            prev: Some(ObjectId([1; 32])),
            time_ns: 1_767_225_600_000_000_000,
            host: "recepcja".into(),
            user: "admin".into(),
            operation: Operation::Backup,
            snapshots: vec![ObjectId([2; 32])],
            counts: [("files".to_string(), 12), ("bytes".to_string(), 3456)].into(),
            detail: None,
            program: "arka test".into(),
        }
    }

    fn arb_record() -> impl Strategy<Value = AuditRecord> {
        (
            (any::<u64>(), any::<[u8; 32]>(), any::<i64>(), ".{0,40}", ".{0,40}", 0usize..Operation::ALL.len()),
            (
                proptest::collection::vec(any::<[u8; 32]>(), 0..4),
                proptest::collection::btree_map("[a-z_]{1,20}", any::<u64>(), 0..5),
                proptest::option::of(".{0,100}"),
            ),
        )
            .prop_map(|((seq, prev, time_ns, host, user, op), (snaps, counts, detail))| AuditRecord {
                seq,
                prev: (seq != 0).then_some(ObjectId(prev)),
                time_ns,
                host,
                user,
                operation: Operation::ALL[op],
                snapshots: snaps.into_iter().map(ObjectId).collect(),
                counts,
                detail,
                program: "arka test".into(),
            })
    }

    proptest! {
        #[test]
        fn audit_record_round_trips(r in arb_record()) {
            let bytes = r.encode(&KEY).unwrap();
            prop_assert_eq!(AuditRecord::decode(&KEY, &bytes).unwrap(), r);
            for cut in [0, 4, 5, bytes.len() / 2, bytes.len() - 1] {
                prop_assert!(AuditRecord::decode(&KEY, &bytes[..cut]).is_err());
            }
            prop_assert!(AuditRecord::decode(&[8; 32], &bytes).is_err());
        }

        #[test]
        fn any_flipped_byte_is_refused(r in arb_record(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = r.encode(&KEY).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(AuditRecord::decode(&KEY, &bytes).is_err());
        }
    }

    #[test]
    fn operation_names_are_stable_and_match_the_encoding() {
        let names: Vec<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            ["init", "backup", "restore", "dump", "verify", "forget", "prune", "erase", "key", "sync", "repair"]
        );
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.as_str()), Some(op));
            let cbor = codec::to_cbor(&op);
            let text: String = codec::from_cbor(&cbor, "test").unwrap();
            assert_eq!(text, op.as_str());
        }
        assert_eq!(Operation::from_name("delete"), None);
    }

    #[test]
    fn seq_and_prev_must_agree() {
        let mut r = record();
        r.prev = None;
        assert!(r.encode(&KEY).is_err(), "seq 3 without a previous record");
        r.seq = 0;
        r.encode(&KEY).unwrap();
        r.prev = Some(ObjectId([1; 32]));
        assert!(r.encode(&KEY).is_err(), "a first record with a previous one");
    }

    #[test]
    fn limits_are_enforced_on_both_sides() {
        let mut long_host = record();
        long_host.host = "h".repeat(MAX_NAME_LEN + 1);
        let mut many_counts = record();
        many_counts.counts = (0..=MAX_COUNTS).map(|i| (format!("c{i}"), 1)).collect();
        let mut empty_count = record();
        empty_count.counts = [(String::new(), 1)].into();
        let mut long_detail = record();
        long_detail.detail = Some("d".repeat(MAX_DETAIL_LEN + 1));
        for r in [long_host, many_counts, empty_count, long_detail] {
            assert!(r.encode(&KEY).is_err());
            // A writer that skipped the check is still refused by readers.
            let mut raw = Vec::new();
            codec::write_frame(&mut raw, MAGIC, 1);
            raw.extend(seal_meta(&KEY, LABEL, &codec::to_cbor(&r)));
            assert!(matches!(AuditRecord::decode(&KEY, &raw), Err(Error::Malformed { .. })));
        }
        let huge = vec![0u8; MAX_RECORD_LEN + 1];
        assert!(matches!(AuditRecord::decode(&KEY, &huge), Err(Error::Malformed { .. })));
    }

    #[test]
    fn other_sealed_objects_are_not_audit_records() {
        let snapshot_sealed = seal_meta(&KEY, "arka snapshot v1", &codec::to_cbor(&record()));
        let mut raw = Vec::new();
        codec::write_frame(&mut raw, MAGIC, 1);
        raw.extend(&snapshot_sealed);
        assert!(matches!(AuditRecord::decode(&KEY, &raw), Err(Error::Authentication { .. })));
        let mut wrong_magic = record().encode(&KEY).unwrap();
        wrong_magic[3] = b'S';
        assert!(matches!(AuditRecord::decode(&KEY, &wrong_magic), Err(Error::BadMagic { .. })));
    }

    #[test]
    fn optional_fields_are_left_out_not_null() {
        let mut r = record();
        r.snapshots.clear();
        r.counts.clear();
        let cbor = codec::to_cbor(&r);
        for key in [&b"prev"[..], b"snapshots", b"counts", b"detail"] {
            let present = cbor.windows(key.len()).any(|w| w == key);
            assert_eq!(present, key == b"prev", "{}", String::from_utf8_lossy(key));
        }
    }
}
