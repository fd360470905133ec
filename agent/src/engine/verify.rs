//! Verify: is every snapshot restorable?
//!
//! - With the agent key (structure): index segments and snapshots authenticate, every
//!   indexed pack exists with its recorded size, and every blob a snapshot reaches (walked
//!   through the reference lists, without reading names) is in the index.
//! - `--read-data[=PERCENT]`: packs are downloaded and checked against their content hash
//!   and their sealed blob table against the index. A percentage checks the packs verified
//!   longest ago first (state kept locally), so a daily 5% run covers everything in 20 days.
//! - With a recovery identity: every blob of the packs read is also decrypted and checked
//!   against its ID, and the report names the files a damaged blob breaks.
//! - A [`SnapshotFilter`] limits what is checked per snapshot (trees, reachability, broken
//!   files, flags) and which packs `--read-data` reads (those holding a blob the selected
//!   snapshots need); the repository-wide checks (config, index segments, damage reports,
//!   the packs listing against the index, vanished snapshots) always run.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use futures::StreamExt;

use arka_proto::pack;
use arka_proto::{BlobId, IndexSegment, ObjectId, PackBlobEntry, Snapshot, TreeRefs};

use crate::engine::history::{self, Flagged, Vanished};
use crate::error::{Error, Result};
use crate::repo::blob::{open_blob, BlobReader};
use crate::repo::damage::DamageSet;
use crate::repo::index::{Index, Location};
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::{check_object_id, Repository};
use crate::store::ObjectKind;

const PACKS_IN_FLIGHT: usize = 2;

pub struct VerifyOptions {
    /// Read this percentage of packs (100 = all); `None` = structure only.
    pub read_data_percent: Option<f64>,
    /// Where the rotation remembers when each pack was last read.
    pub state_file: Option<PathBuf>,
    /// Which snapshots to check; empty = all.
    pub filter: SnapshotFilter,
}

/// One damaged or missing object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damage {
    pub object: String,
    pub reason: String,
    /// Every damaged blob in it that a snapshot needs has a healthy copy elsewhere (a
    /// backup stored it again).
    pub healed: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokenSnapshot {
    pub id: String,
    pub time_unix_ns: i64,
    pub source: Vec<String>,
    /// Files whose data is damaged (only with a recovery identity: names are personal data).
    pub files: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Snapshots checked: all of them, or those the filter selected.
    pub snapshots: usize,
    /// With a filter: what it selected ("source imaging, host reception"), and how many
    /// snapshots the repository holds in all.
    pub selection: Option<Selection>,
    pub index_segments: usize,
    pub packs: usize,
    pub blobs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    pub blobs_decrypted: u64,
    pub damage: Vec<Damage>,
    pub broken_snapshots: Vec<BrokenSnapshot>,
    /// Damaged copies newly written to a damage report, for the next backup to heal.
    pub damage_recorded: usize,
    /// Why the damage found could not be recorded (storage refused the write).
    pub damage_record_failed: Option<String>,
    /// Snapshots the timeline flags (reported; they do not make the repository unclean).
    pub flagged: Vec<Flagged>,
    /// Snapshots a backup made that are gone without a forget.
    pub vanished: Vec<Vanished>,
}

/// What a filtered verify covered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Selection {
    pub filter: String,
    pub snapshots_in_repository: usize,
}

impl Damage {
    fn new(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { object: object.into(), reason: reason.into(), healed: false }
    }
}

impl VerifyReport {
    /// No damage that still costs a restore anything: healed damage only waits for prune.
    pub fn is_clean(&self) -> bool {
        self.unhealed().next().is_none() && self.broken_snapshots.is_empty() && self.vanished.is_empty()
    }

    pub fn unhealed(&self) -> impl Iterator<Item = &Damage> {
        self.damage.iter().filter(|d| !d.healed)
    }
}

