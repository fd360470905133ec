//! Opening a repository's config, and falling back to its copies under `configs/` when
//! `config` is missing or damaged (FORMAT.md §5.1; SECURITY.md says why a copy is trusted
//! only as far as these rules go).
//!
//! Copies are write-once like every object, but an append-only token can plant a forged
//! one: the recipients are public, so anyone can seal an agent key of their own to them.
//! With the agent key a copy must authenticate under that key, which no forger can do.
//! With a recovery identity alone, a copy is chosen by what else the repository holds:
//! the real `config` if its MAC checks under the copy's key, else the one key among the
//! copies, else the key under which the repository's own snapshots and index open; when
//! still ambiguous, opening is refused with the candidates named. Copies that authenticate
//! under the same key but differ come from `arka key` (each change bumps the config's
//! generation: the newest is used) or from a holder of that key: of one generation, the
//! oldest stored (the store's clock, not the writer's) is used, and the others named in a
//! warning.

use bytes::Bytes;

use arka_proto::{AgentKey, ObjectId, RecoveryIdentities, RepoConfig};

use crate::error::{Error, Result};
use crate::repo::{check_object_id, Repository};
use crate::store::{ObjectKind, Store, CONFIG_KEY};

/// Snapshots and index segments tried per kind when telling copies apart: more than one,
/// so that a junk object or two beside the real ones does not decide.
const EVIDENCE_TRIES: usize = 4;

/// Where the repository's config was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// `config` itself.
    Config,
    /// A copy, because `config` is missing or damaged (`why` says which).
    Copy { key: String, why: String },
}

/// A config that authenticated, its exact bytes, and the agent key it authenticated under.
pub struct OpenedConfig {
    pub config: RepoConfig,
    pub bytes: Bytes,
    pub key: AgentKey,
    pub origin: ConfigOrigin,
}

impl OpenedConfig {
    fn from_copy(config: RepoConfig, bytes: Bytes, key: AgentKey, copy: String, why: String) -> Self {
        // A removed holder opens an older copy: nothing to repair (`Repository` says more).
        if !why.contains(NOT_SEALED_TO_IDENTITY) {
            tracing::warn!(
                "{why}; opened the repository from its copy {copy}; run `arka repair config` to write it back"
            );
        }
        Self { config, bytes, key, origin: ConfigOrigin::Copy { key: copy, why } }
    }
}

const NOT_SEALED_TO_IDENTITY: &str = "agent key is not sealed to this identity";

/// Why `config` could not be used, for the warning: "config is missing" or "config is
/// damaged (…)".
fn why(first: &Error) -> String {
    match first {
        Error::NotARepository(_) => format!("{CONFIG_KEY} is missing"),
        Error::Refused(why) => why.clone(),
        Error::Format(arka_proto::Error::NoMatchingIdentity) => format!("{CONFIG_KEY}'s {NOT_SEALED_TO_IDENTITY}"),
        e => format!("{CONFIG_KEY} is damaged ({e})"),
    }
}

/// Opens the config with the agent key: `config` if it authenticates, else a copy that does.
pub async fn open_with_key(store: &Store, key: AgentKey) -> Result<OpenedConfig> {
    let main = store.get_opt(CONFIG_KEY).await?;
    let main_config = main.as_ref().map(|bytes| decode_with_key(store, bytes, &key));
    let copies = copies(store).await?;
    let mut found = Vec::new();
    for (copy, bytes) in &copies {
        if let Ok(config) = RepoConfig::decode(bytes, &key) {
            found.push((copy.clone(), bytes.clone(), config));
        }
    }
    let first = match (main.clone(), main_config) {
        (Some(bytes), Some(Ok(config))) => {
            // A copy of a later generation under the same key: an `arka key` change was
            // interrupted before `config` was replaced, or `config` was put back to an older
            // one. The newer keys win, so no backup is sealed to a removed holder's reader.
            if !found.iter().any(|(_, _, c)| c.generation > config.generation) {
                return Ok(OpenedConfig { config, bytes, key, origin: ConfigOrigin::Config });
            }
            Error::Refused(format!(
                "{CONFIG_KEY} is of an older key generation ({}) than its copies",
                config.generation
            ))
        }
        (Some(_), Some(Err(e))) => e,
        _ => Error::NotARepository(store.display.clone()),
    };
    let newest_own = found.iter().map(|(_, _, c)| c.generation).max();
    if let Some(e) = retired(&key, main.as_deref(), &copies, newest_own) {
        return Err(e);
    }
    if found.is_empty() {
        // No copy opens either: the key is wrong, or there is nothing to open.
        return Err(first);
    }
    // The newest generation (`arka key` bumps it); of equals, the oldest stored.
    let newest = found.iter().map(|(_, _, c)| c.generation).max().expect("not empty");
    let at = found.iter().position(|(_, _, c)| c.generation == newest).expect("the max is there");
    let (copy, bytes, config) = found.remove(at);
    warn_ignored(&copy, found.iter().filter(|(_, _, c)| c.generation == newest).map(|(other, _, _)| other.as_str()));
    Ok(OpenedConfig::from_copy(config, bytes, key, copy, why(&first)))
}

