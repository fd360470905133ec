//! `arka key rewrap`: re-encrypt what a removed holder could still read (FORMAT.md §11.7).
//!
//! After `arka key remove`, packs written before the removal keep their data keys sealed
//! to older reader keys (or, in a repository made before keyrings, to the recipients
//! directly, with copies escrowed in the keyring). The removed holder saw those. Rewrap
//! finds every pack with a data key that the current reader key alone does not open,
//! re-encrypts its blobs under fresh data keys sealed to the current reader key
//! (`reseal`), and gets the old packs deleted; once none is left, it drops the older
//! reader keys and escrowed keys from the keyring and deletes the older keyrings
//! (`retire`).
//!
//! **How the old packs go.** Rewrap reuses prune's protocol rather than deleting itself
//! (FORMAT.md §11): the new packs are stored, then indexed, then a prune plan condemns the
//! old packs and supersedes the index segments that name them. From that moment readers
//! prefer the new copies (`Index::build` ranks copies in condemned packs last) and backups
//! deduplicate against them only. Prune's sweep deletes the old packs after the grace
//! period, sparing any a snapshot still needs. Deleting at once would be safe for
//! snapshots (every blob has an indexed copy first), but a restore or verify that loaded
//! the index earlier would fail mid-way; the grace period lets them finish. `--grace 0`
//! sweeps right away, for a repository nobody reads at the moment.
//!
//! A crash at any point leaves every snapshot restorable: before the plan, the old packs
//! are still authoritative and the new ones are duplicates (indexed) or orphans (not yet
//! indexed), both of which prune removes; after it, prune finishes the job. The keyring is
//! changed only once no pack sealed to an older key is listed, so `arka key list` never
//! says a removed holder can read nothing while their packs are still stored.
//!
//! Assumption: no backup that opened the repository before `arka key remove` is still
//! running when the old keys are dropped (it would seal its packs to the old reader key).
//! The last step lists the packs again and refuses if such a pack has appeared.

mod reseal;
mod retire;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use arka_proto::keyring::ReaderKey;
use arka_proto::{ObjectId, RecoveryIdentities};

use crate::engine::progress::Progress;
use crate::engine::prune;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::blob::sealed_data_keys;
use crate::repo::{Repository, LOAD_CONCURRENCY};
use crate::store::ObjectKind;

pub struct RewrapOptions {
    /// How long the old packs stay (readable by running restores) before prune deletes
    /// them; zero deletes them in this run.
    pub grace: Duration,
    /// Report what would be rewrapped; write and delete nothing.
    pub dry_run: bool,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RewrapReport {
    pub dry_run: bool,
    /// A repository made before keyrings got its first keyring (and reader key) first.
    pub first_keyring: bool,
    /// Packs with a data key the current reader key does not open, when the run started.
    pub packs_found: usize,
    pub bytes_found: u64,
    /// Of those, packs whose every blob now has a copy under the current reader key.
    pub packs_rewrapped: usize,
    pub bytes_rewrapped: u64,
    pub blobs_rewrapped: u64,
    pub packs_written: usize,
    pub bytes_written: u64,
    /// Damaged blobs found, recorded, and left where they are.
    pub blobs_damaged: usize,
    /// Old packs a prune plan condemns, waiting for its grace period.
    pub packs_waiting: usize,
    /// When the last of them may be deleted (Unix ns): `arka prune` after that.
    pub delete_after_ns: Option<i64>,
    pub packs_deleted: usize,
    /// Packs still sealed to an older key and not condemned: damaged, unreadable, or
    /// written during the run. Each with why (pack keys only, never file names).
    pub packs_left: Vec<(String, String)>,
    /// Objects the storage refused to delete.
    pub delete_refused: Vec<String>,
    /// The keyring keeps only the current reader key: no older reader key or escrowed key.
    pub old_keys_retired: bool,
    pub keyrings_deleted: usize,
}

impl RewrapReport {
    /// Nothing a removed holder saw opens any stored pack, and the old keys are gone.
    pub fn complete(&self) -> bool {
        self.old_keys_retired && self.delete_refused.is_empty()
    }