pub async fn verify(repo: std::sync::Arc<Repository>, opts: &VerifyOptions) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    if let crate::repo::config::ConfigOrigin::Copy { why, .. } = repo.config_origin() {
        report.damage.push(Damage::new(arka_proto::layout::CONFIG_KEY, why.clone()));
    }
    let mut known = load_known_damage(&repo, &mut report).await?;
    let (segments, entries_by_pack) = load_segments(&repo, &mut report).await?;
    let index = Index::build(&Default::default(), &known, &segments);
    report.blobs = index.len();
    let mut timeline = repo.timeline().await?;
    report.vanished = history::vanished_from(&repo, &timeline).await?;
    let all = std::mem::take(&mut timeline.objects);
    if !opts.filter.is_empty() {
        report.selection = Some(Selection { filter: opts.filter.describe(), snapshots_in_repository: all.len() });
    }
    // Whether damage is healed depends on every snapshot, selected or not.
    let all_roots: Vec<(BlobId, BlobId)> = all.iter().map(|t| (t.snapshot.tree, t.snapshot.refs)).collect();
    let selected = opts.filter.apply(all);
    report.flagged = history::flagged(&selected);
    let snapshots: Vec<(ObjectId, Snapshot)> = selected.into_iter().map(|t| (t.id, t.snapshot)).collect();
    report.snapshots = snapshots.len();
    note_damage(&mut report, timeline.damaged);
    note_damage(&mut report, repo.plans_and_damage().await?.damaged);
    let listed: HashMap<ObjectId, u64> = repo.store.list(ObjectKind::Pack).await?.into_iter().collect();
    report.packs = listed.len();
    let mut found = DamageSet { packs: check_pack_sizes(&index, &listed, &mut report), ..Default::default() };
    if let Some(percent) = opts.read_data_percent {
        let reader = BlobReader::new(repo.clone(), std::sync::Arc::new(index));
        let wanted = match opts.filter.is_empty() {
            true => None,
            false => packs_needed_by(&reader, &snapshots).await,
        };
        let packs = PackSet { listed: &listed, bad: &found.packs, entries: &entries_by_pack, wanted: wanted.as_ref() };
        let read = read_data(&reader, packs, percent, opts.state_file.as_deref(), &mut report).await;
        known.forget_packs(&read.opened_blob_by_blob);
        found.extend(read.found);
    }
    record_found_damage(&repo, &found, &known, &mut report).await;
    // From here on, every copy known damaged (before or now) is avoided where another exists.
    let mut all = known.clone();
    all.extend(found.clone());
    let index = std::sync::Arc::new(Index::build(&Default::default(), &all, &segments));
    note_recorded_damage(&known, &found, &index, &entries_by_pack, &mut report);
    let reader = BlobReader::new(repo.clone(), index);
    // When what the snapshots need cannot be told, every damaged blob counts as needed.
    // Walked only when a pack is damaged: a filtered verify need not read every snapshot's lists.
    let pack_damage = report.damage.iter().any(|d| pack_of_key(&d.object).is_some());
    let needed = match pack_damage {
        true => crate::engine::reach::reachable_from(&reader, all_roots).await.ok(),
        false => None,
    };
    let healed = Healed { all: &all, index: reader.index(), entries: &entries_by_pack, needed: needed.as_ref() };
    healed.mark(&mut report.damage);
    find_broken_snapshots(&reader, &snapshots, repo.identities.is_some(), &mut report).await;
    dedup_damage(&mut report.damage);
    Ok(report)
}

/// The packs holding a copy of a blob `snapshots` need, for a filtered `--read-data`.
/// `None` (read every pack) when what they need cannot be told: a damaged reference list
/// must not shrink the check.
async fn packs_needed_by(reader: &BlobReader, snapshots: &[(ObjectId, Snapshot)]) -> Option<HashSet<ObjectId>> {
    let roots = snapshots.iter().map(|(_, s)| (s.tree, s.refs)).collect();
    let needed = crate::engine::reach::reachable_from(reader, roots).await.ok()?;
    let index = reader.index();
    let copies = needed.iter().flat_map(|id| index.get(id).into_iter().chain(index.other_copies(id)));
    Some(copies.map(|loc| index.pack_of(loc).0).collect())
}

