//! Pushing the agent's status report to an arka-server target (`PUT /v1/agents/status`),
//! so the fleet dashboard on the NAS shows this agent: at start, after each backup or
//! maintenance run, and at least every [`PUSH_EVERY`].
//!
//! Best effort by construction: each target has its own task, a push has a short time
//! budget, and nothing waits for it. A failure shows in that target's `last_error` (unless
//! a replication error, which matters more, is already there) and clears on success.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Agent;
use crate::store::{Location, ServerStore};

/// The longest the server goes without hearing from a running agent.
pub const PUSH_EVERY: Duration = Duration::from_secs(60);
/// The prefix of push errors in a target's `last_error`.
const PREFIX: &str = "status push: ";

pub(super) async fn push_loop(agent: Arc<Agent>, index: usize, mut runs: watch::Receiver<u64>) {
    let target = agent.cfg.targets[index].clone();
    let Location::Server { base, repo } = &target.location else { return };
    let mut store: Option<ServerStore> = None;
    loop {
        let result = match &store {
            Some(s) => s.push_status(&agent.board.snapshot()).await,
            None => match ServerStore::new(base, repo, &target.server) {
                Ok(s) => {
                    let r = s.push_status(&agent.board.snapshot()).await;
                    store = Some(s);
                    r
                }
                Err(e) => Err(e.to_string()),
            },
        };
        if let Err(e) = &result {
            tracing::warn!("status push to {} failed: {e}", target.name);
        }
        agent.board.update(|st| {
            if let Some(t) = st.target_mut(&target.name) {
                let ours = t.last_error.as_deref().is_none_or(|e| e.starts_with(PREFIX));
                match &result {
                    Ok(()) if ours => t.last_error = None,
                    Err(e) if ours => t.last_error = Some(format!("{PREFIX}{e}")),
                    _ => {}
                }
            }
        });
        tokio::select! {
            _ = tokio::time::sleep(PUSH_EVERY) => {}
            r = runs.changed() => if r.is_err() { return },
            _ = agent.stop.cancelled() => return,
        }
    }
}
