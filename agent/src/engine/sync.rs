//! Copying a repository to another target (the NAS copy to S3, say). It needs no keys:
//! every object is named by the hash of its bytes, so each one is checked as it is copied.
//!
//! Both listings of the source are taken before anything is copied, snapshots and index
//! first, packs last: a backup writes packs before index before snapshot, so every
//! snapshot listed has its packs in the later pack listing, even with backups running
//! during the sync. Objects then go packs → index → snapshots → audit records, so the
//! destination never lists a snapshot whose data it lacks, nor an audit record of a
//! snapshot it lacks, whenever the sync is interrupted. The config's copies (`configs/`)
//! go first, right after `config`, so that the destination has them as soon as it has it.
//! Writes are create-only, so a rerun after a kill simply copies what is still missing.
//!
//! An object that is damaged at the source is left out and named, never spread to the
//! copy: the copy is then exactly as whole as the source, and once the source heals (its
//! next backup stores the data again, in new packs) the next sync carries that over too.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use futures::StreamExt;

use arka_proto::ObjectId;

use crate::engine::progress::Progress;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::check_object_id;
use crate::store::{ObjectKind, Store, CONFIG_KEY};
use arka_proto::RepoConfig;

const COPIES_IN_FLIGHT: usize = 4;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SyncReport {
    pub packs_copied: u64,
    pub index_copied: u64,
    pub snapshots_copied: u64,
    pub audit_copied: u64,
    /// Copies of the config (`configs/`).
    pub config_copies_copied: u64,
    pub keyrings_copied: u64,
    pub bytes_copied: u64,
    /// Objects the destination already had.
    pub already_present: u64,
    /// Objects damaged at the source, not copied: their key and why.
    pub damaged: Vec<(String, String)>,
}

pub async fn sync(from: &Store, to: &Store, progress: &Progress) -> Result<SyncReport> {
    sync_since(from, to, progress, None).await
}

/// Like [`sync`], but only objects `from` stored at or after `since_ns` (by the storage's
/// clock): what a target took while the primary could not be reached, copied back without
/// bringing back what the primary has pruned since.
pub async fn sync_since(from: &Store, to: &Store, progress: &Progress, since_ns: Option<i64>) -> Result<SyncReport> {
    let config = sync_config(from, to).await?;
    let listed = |kind| async move {
        let all = from.list_detailed(kind).await?;
        let recent = all.into_iter().filter(|o| since_ns.is_none_or(|t| o.stored_at_ns >= t));
        Ok::<_, Error>(recent.map(|o| (o.id, o.size)).collect::<Vec<_>>())
    };
    let keyrings = listed(ObjectKind::Keyring).await?;
    let config_copies = listed(ObjectKind::ConfigCopy).await?;
    let audit = listed(ObjectKind::Audit).await?;
    let snapshots = listed(ObjectKind::Snapshot).await?;
    let index = listed(ObjectKind::Index).await?;
    let packs = listed(ObjectKind::Pack).await?;
    let mut report = SyncReport::default();
    let kinds = [
        (ObjectKind::Keyring, keyrings),
        (ObjectKind::ConfigCopy, config_copies),
        (ObjectKind::Pack, packs),
        (ObjectKind::Index, index),
        (ObjectKind::Snapshot, snapshots),
        (ObjectKind::Audit, audit),
    ];
    for (kind, objects) in kinds {
        let present: HashSet<ObjectId> = to.list(kind).await?.into_iter().map(|(id, _)| id).collect();
        let missing: Vec<_> = objects.into_iter().filter(|(id, _)| !present.contains(id)).collect();
        report.already_present += present.len() as u64;
        let mut copies = futures::stream::iter(missing)
            .map(|(id, _)| async move { (kind.key(&id), copy_object(from, to, kind, id, progress).await) })
            .buffer_unordered(COPIES_IN_FLIGHT);
        let mut copied: Vec<u64> = Vec::new();
        while let Some((key, result)) = copies.next().await {
            match result {
                Ok(len) => copied.push(len),
                Err(e) if e.kind() == ErrorKind::Damaged => {
                    tracing::warn!("not copied, damaged at the source: {key}: {e}");
                    report.damaged.push((key, e.into_reason()));
                }
                Err(e) => return Err(e),
            }
        }
        let n = copied.len() as u64;
        report.bytes_copied += copied.iter().sum::<u64>();
        match kind {
            ObjectKind::Pack => report.packs_copied = n,
            ObjectKind::Index => report.index_copied = n,
            ObjectKind::Snapshot => report.snapshots_copied = n,
            ObjectKind::Audit => report.audit_copied = n,
            ObjectKind::ConfigCopy => report.config_copies_copied = n,
            ObjectKind::Keyring => report.keyrings_copied = n,
            // Not in the list above: prune plans and damage reports belong to the copy of
            // the repository they were made for.
            ObjectKind::PrunePlan | ObjectKind::Damage => {}
        }
    }
    if let ConfigSync::Newer(config) = config {
        replace_older_config(to, config).await;
    }
    Ok(report)
}

