//! Audit records that could not be written after their operation had done its work (a
//! full disk, a store that stopped answering). They are kept in the cache directory and
//! written before the next operation's own record from here, so the trail misses
//! nothing and stays one chain: each is chained afresh onto the head of that moment, with
//! the time it is written (a record dated before its predecessor would read as a forgery)
//! and the time its operation ended in `detail`.
//!
//! Two processes writing at the same moment may both write a kept record; the trail
//! then holds it twice, which is better than not at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use arka_proto::ObjectId;

use super::{Actor, Entry, LocalMemory, Operation};
use crate::error::Result;
use crate::repo::Repository;
use crate::store::ObjectKind;

/// Beyond this many, the oldest kept records are dropped: a store refusing records for
/// months must not fill this machine's disk.
const MAX_KEPT: usize = 1000;

/// The records waiting to be written, oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    records: Vec<Unwritten>,
}

/// One record's content as its operation left it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Unwritten {
    operation: Operation,
    snapshots: Vec<ObjectId>,
    counts: BTreeMap<String, u64>,
    detail: Option<String>,
    host: String,
    user: String,
    ended_ns: i64,
}

impl Unwritten {
    fn of(entry: &Entry) -> Self {
        let actor = entry.actor.clone().unwrap_or_else(Actor::cli);
        Self {
            operation: entry.operation,
            snapshots: entry.snapshots.clone(),
            counts: entry.counts.clone(),
            detail: entry.detail.clone(),
            host: actor.host,
            user: actor.user,
            ended_ns: jiff::Timestamp::now().as_nanosecond() as i64,
        }
    }

    fn into_entry(self) -> Entry {
        let ended = jiff::Timestamp::from_nanosecond(self.ended_ns as i128)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|_| "an unknown time".into());
        let late = format!("written late: the {} ended at {ended}", self.operation);
        let mut entry = Entry::new(self.operation)
            .snapshots(self.snapshots)
            .by(Actor { host: self.host, user: self.user })
            .detail(match self.detail {
                Some(d) => format!("{late}; {d}"),
                None => late,
            });
        entry.counts = self.counts;
        entry
    }
}

/// The file of records waiting for `repo` at its current location, beside the memory.
pub(super) fn path(memory_file: &Path) -> PathBuf {
    let name = memory_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    memory_file.with_file_name(name.replacen("audit-", "audit-unwritten-", 1))
}

/// Keeps `entry` to be written before the next record.
pub(super) fn keep(file: &Path, entry: &Entry) -> std::io::Result<()> {
    let mut kept: Kept = crate::repo::local_state::load(file);
    kept.records.push(Unwritten::of(entry));
    let excess = kept.records.len().saturating_sub(MAX_KEPT);
    kept.records.drain(..excess);
    crate::repo::local_state::save(file, &kept)
}

/// Writes the kept records after `head`, oldest first, and returns the new head. At the
/// first failure the rest stay kept and the error is returned.
pub(super) async fn write_kept(
    repo: &Repository,
    file: &Path,
    memory: &mut LocalMemory,
    mut head: Option<(u64, ObjectId)>,
) -> Result<Option<(u64, ObjectId)>> {
    let mut kept: Kept = crate::repo::local_state::load(file);
    if kept.records.is_empty() {
        return Ok(head);
    }
    let total = kept.records.len();
    while let Some(next) = kept.records.first().cloned() {
        let record = next.into_entry().into_record(head);
        let written = async { repo.put_object(ObjectKind::Audit, record.encode(repo.key.meta_key())?).await }.await;
        let id = match written {
            Ok(id) => id,
            Err(e) => {
                if let Err(save) = crate::repo::local_state::save(file, &kept) {
                    tracing::warn!("could not update the kept audit records: {save}");
                }
                return Err(e);
            }
        };
        memory.known.insert(id, record.seq);
        head = Some((record.seq, id));
        kept.records.remove(0);
    }
    if let Err(e) = std::fs::remove_file(file) {
        tracing::warn!("could not remove the kept audit records, now written: {e}");
    }
    tracing::info!("wrote {total} audit records kept from earlier operations");
    Ok(head)
}