/// The damage earlier operations recorded; reports that do not open are damage themselves.
async fn load_known_damage(repo: &Repository, report: &mut VerifyReport) -> Result<DamageSet> {
    let loaded = repo.damage_reports().await?;
    note_damage(report, loaded.damaged);
    Ok(DamageSet::of(loaded.objects.iter().map(|(_, r)| r)))
}

/// Every index segment that opens, and each pack's blob entries.
async fn load_segments(
    repo: &Repository,
    report: &mut VerifyReport,
) -> Result<(Vec<IndexSegment>, HashMap<ObjectId, Vec<PackBlobEntry>>)> {
    let loaded = repo.segments_and_damage().await?;
    report.index_segments = loaded.objects.len() + loaded.damaged.len();
    note_damage(report, loaded.damaged);
    let segments: Vec<_> = loaded.objects.into_iter().map(|(_, s)| s).collect();
    let mut entries_by_pack: HashMap<ObjectId, Vec<PackBlobEntry>> = HashMap::new();
    for p in segments.iter().flat_map(|s| &s.packs) {
        entries_by_pack.entry(p.pack_id).or_default().extend(p.blobs.iter().copied());
    }
    Ok((segments, entries_by_pack))
}

/// Writes what this run found and no report names yet, so the next backup heals it. Verify
/// may run with storage credentials that cannot write: then it says so and goes on.
async fn record_found_damage(repo: &Repository, found: &DamageSet, known: &DamageSet, report: &mut VerifyReport) {
    match repo.record_damage("verify", found, known).await {
        Ok(n) => report.damage_recorded = n,
        Err(e) => {
            tracing::warn!("could not record the damage found, so backups cannot heal it yet: {e}");
            report.damage_record_failed = Some(e.into_reason());
        }
    }
}

/// Damage recorded by earlier operations that this run did not meet again (it did not
/// read those packs): still damage until a backup stores the blobs again.
fn note_recorded_damage(
    known: &DamageSet,
    found: &DamageSet,
    index: &Index,
    entries: &HashMap<ObjectId, Vec<PackBlobEntry>>,
    report: &mut VerifyReport,
) {
    let not_found_again = known.minus(found);
    let named: HashSet<String> = report.damage.iter().map(|d| d.object.clone()).collect();
    let unnamed = |pack: &ObjectId| !named.contains(&ObjectKind::Pack.key(pack));
    for pack in not_found_again.packs.iter().filter(|p| unnamed(p)) {
        if entries.contains_key(pack) {
            let reason = "recorded as damaged by an earlier operation".to_string();
            report.damage.push(Damage { object: ObjectKind::Pack.key(pack), reason, healed: false });
        }
    }
    for (pack, blob) in not_found_again.blobs.iter().filter(|(p, _)| unnamed(p)) {
        if index.position(pack).is_some() {
            let reason = format!("blob {}: recorded as damaged by an earlier operation", blob.short());
            report.damage.push(Damage { object: ObjectKind::Pack.key(pack), reason, healed: false });
        }
    }
}

/// Damage in a pack is healed when no snapshot needs a damaged blob in it that lacks a
/// healthy copy elsewhere: snapshots name blobs, not copies, so they are whole again.
/// Prune deletes the pack once nothing reads from it.
struct Healed<'a> {
    all: &'a DamageSet,
    index: &'a Index,
    entries: &'a HashMap<ObjectId, Vec<PackBlobEntry>>,
    /// Every blob a snapshot reaches; `None` when that cannot be told.
    needed: Option<&'a HashSet<BlobId>>,
}