    /// Damage, a refusal or packs written meanwhile stopped it: exit 3.
    pub fn partly_done(&self) -> bool {
        !self.packs_left.is_empty() || !self.delete_refused.is_empty()
    }
}

/// Re-encrypts every pack sealed to an older key, then retires the old keys (see above).
pub async fn rewrap(repo: Arc<Repository>, opts: &RewrapOptions, progress: &Progress) -> Result<RewrapReport> {
    let mut report = RewrapReport { dry_run: opts.dry_run, ..Default::default() };
    let (repo, reader) = ready(repo, opts, progress, &mut report).await?;
    let condemned = condemned(&repo).await?;
    let scan = scan(&repo, reader.as_ref(), &condemned).await?;
    report.packs_found = scan.to_rewrap.len();
    report.bytes_found = scan.to_rewrap.iter().map(|(_, len)| len).sum();
    if opts.dry_run {
        report.packs_waiting = scan.waiting.len();
        report.packs_left = scan.unreadable;
        return Ok(report);
    }
    progress.set_totals(scan.to_rewrap.len() as u64, report.bytes_found);
    let done = reseal::reseal(&repo, scan.to_rewrap, progress).await?;
    (report.packs_rewrapped, report.bytes_rewrapped) = (done.done.len(), done.bytes_done);
    (report.blobs_rewrapped, report.packs_written, report.bytes_written) =
        (done.blobs, done.packs_written, done.bytes_written);
    report.blobs_damaged = done.damage.blobs.len();
    report.packs_left = done.left;
    if !done.damage.is_empty() {
        let known = repo.load_damage().await?;
        if let Err(e) = repo.record_damage("repair", &done.damage, &known).await {
            tracing::warn!("could not record the damaged blobs found while rewrapping: {e}");
        }
    }
    if !done.done.is_empty() {
        // The new packs are indexed (reseal): now the old ones may be condemned.
        let segments = repo.load_segments().await?;
        let grace_ns = opts.grace.as_nanos().min(i64::MAX as u128) as i64;
        prune::write_plan(&repo, &segments, done.done, Vec::new(), grace_ns).await?;
    }
    if done.cancelled {
        return Err(Error::Cancelled);
    }
    if opts.grace.is_zero() {
        let swept = prune::sweep_due(&repo).await?;
        report.packs_deleted = swept.packs_deleted;
        report.delete_refused = swept.delete_refused;
    }
    retire::retire(&repo, reader.as_ref(), &mut report).await?;
    Ok(report)
}

/// Checks the run may go ahead, and returns the repository to work on with its current
/// reader key: a repository made before keyrings first gets its keyring (committed, then
/// opened again so that new packs are sealed to its reader key). `None` only in a dry run
/// on such a repository: then every sealed data key counts as old.
async fn ready(
    repo: Arc<Repository>,
    opts: &RewrapOptions,
    progress: &Progress,
    report: &mut RewrapReport,
) -> Result<(Arc<Repository>, Option<ReaderKey>)> {
    // Asked first: a repository made before keyrings reads every pack header to start.
    if !opts.dry_run && !repo.store.may_delete().await? {
        return Err(Error::Key(
            "rewrap deletes the old packs and keyrings, and this token may not delete: run `arka key rewrap` with \
             credentials that may (a maintain or admin token on arka-server); nothing was changed"
                .into(),
        ));
    }
    let ring = super::starting_ring(&repo, progress).await?;
    if repo.config.keyring.is_some() {
        let reader = ring.current_reader().cloned();
        if reader.as_ref().map(ReaderKey::recipient) != repo.config.reader {
            return Err(Error::Refused(
                "the config's reader key is not the keyring's newest; nothing was changed. Run `arka verify` and \
                 `arka key list`"
                    .into(),
            ));
        }
        return Ok((repo, reader));
    }
    if opts.dry_run {
        return Ok((repo, None));
    }
    super::commit(&repo, ring).await?;
    report.first_keyring = true;
    let identities = RecoveryIdentities::parse(&repo.identities()?.to_file_text())?;
    let reopened = Arc::new(Repository::open_with_identity(repo.store.clone(), identities).await?);
    let rings =
        crate::repo::keyring::open_all(&reopened.store, reopened.identities()?, reopened.config.repo_id).await?;
    let reader = crate::repo::keyring::current(&rings, reopened.config.keyring.as_ref())?
        .and_then(|r| r.ring.current_reader().cloned());
    Ok((reopened, reader))
}

/// The packs pending prune plans condemn.
async fn condemned(repo: &Repository) -> Result<HashSet<ObjectId>> {
    Ok(repo.load_plans().await?.into_iter().flat_map(|(_, _, p)| p.packs).collect())
}

/// Listed packs by what their keys need.
#[derive(Default)]
struct Scan {
    /// Sealed (in part) to another key than the current reader key, and not condemned.
    to_rewrap: Vec<(ObjectId, u64)>,
    /// Sealed to another key, and condemned by a prune plan: deleted by its sweep.
    waiting: Vec<ObjectId>,
    /// Packs whose header cannot be read, and why.
    unreadable: Vec<(String, String)>,
}

/// Reads every listed pack's header (a small ranged read) and tries its sealed data keys
/// with the current reader key alone. A pack with no data key (only Refs and List blobs)
/// needs nothing; one that carries a key sealed to an older reader is rewritten even if no
/// blob uses that key, so that no stored pack holds a key the removed holder opens.
async fn scan(repo: &Repository, reader: Option<&ReaderKey>, condemned: &HashSet<ObjectId>) -> Result<Scan> {
    let reader = reader.map(ReaderKey::identity);
    let packs = repo.store.list(ObjectKind::Pack).await?;
    let mut headers = futures::stream::iter(packs)
        .map(|(id, len)| async move { (id, len, sealed_data_keys(&repo.store, &id, len).await) })
        .buffer_unordered(LOAD_CONCURRENCY);
    let mut scan = Scan::default();
    while let Some((id, len, keys)) = headers.next().await {
        let old = match keys {
            Ok(keys) => keys.iter().any(|k| reader.as_ref().is_none_or(|r| r.open(k).is_err())),
            Err(e) if e.kind() == ErrorKind::Damaged && !condemned.contains(&id) => {
                scan.unreadable.push((ObjectKind::Pack.key(&id), e.into_reason()));
                continue;
            }
            Err(e) if e.kind() == ErrorKind::Damaged => true,
            Err(e) => return Err(e),
        };
        match (old, condemned.contains(&id)) {
            (false, _) => {}
            (true, true) => scan.waiting.push(id),
            (true, false) => scan.to_rewrap.push((id, len)),
        }
    }
    scan.to_rewrap.sort();
    Ok(scan)
}

#[cfg(test)]
mod tests;
