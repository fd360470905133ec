//! What each operation's audit record says: IDs and counts only, never a path or file name
//! (records are readable with the agent key). `Session` writes them; FORMAT.md §10 lists them.

use arka_proto::ObjectId;

use crate::engine::audit::{Entry, Operation};
use crate::engine::backup::BackupOutcome;
use crate::engine::erase::EraseReport;
use crate::engine::forget::ForgetPlan;
use crate::engine::prune::PruneReport;
use crate::engine::repair::index::RepairIndexReport;
use crate::engine::repair::packs::RepairPacksReport;
use crate::engine::repair::snapshots::RepairSnapshotsReport;
use crate::engine::repair::ConfigRepair;
use crate::engine::restore::RestoreSummary;
use crate::engine::sync::SyncReport;
use crate::engine::verify::VerifyReport;
use crate::error::Error;
use crate::repo::Repository;

/// `init` also created the agent key: one record stands for both.
pub fn initialised(repo: &Repository) -> Entry {
    Entry::new(Operation::Init)
        .count("recipients", repo.config.recipients.len() as u64)
        .detail("repository created, agent key created")
}

/// `label`: the configured source name of a service backup (a name the contractor chose,
/// never a path).
pub fn backed_up(outcome: &BackupOutcome, label: Option<&str>) -> Entry {
    let s = &outcome.snapshot.stats;
    let entry = Entry::new(Operation::Backup)
        .snapshots([outcome.id])
        .count("files", s.files)
        .count("bytes", s.bytes)
        .count("bytes_new", s.bytes_new)
        .count("bytes_stored", s.bytes_stored)
        .count("unreadable", s.unreadable)
        .count("damaged_blobs", outcome.healing.damaged)
        .count("healed_blobs", outcome.healing.healed)
        .count("changed_while_read", s.changed_while_read);
    let mut notes: Vec<String> = label.map(|l| format!("agent source {l}")).into_iter().collect();
    if outcome.snapshot.partial {
        notes.push("partial: some files could not be read".into());
    }
    if s.changed_while_read > 0 {
        notes.push("some files changed while read and may be inconsistent".into());
    }
    if notes.is_empty() {
        entry
    } else {
        entry.detail(notes.join("; "))
    }
}

/// `part`: only a path within the snapshot was restored (which one is not recorded).
pub fn restored(snapshot: ObjectId, summary: &RestoreSummary, part: bool) -> Entry {
    let entry = Entry::new(Operation::Restore)
        .snapshots([snapshot])
        .count("files", summary.files)
        .count("dirs", summary.dirs)
        .count("bytes", summary.bytes)
        .count("damaged", summary.damaged.len() as u64)
        .count("unwritable", summary.unwritable.len() as u64)
        .count("lost", summary.lost.len() as u64);
    if part {
        entry.detail("part of the snapshot")
    } else {
        entry
    }
}

pub fn dumped(snapshot: ObjectId, bytes: u64) -> Entry {
    Entry::new(Operation::Dump).snapshots([snapshot]).count("files", 1).count("bytes", bytes)
}

pub fn verified(report: &VerifyReport, read_data: Option<f64>) -> Entry {
    let entry = Entry::new(Operation::Verify)
        .count("snapshots", report.snapshots as u64)
        .count("index_segments", report.index_segments as u64)
        .count("packs", report.packs as u64)
        .count("packs_read", report.packs_read as u64)
        .count("blobs_decrypted", report.blobs_decrypted)
        .count("damaged", report.unhealed().count() as u64)
        .count("healed", report.damage.iter().filter(|d| d.healed).count() as u64)
        .count("broken_snapshots", report.broken_snapshots.len() as u64);
    // A filtered verify says how many it left out; the filter itself may name paths.
    let entry = match &report.selection {
        Some(s) => entry.count("snapshots_in_repository", s.snapshots_in_repository as u64),
        None => entry,
    };
    match read_data {
        Some(p) => entry.detail(format!("read-data {p}%")),
        None => entry,
    }
}

/// `how`: the policy, or that the snapshots were named by ID.
pub fn forgot(plan: &ForgetPlan, deleted: usize, how: String) -> Entry {
    let kept = plan.decisions.len() - plan.forgotten().count() + plan.unreadable.len();
    Entry::new(Operation::Forget)
        .snapshots(plan.recorded_ids())
        .count("forgotten", deleted as u64)
        .count("kept", kept as u64)
        .detail(how)
}