impl Healed<'_> {
    fn mark(&self, damage: &mut [Damage]) {
        for d in damage.iter_mut() {
            let Some(pack) = pack_of_key(&d.object) else { continue };
            let Some(blobs) = self.entries.get(&pack) else { continue };
            let mut hit = blobs.iter().filter(|e| self.all.is_damaged(&pack, &e.id)).peekable();
            d.healed = hit.peek().is_some() && hit.all(|e| self.harmless(&e.id));
        }
    }

    fn harmless(&self, id: &BlobId) -> bool {
        let healthy_copy = !self.index.is_damaged(id) && self.index.get(id).is_some();
        healthy_copy || self.needed.is_some_and(|needed| !needed.contains(id))
    }
}

/// The pack a `packs/xx/<hex>` key names.
fn pack_of_key(key: &str) -> Option<ObjectId> {
    match arka_proto::layout::ObjectKey::parse(key)? {
        arka_proto::layout::ObjectKey::Content { kind: ObjectKind::Pack, id } => Some(id),
        _ => None,
    }
}

/// Objects the repository could not open (it names each with why).
fn note_damage(report: &mut VerifyReport, damaged: Vec<(String, String)>) {
    report.damage.extend(damaged.into_iter().map(|(object, reason)| Damage { object, reason, healed: false }));
}

/// Packs the index names must exist with the size it recorded; returns those that do not.
fn check_pack_sizes(index: &Index, listed: &HashMap<ObjectId, u64>, report: &mut VerifyReport) -> HashSet<ObjectId> {
    let mut bad_packs = HashSet::new();
    for (pack_id, len) in index.packs() {
        let reason = match listed.get(&pack_id) {
            None => "missing".to_string(),
            Some(&size) if size != len => format!("{size} bytes stored, the index recorded {len}"),
            Some(_) => continue,
        };
        report.damage.push(Damage { object: ObjectKind::Pack.key(&pack_id), reason, healed: false });
        bad_packs.insert(pack_id);
    }
    bad_packs
}

/// What `read_data` needs to know of the packs.
struct PackSet<'a> {
    listed: &'a HashMap<ObjectId, u64>,
    bad: &'a HashSet<ObjectId>,
    entries: &'a HashMap<ObjectId, Vec<PackBlobEntry>>,
    /// Only these (a filtered verify); `None` = every pack.
    wanted: Option<&'a HashSet<ObjectId>>,
}

/// What reading packs found.
#[derive(Default)]
struct DataRead {
    found: DamageSet,
    /// Packs whose every blob was opened (with an identity): what this run found in them
    /// replaces what earlier reports say, which may name the whole pack for one bad blob.
    opened_blob_by_blob: HashSet<ObjectId>,
}

/// Downloads `percent` of the packs, least recently checked first, and checks every blob
/// (decrypting it too when the repository was opened with an identity).
async fn read_data(
    reader: &BlobReader,
    packs: PackSet<'_>,
    percent: f64,
    state_file: Option<&std::path::Path>,
    report: &mut VerifyReport,
) -> DataRead {
    let repo = reader.repo();
    let decrypt = repo.identities.is_some();
    let mut state = ReadState::load(state_file);
    let candidates: Vec<ObjectId> = reader
        .index()
        .packs()
        .map(|(id, _)| id)
        .filter(|id| !packs.bad.contains(id) && packs.wanted.is_none_or(|w| w.contains(id)))
        .collect();
    let chosen = state.choose(candidates, percent);
    let mut results = futures::stream::iter(chosen)
        .map(|pack_id| {
            let entries = packs.entries.get(&pack_id).cloned().unwrap_or_default();
            read_pack(repo, decrypt.then_some(reader), pack_id, packs.listed[&pack_id], entries)
        })
        .buffer_unordered(PACKS_IN_FLIGHT);
    let now = jiff::Timestamp::now().as_second();
    let mut read = DataRead::default();
    while let Some(checked) = results.next().await {
        if checked.blob_by_blob {
            read.opened_blob_by_blob.insert(checked.pack_id);
        }
        report.packs_read += 1;
        report.bytes_read += checked.bytes;
        report.blobs_decrypted += checked.decrypted;
        if checked.damage.is_empty() {
            state.mark(checked.pack_id, now);
        } else {
            if checked.whole {
                read.found.packs.insert(checked.pack_id);
            }
            read.found.blobs.extend(checked.bad_blobs.iter().map(|b| (checked.pack_id, *b)));
            report.damage.extend(checked.damage);
        }
    }
    state.save(state_file);
    read
}

