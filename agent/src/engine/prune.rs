//! Prune: free the space of data no snapshot references, with the agent key alone.
//!
//! Two phases, so that a backup running at the same time (on this machine or another)
//! never loses a blob it deduplicated against (the "dedup-then-delete" race):
//!
//! 1. **Mark.** Walk reachability from every snapshot through the reference lists. Packs
//!    with nothing live are condemned; packs with more garbage than `max_unused_percent`
//!    have their live blobs copied, still sealed, into new packs, and are condemned too;
//!    packs no index mentions (left by a killed backup) are condemned once older than the
//!    grace period. New packs and rewritten index segments are written first, then a
//!    *prune plan* naming what may be deleted. Nothing is deleted in this phase.
//! 2. **Sweep**, in a later run once a plan is older than its grace period: walk
//!    reachability again from the snapshots that exist *now*, spare any condemned pack that
//!    a new snapshot came to need, delete the rest, then the superseded index segments,
//!    then the plan.
//!
//! A backup that starts after a plan exists never deduplicates against condemned packs
//! (`Index::contains`). A backup that loaded the index before the plan existed writes its
//! snapshot before the grace period ends (backups that run longer check, see
//! `backup::check_against_new_plans`), so the sweep sees its snapshot and spares what it
//! needs. A failed listing is an error, and an empty snapshot listing deletes nothing.
//! Killed at any point, the repository stays restorable: new objects are written before
//! the plan, deletions happen in an order readers tolerate, and the plan is removed last,
//! so the next prune finishes the job.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arka_proto::pack::{self, MAX_PACK_KEYS};
use arka_proto::{BlobId, IndexSegment, ObjectId, PackBlobEntry, PackIndex, PrunePlan, Snapshot};

use crate::error::{Error, Result};
use crate::repo::blob::BlobReader;
use crate::repo::damage::DamageSet;
use crate::repo::index::Index;
use crate::repo::packer::Packer;
use crate::repo::{check_object_id, Repository};
use crate::store::{Listed, ObjectKind};

/// Below this grace period a backup running during the prune could lose data it
/// deduplicated against; shorter periods are for repositories no backup writes to.
pub const SAFE_GRACE: Duration = Duration::from_secs(2 * 3600);
/// Packs per rewritten index segment.
pub(crate) const PACKS_PER_SEGMENT: usize = 2000;

/// A day: hourly backups have long finished, and space comes back by the next day's prune.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(86400);
/// Repack a pack when more than this share of it is unreferenced.
pub const DEFAULT_MAX_UNUSED_PERCENT: f64 = 10.0;

pub struct PruneOptions {
    /// How long condemned objects wait before they are deleted.
    pub grace: Duration,
    /// Repack a pack when more than this share of its bytes is garbage.
    pub max_unused_percent: f64,
    /// Report what would be done; write and delete nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    /// What `arka prune`, `forget --prune` and the service's scheduled prune use.
    fn default() -> Self {
        Self { grace: DEFAULT_GRACE, max_unused_percent: DEFAULT_MAX_UNUSED_PERCENT, dry_run: false }
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub snapshots: usize,
    pub blobs_reachable: usize,
    /// Plans whose grace period had ended, and what deleting them freed.
    pub plans_swept: usize,
    pub packs_deleted: usize,
    pub index_deleted: usize,
    pub bytes_freed: u64,
    /// Condemned packs a snapshot written since the plan came to need.
    pub packs_spared: usize,
    /// What this run condemned (deleted once the grace period has passed).
    pub packs_condemned: usize,
    pub packs_repacked: usize,
    pub bytes_repacked: u64,
    pub packs_orphaned: usize,
    pub bytes_to_free: u64,
    /// Temporary files of writes killed half-way, older than the grace period, deleted.
    pub strays_deleted: usize,
    pub stray_bytes: u64,
    /// Plans still waiting: (plan ID, earliest deletion, Unix ns).
    pub plans_pending: Vec<(String, i64)>,
    /// Objects the storage refused to delete (append-only or object-locked storage).
    pub delete_refused: Vec<String>,
    /// Damage reports deleted because every pack they name is gone.
    pub damage_reports_retired: usize,
    /// Snapshots whose reference list no index names, with every index segment readable:
    /// no backup wrote them (a plant), so prune goes on without them.
    pub snapshots_skipped: Vec<String>,
}

pub async fn prune(repo: &Arc<Repository>, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    sweep_due_plans(repo, opts, &mut report).await?;
    mark(repo, opts, &mut report).await?;
    delete_strays(repo, opts, &mut report).await?;
    if opts.grace.is_zero() && !opts.dry_run {
        // No grace: the plan just written is due at once.
        sweep_due_plans(repo, opts, &mut report).await?;
    }
    if !opts.dry_run {
        retire_damage_reports(repo, &mut report).await?;
    }
    report.plans_pending =
        repo.load_plans().await?.into_iter().map(|(id, _, p)| (id.to_hex(), p.delete_after_ns)).collect();
    report.plans_pending.sort_by_key(|(_, after)| *after);
    Ok(report)
}

/// Sweeps the plans whose grace period has passed, and nothing else: `arka key rewrap
/// --grace 0` deletes the packs it has just re-encrypted this way.
pub(crate) async fn sweep_due(repo: &Arc<Repository>) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    sweep_due_plans(repo, &PruneOptions::default(), &mut report).await?;
    Ok(report)
}

