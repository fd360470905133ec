//! Failover and catch-up. A backup goes to the primary target; when the primary cannot be
//! reached (or is busy, or its disk is full) it goes to the next target in the list that
//! can take it, so a NAS that is down leaves the clinic protected offsite rather than not
//! at all. The primary records which target stood in and since when (`catch_up` on its
//! card, kept across restarts), and once it is reachable again the replication of that
//! target copies back what was stored there since then (`engine::sync::sync_since`).
//! Prune waits meanwhile: it would otherwise delete data that a snapshot still on its way
//! back refers to.

use std::sync::Arc;

use arka_proto::status::CatchUp;

use super::{jobs, Agent};
use crate::engine::backup::BackupOutcome;
use crate::engine::Session;
use crate::error::Result;
use crate::service::config::Source;
use crate::service::notify::{Event, EventKind};
use crate::service::supervisor::Ended;

/// Objects a target stored up to this long before the failover began are copied back too:
/// the agent's clock and the storage's may differ.
const CLOCK_MARGIN_NS: i64 = 3_600_000_000_000;

/// Runs one backup of `source` on the primary and, when that cannot reach it, on each
/// next target in turn. Returns how it ended and on which target (the primary's failure
/// is the one reported when no target could take the backup).
pub(super) async fn backup(
    agent: &Arc<Agent>,
    key: &arka_proto::AgentKey,
    source: &Source,
) -> (Ended<BackupOutcome>, usize) {
    let started_ns = agent.now_ns();
    let on_primary = run_on(agent, key, source, 0).await;
    let primary = agent.cfg.targets[0].name.clone();
    match &on_primary {
        Ended::Failed(e) if e.is_retryable() => {}
        Ended::Done(_) => {
            agent.board.update(|st| {
                if let Some(t) = st.target_mut(&primary) {
                    (t.reachable, t.last_error) = (true, None);
                }
            });
            return (on_primary, 0);
        }
        _ => return (on_primary, 0),
    }
    let why = on_primary.failure().unwrap_or_default();
    set_unreachable(agent, 0, &why);
    for index in 1..agent.cfg.targets.len() {
        if agent.stopping() {
            break;
        }
        let stand_in = agent.cfg.targets[index].name.clone();
        tracing::warn!("source {}: {primary} cannot be reached ({why}); backing up to {stand_in} instead", source.name);
        match run_on(agent, key, source, index).await {
            Ended::Done(outcome) => {
                note_catch_up(agent, index, started_ns);
                let event = Event::now(
                    EventKind::TargetUnreachable,
                    Some(&primary),
                    format!("{primary} cannot be reached: backups go to {stand_in} until it is back"),
                );
                agent.notify(event.with_detail(why));
                return (Ended::Done(outcome), index);
            }
            Ended::Failed(e) if e.is_retryable() => set_unreachable(agent, index, &super::scrub(&e)),
            other => return (other, index),
        }
    }
    (on_primary, 0)
}

async fn run_on(
    agent: &Arc<Agent>,
    key: &arka_proto::AgentKey,
    source: &Source,
    target: usize,
) -> Ended<BackupOutcome> {
    let job = Arc::new(jobs::Backup { agent: agent.clone(), key: key.clone(), source: source.clone(), target });
    agent.jobs.run(&job).await
}

fn set_unreachable(agent: &Agent, index: usize, why: &str) {
    agent.board.update(|st| {
        if let Some(t) = st.target_mut(&agent.cfg.targets[index].name) {
            (t.reachable, t.last_error) = (false, Some(why.to_string()));
        }
    });
}

/// Records on the primary's card that target `index` holds backups it lacks, since when.
fn note_catch_up(agent: &Agent, index: usize, started_ns: i64) {
    let from = agent.cfg.targets[index].name.clone();
    agent.board.update(|st| {
        let Some(primary) = st.target_mut(&agent.cfg.targets[0].name) else { return };
        match primary.catch_up.iter_mut().find(|c| c.from == from) {
            Some(c) => c.since_ns = c.since_ns.min(started_ns),
            None => primary.catch_up.push(CatchUp { from, since_ns: started_ns }),
        }
    });
}

/// Whether the primary still lacks backups that went elsewhere (prune waits for them).
pub(super) fn catch_up_pending(agent: &Agent) -> bool {
    let st = agent.board.snapshot();
    st.targets.first().is_some_and(|t| !t.catch_up.is_empty())
}

/// After the primary was copied to target `index` (so it is reachable again): copies back
/// to the primary what that target took while the primary was down, then clears the note.
/// The sources' newest snapshots on the primary become those of the target.
pub(super) async fn catch_up(agent: &Agent, session: &Session, index: usize, to: &crate::store::Store) -> Result<()> {
    let target = &agent.cfg.targets[index].name;
    let board = agent.board.snapshot();
    let Some(pending) = board.targets.first().and_then(|p| p.catch_up.iter().find(|c| &c.from == target)) else {
        return Ok(());
    };
    let since = pending.since_ns.saturating_sub(CLOCK_MARGIN_NS);
    let report = crate::engine::sync::sync_since(to, &session.repo().store, &Default::default(), Some(since)).await?;
    tracing::info!(
        "copied {} snapshots ({} bytes) back from {target} to the primary, which could not be reached when they were made",
        report.snapshots_copied,
        report.bytes_copied
    );
    let primary = agent.cfg.targets[0].name.clone();
    agent.board.update(|st| {
        for s in &mut st.sources {
            if let Some(t) = s.copies.iter().find(|c| &c.target == target).map(|c| c.newest_ns) {
                s.copied_to(&primary, t);
            }
        }
        if let Some(p) = st.target_mut(&primary) {
            p.catch_up.retain(|c| &c.from != target);
        }
    });
    Ok(())
}
