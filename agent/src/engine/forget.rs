//! Forget: remove the snapshots a retention policy does not keep. Only snapshot objects
//! are deleted; the data they alone referenced stays until prune.
//!
//! Safety: a snapshot that cannot be read or authenticated is never a candidate (it is
//! kept and reported), and a failed listing is an error, so a storage fault can never
//! make forget delete what it could not see.

use arka_proto::{ObjectId, Snapshot};

use crate::engine::retention::{apply, effective_time, Candidate, Decision, RetentionPolicy};
use crate::error::Result;
use crate::repo::Repository;
use crate::store::ObjectKind;

pub struct ForgetPlan {
    /// Decisions with the snapshot each is about, grouped, newest first.
    pub decisions: Vec<(Decision, Snapshot)>,
    /// Snapshots that could not be read, kept untouched.
    pub unreadable: Vec<(ObjectId, String)>,
}

impl ForgetPlan {
    pub fn forgotten(&self) -> impl Iterator<Item = &(Decision, Snapshot)> {
        self.decisions.iter().filter(|(d, _)| !d.keep())
    }
}

/// The group a snapshot's retention is counted in: one backup source of one host.
fn group_of(s: &Snapshot) -> String {
    format!("{} {} {}", s.hostname, s.source_kind, s.source.join(" "))
}

pub async fn plan(repo: &Repository, policy: &RetentionPolicy, now_ns: i64) -> Result<ForgetPlan> {
    let mut snapshots = Vec::new();
    let mut unreadable = Vec::new();
    for listed in repo.store.list_detailed(ObjectKind::Snapshot).await? {
        match repo.load_snapshot(listed.id).await {
            Ok(s) => snapshots.push((listed, s)),
            Err(e) => unreadable.push((listed.id, e.to_string())),
        }
    }
    let candidates: Vec<Candidate> = snapshots
        .iter()
        .map(|(l, s)| Candidate { id: l.id, group: group_of(s), time_ns: effective_time(s.time_ns, l.stored_at_ns) })
        .collect();
    let decisions = apply(policy, &candidates, now_ns, &jiff::tz::TimeZone::system());
    let mut by_id: std::collections::HashMap<ObjectId, Snapshot> =
        snapshots.into_iter().map(|(l, s)| (l.id, s)).collect();
    let decisions = decisions.into_iter().map(|d| {
        let s = by_id.remove(&d.id).expect("every decision is about a listed snapshot");
        (d, s)
    });
    Ok(ForgetPlan { decisions: decisions.collect(), unreadable })
}

/// Deletes the snapshots the plan forgets. Returns how many were deleted.
pub async fn execute(repo: &Repository, plan: &ForgetPlan) -> Result<usize> {
    // Collected first: an iterator held across an await would make this future !Send.
    let ids: Vec<_> = plan.forgotten().map(|(d, _)| d.id).collect();
    for id in &ids {
        repo.store.delete(&ObjectKind::Snapshot.key(id)).await?;
    }
    Ok(ids.len())
}
