//! `arka repair packs`: salvage the intact blobs of damaged packs. Each pack a damage
//! report names has its blobs that are not recorded damaged copied, still sealed, into new
//! packs (as prune's repack copies them, with the sealed data keys that open them) and
//! indexed. Readers and backups then prefer those copies (`Index::build` prefers copies no
//! report names), and prune can delete the damaged pack without taking intact data with it.
//!
//! What is trusted: reference and content lists open with the agent key and are checked
//! one by one. Data and tree blobs open only with a recovery identity: with one, each is
//! checked too; with the agent key alone, a pack recorded damaged as a whole (missing, or
//! failing its hash in a verify without an identity) is left alone, and in a pack whose
//! damage is recorded blob by blob (a verify with an identity checked every blob) the
//! others are taken as intact.

use std::collections::{HashMap, HashSet};

use arka_proto::pack::{self, MAX_PACK_KEYS};
use arka_proto::{DataKey, IndexSegment, ObjectId, PackBlobEntry, PackIndex};

use crate::engine::prune::PACKS_PER_SEGMENT;
use crate::error::{ErrorKind, Result};
use crate::repo::blob::open_blob;
use crate::repo::damage::DamageSet;
use crate::repo::index::{Index, Location};
use crate::repo::packer::Packer;
use crate::repo::Repository;
use crate::store::ObjectKind;

#[derive(Debug, Default, serde::Serialize)]
pub struct RepairPacksReport {
    /// Packs damage reports name that are still indexed.
    pub packs_damaged: usize,
    /// Packs blobs were copied from.
    pub packs_salvaged: usize,
    pub blobs_salvaged: usize,
    pub bytes_salvaged: u64,
    /// Blobs that already had a healthy copy elsewhere.
    pub blobs_elsewhere: usize,
    /// Blobs left behind: recorded damaged, or failing to open here.
    pub blobs_left_out: usize,
    pub packs_written: usize,
    /// Packs nothing could be salvaged from, and why.
    pub skipped: Vec<(String, String)>,
}

pub async fn repair_packs(repo: &Repository, dry_run: bool) -> Result<RepairPacksReport> {
    let mut report = RepairPacksReport::default();
    let damage = repo.load_damage().await?;
    let segments = repo.load_segments().await?;
    let condemned: HashSet<ObjectId> =
        repo.load_plans().await?.iter().flat_map(|(_, _, p)| p.packs.iter().copied()).collect();
    let index = Index::build(&condemned, &damage, segments.iter().map(|(_, s)| s));
    let mut entries: HashMap<ObjectId, &PackIndex> = HashMap::new();
    for p in segments.iter().flat_map(|(_, s)| &s.packs) {
        entries.entry(p.pack_id).or_insert(p);
    }
    let mut damaged: Vec<ObjectId> = damage.packs.iter().chain(damage.blobs.iter().map(|(p, _)| p)).copied().collect();
    damaged.sort();
    damaged.dedup();
    damaged.retain(|p| entries.contains_key(p));
    report.packs_damaged = damaged.len();
    let mut salvage = Salvage::new(repo, &index, &damage, dry_run);
    for pack_id in damaged {
        if let Err(why) = salvage.pack(entries[&pack_id], &mut report).await? {
            report.skipped.push((ObjectKind::Pack.key(&pack_id), why));
        }
    }
    salvage.finish(&mut report).await?;
    Ok(report)
}

struct Salvage<'a> {
    repo: &'a Repository,
    index: &'a Index,
    damage: &'a DamageSet,
    dry_run: bool,
    packer: Packer,
    written: Vec<PackIndex>,
    /// Packs filled (with --dry-run, not stored).
    packs: usize,
    /// Blobs copied in this run (a blob in two damaged packs is copied once).
    copied: HashSet<arka_proto::BlobId>,
    /// Copies found damaged here, to record.
    found: DamageSet,
}

impl<'a> Salvage<'a> {
    fn new(repo: &'a Repository, index: &'a Index, damage: &'a DamageSet, dry_run: bool) -> Self {
        Self {
            packer: Self::new_packer(repo),
            repo,
            index,
            damage,
            dry_run,
            written: Vec::new(),
            packs: 0,
            copied: HashSet::new(),
            found: DamageSet::default(),
        }
    }

    fn new_packer(repo: &Repository) -> Packer {
        Packer::for_copies(*repo.key.meta_key(), repo.config.pack_size as usize + (1 << 20))
    }

