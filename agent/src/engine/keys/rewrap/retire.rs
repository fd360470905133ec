//! The last step of a rewrap: once no listed pack needs a key other than the current
//! reader key, a new keyring keeps only that key (no older reader key, no escrowed key, and
//! every removed holder marked as reading nothing), and the older keyrings, which hold the
//! old reader secrets sealed to removed holders too, are deleted.

use std::collections::HashMap;

use arka_proto::keyring::ReaderKey;

use super::{condemned, scan, RewrapReport};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::keyring;
use crate::repo::Repository;
use crate::store::ObjectKind;

/// Lists the packs again and, if none is sealed to an older key, retires the old keys.
/// Otherwise records what is left (and why) and what waits for prune.
pub(super) async fn retire(repo: &Repository, reader: Option<&ReaderKey>, report: &mut RewrapReport) -> Result<()> {
    let plans = repo.load_plans().await?;
    let again = scan(repo, reader, &condemned(repo).await?).await?;
    let why: HashMap<String, String> = std::mem::take(&mut report.packs_left).into_iter().collect();
    report.packs_left = again
        .to_rewrap
        .iter()
        .map(|(id, _)| {
            let key = ObjectKind::Pack.key(id);
            let reason = why.get(&key).cloned().unwrap_or_else(|| {
                "sealed to an older key and not rewrapped (written while rewrap ran?): run `arka key rewrap` again"
                    .into()
            });
            (key, reason)
        })
        .chain(again.unreadable)
        .collect();
    report.packs_waiting = again.waiting.len();
    report.delete_after_ns = plans
        .iter()
        .filter(|(_, _, p)| p.packs.iter().any(|id| again.waiting.contains(id)))
        .map(|(_, _, p)| p.delete_after_ns)
        .max();
    if !report.packs_left.is_empty() || report.packs_waiting > 0 || reader.is_none() {
        return Ok(());
    }
    let keep = retire_keys(repo).await?;
    report.old_keys_retired = true;
    for (id, _) in repo.store.list(ObjectKind::Keyring).await? {
        if id == keep {
            continue;
        }
        let key = ObjectKind::Keyring.key(&id);
        match repo.store.delete(&key).await {
            Ok(()) => report.keyrings_deleted += 1,
            Err(e) if e.kind() == ErrorKind::Key => report.delete_refused.push(key),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Commits a keyring with only the current reader key, unless the current one already is;
/// returns the ID of the keyring to keep.
async fn retire_keys(repo: &Repository) -> Result<arka_proto::ObjectId> {
    let rings = keyring::open_all(&repo.store, repo.identities()?, repo.config.repo_id).await?;
    let current = keyring::current(&rings, repo.config.keyring.as_ref())?
        .ok_or_else(|| Error::Internal("rewrap retires keys only in a repository with a keyring".into()))?;
    let mut ring = current.ring.clone();
    let clean =
        ring.readers.len() == 1 && ring.escrow.is_empty() && ring.removed.iter().all(|r| r.readable_through_epoch == 0);
    if clean {
        return Ok(current.id);
    }
    let older = ring.readers.len().saturating_sub(1);
    ring.readers.drain(..older);
    ring.escrow.clear();
    for r in &mut ring.removed {
        r.readable_through_epoch = 0;
    }
    Ok(super::super::commit(repo, ring).await?.keyring)
}
