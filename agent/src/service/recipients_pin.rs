//! The repository's keys as this agent accepted them: the recipient set pinned in
//! agent.toml (`recipients = ["age1…", …]`), and what the agent saw last (kept in
//! `state_dir/keys.state`), checked whenever the agent opens a target.
//!
//! Why: `config` names the reader key every pack's data key is sealed to and the
//! recipients who hold it, and it authenticates under the agent key. Whoever holds that key
//! and may overwrite `config` (ransomware with a writable target, a stolen key) can write
//! one that names a reader key of their own: every later backup would be readable by them
//! and by no one at the clinic. The rules below make that a refusal:
//!
//! - The key generation never goes back: an older config is a rollback (or a replica that
//!   has not received the change yet).
//! - The reader key changes only with `arka key remove`, which also changes the recipients:
//!   a new reader key is accepted only once agent.toml pins the new recipient set, i.e.
//!   after a person at the clinic looked at it. Without a pin, only a reader key that
//!   changes within one generation is refused.
//! - Recipients added (`arka key add`) with the reader key unchanged are harmless (only a
//!   holder could seal the keyring to them) and only warned about until the pin is updated.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use arka_proto::RepoConfig;

use crate::error::{Error, Result};

/// What the agent accepted last, per repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub repo_id: Option<arka_proto::RepoId>,
    pub generation: u32,
    pub reader: Option<String>,
    /// The pin it was accepted under (sorted), `None` when agent.toml pinned nothing.
    pub pinned: Option<Vec<String>>,
}

pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("keys.state")
}

/// The outcome of an accepted check: a warning for the log and `agent check`, if any.
pub type Warning = Option<String>;

/// Checks `config` against the pin and what was accepted before; on success returns what to
/// remember and a warning, if the recipients grew beyond the pin.
///
/// `accept_new_reader`: a person confirmed a reader-key change the pin cannot show (a holder
/// added and removed again leaves the recipients as pinned): `arka agent check
/// --accept-key-change`. A rollback or a change within one generation is refused anyway.
pub fn check(
    pinned: Option<&[String]>,
    config: &RepoConfig,
    before: &Accepted,
    accept_new_reader: bool,
) -> Result<(Accepted, Warning)> {
    let pinned: Option<BTreeSet<&str>> = pinned.map(|p| p.iter().map(|r| r.trim()).collect());
    let actual: BTreeSet<&str> = config.recipients.iter().map(|r| r.trim()).collect();
    let known = before.repo_id == Some(config.repo_id);
    if known && config.generation < before.generation {
        return Err(Error::Refused(format!(
            "this target's config is of key generation {}, older than the generation {} this agent already uses: \
             a target that has not received a key change yet (run `arka sync` to it), or a config put back by \
             someone holding the agent key; nothing is written to it",
            config.generation, before.generation
        )));
    }
    let reader_changed = known && config.reader != before.reader;
    if reader_changed && config.generation == before.generation {
        return Err(forged_reader("the key generation did not change"));
    }
    let pin_sorted = pinned.as_ref().map(|p| p.iter().map(|r| r.to_string()).collect::<Vec<_>>());
    let mut warning = None;
    if let Some(pin) = &pinned {
        if *pin != actual {
            let only_added = pin.is_subset(&actual) && !reader_changed;
            if !only_added {
                return Err(mismatch(pin, &actual, config));
            }
            warning = Some(format!(
                "the repository has recipients agent.toml does not pin ({}); if they were added with `arka key \
                 add`, {}",
                actual.difference(pin).copied().collect::<Vec<_>>().join(", "),
                instruction(config)
            ));
        } else if reader_changed && before.pinned == pin_sorted && !accept_new_reader {
            return Err(forged_reader("the recipients pinned in agent.toml did not change"));
        }
    }
    let accepted = Accepted {
        repo_id: Some(config.repo_id),
        generation: config.generation,
        reader: config.reader.clone(),
        pinned: pin_sorted,
    };
    Ok((accepted, warning))
}

fn instruction(config: &RepoConfig) -> String {
    let list: Vec<String> = config.recipients.iter().map(|r| format!("{r:?}")).collect();
    format!("put the new list in agent.toml and run `arka agent check`:\n    recipients = [{}]", list.join(", "))
}

fn mismatch(pin: &BTreeSet<&str>, actual: &BTreeSet<&str>, config: &RepoConfig) -> Error {
    let added: Vec<&str> = actual.difference(pin).copied().collect();
    let missing: Vec<&str> = pin.difference(actual).copied().collect();
    Error::Refused(format!(
        "the repository's recipients are not the ones pinned in agent.toml (`recipients`): {} not pinned ({}), \
         {} pinned but missing ({}). Someone holding the agent key may have replaced the repository's config so \
         that new backups are readable by another key; nothing is written until this is resolved. Compare with \
         the clinic's key records (`arka key list` with a holder's identity); if the change was made on purpose \
         (`arka key add` or `arka key remove`), {}",
        added.len(),
        added.join(", "),
        missing.len(),
        missing.join(", "),
        instruction(config)
    ))
}

fn forged_reader(why: &str) -> Error {
    Error::Refused(format!(
        "the repository's reader key (what new backups are sealed to) changed, but {why}: only `arka key remove` \
         changes it. Someone holding the agent key may have replaced the repository's config; nothing is \
         written until this is resolved. Check with `arka key list` and a holder's identity; if a holder was \
         removed on purpose, run `arka agent check --accept-key-change` on this machine"
    ))
}

/// The check against the state kept in `state_dir`, which is updated when it passes.
pub fn check_and_remember(
    pinned: Option<&[String]>,
    config: &RepoConfig,
    state_dir: &Path,
    accept_new_reader: bool,
) -> Result<Warning> {
    let path = state_path(state_dir);
    let before: Accepted = crate::repo::local_state::load(&path);
    let (now, warning) = check(pinned, config, &before, accept_new_reader)?;
    // A newer generation on one target does not make the others "rolled back" until they
    // are synced: remember the newest seen.
    if now != before && now.generation >= before.generation {
        if let Err(e) = crate::repo::local_state::save(&path, &now) {
            tracing::warn!("could not save {}: {e}", path.display());
        }
    }
    Ok(warning)
}

#[cfg(test)]
mod tests;
