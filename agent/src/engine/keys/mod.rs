//! `arka key`: who can read a repository, changed with a recovery identity (FORMAT.md
//! §3.6). Adding a holder seals the keyring to one more recipient; removing one starts a
//! new reader key that the removed holder never sees. Neither re-uploads data.

pub mod commit;
pub mod migrate;
pub mod rewrap;
pub mod rotate;

use serde::Serialize;

use arka_proto::keyring::{Holder, Keyring, ReaderKey, RemovedHolder};
use arka_proto::Recipients;

use crate::engine::progress::Progress;
use crate::error::{Error, Result};
use crate::repo::config::ConfigOrigin;
use crate::repo::keyring::{self, OpenedKeyring};
use crate::repo::Repository;

pub use commit::{commit, Committed};

/// A holder as `arka key list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct HolderView {
    /// What `arka key remove` takes: the recipient's first 16 characters.
    pub id: String,
    pub recipient: String,
    pub label: String,
    /// Unix seconds.
    pub added: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RemovedView {
    #[serde(flatten)]
    pub holder: HolderView,
    pub removed: i64,
    /// Whether data written before the removal is still sealed to reader keys the holder
    /// saw: true until `arka key rewrap`.
    pub can_read_older_data: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentKeyView {
    pub id: String,
    /// "current", or "retired" by `arka key rotate-agent`.
    pub state: String,
    /// When it was retired (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired: Option<i64>,
}

/// The current agent key, then the retired ones, newest first.
fn agent_keys(repo: &Repository) -> Vec<AgentKeyView> {
    let current = AgentKeyView { id: repo.key.id(), state: "current".into(), retired: None };
    let retired = repo.config.retired_agent_keys.iter().rev().map(|r| AgentKeyView {
        id: r.id.clone(),
        state: "retired".into(),
        retired: Some(r.retired),
    });
    std::iter::once(current).chain(retired).collect()
}

/// What `arka key list` prints.
#[derive(Clone, Debug, Serialize)]
pub struct KeyListing {
    pub repo_id: String,
    pub generation: u32,
    /// The current reader key's epoch; 0 in a repository made before keyrings.
    pub epoch: u32,
    pub holders: Vec<HolderView>,
    pub removed: Vec<RemovedView>,
    pub agent_keys: Vec<AgentKeyView>,
}

/// The short ID of a recipient.
pub fn holder_id(recipient: &str) -> String {
    recipient.chars().take(16).collect()
}

fn view(h: &Holder) -> HolderView {
    HolderView { id: holder_id(&h.recipient), recipient: h.recipient.clone(), label: h.label.clone(), added: h.added }
}

pub async fn list(repo: &Repository) -> Result<KeyListing> {
    let rings = keyring::open_all(&repo.store, repo.identities()?, repo.config.repo_id).await?;
    let current = keyring::current(&rings, repo.config.keyring.as_ref())?;
    let (holders, removed, epoch) = match current {
        Some(OpenedKeyring { ring, .. }) => (
            ring.holders.iter().map(view).collect(),
            ring.removed
                .iter()
                .map(|r| RemovedView {
                    holder: view(&r.holder),
                    removed: r.removed,
                    can_read_older_data: r.readable_through_epoch > 0,
                })
                .collect(),
            ring.current_reader().map_or(0, |r| r.epoch),
        ),
        None => {
            let created = repo.config.created;
            let holders = repo
                .config
                .recipients
                .iter()
                .map(|r| view(&Holder { recipient: r.clone(), label: String::new(), added: created }));
            (holders.collect(), Vec::new(), 0)
        }
    };
    Ok(KeyListing {
        repo_id: repo.config.repo_id.to_hex(),
        generation: repo.config.generation,
        epoch,
        holders,
        removed,
        agent_keys: agent_keys(repo),
    })
}

/// The keyring changes start from: the current one, or, in a repository made before
/// keyrings, the first one (which escrows every pack's data key).
pub(crate) async fn starting_ring(repo: &Repository, progress: &Progress) -> Result<Keyring> {
    // A change starts from `config` itself: a copy may be an older generation, which a
    // removed holder can still open.
    if let ConfigOrigin::Copy { why, .. } = repo.config_origin() {
        return Err(Error::Refused(format!(
            "keys are changed from the repository's config, but {why} for this identity: it is not one of \
             the current holders, or the config needs `arka repair config` first"
        )));
    }
    let rings = keyring::open_all(&repo.store, repo.identities()?, repo.config.repo_id).await?;
    match keyring::current(&rings, repo.config.keyring.as_ref())? {
        Some(current) => Ok(current.ring.clone()),
        None => migrate::first_keyring(repo, progress).await,
    }
}

/// Adds `recipient` as a holder. The data stays where it is: the new holder opens the
/// keyring, and through it every reader key.
pub async fn add(repo: &Repository, recipient: &str, label: &str, progress: &Progress) -> Result<Committed> {
    let recipient = Recipients::parse(&[recipient.trim()])?.to_strings().remove(0);
    let mut ring = starting_ring(repo, progress).await?;
    if ring.holders.iter().any(|h| h.recipient == recipient) {
        return Err(Error::Usage(format!("{} already holds this repository", holder_id(&recipient))));
    }
    // A removed holder added back holds everything again.
    ring.removed.retain(|r| r.holder.recipient != recipient);
    ring.holders.push(Holder { recipient, label: label.to_string(), added: jiff::Timestamp::now().as_second() });
    commit(repo, ring).await
}

/// Removes the holder `id` (a recipient, a prefix of at least 12 characters of one, or a
/// label). A new reader key starts: data written from now on is sealed to it, which the
/// removed holder never sees.
pub async fn remove(repo: &Repository, id: &str, progress: &Progress) -> Result<(Committed, RemovedHolder)> {
    let mut ring = starting_ring(repo, progress).await?;
    let at = find_holder(&ring.holders, id)?;
    if ring.holders.len() == 1 {
        return Err(Error::Usage(
            "this is the repository's only holder: add the new one first (`arka key add`), then remove this one".into(),
        ));
    }
    let now = jiff::Timestamp::now().as_second();
    let last_epoch = ring.current_reader().map_or(0, |r| r.epoch);
    let removed = RemovedHolder { holder: ring.holders.remove(at), removed: now, readable_through_epoch: last_epoch };
    ring.removed.push(removed.clone());
    ring.readers.push(ReaderKey::generate(last_epoch + 1, now));
    Ok((commit(repo, ring).await?, removed))
}

fn find_holder(holders: &[Holder], id: &str) -> Result<usize> {
    let id = id.trim();
    let matches: Vec<usize> = holders
        .iter()
        .enumerate()
        .filter(|(_, h)| h.recipient == id || (id.len() >= 12 && h.recipient.starts_with(id)) || h.label == id)
        .map(|(i, _)| i)
        .collect();
    match matches[..] {
        [one] => Ok(one),
        [] => Err(Error::Usage(format!(
            "no holder matches {id:?}: give a recipient (age1…), its first 12 characters or more, or a label \
             (`arka key list` shows them)"
        ))),
        _ => Err(Error::Usage(format!("{id:?} matches {} holders: give more of the recipient", matches.len()))),
    }
}

#[cfg(test)]
pub(crate) mod tests;