/// Several copies authenticate under one key yet differ: all but one were written by a
/// holder of the agent key (a swapped recipient list, say). The oldest, by the store's
/// clock, which no agent sets, is the one `init` or the agent wrote.
fn warn_ignored<'a>(chosen: &str, others: impl Iterator<Item = &'a str>) {
    let others: Vec<&str> = others.collect();
    if !others.is_empty() {
        tracing::warn!(
            "the config's copies disagree: using {chosen}, the oldest stored; ignoring {}, stored later \
             (written by a holder of the agent key?); look into it before running `arka repair config`",
            others.join(", ")
        );
    }
}

/// The error for an agent key that `arka key rotate-agent` retired, if `config` (or, when
/// it is missing, a copy newer than every config this key opens) names it as retired. Read
/// without authentication, which only the new key could give: this is a message for the
/// agent not yet given its new key file, not a defence (the new key's readers refuse what
/// the old key writes, `repo::retired`).
fn retired(key: &AgentKey, main: Option<&[u8]>, copies: &[(String, Bytes)], newest_own: Option<u32>) -> Option<Error> {
    let id = key.id();
    let names = |bytes: &[u8]| {
        let (config, _, _) = RepoConfig::decode_unauthenticated(bytes).ok()?;
        let newer = newest_own.is_none_or(|own| config.generation > own);
        config.retired_at(&id).filter(|_| newer)
    };
    let at = match main {
        Some(bytes) => names(bytes),
        None => copies.iter().find_map(|(_, bytes)| names(bytes)),
    }?;
    Some(Error::Key(format!(
        "this agent key ({id}) was retired by `arka key rotate-agent` on {}; use the new key file (agent.toml \
         `agent_key`) and restart the service",
        crate::repo::retired::day(at)
    )))
}

fn decode_with_key(store: &Store, bytes: &[u8], key: &AgentKey) -> Result<RepoConfig> {
    RepoConfig::decode(bytes, key).map_err(|e| match e {
        arka_proto::Error::Authentication { .. } => Error::Key(format!(
            "the agent key does not open {}: it belongs to another repository, or the config object was altered",
            store.display
        )),
        other => other.into(),
    })
}

/// Unseals the agent key a config carries and authenticates the config under it.
fn unseal(bytes: &[u8], identities: &RecoveryIdentities) -> Result<(RepoConfig, AgentKey)> {
    let (unauth, _, _) = RepoConfig::decode_unauthenticated(bytes)?;
    let raw = zeroize::Zeroizing::new(identities.open(&unauth.sealed_agent_key)?);
    let key = AgentKey::from_raw(&raw)?;
    let config = RepoConfig::decode(bytes, &key)?;
    Ok((config, key))
}

/// A copy that opened with the identity.
struct Candidate {
    copy: String,
    bytes: Bytes,
    config: RepoConfig,
    key: AgentKey,
}

impl Candidate {
    fn same_key(&self, other: &Candidate) -> bool {
        zeroize::Zeroizing::new(self.key.to_raw()) == zeroize::Zeroizing::new(other.key.to_raw())
    }
}

/// Opens the config with a recovery identity: the agent key is unsealed from `config`, or
/// from a copy chosen as the module documentation says.
pub async fn open_with_identity(store: &Store, identities: &RecoveryIdentities) -> Result<OpenedConfig> {
    let main = store.get_opt(CONFIG_KEY).await?;
    let mut candidates = Vec::new();
    for (copy, bytes) in copies(store).await? {
        if let Ok((config, key)) = unseal(&bytes, identities) {
            candidates.push(Candidate { copy, bytes, config, key });
        }
    }
    let first = match &main {
        Some(bytes) => match unseal(bytes, identities) {
            // As with the agent key: a copy of a later generation under the same key wins.
            Ok((config, key))
                if !candidates.iter().any(|c| c.config.generation > config.generation && c.key.id() == key.id()) =>
            {
                return Ok(OpenedConfig { config, bytes: bytes.clone(), key, origin: ConfigOrigin::Config })
            }
            Ok((config, _)) => Error::Refused(format!(
                "{CONFIG_KEY} is of an older key generation ({}) than its copies",
                config.generation
            )),
            Err(e) => e,
        },
        None => Error::NotARepository(store.display.clone()),
    };
    if candidates.is_empty() {
        // A wrong identity opens no copy either (copies carry the same recipients).
        return Err(first);
    }
    let chosen = choose(store, main.as_deref(), candidates).await?;
    Ok(OpenedConfig::from_copy(chosen.config, chosen.bytes, chosen.key, chosen.copy, why(&first)))
}

