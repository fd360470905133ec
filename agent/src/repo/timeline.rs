//! The snapshots of a repository in an order a compromised agent cannot rewrite.
//!
//! A snapshot's own time is the writing agent's claim. Whoever holds the agent key (ransomware
//! on the clinic server) can write snapshots that claim any time, hold any tree, or hold
//! nothing. Two things bound what such plants can do:
//! - **Effective time.** The time that orders snapshots (`latest`, `--at`, retention) is the
//!   claim, but never later than when the storage recorded the object (S3 `LastModified`,
//!   arka-server's receipt time, a file's mtime) plus a little clock skew. A plant cannot
//!   claim tomorrow and stay `latest` for ever.
//! - **Suspicion.** A snapshot whose claim disagrees with the storage, or whose contents go
//!   back to an older state or lose most of their size, is flagged. Flagged snapshots are
//!   shown and reported, never take a retention slot from an unflagged one, and `latest`
//!   passes over those that only an attack explains.

use std::collections::{BTreeMap, HashMap};

use arka_proto::status::human_duration;
use arka_proto::{BlobId, ObjectId, Snapshot};

/// A snapshot may claim to be this much older than when it was stored: a long backup's
/// claimed time is when it started.
pub const MAX_BACKDATE_NS: i64 = 24 * 3600 * NS;
/// ...and this much newer: clock skew between the agent and the store (the audit chain
/// allows the same).
pub const MAX_SKEW_NS: i64 = 15 * 60 * NS;
/// A snapshot holding less than this share of the bytes or files of the one before it is
/// flagged as a shrink. Sources below `SHRINK_FLOOR_*` are too small to judge.
const SHRINK_KEEPS_PERCENT: u64 = 50;
const SHRINK_FLOOR_BYTES: u64 = 1 << 20;
const SHRINK_FLOOR_FILES: u64 = 20;
const NS: i64 = 1_000_000_000;

/// A snapshot as readers see it.
#[derive(Clone, Debug)]
pub struct TimedSnapshot {
    pub id: ObjectId,
    pub snapshot: Snapshot,
    /// When the storage recorded the object; `i64::MAX` if it does not say.
    pub stored_at_ns: i64,
    /// The time that counts: the claim, never later than the storage's record.
    pub effective_ns: i64,
    pub suspicion: Option<Suspicion>,
}

impl TimedSnapshot {
    pub fn new(id: ObjectId, snapshot: Snapshot, stored_at_ns: i64) -> Self {
        let effective_ns = effective_time(snapshot.time_ns, stored_at_ns);
        Self { id, snapshot, stored_at_ns, effective_ns, suspicion: None }
    }

    /// Whether retention may count this snapshot as a real backup of its time.
    pub fn is_trusted(&self) -> bool {
        self.suspicion.is_none()
    }

    /// Whether `latest` passes over it ([`Suspicion::passed_over_by_latest`]).
    pub fn passed_over_by_latest(&self) -> bool {
        self.suspicion.as_ref().is_some_and(Suspicion::passed_over_by_latest)
    }
}

/// Why a snapshot is not taken at its word.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Suspicion {
    /// It claims a time after the storage recorded it.
    FutureTime { claimed_ns: i64, stored_at_ns: i64 },
    /// It claims a time more than a day before the storage recorded it: planted, or copied
    /// later by `arka sync` (normal on a copy).
    BackDated { claimed_ns: i64, stored_at_ns: i64 },
    /// Its tree is that of an older snapshot, not of the one before it: the source went
    /// back to an earlier state (a rollback, or a replayed snapshot).
    Rollback { same_as: String },
    /// It holds under half the bytes or files of the snapshot before it.
    Shrink { bytes_before: u64, bytes: u64, files_before: u64, files: u64 },
}

impl Suspicion {
    /// Whether only an attack or a serious fault explains it: `latest` passes over such a
    /// snapshot. A shrink can be a deliberate cleanup, and a back-dated snapshot is what
    /// every snapshot on a late copy looks like.
    pub fn passed_over_by_latest(&self) -> bool {
        matches!(self, Self::FutureTime { .. } | Self::Rollback { .. })
    }

    /// Whether to alarm (status page, notification): everything but a back-dated time,
    /// which retention already contains and which `arka sync` produces normally.
    pub fn is_alarming(&self) -> bool {
        !matches!(self, Self::BackDated { .. })
    }

