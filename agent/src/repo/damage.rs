//! Damage the repository knows of: copies of blobs that failed to open where the index
//! places them, and packs that are gone. Readers prefer another copy, and deduplication
//! treats a blob without a healthy copy as absent, so the next backup stores it again:
//! damage heals without a person in the loop (docs/FORMAT.md, "Damage reports").

use std::collections::HashSet;

use arka_proto::{BlobId, DamageReport, ObjectId};

use crate::error::Result;
use crate::repo::{check_object_id, Loaded, Repository, LOAD_CONCURRENCY};
use crate::store::ObjectKind;

/// Damaged copies, from every report (and what an operation found itself).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DamageSet {
    pub packs: HashSet<ObjectId>,
    pub blobs: HashSet<(ObjectId, BlobId)>,
}

impl DamageSet {
    pub fn is_empty(&self) -> bool {
        self.packs.is_empty() && self.blobs.is_empty()
    }

    /// Whether the copy of `blob` in `pack` is known to be damaged.
    pub fn is_damaged(&self, pack: &ObjectId, blob: &BlobId) -> bool {
        !self.is_empty() && (self.packs.contains(pack) || self.blobs.contains(&(*pack, *blob)))
    }

    /// Everything `reports` name.
    pub fn of<'a>(reports: impl IntoIterator<Item = &'a DamageReport>) -> Self {
        let mut set = Self::default();
        for report in reports {
            set.packs.extend(&report.packs);
            set.blobs.extend(&report.blobs);
        }
        set
    }

    pub fn extend(&mut self, other: DamageSet) {
        self.packs.extend(other.packs);
        self.blobs.extend(other.blobs);
    }

    /// Forgets everything said of `packs` (a finer check of them replaces it).
    pub fn forget_packs(&mut self, packs: &HashSet<ObjectId>) {
        self.packs.retain(|p| !packs.contains(p));
        self.blobs.retain(|(p, _)| !packs.contains(p));
    }

    /// What `self` names that `known` does not.
    pub fn minus(&self, known: &DamageSet) -> DamageSet {
        DamageSet {
            packs: self.packs.difference(&known.packs).copied().collect(),
            blobs: self.blobs.iter().filter(|(p, b)| !known.is_damaged(p, b)).copied().collect(),
        }
    }
}

impl Repository {
    /// Every damage report that opens, and the damaged ones by name.
    pub async fn damage_reports(&self) -> Result<Loaded<(ObjectId, DamageReport)>> {
        use futures::StreamExt;
        let listed = self.store.list_detailed(ObjectKind::Damage).await?;
        let loaded = futures::stream::iter(listed)
            .map(|l| async move {
                let key = ObjectKind::Damage.key(&l.id);
                let report = async {
                    let bytes = self.store.get(&key).await?;
                    check_object_id(&key, &l.id, &bytes)?;
                    self.open_meta(ObjectKind::Damage, &l.id, Some(l.stored_at_ns), |k| DamageReport::decode(k, &bytes))
                        .await
                }
                .await;
                (key, report.map(|r| (l.id, r)))
            })
            .buffer_unordered(LOAD_CONCURRENCY);
        Loaded::collect(loaded).await
    }

    /// All recorded damage.
    pub async fn load_damage(&self) -> Result<DamageSet> {
        Ok(DamageSet::of(self.damage_reports().await?.objects.iter().map(|(_, r)| r)))
    }

    /// Writes a report of `found` less what is already recorded in `known`; returns how
    /// many entries were new. A failure to write is the caller's to report as a warning:
    /// the operation that found the damage has its own result to give.
    pub async fn record_damage(&self, found_by: &str, found: &DamageSet, known: &DamageSet) -> Result<usize> {
        let new = found.minus(known);
        let n = new.packs.len() + new.blobs.len();
        if n == 0 {
            return Ok(0);
        }
        let mut report = DamageReport {
            found_ns: jiff::Timestamp::now().as_nanosecond() as i64,
            found_by: found_by.into(),
            packs: new.packs.into_iter().collect(),
            blobs: new.blobs.into_iter().collect(),
        };
        report.packs.sort();
        report.blobs.sort();
        self.put_object(ObjectKind::Damage, report.encode(self.key.meta_key())).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_keeps_only_what_is_not_known() {
        let (p1, p2, b) = (ObjectId([1; 32]), ObjectId([2; 32]), BlobId([9; 32]));
        let known = DamageSet { packs: HashSet::from([p1]), blobs: HashSet::new() };
        let found = DamageSet { packs: HashSet::from([p1]), blobs: HashSet::from([(p1, b), (p2, b)]) };
        let new = found.minus(&known);
        assert!(new.packs.is_empty());
        assert_eq!(new.blobs, HashSet::from([(p2, b)]));
        assert!(known.is_damaged(&p1, &b) && !known.is_damaged(&p2, &b));
    }
}