/// What every phase needs: the snapshots, the index built with the plans' condemned packs,
/// the raw segments, and every blob a snapshot reaches.
struct State {
    plans: Vec<(ObjectId, Listed, PrunePlan)>,
    segments: Vec<(ObjectId, IndexSegment)>,
    index: Arc<Index>,
    reachable: HashSet<BlobId>,
    /// Index segments that could not be opened: packs no index names may be theirs.
    damaged_segments: usize,
    /// Recorded damage: a pack with damaged copies is never repacked (that would carry the
    /// damage into a new pack where no report names it), only deleted once nothing needs it.
    damage: DamageSet,
}

async fn load_state(repo: &Arc<Repository>, report: &mut PruneReport) -> Result<State> {
    let plans = repo.load_plans().await?;
    let snapshots = repo.list_snapshots().await?;
    if snapshots.is_empty() {
        return Err(Error::Refused(
            "the repository lists no snapshots; prune refuses to delete anything on an empty listing".into(),
        ));
    }
    let loaded = repo.segments_and_damage().await?;
    let (segments, damaged_segments) = (loaded.objects, loaded.damaged.len());
    let condemned = plans.iter().flat_map(|(_, _, p)| p.packs.iter().copied()).collect();
    let damage = repo.load_damage().await?;
    let index = Arc::new(Index::build(&condemned, &damage, segments.iter().map(|(_, s)| s)));
    let reader = BlobReader::new(repo.clone(), index.clone());
    // A backup writes its index segments before its snapshot, so with every segment
    // readable, a snapshot whose reference list no index names was never written by a
    // backup (a plant, or junk that authenticates): it must not stop every prune, and
    // prune cannot tell what it would need anyway. With a segment damaged it could be an
    // indexing gap: then reachability fails as before, and `arka repair index` is the cure.
    let hollow = |s: &Snapshot| damaged_segments == 0 && index.get(&s.refs).is_none();
    let (skipped, kept): (Vec<_>, Vec<_>) = snapshots.iter().partition(|(_, s)| hollow(s));
    for (id, _) in &skipped {
        tracing::warn!(
            "snapshot {} names data no index holds; prune goes on without it (`arka forget` removes it)",
            id.short()
        );
    }
    report.snapshots_skipped = skipped.iter().map(|(id, _)| id.to_hex()).collect();
    let roots: Vec<_> = kept.iter().map(|(_, s)| (s.tree, s.refs)).collect();
    let reachable = crate::engine::reach::reachable_from(&reader, roots).await?;
    report.snapshots = kept.len();
    report.blobs_reachable = reachable.len();
    Ok(State { plans, segments, index, reachable, damaged_segments, damage })
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

/// Deletes what plans past their grace period condemned, sparing what snapshots need now.
async fn sweep_due_plans(repo: &Arc<Repository>, opts: &PruneOptions, report: &mut PruneReport) -> Result<()> {
    let probe = repo.load_plans().await?;
    if !probe.iter().any(|(_, _, p)| p.delete_after_ns <= now_ns()) {
        return Ok(());
    }
    let state = load_state(repo, report).await?;
    let entries = pack_entries(&state.segments);
    for (plan_id, _, plan) in &state.plans {
        if plan.delete_after_ns > now_ns() {
            continue;
        }
        let condemned: HashSet<&ObjectId> = plan.packs.iter().collect();
        // A reachable blob whose chosen copy is condemned has no live copy: keep its pack.
        let spared: HashSet<ObjectId> = state
            .reachable
            .iter()
            .filter_map(|id| state.index.get(id))
            .filter(|loc| state.index.is_condemned(loc.pack))
            .map(|loc| state.index.pack_of(loc).0)
            .filter(|p| condemned.contains(p))
            .collect();
        report.packs_spared += spared.len();
        if opts.dry_run {
            report.packs_deleted += plan.packs.len() - spared.len();
            continue;
        }
        // Before segments go, every pack that stays must be indexed elsewhere: spared
        // packs, and any pack a damaged or forged plan names among its segments but not
        // among its packs. Such packs are indexed anew rather than silently dropped.
        let obsolete: HashSet<&ObjectId> = plan.index.iter().collect();
        let indexed_elsewhere: HashSet<ObjectId> = state
            .segments
            .iter()
            .filter(|(id, _)| !obsolete.contains(id))
            .flat_map(|(_, s)| s.packs.iter().map(|p| p.pack_id))
            .collect();
        let mut keep: HashMap<ObjectId, PackIndex> = HashMap::new();
        for (_, seg) in state.segments.iter().filter(|(id, _)| obsolete.contains(id)) {
            for p in &seg.packs {
                let deleted = condemned.contains(&p.pack_id) && !spared.contains(&p.pack_id);
                if !deleted && !indexed_elsewhere.contains(&p.pack_id) {
                    keep.entry(p.pack_id).or_insert_with(|| p.clone());
                }
            }
        }
        if !keep.is_empty() {
            let seg = IndexSegment { packs: keep.into_values().collect() };
            repo.put_object(ObjectKind::Index, seg.encode(repo.key.meta_key())).await?;
        }
        let mut refused = false;
        for pack in plan.packs.iter().filter(|p| !spared.contains(p)) {
            let key = ObjectKind::Pack.key(pack);
            let len = entries.get(pack).map_or(0, |p| p.pack_len);
            match repo.store.delete(&key).await {
                Ok(()) => {
                    report.packs_deleted += 1;
                    report.bytes_freed += len;
                }
                Err(e) => {
                    tracing::warn!("could not delete {key}: {e}");
                    report.delete_refused.push(key);
                    refused = true;
                }
            }
        }
        if refused {
            continue; // keep the index and the plan: the packs are still there
        }
        for seg in &plan.index {
            repo.store.delete(&ObjectKind::Index.key(seg)).await?;
            report.index_deleted += 1;
        }
        repo.store.delete(&ObjectKind::PrunePlan.key(plan_id)).await?;
        report.plans_swept += 1;
    }
    Ok(())
}

/// Deletes the damage reports whose every pack has left the index: what they warned of is
/// gone with the pack, so readers no longer need them.
async fn retire_damage_reports(repo: &Repository, report: &mut PruneReport) -> Result<()> {
    let reports = repo.damage_reports().await?.objects;
    if reports.is_empty() {
        return Ok(());
    }
    let indexed: HashSet<ObjectId> =
        repo.load_segments().await?.iter().flat_map(|(_, s)| s.packs.iter().map(|p| p.pack_id)).collect();
    for (id, damage) in reports {
        let mut packs = damage.packs.iter().chain(damage.blobs.iter().map(|(p, _)| p));
        if packs.any(|p| indexed.contains(p)) {
            continue;
        }
        let key = ObjectKind::Damage.key(&id);
        match repo.store.delete(&key).await {
            Ok(()) => report.damage_reports_retired += 1,
            Err(e) => {
                tracing::warn!("could not delete {key}: {e}");
                report.delete_refused.push(key);
            }
        }
    }
    Ok(())
}

/// Deletes the temporary files that killed writes left, once older than the grace period
/// (younger ones may belong to a write in progress).
async fn delete_strays(repo: &Repository, opts: &PruneOptions, report: &mut PruneReport) -> Result<()> {
    let cutoff = now_ns().saturating_sub(opts.grace.as_nanos() as i64);
    for (path, size, modified) in repo.store.list_strays()? {
        if modified > cutoff {
            continue;
        }
        if !opts.dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        report.strays_deleted += 1;
        report.stray_bytes += size;
    }
    Ok(())
}

/// Every indexed pack's entries, by pack ID (a pack listed in several segments once).
fn pack_entries(segments: &[(ObjectId, IndexSegment)]) -> HashMap<ObjectId, PackIndex> {
    let mut out = HashMap::new();
    for (_, seg) in segments {
        for p in &seg.packs {
            out.entry(p.pack_id).or_insert_with(|| p.clone());
        }
    }
    out
}

/// Decides what to condemn, writes the repacked packs and index, then the plan.
async fn mark(repo: &Arc<Repository>, opts: &PruneOptions, report: &mut PruneReport) -> Result<()> {
    let state = load_state(repo, report).await?;
    let listed: HashMap<ObjectId, Listed> =
        repo.store.list_detailed(ObjectKind::Pack).await?.into_iter().map(|l| (l.id, l)).collect();
    let entries = pack_entries(&state.segments);
    if listed.is_empty() && !entries.is_empty() {
        return Err(Error::Refused(
            "the storage lists no packs although the index names some; prune deletes nothing on an empty listing"
                .into(),
        ));
    }
    let already: HashSet<ObjectId> = state.plans.iter().flat_map(|(_, _, p)| p.packs.iter().copied()).collect();
    let mut condemned = HashSet::new();
    let mut to_repack = Vec::new();
    for (id, p) in entries.iter().filter(|(id, _)| !already.contains(id)) {
        if !listed.contains_key(id) && !state.damage.packs.contains(id) {
            tracing::warn!("indexed pack {} is missing from storage; run `arka verify`", id.short());
            continue;
        }
        match judge_pack(&state, *id, p, opts.max_unused_percent, report) {
            Verdict::Keep => {}
            Verdict::Condemn => {
                condemned.insert(*id);
            }
            Verdict::Repack(live) => {
                condemned.insert(*id);
                to_repack.push((*id, p.pack_len, live));
            }
        }
    }
    let grace_ns = opts.grace.as_nanos() as i64;
    if state.damaged_segments > 0 {
        tracing::warn!(
            "{} index segments cannot be opened: packs no index names are kept, since they may be theirs \
             (`arka verify` names the segments)",
            state.damaged_segments
        );
    }
    for (id, l) in listed.iter().filter(|_| state.damaged_segments == 0) {
        // Packs no index names: a killed backup's, or one still uploading. Only old ones go.
        if !entries.contains_key(id) && !already.contains(id) && l.stored_at_ns.saturating_add(grace_ns) <= now_ns() {
            condemned.insert(*id);
            report.packs_orphaned += 1;
            report.bytes_to_free += l.size;
        }
    }
    report.packs_condemned = condemned.len();
    if condemned.is_empty() || opts.dry_run {
        return Ok(());
    }
    let new_packs = repack(repo, to_repack).await?;
    write_plan(repo, &state.segments, condemned, new_packs, grace_ns).await?;
    Ok(())
}

enum Verdict {
    Keep,
    /// Nothing in it is live.
    Condemn,
    /// Too much of it is garbage: copy these live blobs to a new pack, then condemn it.
    Repack(Vec<PackBlobEntry>),
}

fn judge_pack(
    state: &State,
    id: ObjectId,
    p: &PackIndex,
    max_unused_percent: f64,
    report: &mut PruneReport,
) -> Verdict {
    let pos = state.index.position(&id).expect("indexed");
    // Live: reachable, and this pack holds the copy readers use (other copies are garbage).
    let live: Vec<_> = p
        .blobs
        .iter()
        .filter(|e| state.reachable.contains(&e.id) && state.index.get(&e.id).is_some_and(|l| l.pack == pos))
        .copied()
        .collect();
    let live_bytes: u64 = live.iter().map(|e| e.stored_len as u64).sum();
    // Garbage is blob bytes only: a small pack's header and table are mostly overhead,
    // and counting them would repack it again on every run.
    let all_blobs: u64 = p.blobs.iter().map(|e| e.stored_len as u64).sum();
    let unused = all_blobs.saturating_sub(live_bytes);
    let damaged = p.blobs.iter().any(|e| state.damage.is_damaged(&id, &e.id));
    if live.is_empty() {
        report.bytes_to_free += p.pack_len;
        Verdict::Condemn
    } else if damaged {
        Verdict::Keep
    } else if unused as f64 * 100.0 > max_unused_percent * p.pack_len as f64 {
        report.packs_repacked += 1;
        report.bytes_to_free += unused;
        report.bytes_repacked += live_bytes;
        Verdict::Repack(live)
    } else {
        Verdict::Keep
    }
}

/// Writes the index without the condemned packs (and with the repacked ones), then the
/// plan that deletes the condemned packs after the grace period. `arka key rewrap` writes
/// its plans here too. Returns when the plan's packs may be deleted (Unix ns).
pub(crate) async fn write_plan(
    repo: &Repository,
    segments: &[(ObjectId, IndexSegment)],
    condemned: HashSet<ObjectId>,
    new_packs: Vec<PackIndex>,
    grace_ns: i64,
) -> Result<i64> {
    // Segments naming a condemned pack are rewritten without it; packs condemned by older
    // plans stay in (their plan's sweep may spare them and must find their entries).
    let obsolete: Vec<ObjectId> = segments
        .iter()
        .filter(|(_, s)| s.packs.iter().any(|p| condemned.contains(&p.pack_id)))
        .map(|(id, _)| *id)
        .collect();
    let mut survivors: HashMap<ObjectId, PackIndex> = HashMap::new();
    for (_, seg) in segments.iter().filter(|(id, _)| obsolete.contains(id)) {
        for p in seg.packs.iter().filter(|p| !condemned.contains(&p.pack_id)) {
            survivors.entry(p.pack_id).or_insert_with(|| p.clone());
        }
    }
    let mut rewritten: Vec<PackIndex> = new_packs;
    rewritten.extend(survivors.into_values());
    for chunk in rewritten.chunks(PACKS_PER_SEGMENT) {
        let seg = IndexSegment { packs: chunk.to_vec() };
        repo.put_object(ObjectKind::Index, seg.encode(repo.key.meta_key())).await?;
    }
    let created_ns = now_ns();
    let mut packs: Vec<ObjectId> = condemned.into_iter().collect();
    packs.sort();
    let plan = PrunePlan { created_ns, delete_after_ns: created_ns.saturating_add(grace_ns), packs, index: obsolete };
    repo.put_object(ObjectKind::PrunePlan, plan.encode(repo.key.meta_key())).await?;
    Ok(plan.delete_after_ns)
}

/// Copies live blobs, still sealed, into new packs that carry the sealed data keys that
/// open them. Each source pack is checked against its content hash first, so corruption
/// is never copied. Returns the new packs' index entries, after they are stored.
async fn repack(
    repo: &Repository,
    sources: Vec<(ObjectId, u64, Vec<arka_proto::PackBlobEntry>)>,
) -> Result<Vec<PackIndex>> {
    let target = repo.config.pack_size as usize;
    let new_packer = || Packer::for_copies(*repo.key.meta_key(), target + (1 << 20));
    let mut packer = new_packer();
    let mut written = Vec::new();
    for (pack_id, _, live) in sources {
        let key = ObjectKind::Pack.key(&pack_id);
        let bytes = repo.store.get(&key).await?;
        check_object_id(&key, &pack_id, &bytes)?;
        let corrupt = |e: arka_proto::Error| Error::Corrupt { key: key.clone(), reason: e.to_string() };
        let sealed_keys = pack::decode_header(&bytes).map_err(corrupt)?;
        if packer.key_count() + sealed_keys.len() > MAX_PACK_KEYS || packer.len() >= target {
            written.push(store_pack(repo, std::mem::replace(&mut packer, new_packer())).await?);
        }
        // This source's keys, renumbered in the new pack, added only if a live blob uses them.
        let mut renumbered: HashMap<u16, u16> = HashMap::new();
        for mut e in live {
            let sealed = bytes.get(e.offset as usize..e.end() as usize).ok_or_else(|| Error::Corrupt {
                key: key.clone(),
                reason: format!("blob {} lies past the end", e.id.short()),
            })?;
            if e.kind.meta_seal_label().is_none() {
                let sealed_key = sealed_keys.get(e.key as usize).ok_or_else(|| Error::Corrupt {
                    key: key.clone(),
                    reason: format!("blob {} names a data key the pack lacks", e.id.short()),
                })?;
                e.key = *renumbered.entry(e.key).or_insert_with(|| packer.add_sealed_key(sealed_key));
            }
            packer.add_sealed(e, sealed);
        }
    }
    if !packer.is_empty() {
        written.push(store_pack(repo, packer).await?);
    }
    Ok(written)
}

async fn store_pack(repo: &Repository, packer: Packer) -> Result<PackIndex> {
    let done = packer.finish();
    let len = done.bytes.len() as u64;
    repo.store.put_new(&ObjectKind::Pack.key(&done.id), done.bytes.into()).await?;
    Ok(PackIndex { pack_id: done.id, pack_len: len, blobs: done.entries })
}
