//! `arka repair index`: index again, from their own blob tables, every pack that no intact
//! index segment names (the index was deleted, or a segment is damaged). A pack's table is
//! sealed under the metadata key, so the agent key is enough, and two ranged reads per pack
//! (its header, then its end) are all it costs: no pack is downloaded whole.

use std::collections::HashSet;

use futures::StreamExt;

use arka_proto::pack::{self, PackBlobEntry};
use arka_proto::{IndexSegment, ObjectId, PackIndex};

use crate::engine::prune::PACKS_PER_SEGMENT;
use crate::error::{Error, Result};
use crate::repo::damage::DamageSet;
use crate::repo::{Repository, LOAD_CONCURRENCY};
use crate::store::{Listed, ObjectKind};

/// The first read of each end of a pack: enough for a backup pack's header (one sealed
/// key) and for the table of a few hundred blobs; longer ones are read again in full.
const FIRST_READ: u64 = 64 << 10;

#[derive(Debug, Default, serde::Serialize)]
pub struct RepairIndexReport {
    /// Packs in storage.
    pub packs_listed: usize,
    /// Packs whose blob table was read: those no intact segment names.
    pub packs_scanned: usize,
    /// Packs indexed anew (would be, with --dry-run).
    pub packs_indexed: usize,
    pub blobs: usize,
    pub segments_written: usize,
    /// Index segments that could not be opened, and how many of them were deleted.
    pub damaged_segments: Vec<String>,
    pub damaged_segments_deleted: usize,
    /// Packs whose blob table does not open, with the reason: left out, recorded damaged.
    pub unreadable_packs: Vec<(String, String)>,
    /// Objects the storage refused to delete (append-only token or object lock).
    pub delete_refused: Vec<String>,
}

pub async fn repair_index(repo: &Repository, dry_run: bool) -> Result<RepairIndexReport> {
    let mut report = RepairIndexReport::default();
    let listed = repo.store.list_detailed(ObjectKind::Pack).await?;
    let loaded = repo.segments_and_damage().await?;
    report.packs_listed = listed.len();
    report.damaged_segments = loaded.damaged.iter().map(|(key, _)| key.clone()).collect();
    let indexed: HashSet<ObjectId> =
        loaded.objects.iter().flat_map(|(_, s)| s.packs.iter().map(|p| p.pack_id)).collect();
    // Packs a prune plan condemned left the index on purpose and are about to be deleted.
    let condemned: HashSet<ObjectId> =
        repo.load_plans().await?.iter().flat_map(|(_, _, p)| p.packs.iter().copied()).collect();
    let todo: Vec<Listed> =
        listed.into_iter().filter(|l| !indexed.contains(&l.id) && !condemned.contains(&l.id)).collect();
    report.packs_scanned = todo.len();
    let mut tables = futures::stream::iter(todo)
        .map(|l| async move { (l, read_table(repo, l.id, l.size).await) })
        .buffer_unordered(LOAD_CONCURRENCY);
    let mut found = Vec::new();
    let mut damage = DamageSet::default();
    while let Some((l, table)) = tables.next().await {
        match table {
            Ok(blobs) => found.push(PackIndex { pack_id: l.id, pack_len: l.size, blobs }),
            Err(e) if e.kind() == crate::error::ErrorKind::Damaged => {
                tracing::warn!("pack {} has no readable blob table, so it is left out of the index: {e}", l.id.short());
                damage.packs.insert(l.id);
                report.unreadable_packs.push((ObjectKind::Pack.key(&l.id), e.into_reason()));
            }
            Err(e) => return Err(e),
        }
    }
    found.sort_by_key(|p| p.pack_id);
    report.packs_indexed = found.len();
    report.blobs = found.iter().map(|p| p.blobs.len()).sum();
    report.segments_written = found.len().div_ceil(PACKS_PER_SEGMENT);
    if dry_run {
        return Ok(report);
    }
    for chunk in found.chunks(PACKS_PER_SEGMENT) {
        let seg = IndexSegment { packs: chunk.to_vec() };
        repo.put_object(ObjectKind::Index, seg.encode(repo.key.meta_key())).await?;
    }
    if !damage.is_empty() {
        if let Err(e) = repo.record_damage("repair", &damage, &repo.load_damage().await?).await {
            tracing::warn!("could not record the packs whose table does not open: {e}");
        }
    }
    // Every pack a damaged segment may have named is indexed now (or has no table to
    // index it by), so the damaged segments only cost every reader a warning.
    for key in &report.damaged_segments {
        match repo.store.delete(key).await {
            Ok(()) => report.damaged_segments_deleted += 1,
            Err(e) => {
                tracing::warn!("could not delete {key}: {e}");
                report.delete_refused.push(key.clone());
            }
        }
    }
    Ok(report)
}

/// A pack's blob table, read with two ranged reads (more only for a long header or table).
async fn read_table(repo: &Repository, id: ObjectId, len: u64) -> Result<Vec<PackBlobEntry>> {
    let key = ObjectKind::Pack.key(&id);
    let corrupt = |e: arka_proto::Error| Error::Corrupt { key: key.clone(), reason: e.to_string() };
    if len < (pack::HEADER_PREFIX_LEN + pack::TRAILER_LEN) as u64 {
        return Err(Error::Corrupt { key, reason: format!("{len} bytes is too short for a pack") });
    }
    let mut head = repo.store.get_range(&key, 0..len.min(FIRST_READ)).await?;
    let head_len = (pack::HEADER_PREFIX_LEN + pack::header_len(&head).map_err(corrupt)?) as u64;
    if head_len > head.len() as u64 {
        head = repo.store.get_range(&key, 0..head_len.min(len)).await?;
    }
    let mut tail = repo.store.get_range(&key, len - len.min(FIRST_READ)..len).await?;
    let tail_len =
        (pack::table_len(&tail[tail.len() - pack::TRAILER_LEN..]).map_err(corrupt)? + pack::TRAILER_LEN) as u64;
    if tail_len > tail.len() as u64 {
        if tail_len > len {
            return Err(Error::Corrupt { key, reason: "its trailer names a table longer than the pack".into() });
        }
        tail = repo.store.get_range(&key, len - tail_len..len).await?;
    }
    // Under a retired key too: a pack rebuilt into the index is used only through
    // snapshots, which are refused when a retired key wrote them after its retirement.
    repo.key.open_meta_with(|k| pack::decode_table_from(k, len, &head, &tail)).map(|(t, _)| t).map_err(corrupt)
}