pub fn pruned(report: &PruneReport) -> Entry {
    Entry::new(Operation::Prune)
        .count("packs_deleted", report.packs_deleted as u64)
        .count("bytes_freed", report.bytes_freed)
        .count("packs_condemned", report.packs_condemned as u64)
        .count("packs_repacked", report.packs_repacked as u64)
        .count("delete_refused", report.delete_refused.len() as u64)
}

/// What was erased is recorded as a count and a keyed hash of the patterns: the names are
/// exactly what must not stay behind.
pub fn erased(repo: &Repository, patterns: &[crate::engine::erase::PathPattern], report: &EraseReport) -> Entry {
    let mut hashed = Vec::new();
    for p in patterns {
        hashed.extend_from_slice(p.as_bytes());
        hashed.push(0);
    }
    let tag = repo.key.mac("arka erase pattern v1", &hashed);
    let ids = report.rewritten.iter().filter_map(|(old, _)| ObjectId::from_hex(old).ok());
    Entry::new(Operation::Erase)
        .snapshots(ids)
        .count("snapshots_rewritten", report.rewritten.len() as u64)
        .count("files_erased", report.files_erased)
        .count("packs_deleted", report.prune.as_ref().map_or(0, |p| p.packs_deleted as u64))
        .detail(format!("pattern hash {}", tag[..16].iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

pub fn repaired_index(r: &RepairIndexReport) -> Entry {
    Entry::new(Operation::Repair)
        .count("packs_scanned", r.packs_scanned as u64)
        .count("packs_indexed", r.packs_indexed as u64)
        .count("blobs", r.blobs as u64)
        .count("segments_written", r.segments_written as u64)
        .count("damaged_segments_deleted", r.damaged_segments_deleted as u64)
        .count("unreadable_packs", r.unreadable_packs.len() as u64)
        .detail(format!("index: {} packs indexed anew", r.packs_indexed))
}

/// Snapshot IDs and counts only: the lost files' names stay on the operator's terminal.
pub fn repaired_snapshots(r: &RepairSnapshotsReport) -> Entry {
    let lost: u64 = r.repaired.iter().map(|s| s.lost_files).sum();
    let ids = r.repaired.iter().flat_map(|s| [&s.original, &s.repaired]).filter_map(|id| ObjectId::from_hex(id).ok());
    Entry::new(Operation::Repair)
        .snapshots(ids)
        .count("snapshots_repaired", r.repaired.len() as u64)
        .count("lost_files", lost)
        .detail(format!("snapshots: {} rewritten without lost data, {lost} files lost", r.repaired.len()))
}

pub fn repaired_packs(r: &RepairPacksReport) -> Entry {
    Entry::new(Operation::Repair)
        .count("packs_damaged", r.packs_damaged as u64)
        .count("blobs_salvaged", r.blobs_salvaged as u64)
        .count("bytes_salvaged", r.bytes_salvaged)
        .count("blobs_left_out", r.blobs_left_out as u64)
        .count("packs_written", r.packs_written as u64)
        .detail(format!("packs: {} blobs salvaged from {} damaged packs", r.blobs_salvaged, r.packs_salvaged))
}

pub fn synced(report: &SyncReport, to: &str) -> Entry {
    Entry::new(Operation::Sync)
        .count("packs", report.packs_copied)
        .count("index_segments", report.index_copied)
        .count("snapshots", report.snapshots_copied)
        .count("audit_records", report.audit_copied)
        .count("bytes", report.bytes_copied)
        .count("damaged_not_copied", report.damaged.len() as u64)
        .detail(format!("to {to}"))
}

pub fn repaired_config(report: &ConfigRepair) -> Entry {
    Entry::new(Operation::Repair)
        .count("objects_written", u64::from(report.config_written) + u64::from(report.copy_written))
        .count("other_copies", report.other_copies.len() as u64)
        .detail(report.describe())
}

/// A failed operation: its kind only, since the error's text may name a file.
pub fn failed(operation: Operation, error: &Error) -> Entry {
    Entry::new(operation).detail(format!("failed: {}", error.kind()))
}
