//! How a backup heals damage: its index treats every copy a damage report names as absent
//! (so deduplication stores the data again wherever the source still has it), and it
//! checks that the packs it deduplicates against still exist, so a deleted pack heals
//! without waiting for a verify.

use std::collections::{HashMap, HashSet};

use arka_proto::ObjectId;

use crate::error::Result;
use crate::repo::damage::DamageSet;
use crate::repo::index::Index;
use crate::repo::Repository;
use crate::store::ObjectKind;

/// What a backup found of the repository's damage, and what it did about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Healing {
    /// Blobs without a healthy copy when the backup started.
    pub damaged: u64,
    /// Of those, the ones this backup stored again (its source still had them).
    pub healed: u64,
}

impl Healing {
    /// Damaged blobs this backup could not store again: no current source has their data,
    /// so only older snapshots miss them.
    pub fn not_healable(&self) -> u64 {
        self.damaged - self.healed
    }
}

/// What a backup did about damage, in words for the status page, notifications and the
/// CLI; `None` when it met none.
pub fn healing_note(h: &Healing, snapshot: &str) -> Option<String> {
    match (h.damaged, h.not_healable()) {
        (0, _) => None,
        (_, 0) => Some(format!("damage found, healed by snapshot {snapshot} ({} blobs stored again)", h.healed)),
        (_, lost) if h.healed > 0 => Some(format!(
            "damage found: {} blobs healed by snapshot {snapshot}; {lost} not healable (their source is gone, \
             only older snapshots need them; `arka verify` names them)",
            h.healed
        )),
        (_, lost) => Some(format!(
            "damage found, not healable: {lost} damaged blobs are in no current source (source gone); only older \
             snapshots need them (`arka verify` names them)"
        )),
    }
}

/// The index a backup deduplicates against: prune plans' condemned packs and every known
/// damaged copy marked. With `check_packs`, packs missing from the store (or of the wrong
/// size) are found by a listing, recorded, and treated as damaged too.
pub async fn index_for_backup(repo: &Repository, check_packs: bool) -> Result<Index> {
    let condemned: HashSet<ObjectId> =
        repo.load_plans().await?.iter().flat_map(|(_, _, p)| p.packs.iter().copied()).collect();
    let known = repo.load_damage().await?;
    let segments = repo.load_segments().await?;
    // Segments and plans are read once; a pack found missing only changes the marking.
    let build = |damage: &DamageSet| Index::build(&condemned, damage, segments.iter().map(|(_, s)| s));
    let index = build(&known);
    if !check_packs {
        return Ok(index);
    }
    let listed: HashMap<ObjectId, u64> = repo.store.list(ObjectKind::Pack).await?.into_iter().collect();
    let gone: DamageSet = DamageSet {
        packs: index.packs().filter(|(id, len)| listed.get(id) != Some(len)).map(|(id, _)| id).collect(),
        ..Default::default()
    };
    let new = gone.minus(&known);
    if new.is_empty() {
        return Ok(index);
    }
    tracing::warn!("{} indexed packs are missing or damaged; this backup stores their data again", new.packs.len());
    if let Err(e) = repo.record_damage("backup", &new, &known).await {
        tracing::warn!("could not record the missing packs (this backup heals them all the same): {e}");
    }
    let mut all = known;
    all.extend(new);
    Ok(build(&all))
}
