//! Forget: remove the snapshots a retention policy does not keep. Only snapshot objects
//! are deleted; the data they alone referenced stays until prune.
//!
//! Safety: a snapshot that cannot be read or authenticated is never a candidate (it is
//! kept and reported), and a failed listing is an error, so a storage fault can never
//! make forget delete what it could not see.

use arka_proto::ObjectId;

use crate::engine::retention::{apply, Candidate, Decision, RetentionPolicy};
use crate::error::{Error, Result};
use crate::repo::snapshots::SnapshotFilter;
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
    /// Snapshots named that a backup made and that are already gone from the storage:
    /// forgetting them records that someone has looked (verify stops reporting them).
    pub gone_named: Vec<ObjectId>,
}

impl ForgetPlan {
    pub fn forgotten(&self) -> impl Iterator<Item = &(Decision, TimedSnapshot)> {
        self.decisions.iter().filter(|(d, _)| !d.keep())
    }

    /// Every snapshot object the plan deletes.
    pub fn deleted_ids(&self) -> Vec<ObjectId> {
        self.forgotten().map(|(d, _)| d.id).chain(self.damaged_named.iter().copied()).collect()
    }

    /// Every snapshot the plan's audit record names as forgotten.
    pub fn recorded_ids(&self) -> Vec<ObjectId> {
        let mut ids = self.deleted_ids();
        ids.extend(&self.gone_named);
        ids
    }
}

/// The plan for `policy` over the snapshots `filter` matches (the others are not touched).
pub async fn plan(
    repo: &Repository,
    policy: &RetentionPolicy,
    filter: &SnapshotFilter,
    now_ns: i64,
) -> Result<ForgetPlan> {
    let mut timeline = repo.timeline().await?;
    timeline.objects = filter.apply(timeline.objects);
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
    Ok(ForgetPlan {
        decisions: decisions.collect(),
        unreadable: timeline.damaged,
        damaged_named: Vec::new(),
        gone_named: Vec::new(),
    })
}

/// A plan that forgets exactly the snapshots `specs` name (IDs or unique ID prefixes):
/// how an operator removes a planted or unwanted snapshot that retention would keep, a
/// snapshot object that does not open, or acknowledges one that verify reports as gone.
pub async fn plan_named(repo: &Repository, specs: &[String]) -> Result<ForgetPlan> {
    let timeline = repo.timeline().await?;
    let mut plan =
        ForgetPlan { decisions: Vec::new(), unreadable: Vec::new(), damaged_named: Vec::new(), gone_named: Vec::new() };
    let mut gone: Option<Vec<ObjectId>> = None;
    for spec in specs {
        if spec == "latest" {
            return Err(Error::Usage("forget takes snapshot IDs; `latest` is not accepted here".into()));
        }
        let t = match crate::repo::snapshots::select(&timeline.objects, spec, None) {
            Err(Error::NoSuchSnapshot(_)) => {
                // Not a snapshot that opens: junk or a damaged object by that name, or one
                // the audit trail says a backup made and that is gone.
                if let Some(id) = unique_match(timeline.damaged_ids(), spec)? {
                    push_new(&mut plan.damaged_named, id);
                    continue;
                }
                if gone.is_none() {
                    let vanished = crate::engine::history::vanished_from(repo, &timeline).await?;
                    gone = Some(vanished.iter().filter_map(|v| ObjectId::from_hex(&v.id).ok()).collect());
                }
                let id = unique_match(gone.iter().flatten().copied(), spec)?
                    .ok_or_else(|| Error::NoSuchSnapshot(spec.clone()))?;
                push_new(&mut plan.gone_named, id);
                continue;
            }
            picked => picked?,
        };
        if !plan.decisions.iter().any(|(d, _)| d.id == t.id) {
            let d = Decision { id: t.id, group: group_of(&t.snapshot), time_ns: t.effective_ns, reasons: Vec::new() };
            plan.decisions.push((d, t.clone()));
        }
    }
    Ok(plan)
}

fn push_new(ids: &mut Vec<ObjectId>, id: ObjectId) {
    if !ids.contains(&id) {
        ids.push(id);
    }
}

/// The one ID among `ids` that starts with `spec`, if any.
fn unique_match(ids: impl Iterator<Item = ObjectId>, spec: &str) -> Result<Option<ObjectId>> {
    let spec = spec.to_ascii_lowercase();
    let mut matching = ids.filter(|id| id.to_hex().starts_with(&spec));
    match (matching.next(), matching.next()) {
        (Some(_), Some(_)) => Err(Error::Usage(format!("{spec:?} matches several snapshots; give more digits"))),
        (found, _) => Ok(found),
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