/// What `to` still lacks of `from`: snapshots, and bytes of packs.
pub async fn backlog(from: &Store, to: &Store) -> Result<(u64, u64)> {
    let mut missing = [0u64; 2];
    for (i, kind) in [ObjectKind::Snapshot, ObjectKind::Pack].into_iter().enumerate() {
        let there: HashSet<ObjectId> = to.list(kind).await?.into_iter().map(|(id, _)| id).collect();
        let lacking = from.list(kind).await?.into_iter().filter(|(id, _)| !there.contains(id));
        missing[i] = if i == 0 { lacking.count() as u64 } else { lacking.map(|(_, size)| size).sum() };
    }
    Ok((missing[0], missing[1]))
}

/// The destination must be empty or a copy of the same repository.
enum ConfigSync {
    Same,
    /// The source's config is of a later generation (`arka key` changed it): written over
    /// the target's once its keyrings and config copies are there.
    Newer(bytes::Bytes),
}

async fn sync_config(from: &Store, to: &Store) -> Result<ConfigSync> {
    let config = from.get_opt(CONFIG_KEY).await?.ok_or_else(|| Error::NotARepository(from.display.clone()))?;
    let existing = match to.get_opt(CONFIG_KEY).await? {
        None => {
            to.put_new(CONFIG_KEY, config).await?;
            return Ok(ConfigSync::Same);
        }
        Some(existing) if existing == config => return Ok(ConfigSync::Same),
        Some(existing) => existing,
    };
    let parse = |b: &[u8]| RepoConfig::decode_unauthenticated(b).ok().map(|(c, _, _)| (c.repo_id, c.generation));
    match (parse(&config), parse(&existing)) {
        (Some((ours, newer)), Some((theirs, older))) if ours == theirs && newer > older => {
            Ok(ConfigSync::Newer(config))
        }
        (Some((ours, _)), Some((theirs, _))) if ours == theirs => Ok(ConfigSync::Same),
        _ => Err(Error::Usage(format!(
            "{} holds a different repository; sync only copies a repository to an empty target or to its own copy",
            to.display
        ))),
    }
}

/// Replaces the target's older `config`. Readers of the target already use the newer copy
/// (its generation is higher), so a token that may not delete leaves only a warning.
async fn replace_older_config(to: &Store, config: bytes::Bytes) {
    let replaced = async {
        to.delete(CONFIG_KEY).await?;
        to.put_new(CONFIG_KEY, config).await
    };
    if let Err(e) = replaced.await {
        tracing::warn!(
            "{}: its config is older than the source's (keys were changed) and could not be replaced ({e}); \
             readers use the newer copy; run `arka repair config` there with a token that may delete",
            to.display
        );
    }
}

async fn copy_object(from: &Store, to: &Store, kind: ObjectKind, id: ObjectId, progress: &Progress) -> Result<u64> {
    let key = kind.key(&id);
    let bytes = from.get(&key).await?;
    // A damaged source object is reported, never spread to the copy.
    check_object_id(&key, &id, &bytes)?;
    let len = bytes.len() as u64;
    to.put_new(&key, bytes).await?;
    progress.uploaded.fetch_add(len, Ordering::Relaxed);
    progress.bytes.fetch_add(len, Ordering::Relaxed);
    Ok(len)
}