/// Which snapshots can no longer be restored in full, and (with an identity) which files.
async fn find_broken_snapshots(
    reader: &BlobReader,
    snapshots: &[(ObjectId, Snapshot)],
    name_files: bool,
    report: &mut VerifyReport,
) {
    let reach = Reachability { reader };
    let mut memo: HashMap<BlobId, bool> = HashMap::new();
    for (id, snap) in snapshots {
        let mut missing = Vec::new();
        if !reach.subtree_ok(snap.tree, snap.refs, &mut memo, &mut missing).await {
            report.damage.extend(missing);
            let files = if name_files { reach.damaged_files(snap).await } else { Vec::new() };
            report.broken_snapshots.push(BrokenSnapshot {
                id: id.to_hex(),
                time_unix_ns: snap.time_ns,
                source: snap.source.clone(),
                files,
            });
        }
    }
}

fn dedup_damage(damage: &mut Vec<Damage>) {
    let mut seen = HashSet::new();
    damage.retain(|d| seen.insert((d.object.clone(), d.reason.clone())));
}

struct PackCheck {
    pack_id: ObjectId,
    bytes: u64,
    decrypted: u64,
    damage: Vec<Damage>,
    bad_blobs: Vec<BlobId>,
    /// Nothing in the pack can be trusted (it is unreadable, or fails its hash and there
    /// is no identity to check its blobs one by one).
    whole: bool,
    /// Every blob was opened one by one, so `bad_blobs` is exact.
    blob_by_blob: bool,
}

impl PackCheck {
    fn new(pack_id: ObjectId, bytes: u64) -> Self {
        Self {
            pack_id,
            bytes,
            decrypted: 0,
            damage: Vec::new(),
            bad_blobs: Vec::new(),
            whole: false,
            blob_by_blob: false,
        }
    }
}

