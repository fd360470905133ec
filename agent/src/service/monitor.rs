//! Monitoring that survives restarts: the status report is saved to the state directory
//! whenever it changes, and an agent that starts takes over what its predecessor knew (last
//! success and failure per source and target, the day history, pending catch-ups). Without
//! it a restart made every card read "no backup yet", and an agent in a crash loop was never
//! late: its clock for "never backed up" started again at each start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arka_proto::status::{AgentStatus, SourceState};
use tokio_util::sync::CancellationToken;

use super::status::StatusBoard;

/// Saves are at most this frequent; a run changes the report a few times in a row.
const SAVE_DELAY: Duration = Duration::from_secs(1);

/// What a run that was going on when the agent stopped without a shutdown reads as.
pub const INTERRUPTED: &str =
    "the agent stopped during this backup (a crash or a power loss); it runs again after the restart";

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("status.state")
}

/// The report the previous agent saved, if any.
pub fn load(state_dir: &Path) -> Option<AgentStatus> {
    let saved: AgentStatus = crate::repo::local_state::load(&path(state_dir));
    (!saved.hostname.is_empty() || !saved.sources.is_empty()).then_some(saved)
}

/// Takes over into `fresh` (built from today's configuration) what `saved` knew about the
/// sources and targets that are still configured under the same names. A source that was
/// running when the agent stopped reads as failed: a crash must not look like a success.
pub fn carry_over(fresh: &mut AgentStatus, saved: AgentStatus) {
    for old in saved.sources {
        let Some(s) = fresh.source_mut(&old.name) else { continue };
        let (name, kind, schedule, rpo_secs) = (s.name.clone(), s.kind, s.schedule.clone(), s.rpo_secs);
        let was_running = old.state == SourceState::Running;
        *s = arka_proto::SourceStatus { name, kind, schedule, rpo_secs, next_run_ns: None, ..old };
        if was_running {
            s.failed(INTERRUPTED, 0);
        }
        if s.state == SourceState::Late {
            s.state = SourceState::Ok; // reassessed against the clock when read
        }
    }
    let configured: Vec<String> = fresh.targets.iter().map(|t| t.name.clone()).collect();
    for old in saved.targets {
        let Some(t) = fresh.target_mut(&old.name) else { continue };
        t.reachable = old.reachable;
        t.last_sync_ns = old.last_sync_ns;
        t.last_error = old.last_error;
        t.stored_bytes = old.stored_bytes;
        // A stand-in target no longer configured cannot be copied back from, and a pending
        // catch-up holds prune back: drop it.
        t.catch_up = old.catch_up.into_iter().filter(|c| configured.contains(&c.from)).collect();
        (t.backlog_snapshots, t.backlog_bytes) = (old.backlog_snapshots, old.backlog_bytes);
    }
    let m = &mut fresh.maintenance;
    let old = saved.maintenance;
    m.last_forget_ns = old.last_forget_ns;
    m.last_prune_ns = old.last_prune_ns;
    m.last_verify_ns = old.last_verify_ns;
    m.verify_damage = old.verify_damage;
    m.damage_note = old.damage_note;
    m.flagged_snapshots = old.flagged_snapshots;
    m.vanished_snapshots = old.vanished_snapshots;
    m.last_restore_ns = old.last_restore_ns;
}

/// Marks every source that has no record of when it began to be looked after as looked
/// after from `now_ns`.
pub fn begin_monitoring(status: &mut AgentStatus, now_ns: i64) {
    for s in &mut status.sources {
        s.monitored_since_ns.get_or_insert(now_ns);
    }
}

