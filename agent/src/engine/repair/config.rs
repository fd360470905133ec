//! `arka repair config`: writes `config` back from the copy the repository was opened
//! with when it is missing or damaged, and writes the copy from a good `config` when the
//! copy is missing (FORMAT.md §5.1).
//!
//! Order: the copy first, then `config`, so that at every moment at least one good
//! object holds the config. Replacing a damaged `config` deletes it first (objects are
//! never overwritten), which needs a token that may delete.

use serde::Serialize;

use arka_proto::RepoConfig;

use crate::error::{Error, ErrorKind, Result};
use crate::repo::config::copy_key;
use crate::repo::Repository;
use crate::store::{ObjectKind, CONFIG_KEY};

/// What `config` was found to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum ConfigState {
    Intact,
    Missing,
    /// Present but not a config this repository's key authenticates; why.
    Damaged(String),
}

/// What was found and what was (or, in a dry run, would be) written.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigRepair {
    pub config: ConfigState,
    /// The key of the config's copy (`configs/<hash>`).
    pub copy: String,
    pub copy_present: bool,
    /// Other objects under `configs/`: a repository has one copy, so these are junk or
    /// were planted (FORMAT.md §5.1). Never used, never deleted: left for a person to look at.
    pub other_copies: Vec<String>,
    pub dry_run: bool,
    pub config_written: bool,
    pub copy_written: bool,
}

impl ConfigRepair {
    /// Whether anything needs writing.
    pub fn needed(&self) -> bool {
        self.config != ConfigState::Intact || !self.copy_present
    }

    /// One line for people and the audit record's detail (names objects, never secrets).
    pub fn describe(&self) -> String {
        let mut done = Vec::new();
        let (would, wrote) = if self.dry_run { ("would write", "would rewrite") } else { ("wrote", "rewrote") };
        if self.copy_written || (self.dry_run && !self.copy_present) {
            done.push(format!("{would} the missing copy {}", self.copy));
        }
        match &self.config {
            ConfigState::Intact => {}
            ConfigState::Missing => done.push(format!("{would} the missing {CONFIG_KEY} from its copy {}", self.copy)),
            ConfigState::Damaged(_) => {
                done.push(format!("{wrote} the damaged {CONFIG_KEY} from its copy {}", self.copy))
            }
        }
        if done.is_empty() {
            done.push(format!("nothing to repair: {CONFIG_KEY} and its copy {} are intact", self.copy));
        }
        format!("config: {}", done.join("; "))
    }
}

/// Finds what is wrong with `config` and its copy and, unless `dry_run`, repairs it.
pub async fn repair(repo: &Repository, dry_run: bool) -> Result<ConfigRepair> {
    let good = repo.config_bytes().clone();
    let copy = copy_key(&good);
    let config = match repo.store.get_opt(CONFIG_KEY).await? {
        None => ConfigState::Missing,
        Some(bytes) if bytes == good => ConfigState::Intact,
        Some(bytes) => match RepoConfig::decode(&bytes, &repo.key) {
            Ok(c) if c.generation >= repo.config.generation => ConfigState::Intact,
            Ok(c) => ConfigState::Damaged(format!(
                "it is of key generation {}, its copy of {}: an `arka key` change did not finish",
                c.generation, repo.config.generation
            )),
            Err(e) => ConfigState::Damaged(e.to_string()),
        },
    };
    let (ours, other_copies): (Vec<String>, Vec<String>) = repo
        .store
        .list(ObjectKind::ConfigCopy)
        .await?
        .into_iter()
        .map(|(id, _)| ObjectKind::ConfigCopy.key(&id))
        .partition(|key| *key == copy);
    let mut report = ConfigRepair {
        config,
        copy,
        copy_present: !ours.is_empty(),
        other_copies,
        dry_run,
        config_written: false,
        copy_written: false,
    };
    if dry_run || !report.needed() {
        return Ok(report);
    }
    if !report.copy_present {
        report.copy_written = repo.store.put_new(&report.copy, good.clone()).await?;
    }
    match report.config {
        ConfigState::Intact => {}
        ConfigState::Missing => write_config(repo, &good).await?,
        ConfigState::Damaged(_) => {
            repo.store.delete(CONFIG_KEY).await.map_err(|e| match e.kind() {
                ErrorKind::Key => Error::Key(format!(
                    "{CONFIG_KEY} is damaged, but this token may not delete; run `arka repair config` with a \
                     maintain token on the NAS (until then the repository opens from its copy {})",
                    report.copy
                )),
                _ => e,
            })?;
            write_config(repo, &good).await?;
        }
    }
    report.config_written = report.config != ConfigState::Intact;
    Ok(report)
}

/// Replaces `config` with `new`, whose copy is already stored (`arka key`): objects are
/// never overwritten, so the old one is deleted first, which needs a token that may delete.
pub(crate) async fn replace_config(repo: &Repository, new: &bytes::Bytes) -> Result<()> {
    if repo.store.get_opt(CONFIG_KEY).await?.is_some() {
        repo.store.delete(CONFIG_KEY).await.map_err(|e| match e.kind() {
            ErrorKind::Key => Error::Key(format!(
                "changing keys replaces {CONFIG_KEY}, and this token may not delete: run `arka key` with \
                 credentials that may (a maintain or admin token on arka-server); the new config's copy {} \
                 is stored, so readers already use it",
                copy_key(new)
            )),
            _ => e,
        })?;
    }
    write_config(repo, new).await
}

/// Writes `config` and reads it back: a store that kept other bytes is reported.
async fn write_config(repo: &Repository, good: &bytes::Bytes) -> Result<()> {
    repo.store.put_new(CONFIG_KEY, good.clone()).await?;
    match repo.store.get_opt(CONFIG_KEY).await? {
        Some(stored) if stored == *good => Ok(()),
        _ => Err(Error::Refused(format!(
            "{CONFIG_KEY} was written but the store does not return it as written (another writer, or \
             object lock keeping the damaged one?); the repository still opens from its copy"
        ))),
    }
}
