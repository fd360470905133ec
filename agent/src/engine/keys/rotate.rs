//! `arka key rotate-agent`: a new agent key, for when the old one may have leaked (a
//! stolen clinic server, a key file in a backup of its own).
//!
//! The new key keeps the repository ID and the chunk key, so blob IDs and chunk boundaries
//! do not change and deduplication goes on across the rotation; it gets a fresh metadata
//! key, and carries the old one as retired so that what was written before still opens.
//! The new config is MAC'd under the new key alone: the old key no longer opens the
//! repository, and readers refuse metadata it seals after its retirement
//! (`repo::retired`). Written like every key change (`commit`): the config's copy, then
//! `config` replaced.

use arka_proto::config::RetiredAgentKey;
use arka_proto::{AgentKey, Recipients, RepoConfig};

use crate::engine::keys::commit::write_config;
use crate::error::{Error, Result};
use crate::repo::config::ConfigOrigin;
use crate::repo::Repository;

/// What a rotation did.
pub struct Rotated {
    pub old_id: String,
    pub new: AgentKey,
    pub config: RepoConfig,
    /// Unix seconds.
    pub retired: i64,
}

/// Rotates the agent key of `repo`, opened with a recovery identity. `save` stores the new
/// key (the key file) before the repository changes: once `config` is replaced, a key
/// that was never saved would leave the agents without one.
pub async fn rotate_agent(repo: &Repository, save: impl FnOnce(&AgentKey) -> Result<()>) -> Result<Rotated> {
    repo.identities()?;
    // From `config` itself: a copy may be older than a rotation already made.
    if let ConfigOrigin::Copy { why, .. } = repo.config_origin() {
        return Err(Error::Refused(format!(
            "the agent key is rotated from the repository's config, but {why}: run `arka repair config` first"
        )));
    }
    let new = repo.key.rotated()?;
    let old_id = repo.key.id();
    let retired = jiff::Timestamp::now().as_second();
    let mut retired_agent_keys = repo.config.retired_agent_keys.clone();
    retired_agent_keys.push(RetiredAgentKey { id: old_id.clone(), retired });
    let config = RepoConfig {
        generation: repo.config.generation + 1,
        sealed_agent_key: Recipients::parse(&repo.config.recipients)?.seal(&new.to_raw()),
        retired_agent_keys,
        ..repo.config.clone()
    };
    save(&new)?;
    if let Err(e) = write_config(repo, &config, &new).await {
        // The error keeps its kind (a token that may not delete is a key problem).
        tracing::error!(
            "the rotation stopped; the new key {} was saved and is kept: if `config` was replaced or is now \
             missing, the repository uses it (`arka key list` shows which agent key is current)",
            new.id()
        );
        return Err(e);
    }
    Ok(Rotated { old_id, new, config, retired })
}

#[cfg(test)]
mod tests;