/// What to tell the person or the log when `entry`'s record could not be written: what was
/// done all the same, why the record was not written, and that it will be.
pub(super) fn unwritten_message(entry: &Entry, why: &str, kept: std::io::Result<()>) -> String {
    let failed = entry.detail.as_deref().is_some_and(|d| d.starts_with("failed:"));
    let op = entry.operation;
    let done = match entry.snapshots.first() {
        Some(id) if op == Operation::Backup && !failed => format!("snapshot {} was saved", id.short()),
        _ if failed => format!("the {op} failed as reported"),
        _ => format!("the {op} is done"),
    };
    match kept {
        Ok(()) => format!(
            "{done}, but its audit record could not be written ({why}); it is kept on this machine \
             and will be written at the next operation on this repository from here"
        ),
        Err(e) => format!(
            "{done}, but its audit record could not be written ({why}), nor kept on this machine \
             to be written later ({e}): the audit trail will lack it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{verify, Entry};
    use super::*;

    async fn repository(dir: &Path) -> Repository {
        let store = crate::store::Store::open(dir.join("repo").to_str().unwrap(), true).unwrap();
        let recipient = arka_proto::RecoveryIdentities::generate().recipients();
        Repository::init(store, &recipient, None).await.unwrap().0
    }

    #[tokio::test]
    async fn a_record_that_could_not_be_written_is_written_before_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repository(dir.path()).await;
        let cache = dir.path().join("cache");
        let first = Entry::new(Operation::Init).cache_dir(&cache).append(&repo).await.unwrap();

        // A file where the audit folder should be: every write of a record fails.
        let audit = dir.path().join("repo").join("audit");
        std::fs::rename(&audit, dir.path().join("audit-aside")).unwrap();
        std::fs::write(&audit, b"in the way").unwrap();
        let backup = Entry::new(Operation::Backup).snapshots([ObjectId([9; 32])]).count("files", 3);
        assert_eq!(backup.cache_dir(&cache).record(&repo).await, None);
        let file = path(&super::super::memory_path(&cache, &repo));
        assert_eq!(crate::repo::local_state::load::<Kept>(&file).records.len(), 1);

        std::fs::remove_file(&audit).unwrap();
        std::fs::rename(dir.path().join("audit-aside"), &audit).unwrap();
        let third = Entry::new(Operation::Verify).cache_dir(&cache).append(&repo).await.unwrap();
        assert!(!file.exists(), "the kept record is still waiting");

        let (log, report) = verify(&repo, &cache).await.unwrap();
        assert!(report.is_intact() && report.warnings.is_empty(), "{report:?}");
        let chain: Vec<(u64, Operation)> = log.records.iter().map(|(_, r)| (r.seq, r.operation)).collect();
        assert_eq!(chain, [(0, Operation::Init), (1, Operation::Backup), (2, Operation::Verify)]);
        let (late_id, late) = &log.records[1];
        assert_eq!(
            (late.prev, late.snapshots.as_slice(), late.counts["files"]),
            (Some(first), &[ObjectId([9; 32])][..], 3)
        );
        assert!(late.detail.as_deref().unwrap().starts_with("written late: the backup ended at "), "{late:?}");
        assert_eq!(log.records[2], (third, log.records[2].1.clone()));
        assert_eq!(log.records[2].1.prev, Some(*late_id));
    }

    #[test]
    fn the_message_says_the_snapshot_was_saved_and_the_record_will_be_written() {
        let backup = Entry::new(Operation::Backup).snapshots([ObjectId([0xab; 32])]);
        let m = unwritten_message(&backup, "write audit/12: the disk is full", Ok(()));
        assert!(m.starts_with("snapshot abababab was saved, but its audit record could not be written"), "{m}");
        assert!(
            m.contains("(write audit/12: the disk is full)") && m.contains("will be written at the next operation"),
            "{m}"
        );
        assert!(!m.contains("nothing was committed"), "{m}");
        let lost = unwritten_message(&backup, "x", Err(std::io::Error::other("no space")));
        assert!(lost.contains("nor kept on this machine") && lost.contains("will lack it"), "{lost}");
        let failed = Entry::new(Operation::Prune).detail("failed: repository damaged");
        assert!(unwritten_message(&failed, "x", Ok(())).starts_with("the prune failed as reported, but"));
    }
}
