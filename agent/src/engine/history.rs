//! Is the snapshot history what arka made it? Two checks `verify` runs with the agent key:
//! - **Flagged snapshots** (`repo::timeline`): a time the storage contradicts, a rollback
//!   to an older tree, a shrink. Reported, not failed: a shrink can be a deliberate cleanup.
//! - **Vanished snapshots**: a snapshot a backup's audit record names, that is no longer
//!   listed, and that no forget or erase record removed. Only a deletion outside arka
//!   (a storage admin, ransomware with delete rights, a rolled-back bucket) explains it.

use std::collections::HashSet;

use arka_proto::{ObjectId, Operation};

use crate::engine::audit::AuditLog;
use crate::error::Result;
use crate::repo::timeline::{Suspicion, TimedSnapshot};
use crate::repo::{Loaded, Repository};

/// A snapshot the timeline flags.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Flagged {
    pub id: String,
    pub effective_time_unix_ns: i64,
    pub suspicion: Suspicion,
    pub description: String,
}

/// A snapshot a backup made that is gone without a forget.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Vanished {
    pub id: String,
    /// The audit record of the backup that made it.
    pub made_by_record: u64,
    pub made_unix_ns: i64,
}

impl Flagged {
    /// "1a2b3c4d: why", for the status page and notifications.
    pub fn line(&self) -> String {
        format!("{}: {}", &self.id[..8], self.description)
    }
}

/// The flagged snapshots worth an alarm (a back-dated time alone is not: every snapshot on
/// a late copy has one).
pub fn flagged<'a>(snapshots: impl IntoIterator<Item = &'a TimedSnapshot>) -> Vec<Flagged> {
    snapshots
        .into_iter()
        .filter_map(|t| {
            let s = t.suspicion.as_ref().filter(|s| s.is_alarming())?;
            Some(Flagged {
                id: t.id.to_hex(),
                effective_time_unix_ns: t.effective_ns,
                suspicion: s.clone(),
                description: s.describe(),
            })
        })
        .collect()
}

/// The snapshots backups made that `timeline` lacks (listed, whether they open or not)
/// and no recorded forget or erase removed.
pub async fn vanished_from(repo: &Repository, timeline: &Loaded<TimedSnapshot>) -> Result<Vec<Vanished>> {
    let listed = timeline.objects.iter().map(|t| t.id);
    let present: HashSet<ObjectId> = listed.chain(timeline.damaged_ids()).collect();
    Ok(vanished(&crate::engine::audit::load_all(repo).await?, &present))
}

/// When data was last read back out of the repository (a restore or a dump, by anyone):
/// the last restore drill, as far as the audit trail can tell.
pub fn last_restore(log: &AuditLog) -> Option<i64> {
    let reads = log.records.iter().filter(|(_, r)| matches!(r.operation, Operation::Restore | Operation::Dump));
    reads.map(|(_, r)| r.time_ns).max()
}

/// The snapshots backups made that are neither `present` nor removed by a recorded forget
/// or erase.
fn vanished(log: &AuditLog, present: &HashSet<ObjectId>) -> Vec<Vanished> {
    let removed: HashSet<ObjectId> = log
        .records
        .iter()
        .filter(|(_, r)| matches!(r.operation, Operation::Forget | Operation::Erase))
        .flat_map(|(_, r)| r.snapshots.iter().copied())
        .collect();
    log.records
        .iter()
        .filter(|(_, r)| r.operation == Operation::Backup)
        .flat_map(|(_, r)| r.snapshots.iter().map(move |id| (id, r)))
        .filter(|(id, _)| !present.contains(id) && !removed.contains(id))
        .map(|(id, r)| Vanished { id: id.to_hex(), made_by_record: r.seq, made_unix_ns: r.time_ns })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arka_proto::AuditRecord;

    fn record(seq: u64, operation: Operation, snapshots: &[u8]) -> (ObjectId, AuditRecord) {
        let r = AuditRecord {
            seq,
            prev: None,
            time_ns: seq as i64,
            host: "h".into(),
            user: "u".into(),
            operation,
            snapshots: snapshots.iter().map(|&b| ObjectId([b; 32])).collect(),
            counts: Default::default(),
            detail: None,
            program: String::new(),
        };
        (ObjectId([seq as u8 + 100; 32]), r)
    }

    #[test]
    fn a_snapshot_gone_without_a_forget_is_vanished() {
        let log = AuditLog {
            records: vec![
                record(0, Operation::Backup, &[1]),
                record(1, Operation::Backup, &[2]),
                record(2, Operation::Backup, &[3]),
                record(3, Operation::Forget, &[1]),
                record(4, Operation::Restore, &[2]),
            ],
            unreadable: vec![],
        };
        // 1 was forgotten, 3 is listed, 2 is gone: only 2 is reported.
        let present = HashSet::from([ObjectId([3; 32])]);
        let gone = vanished(&log, &present);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].id, ObjectId([2; 32]).to_hex());
        assert_eq!(gone[0].made_by_record, 1);
        // Listed again (or never gone): nothing to report.
        let present = HashSet::from([ObjectId([2; 32]), ObjectId([3; 32])]);
        assert!(vanished(&log, &present).is_empty());
    }

    #[test]
    fn the_last_restore_is_the_newest_restore_or_dump() {
        let mut log = AuditLog { records: vec![record(0, Operation::Backup, &[1])], unreadable: vec![] };
        assert_eq!(last_restore(&log), None);
        log.records.extend([record(3, Operation::Dump, &[1]), record(5, Operation::Restore, &[1])]);
        log.records.push(record(7, Operation::Verify, &[]));
        assert_eq!(last_restore(&log), Some(5));
    }
}