/// Saves the report after each change (at most once per [`SAVE_DELAY`]) until `stop`, and
/// once more at the end.
pub async fn keep_saved(board: Arc<StatusBoard>, state_dir: PathBuf, stop: CancellationToken) {
    let mut changes = board.subscribe();
    loop {
        let more = tokio::select! {
            r = changes.changed() => r.is_ok(),
            _ = stop.cancelled() => false,
        };
        if more {
            tokio::select! {
                _ = tokio::time::sleep(SAVE_DELAY) => {}
                _ = stop.cancelled() => {}
            }
        }
        let report = changes.borrow_and_update().clone();
        if let Err(e) = crate::repo::local_state::save(&path(&state_dir), &report) {
            tracing::warn!("could not save the status report (monitoring restarts empty after a restart): {e}");
        }
        if !more || stop.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arka_proto::status::{RunOutcome, SourceKind, SourceStatus, TargetRole, TargetStatus};

    fn configured() -> AgentStatus {
        let mut st = AgentStatus::new("1", "clinic", 1_000);
        st.sources.push(SourceStatus::new("db", SourceKind::Command, "every 1h", 3600));
        st.sources.push(SourceStatus::new("new", SourceKind::Files, "every 1h", 3600));
        st.targets.push(TargetStatus::new("nas", "/mnt/nas", TargetRole::Primary));
        st
    }

    #[test]
    fn a_restart_keeps_what_was_known_and_a_crash_mid_run_reads_as_failed() {
        let mut before = configured();
        begin_monitoring(&mut before, 500);
        let db = before.source_mut("db").unwrap();
        db.succeeded(700, RunOutcome { snapshot: "abcd".into(), ..RunOutcome::default() });
        db.copied_to("nas", 690);
        db.day_mut("2026-12-04").ok += 1;
        db.started(800);
        before.sources.retain(|s| s.name == "db");
        before.sources.push(SourceStatus::new("gone", SourceKind::Files, "every 1h", 3600));
        before.targets[0].reachable = false;
        before.targets[0].last_sync_ns = Some(700);
        let pending = |from: &str| arka_proto::status::CatchUp { from: from.into(), since_ns: 750 };
        before.targets[0].catch_up = vec![pending("nas"), pending("old-usb-disk")];

        let dir = tempfile::tempdir().unwrap();
        crate::repo::local_state::save(&path(dir.path()), &before).unwrap();
        let mut after = configured();
        carry_over(&mut after, load(dir.path()).unwrap());
        begin_monitoring(&mut after, 2_000);

        let db = after.source("db");
        assert_eq!(db.state, SourceState::Failed);
        assert_eq!(db.last_error.as_deref(), Some(INTERRUPTED));
        assert_eq!((db.last_success_ns, db.monitored_since_ns), (Some(700), Some(500)));
        assert_eq!(db.protected_up_to(), Some((690, vec!["nas"])));
        assert_eq!(db.days.len(), 1);
        assert_eq!(after.source("new").monitored_since_ns, Some(2_000), "a new source starts now");
        assert!(after.sources.iter().all(|s| s.name != "gone"), "a source no longer configured is dropped");
        assert!(!after.targets[0].reachable);
        assert_eq!(after.targets[0].last_sync_ns, Some(700));
        assert_eq!(after.targets[0].catch_up, vec![pending("nas")], "a target no longer configured is not waited for");
    }

    #[test]
    fn an_agent_that_never_succeeds_turns_late_across_restarts() {
        let hour = 3_600_000_000_000i64;
        let mut first = configured();
        begin_monitoring(&mut first, 0);
        let mut status = first;
        // Restarted every 10 minutes for two hours, crashing during each run.
        for restart in 1..=12 {
            let now = restart * hour / 6;
            status.source_mut("db").unwrap().started(now - 1);
            let mut fresh = configured();
            fresh.started_ns = now;
            carry_over(&mut fresh, status);
            begin_monitoring(&mut fresh, now);
            status = fresh;
        }
        status.reassess(2 * hour + 1);
        assert!(status.source("db").past_rpo(status.now_ns, status.started_ns));
        assert!(!status.problems().is_empty());
    }

    trait SourceByName {
        fn source(&self, name: &str) -> &SourceStatus;
    }

    impl SourceByName for AgentStatus {
        fn source(&self, name: &str) -> &SourceStatus {
            self.sources.iter().find(|s| s.name == name).unwrap()
        }
    }
}
