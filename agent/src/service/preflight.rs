//! Checks that need the targets, made by `arka agent check` and by the agent at start
//! after the config file itself is valid: forget and prune are scheduled only where the
//! credentials may delete. The config file cannot say what an arka-server token may do
//! (its role lives on the server), so the agent asks the server with a delete it must
//! refuse or ignore ([`Store::may_delete`]).

use crate::error::Result;
use crate::repo::Repository;
use crate::service::config::Config;
use crate::service::recipients_pin;
use crate::store::{Location, Store};

/// Why the scheduled forget/prune cannot work on the primary target, if the storage says
/// these credentials may not delete. `Ok(None)`: nothing deletes, the target is not an
/// arka-server, or the token may delete. An unreachable server is an error.
pub async fn deletion_refused(cfg: &Config) -> Result<Option<String>> {
    let m = &cfg.maintenance;
    let jobs: Vec<&str> = [("forget", m.forget.is_some()), ("prune", m.prune.is_some())]
        .into_iter()
        .filter_map(|(job, on)| on.then_some(job))
        .collect();
    let Some(target) = cfg.targets.first() else { return Ok(None) };
    if jobs.is_empty() || !matches!(target.location, Location::Server { .. }) {
        return Ok(None);
    }
    let store = Store::open_with(&target.url, false, &target.server, &target.limits)?;
    if store.may_delete().await? {
        return Ok(None);
    }
    Ok(Some(refused_message(&jobs.join(" and "), &target.name)))
}

/// Each target's keys against the pin in agent.toml and what the agent accepted last
/// (`recipients_pin`): what `arka agent check` reports after an `arka key` change.
/// `Ok(Some(warning))` passes with something to do. Remembers nothing unless `accept` (a
/// person confirmed a reader-key change: `--accept-key-change`).
pub async fn keys_checked(cfg: &Config, accept: bool) -> Vec<(String, Result<Option<String>>)> {
    let mut out = Vec::new();
    let key = match crate::repo::keys::load_agent_key(&cfg.agent_key) {
        Ok(key) => key,
        Err(e) => return vec![("agent_key".into(), Err(e))],
    };
    let before = crate::repo::local_state::load(&recipients_pin::state_path(&cfg.state_dir));
    for target in &cfg.targets {
        let checked = async {
            let store = Store::open_with(&target.url, false, &target.server, &target.limits)?;
            let repo = Repository::open_with_agent_key(store, key.clone()).await?;
            let pinned = cfg.recipients.as_deref();
            if accept {
                return recipients_pin::check_and_remember(pinned, &repo.config, &cfg.state_dir, true);
            }
            Ok(recipients_pin::check(pinned, &repo.config, &before, false)?.1)
        };
        out.push((target.name.clone(), checked.await));
    }
    out
}

fn refused_message(jobs: &str, target: &str) -> String {
    format!(
        "[maintenance] schedules {jobs}, which delete, but arka-server refuses deletions with the token of target \
         {target:?} (an append token). That token is right for a clinic server: ransomware that steals it cannot \
         delete backups. Remove {jobs} from [maintenance] here (keep verify), and schedule them on the NAS in a \
         maintenance-only agent.toml whose target uses a maintain token"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_says_what_to_change() {
        let m = super::refused_message("forget and prune", "nas");
        assert!(m.contains("\"nas\"") && m.contains("Remove forget and prune") && m.contains("maintain token"), "{m}");
    }
}