async fn choose(store: &Store, main: Option<&[u8]>, mut candidates: Vec<Candidate>) -> Result<Candidate> {
    // The real config, where its MAC still checks, names the key.
    if let Some(main) = main {
        if let Some(i) = candidates.iter().position(|c| RepoConfig::decode(main, &c.key).is_ok()) {
            return Ok(candidates.swap_remove(i));
        }
    }
    drop_superseded(&mut candidates);
    if candidates.iter().all(|c| c.same_key(&candidates[0])) {
        // The newest generation (`arka key` bumps it); of equals, the oldest stored.
        let newest = candidates.iter().map(|c| c.config.generation).max().expect("not empty");
        let chosen = candidates.remove(candidates.iter().position(|c| c.config.generation == newest).expect("max"));
        warn_ignored(
            &chosen.copy,
            candidates.iter().filter(|c| c.config.generation == newest).map(|c| c.copy.as_str()),
        );
        return Ok(chosen);
    }
    // The copies disagree: keep those under which the repository's own objects open.
    let mut supported = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if opens_objects(store, c).await? {
            supported.push(i);
        }
    }
    let names = || candidates.iter().map(|c| c.copy.as_str()).collect::<Vec<_>>().join(", ");
    match supported.first() {
        Some(&first) if supported.iter().all(|&i| candidates[i].same_key(&candidates[first])) => {
            tracing::warn!(
                "the config's copies disagree ({}); using {}, the oldest under whose key the repository's \
                 snapshots or index open",
                names(),
                candidates[first].copy
            );
            Ok(candidates.remove(first))
        }
        _ => Err(Error::Refused(format!(
            "{CONFIG_KEY} is missing or damaged and its copies disagree ({}): all but one were planted, \
             and the repository's snapshots and index do not tell which; open it with its agent key \
             (--agent-key), which only the real copy matches",
            names()
        ))),
    }
}

/// After `arka key rotate-agent`, copies under the old key and the new one are both
/// there. A key that carries another candidate's metadata key as retired supersedes it:
/// only a holder of the old key could have made it. Those superseded are dropped.
fn drop_superseded(candidates: &mut Vec<Candidate>) {
    let superseded: Vec<bool> =
        candidates.iter().map(|c| candidates.iter().any(|d| d.key.supersedes(&c.key))).collect();
    let mut it = superseded.into_iter();
    candidates.retain(|_| !it.next().expect("one flag per candidate"));
}

/// Whether a few of the repository's snapshots or index segments authenticate under the
/// candidate's key. A store failure is an error, not a "no".
async fn opens_objects(store: &Store, c: &Candidate) -> Result<bool> {
    let repo = Repository::from_parts(
        store.clone(),
        OpenedConfig {
            config: c.config.clone(),
            bytes: c.bytes.clone(),
            key: c.key.clone(),
            origin: ConfigOrigin::Copy { key: c.copy.clone(), why: String::new() },
        },
        None,
    )?;
    for (id, _) in store.list(ObjectKind::Snapshot).await?.into_iter().take(EVIDENCE_TRIES) {
        match repo.load_snapshot(id).await {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == crate::error::ErrorKind::Damaged => {}
            Err(e) => return Err(e),
        }
    }
    for (id, _) in store.list(ObjectKind::Index).await?.into_iter().take(EVIDENCE_TRIES) {
        match repo.load_segment(id).await {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == crate::error::ErrorKind::Damaged => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Every copy under `configs/` whose bytes match its name, with its key, oldest stored
/// first; a copy that is damaged is skipped with a warning.
async fn copies(store: &Store) -> Result<Vec<(String, Bytes)>> {
    let mut listed = store.list_detailed(ObjectKind::ConfigCopy).await?;
    listed.sort_by_key(|l| (l.stored_at_ns, l.id));
    let mut out = Vec::new();
    for id in listed.into_iter().map(|l| l.id) {
        let key = ObjectKind::ConfigCopy.key(&id);
        let Some(bytes) = store.get_opt(&key).await? else { continue };
        match check_object_id(&key, &id, &bytes) {
            Ok(()) => out.push((key, bytes)),
            Err(e) => tracing::warn!("skipping {e}"),
        }
    }
    Ok(out)
}

/// The key of the copy of `bytes`.
pub fn copy_key(bytes: &[u8]) -> String {
    ObjectKind::ConfigCopy.key(&ObjectId::of(bytes))
}

#[cfg(test)]
mod tests;