/// Downloads one pack, checks its hash and its blob table against the index, and with a
/// recovery identity opens every blob.
async fn read_pack(
    repo: &Repository,
    reader: Option<&BlobReader>,
    pack_id: ObjectId,
    len: u64,
    indexed: Vec<PackBlobEntry>,
) -> PackCheck {
    let key = ObjectKind::Pack.key(&pack_id);
    let mut check = PackCheck::new(pack_id, len);
    let all_bad = |check: &mut PackCheck, reason: String| {
        check.damage.push(Damage::new(key.clone(), reason));
        check.bad_blobs.extend(indexed.iter().map(|e| e.id));
    };
    let bytes = match repo.store.get(&key).await {
        Ok(b) => b,
        Err(e) => {
            all_bad(&mut check, e.into_reason());
            return check;
        }
    };
    let hash_ok = check_object_id(&key, &pack_id, &bytes).is_ok();
    if !hash_ok {
        check.damage.push(Damage::new(key.clone(), "content does not match its hash"));
        // Without an identity nothing inside can be trusted; with one, each blob is
        // checked on its own below, so only the blobs really hit are reported.
        if reader.is_none() {
            check.bad_blobs.extend(indexed.iter().map(|e| e.id));
            check.whole = true;
            return check;
        }
    } else {
        let table = repo.key.open_meta_with(|k| pack::decode_table(k, &bytes)).map(|(t, _)| t);
        let listed: HashSet<_> = table.iter().flatten().map(|e| (e.id, e.key, e.offset, e.stored_len)).collect();
        if let Some(e) = indexed.iter().find(|e| !listed.contains(&(e.id, e.key, e.offset, e.stored_len))) {
            all_bad(
                &mut check,
                format!("its blob table does not list blob {} that the index places in it", e.id.short()),
            );
            return check;
        }
    }
    let Some(reader) = reader else { return check };
    let data_keys = match reader.pack_data_keys(&pack_id, len).await {
        Ok(k) => k,
        Err(e) => {
            all_bad(&mut check, e.into_reason());
            return check;
        }
    };
    check.blob_by_blob = true;
    for e in &indexed {
        let loc = Location::from(e);
        // Reference and content lists are sealed under the metadata key: they need no data key.
        let data_key = match e.kind.meta_seal_label() {
            Some(_) => None,
            None => data_keys.get(e.key as usize),
        };
        let opened = match (bytes.get(e.offset as usize..e.end() as usize), data_key) {
            (Some(sealed), Some(data_key)) => open_blob(&repo.key, Some(data_key), &key, &e.id, &loc, sealed),
            (Some(sealed), None) if e.kind.meta_seal_label().is_some() => {
                open_blob(&repo.key, None, &key, &e.id, &loc, sealed)
            }
            (None, _) => {
                Err(Error::Corrupt { key: key.clone(), reason: format!("blob {} lies past the end", e.id.short()) })
            }
            (_, None) => Err(Error::Corrupt {
                key: key.clone(),
                reason: format!("blob {} names data key {} the pack lacks", e.id.short(), e.key),
            }),
        };
        match opened {
            Ok(_) => check.decrypted += 1,
            Err(err) => {
                check.damage.push(Damage::new(key.clone(), err.into_reason()));
                check.bad_blobs.push(e.id);
            }
        }
    }
    check
}

/// Walks snapshots through an index built with every known damaged copy marked.
struct Reachability<'a> {
    reader: &'a BlobReader,
}