    /// Copies what can be salvaged from one pack; `Ok(Err(why))` when nothing can be.
    async fn pack(&mut self, p: &PackIndex, report: &mut RepairPacksReport) -> Result<std::result::Result<(), String>> {
        // Recorded damaged as a whole and no identity to check its blobs: nothing in it
        // can be trusted, but blobs with a copy elsewhere need nothing anyway.
        if self.damage.packs.contains(&p.pack_id) && self.repo.identities.is_none() {
            if p.blobs.iter().all(|e| copy_elsewhere(self.index, &p.pack_id, &e.id)) {
                report.blobs_elsewhere += p.blobs.len();
                return Ok(Ok(()));
            }
            return Ok(Err("recorded damaged as a whole: run `arka verify --read-data --identity FILE` to find its \
                           intact blobs, or give `repair packs` the recovery identity"
                .into()));
        }
        let key = ObjectKind::Pack.key(&p.pack_id);
        let bytes = match self.repo.store.get(&key).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Damaged => return Ok(Err(e.into_reason())),
            Err(e) => return Err(e),
        };
        let sealed_keys: Vec<Vec<u8>> =
            pack::decode_header(&bytes).map(|ks| ks.into_iter().map(<[u8]>::to_vec).collect()).unwrap_or_default();
        let data_keys = self.data_keys(&sealed_keys);
        let mut renumbered: HashMap<u16, u16> = HashMap::new();
        let before = report.blobs_salvaged;
        for e in &p.blobs {
            if copy_elsewhere(self.index, &p.pack_id, &e.id) || self.copied.contains(&e.id) {
                report.blobs_elsewhere += 1;
                continue;
            }
            let sealed = match bytes.get(e.offset as usize..e.end() as usize) {
                Some(s)
                    if !self.damage.blobs.contains(&(p.pack_id, e.id)) && self.opens(p.pack_id, e, s, &data_keys) =>
                {
                    s
                }
                _ => {
                    report.blobs_left_out += 1;
                    continue;
                }
            };
            let mut copy = *e;
            if e.kind.meta_seal_label().is_none() {
                let Some(sealed_key) = sealed_keys.get(e.key as usize) else {
                    report.blobs_left_out += 1;
                    continue;
                };
                if !renumbered.contains_key(&e.key) && self.packer.key_count() + 1 > MAX_PACK_KEYS {
                    self.flush().await?;
                    renumbered.clear();
                }
                copy.key = *renumbered.entry(e.key).or_insert_with(|| self.packer.add_sealed_key(sealed_key));
            }
            self.packer.add_sealed(copy, sealed);
            self.copied.insert(e.id);
            report.blobs_salvaged += 1;
            report.bytes_salvaged += e.stored_len as u64;
            if self.packer.len() >= self.repo.config.pack_size as usize {
                self.flush().await?;
                renumbered.clear();
            }
        }
        report.packs_salvaged += usize::from(report.blobs_salvaged > before);
        // Every blob of it now has a copy elsewhere or is lost: once the copies are indexed,
        // the whole pack is recorded damaged, so readers and prune use the copies (a report
        // naming single blobs would leave the old copies first in line) and prune deletes it.
        self.found.packs.insert(p.pack_id);
        Ok(Ok(()))
    }

    /// The pack's data keys, when a recovery identity can open them (`None` entries otherwise).
    fn data_keys(&self, sealed_keys: &[Vec<u8>]) -> Vec<Option<DataKey>> {
        if self.repo.identities.is_none() {
            return Vec::new();
        }
        sealed_keys.iter().map(|k| self.repo.open_data_key(k).ok()).collect()
    }

    /// Whether a blob's sealed bytes are intact as far as this run can check (see the
    /// module comment); a blob that fails is noted as damaged.
    fn opens(&mut self, pack_id: ObjectId, e: &PackBlobEntry, sealed: &[u8], data_keys: &[Option<DataKey>]) -> bool {
        let loc = Location::from(e);
        let pack_key = &ObjectKind::Pack.key(&pack_id);
        let checked = match (e.kind.meta_seal_label(), self.repo.identities.is_some()) {
            (Some(_), _) => open_blob(&self.repo.key, None, pack_key, &e.id, &loc, sealed).is_ok(),
            (None, true) => data_keys
                .get(e.key as usize)
                .and_then(Option::as_ref)
                .is_some_and(|k| open_blob(&self.repo.key, Some(k), pack_key, &e.id, &loc, sealed).is_ok()),
            (None, false) => true,
        };
        if !checked {
            self.found.blobs.insert((pack_id, e.id));
        }
        checked
    }

    /// Stores the pack being filled (unless --dry-run).
    async fn flush(&mut self) -> Result<()> {
        let packer = std::mem::replace(&mut self.packer, Self::new_packer(self.repo));
        if packer.is_empty() {
            return Ok(());
        }
        self.packs += 1;
        if self.dry_run {
            return Ok(());
        }
        let done = packer.finish();
        let len = done.bytes.len() as u64;
        self.repo.store.put_new(&ObjectKind::Pack.key(&done.id), done.bytes.into()).await?;
        self.written.push(PackIndex { pack_id: done.id, pack_len: len, blobs: done.entries });
        Ok(())
    }

    /// Stores the last pack, indexes the new packs, and records damage found on the way.
    async fn finish(mut self, report: &mut RepairPacksReport) -> Result<()> {
        self.flush().await?;
        report.packs_written = self.packs;
        if self.dry_run {
            return Ok(());
        }
        for chunk in self.written.chunks(PACKS_PER_SEGMENT) {
            let seg = IndexSegment { packs: chunk.to_vec() };
            self.repo.put_object(ObjectKind::Index, seg.encode(self.repo.key.meta_key())).await?;
        }
        if let Err(e) = self.repo.record_damage("repair", &self.found, self.damage).await {
            tracing::warn!("could not record the damaged blobs found while salvaging: {e}");
        }
        Ok(())
    }
}

/// Whether a blob has a copy outside `pack` that no report names.
fn copy_elsewhere(index: &Index, pack: &ObjectId, id: &arka_proto::BlobId) -> bool {
    index.get(id).is_some_and(|l| index.pack_of(l).0 != *pack) && !index.is_damaged(id)
}
