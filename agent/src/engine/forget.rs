//! Forget: remove the snapshots a retention policy does not keep. Only snapshot objects
//! are deleted; the data they alone referenced stays until prune.
//!
//! Safety: a snapshot that cannot be read or authenticated is never a candidate (it is
//! kept and reported), and a failed listing is an error, so a storage fault can never
//! make forget delete what it could not see.

use arka_proto::ObjectId;

use crate::engine::retention::{apply, Candidate, Decision, RetentionPolicy};
use crate::error::{Error, Result};
use crate::repo::timeline::{group_of, TimedSnapshot};
use crate::repo::Repository;
use crate::store::ObjectKind;

pub struct ForgetPlan {
    /// Decisions with the snapshot each is about, grouped, newest first.
    pub decisions: Vec<(Decision, TimedSnapshot)>,
    /// Snapshots that could not be read, kept untouched: key and why.
    pub unreadable: Vec<(String, String)>,
    /// Snapshot objects that do not open but were named to be forgotten (junk, a plant).
    pub damaged_named: Vec<ObjectId>,
}

impl ForgetPlan {
    pub fn forgotten(&self) -> impl Iterator<Item = &(Decision, TimedSnapshot)> {
        self.decisions.iter().filter(|(d, _)| !d.keep())
    }

    /// Every snapshot object the plan deletes.
    pub fn deleted_ids(&self) -> Vec<ObjectId> {
        self.forgotten().map(|(d, _)| d.id).chain(self.damaged_named.iter().copied()).collect()
    }

    /// The snapshots the timeline flags, whether kept or not.
    pub fn suspicious(&self) -> impl Iterator<Item = &TimedSnapshot> {
        self.decisions.iter().map(|(_, t)| t).filter(|t| t.suspicion.as_ref().is_some_and(|s| s.is_alarming()))
    }
}

pub async fn plan(repo: &Repository, policy: &RetentionPolicy, now_ns: i64) -> Result<ForgetPlan> {
    let timeline = repo.timeline().await?;
    let candidates: Vec<Candidate> = timeline
        .objects
        .iter()
        .map(|t| Candidate { id: t.id, group: group_of(&t.snapshot), time_ns: t.effective_ns, trusted: t.is_trusted() })
        .collect();
    let decisions = apply(policy, &candidates, now_ns, &jiff::tz::TimeZone::system());
    let mut by_id: std::collections::HashMap<_, TimedSnapshot> =
        timeline.objects.into_iter().map(|t| (t.id, t)).collect();
    let decisions = decisions.into_iter().map(|d| {
        let t = by_id.remove(&d.id).expect("every decision is about a listed snapshot");
        (d, t)
    });
    Ok(ForgetPlan { decisions: decisions.collect(), unreadable: timeline.damaged, damaged_named: Vec::new() })
}

/// A plan that forgets exactly the snapshots `specs` name (IDs or unique ID prefixes):
/// how an operator removes a planted or unwanted snapshot that retention would keep.
pub async fn plan_named(repo: &Repository, specs: &[String]) -> Result<ForgetPlan> {
    let timeline = repo.timeline().await?;
    let (mut named, mut damaged) = (Vec::new(), Vec::new());
    for spec in specs {
        if spec == "latest" {
            return Err(Error::Usage("forget takes snapshot IDs; `latest` is not accepted here".into()));
        }
        let t = match crate::repo::snapshots::select(&timeline.objects, spec, None) {
            Err(Error::NoSuchSnapshot(_)) => {
                // Not a snapshot that opens: perhaps junk or a damaged object by that name.
                let id = damaged_named(&timeline.damaged, spec)?;
                if !damaged.contains(&id) {
                    damaged.push(id);
                }
                continue;
            }
            picked => picked?,
        };
        if !named.iter().any(|(d, _): &(Decision, TimedSnapshot)| d.id == t.id) {
            let d = Decision { id: t.id, group: group_of(&t.snapshot), time_ns: t.effective_ns, reasons: Vec::new() };
            named.push((d, t.clone()));
        }
    }
    Ok(ForgetPlan { decisions: named, unreadable: Vec::new(), damaged_named: damaged })
}

/// The one undecodable snapshot object whose ID starts with `spec`.
fn damaged_named(damaged: &[(String, String)], spec: &str) -> Result<ObjectId> {
    let spec = spec.to_ascii_lowercase();
    let mut ids = damaged
        .iter()
        .filter_map(|(key, _)| ObjectId::from_hex(key.rsplit('/').next()?).ok())
        .filter(|id| id.to_hex().starts_with(&spec));
    match (ids.next(), ids.next()) {
        (Some(id), None) => Ok(id),
        (Some(_), Some(_)) => Err(Error::Usage(format!("{spec:?} matches several snapshots; give more digits"))),
        (None, _) => Err(Error::NoSuchSnapshot(spec)),
    }
}

/// Deletes the snapshots the plan forgets. Returns how many were deleted.
pub async fn execute(repo: &Repository, plan: &ForgetPlan) -> Result<usize> {
    let ids = plan.deleted_ids();
    for id in &ids {
        repo.store.delete(&ObjectKind::Snapshot.key(id)).await?;
    }
    Ok(ids.len())
}