    /// One line for people, without paths or names.
    pub fn describe(&self) -> String {
        let span = |ns: i64| human_duration((ns / NS).unsigned_abs());
        match self {
            Self::FutureTime { claimed_ns, stored_at_ns } => format!(
                "claims a time {} after the storage received it (or the clinic server's clock is wrong)",
                span(claimed_ns - stored_at_ns)
            ),
            Self::BackDated { claimed_ns, stored_at_ns } => {
                format!("was stored {} after the time it claims", span(stored_at_ns - claimed_ns))
            }
            Self::Rollback { same_as } => format!("holds exactly what the older snapshot {same_as} holds"),
            Self::Shrink { bytes_before, bytes, files_before, files } => {
                format!("holds {files} files, {bytes} bytes; the snapshot before held {files_before} files, {bytes_before} bytes")
            }
        }
    }
}

/// The time retention and selection use: what a snapshot claims, bounded above by when
/// the storage recorded it (plus clock skew).
pub fn effective_time(claimed_ns: i64, stored_at_ns: i64) -> i64 {
    claimed_ns.min(stored_at_ns.saturating_add(MAX_SKEW_NS))
}

/// The group a snapshot belongs to: one backup source of one host, told apart by its
/// configured name too (the service's `clinic-db` and a CLI dump that happens to use the
/// same file name are two sources: retention must not keep one in place of the other).
/// Retention and the rollback and shrink checks compare snapshots within a group.
pub fn group_of(s: &Snapshot) -> String {
    let name = s.source_name.as_deref().unwrap_or("");
    format!("{} {name:?} {} {}", s.hostname, s.source_kind, s.source.join(" "))
}

/// Sorts snapshots by effective time (oldest first) and flags the suspicious ones.
pub fn assess(mut snaps: Vec<TimedSnapshot>) -> Vec<TimedSnapshot> {
    snaps.sort_by_key(|t| (t.effective_ns, t.snapshot.written_ns, t.id));
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, t) in snaps.iter().enumerate() {
        groups.entry(group_of(&t.snapshot)).or_default().push(i);
    }
    for members in groups.values() {
        // The baseline is the last complete snapshot with a believable time and no
        // rollback: a partial run or a plant must not become what the next snapshot is
        // compared with. A shrink does become the baseline: it is flagged once, and the
        // snapshots after a deliberate cleanup are normal again.
        let mut baseline: Option<usize> = None;
        let mut trees: HashMap<BlobId, ObjectId> = HashMap::new();
        for &i in members {
            let t = &snaps[i];
            let suspicion = time_suspicion(t).or_else(|| {
                let before = &snaps[baseline?].snapshot;
                content_suspicion(&t.snapshot, before, &trees)
            });
            let (trusted, shrink) = (suspicion.is_none(), matches!(suspicion, Some(Suspicion::Shrink { .. })));
            snaps[i].suspicion = suspicion;
            if (trusted || shrink) && !snaps[i].snapshot.partial {
                baseline = Some(i);
            }
            if trusted {
                trees.entry(snaps[i].snapshot.tree).or_insert(snaps[i].id);
            }
        }
    }
    snaps
}

fn time_suspicion(t: &TimedSnapshot) -> Option<Suspicion> {
    let (claimed_ns, stored_at_ns) = (t.snapshot.time_ns, t.stored_at_ns);
    if stored_at_ns == i64::MAX {
        return None;
    }
    if claimed_ns > stored_at_ns.saturating_add(MAX_SKEW_NS) {
        return Some(Suspicion::FutureTime { claimed_ns, stored_at_ns });
    }
    if claimed_ns < stored_at_ns.saturating_sub(MAX_BACKDATE_NS) {
        return Some(Suspicion::BackDated { claimed_ns, stored_at_ns });
    }
    None
}

fn content_suspicion(s: &Snapshot, before: &Snapshot, trees: &HashMap<BlobId, ObjectId>) -> Option<Suspicion> {
    if s.tree != before.tree {
        if let Some(older) = trees.get(&s.tree) {
            return Some(Suspicion::Rollback { same_as: older.short() });
        }
    }
    let shrank = |now: u64, then: u64, floor: u64| then >= floor && now * 100 < then * SHRINK_KEEPS_PERCENT;
    let (st, bt) = (&s.stats, &before.stats);
    if shrank(st.bytes, bt.bytes, SHRINK_FLOOR_BYTES) || shrank(st.files, bt.files, SHRINK_FLOOR_FILES) {
        return Some(Suspicion::Shrink {
            bytes_before: bt.bytes,
            bytes: st.bytes,
            files_before: bt.files,
            files: st.files,
        });
    }
    None
}

#[cfg(test)]
mod tests;