impl Reachability<'_> {
    /// Whether a blob cannot be read intact: not indexed, or every copy is damaged.
    fn damaged(&self, id: &BlobId) -> bool {
        let index = self.reader.index();
        index.get(id).is_none() || index.is_damaged(id)
    }

    fn blob_ok(&self, id: &BlobId, missing: &mut Vec<Damage>) -> bool {
        if self.reader.index().get(id).is_none() {
            missing.push(Damage::new(format!("blob {}", id.short()), "referenced but not in the index"));
        }
        !self.damaged(id)
    }

    /// Whether a tree and everything below it is intact, walking reference lists only.
    /// Results are memoised per subtree, so trees shared by many snapshots are read once.
    fn subtree_ok<'s>(
        &'s self,
        tree: BlobId,
        refs: BlobId,
        memo: &'s mut HashMap<BlobId, bool>,
        missing: &'s mut Vec<Damage>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 's>> {
        Box::pin(async move {
            if let Some(&known) = memo.get(&refs) {
                return known;
            }
            let mut ok = self.blob_ok(&tree, missing) && self.blob_ok(&refs, missing);
            if ok {
                match self.read_refs(&refs).await {
                    Ok(list) => {
                        for d in &list.data {
                            ok &= self.blob_ok(d, missing);
                        }
                        for (sub_tree, sub_refs) in list.subtrees {
                            ok &= self.subtree_ok(sub_tree, sub_refs, memo, missing).await;
                        }
                        for content in list.lists {
                            ok &= self.content_list_ok(content, memo, missing).await;
                        }
                    }
                    Err(e) => {
                        missing.push(Damage::new(format!("reference list {}", refs.short()), e.to_string()));
                        ok = false;
                    }
                }
            }
            memo.insert(refs, ok);
            ok
        })
    }

    /// Whether a content list and every blob it names are intact; memoised like subtrees,
    /// since an hourly dump shares most of its lists with the hour before.
    async fn content_list_ok(&self, id: BlobId, memo: &mut HashMap<BlobId, bool>, missing: &mut Vec<Damage>) -> bool {
        if let Some(&known) = memo.get(&id) {
            return known;
        }
        let mut ok = self.blob_ok(&id, missing);
        if ok {
            match crate::repo::content::read_list(self.reader, &id).await {
                Ok(list) => {
                    for d in &list.data {
                        ok &= self.blob_ok(d, missing);
                    }
                }
                Err(e) => {
                    missing.push(Damage::new(format!("content list {}", id.short()), e.to_string()));
                    ok = false;
                }
            }
        }
        memo.insert(id, ok);
        ok
    }

    async fn read_refs(&self, id: &BlobId) -> Result<TreeRefs> {
        let plain = self.reader.read(id).await?;
        TreeRefs::decode(&plain)
            .map_err(|e| Error::Corrupt { key: format!("reference list {}", id.short()), reason: e.to_string() })
    }

    /// With a recovery identity: the paths of a broken snapshot's files whose data is damaged.
    async fn damaged_files(&self, snap: &Snapshot) -> Vec<String> {
        let entries = match crate::engine::restore::walk(self.reader, snap, None).await {
            Ok(entries) => entries,
            Err(e) => return vec![format!("(the directory tree itself is damaged: {e})")],
        };
        let mut files = Vec::new();
        for e in entries.iter().filter(|e| e.node.kind == arka_proto::NodeKind::File) {
            if self.file_damaged(&e.node).await {
                files.push(e.display_path());
            }
        }
        files
    }

    async fn file_damaged(&self, node: &arka_proto::Node) -> bool {
        if node.content.iter().chain(&node.lists).any(|id| self.damaged(id)) {
            return true;
        }
        // The inline IDs were checked above; what is left comes from the content lists.
        let mut ids = std::pin::pin!(crate::repo::content::content_ids(self.reader, node).skip(node.content.len()));
        while let Some(id) = ids.next().await {
            match id {
                Ok(id) if !self.damaged(&id) => {}
                _ => return true,
            }
        }
        false
    }
}

/// When each pack was last read, so partial runs rotate through the repository.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct ReadState {
    last_read: HashMap<ObjectId, i64>,
}

impl ReadState {
    fn load(path: Option<&std::path::Path>) -> Self {
        path.map(crate::repo::local_state::load).unwrap_or_default()
    }

    fn save(&self, path: Option<&std::path::Path>) {
        if let Some(path) = path {
            if crate::repo::local_state::save(path, self).is_err() {
                tracing::warn!("could not save the verify rotation state");
            }
        }
    }

    /// The `percent` of `packs` read longest ago (never-read first).
    fn choose(&self, mut packs: Vec<ObjectId>, percent: f64) -> Vec<ObjectId> {
        let n = ((packs.len() as f64) * percent.clamp(0.0, 100.0) / 100.0).ceil() as usize;
        packs.sort_by_key(|id| (self.last_read.get(id).copied().unwrap_or(i64::MIN), *id));
        packs.truncate(n);
        packs
    }

    fn mark(&mut self, pack: ObjectId, when: i64) {
        self.last_read.insert(pack, when);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_covers_every_pack_in_twenty_five_percent_runs() {
        let packs: Vec<ObjectId> = (0..10u8).map(|i| ObjectId([i; 32])).collect();
        let mut state = ReadState::default();
        let mut seen = HashSet::new();
        for day in 0..4 {
            let chosen = state.choose(packs.clone(), 25.0);
            assert_eq!(chosen.len(), 3);
            for p in chosen {
                state.mark(p, day);
                seen.insert(p);
            }
        }
        assert_eq!(seen.len(), 10, "four 25% runs must cover all ten packs");
    }
}
