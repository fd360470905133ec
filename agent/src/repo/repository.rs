//! A repository opened with a key: config, index, snapshots, and writing new ones.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;

use arka_proto::{
    AgentKey, ChunkerParams, DataKey, IndexSegment, ObjectId, PrunePlan, Recipients, RecoveryIdentities, RepoConfig,
    Snapshot,
};

use crate::error::{Error, ErrorKind, Result};
use crate::repo::config::{self, ConfigOrigin, OpenedConfig};
use crate::repo::damage::DamageSet;
use crate::repo::index::Index;
use crate::repo::keyring::{self, PackKeys};
use crate::repo::timeline::{self, TimedSnapshot};
use crate::store::{Listed, ObjectKind, Store, CONFIG_KEY};
use arka_proto::keyring::{Holder, Keyring, ReaderKey};

/// Default pack size: large enough to keep object counts and S3 PUT costs low, small
/// enough that a handful in flight keeps memory modest.
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;
const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// How many objects to fetch at once while loading the index or snapshot list.
pub(crate) const LOAD_CONCURRENCY: usize = 8;

pub struct Repository {
    pub store: Store,
    pub config: RepoConfig,
    pub key: AgentKey,
    /// What new packs' data keys are sealed to: the config's reader key, or its recipients
    /// in a repository without one.
    pub recipients: Recipients,
    /// Present only when opened with a recovery identity (restore, dump, ls).
    pub identities: Option<RecoveryIdentities>,
    /// What opens pack data keys: the identities and every keyring they open.
    pack_keys: Option<PackKeys>,
    /// The key generation at which the identity stopped being a holder, when it opened only
    /// an older copy of the config: it reads what was written before, nothing after.
    removed_at: Option<u32>,
    config_bytes: Bytes,
    config_origin: ConfigOrigin,
    /// Set once the config's copy is known to exist (see `ensure_config_copy`).
    copy_known: AtomicBool,
}

impl Repository {
    /// Creates a repository for `recipients` and returns its new agent key.
    pub async fn init(store: Store, recipients: &[String], pack_size: Option<u32>) -> Result<(Self, AgentKey)> {
        if store.get_opt(CONFIG_KEY).await?.is_some() {
            return Err(Error::AlreadyARepository(store.display.clone()));
        }
        let recips = Recipients::parse(recipients)?;
        let key = AgentKey::generate();
        // The first keyring: pack data keys are sealed to its reader key (FORMAT.md §3.6).
        let now = jiff::Timestamp::now().as_second();
        let ring = Keyring {
            repo_id: key.repo_id(),
            generation: 1,
            created: now,
            holders: recips
                .to_strings()
                .into_iter()
                .map(|recipient| Holder { recipient, label: String::new(), added: now })
                .collect(),
            removed: Vec::new(),
            readers: vec![ReaderKey::generate(1, now)],
            escrow: Vec::new(),
        };
        let sealed_ring = ring.seal()?;
        let keyring = ObjectId::of(&sealed_ring);
        store.put_new(&ObjectKind::Keyring.key(&keyring), sealed_ring.into()).await?;
        let config = RepoConfig {
            repo_id: key.repo_id(),
            created: now,
            chunker_files: ChunkerParams::FILES,
            chunker_stream: ChunkerParams::STREAM,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            pack_size: pack_size.unwrap_or(DEFAULT_PACK_SIZE),
            recipients: recips.to_strings(),
            sealed_agent_key: recips.seal(&key.to_raw()),
            generation: 1,
            reader: ring.current_reader().map(ReaderKey::recipient),
            keyring: Some(keyring),
            retired_agent_keys: Vec::new(),
        };
        let bytes = Bytes::from(config.encode(&key));
        // Validate what we are about to write with the same decoder readers use.
        RepoConfig::decode(&bytes, &key)?;
        if !store.put_new(CONFIG_KEY, bytes.clone()).await? {
            return Err(Error::AlreadyARepository(store.display.clone()));
        }
        // The second copy, so that losing `config` loses nothing (FORMAT.md §5.1).
        store.put_new(&config::copy_key(&bytes), bytes.clone()).await?;
        let opened = OpenedConfig { config, bytes, key: key.clone(), origin: ConfigOrigin::Config };
        let repo = Self::from_parts(store, opened, None)?;
        repo.copy_known.store(true, Ordering::Relaxed);
        Ok((repo, key))
    }

    /// Opens with the agent key: `config`, or its copy if `config` is missing or damaged.
    pub async fn open_with_agent_key(store: Store, key: AgentKey) -> Result<Self> {
        let opened = config::open_with_key(&store, key).await?;
        Self::from_parts(store, opened, None)
    }

    /// Opens with a recovery identity alone: the agent key is unsealed from the config (or
    /// from a copy, chosen as `repo::config` documents).
    pub async fn open_with_identity(store: Store, identities: RecoveryIdentities) -> Result<Self> {
        let opened = config::open_with_identity(&store, &identities).await?;
        let rings = keyring::open_all(&store, &identities, opened.config.repo_id).await?;
        let pack_keys = keyring::pack_keys(&identities, &rings);
        let removed_at = removed_at(&store, &opened).await?;
        let mut repo = Self::from_parts(store, opened, Some(identities))?;
        repo.pack_keys = Some(pack_keys);
        repo.removed_at = removed_at;
        Ok(repo)
    }

    pub(crate) fn from_parts(
        store: Store,
        opened: OpenedConfig,
        identities: Option<RecoveryIdentities>,
    ) -> Result<Self> {
        let recipients = opened.config.sealing_recipients()?;
        // Opened from a copy: the copy exists.
        let copy_known = AtomicBool::new(opened.origin != ConfigOrigin::Config);
        Ok(Self {
            store,
            config: opened.config,
            key: opened.key,
            recipients,
            pack_keys: identities.as_ref().map(PackKeys::of),
            removed_at: None,
            identities,
            config_bytes: opened.bytes,
            config_origin: opened.origin,
            copy_known,
        })
    }

    /// The exact bytes of the config this repository was opened with (authenticated).
    pub fn config_bytes(&self) -> &Bytes {
        &self.config_bytes
    }

    /// Whether the config came from `config` or from a copy.
    pub fn config_origin(&self) -> &ConfigOrigin {
        &self.config_origin
    }

    /// Writes the config's copy if the store lacks it: repositories made before copies
    /// existed get theirs at their next write operation. One listing, at most once per
    /// opened repository; returns whether a copy was written. Whether a copy is there is
    /// decided by its name (the hash of these authenticated bytes), so a copy someone else
    /// planted does not stand in for it.
    pub async fn ensure_config_copy(&self) -> Result<bool> {
        if self.copy_known.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let id = ObjectId::of(&self.config_bytes);
        let present = self.store.list(ObjectKind::ConfigCopy).await?.iter().any(|(listed, _)| *listed == id);
        let written =
            !present && self.store.put_new(&ObjectKind::ConfigCopy.key(&id), self.config_bytes.clone()).await?;
        self.copy_known.store(true, Ordering::Relaxed);
        Ok(written)
    }

    /// Opens one sealed data key of a pack header with the identities and the keyrings. A
    /// key sealed to nothing the identity has (a removed holder's, a stranger's) is a key
    /// error, not damage: recording it would make backups store intact data again.
    pub fn open_data_key(&self, sealed: &[u8]) -> Result<DataKey> {
        let keys = self
            .pack_keys
            .as_ref()
            .ok_or_else(|| Error::Usage("this operation needs a recovery identity (--identity)".into()))?;
        match keys.open(sealed) {
            Err(arka_proto::Error::NoMatchingIdentity) if self.removed_at.is_some() => Err(Error::Key(format!(
                "this identity was removed from the repository's holders (key generation {}): it cannot read \
                 what was written since; use a current holder's identity (`arka key list`)",
                self.removed_at.unwrap_or_default()
            ))),
            Err(arka_proto::Error::NoMatchingIdentity) => Err(Error::Key(
                "a pack's data keys do not open with this identity: it is not one of the repository's current \
                 holders (a removed holder reads nothing after `arka key rewrap`)"
                    .into(),
            )),
            other => Ok(other?),
        }
    }

    pub fn identities(&self) -> Result<&RecoveryIdentities> {
        self.identities
            .as_ref()
            .ok_or_else(|| Error::Usage("this operation needs a recovery identity (--identity)".into()))
    }

    /// Loads every index segment, the prune plans that condemn packs, and the recorded
    /// damage. A segment, plan or report that fails to authenticate is skipped (FORMAT.md
    /// §11.1 says why that is safe).
    pub async fn load_index(&self) -> Result<Index> {
        let condemned = self.load_plans().await?.iter().flat_map(|(_, _, p)| p.packs.iter().copied()).collect();
        let damage = self.load_damage().await?;
        self.index_with(condemned, &damage).await
    }

    /// The index for reading only (restore, dump, ls). Condemned packs and damage reports
    /// only steer which copy is read, so when they cannot even be fetched that is a
    /// warning here: they must not block a restore.
    pub async fn load_index_for_reading(&self) -> Result<Index> {
        let condemned = match self.load_plans().await {
            Ok(plans) => plans.iter().flat_map(|(_, _, p)| p.packs.iter().copied()).collect(),
            Err(e) => {
                tracing::warn!("ignoring the prune plans, which cannot be read: {e}");
                Default::default()
            }
        };
        let damage = self.load_damage().await.unwrap_or_else(|e| {
            tracing::warn!("ignoring the damage reports, which cannot be read: {e}");
            DamageSet::default()
        });
        self.index_with(condemned, &damage).await
    }

    /// The index of every segment that opens, with `condemned` packs and `damage` marked.
    async fn index_with(&self, condemned: std::collections::HashSet<ObjectId>, damage: &DamageSet) -> Result<Index> {
        let segments = self.load_segments().await?;
        Ok(Index::build(&condemned, damage, segments.iter().map(|(_, s)| s)))
    }

    /// Every index segment that opens, with its ID; damaged ones are skipped with a warning.
    pub async fn load_segments(&self) -> Result<Vec<(ObjectId, IndexSegment)>> {
        Ok(self.segments_and_damage().await?.objects)
    }

    /// Every index segment that opens, and the damaged ones by name.
    pub async fn segments_and_damage(&self) -> Result<Loaded<(ObjectId, IndexSegment)>> {
        let listed = self.store.list_detailed(ObjectKind::Index).await?;
        let loaded = futures::stream::iter(listed)
            .map(|l| async move {
                (
                    ObjectKind::Index.key(&l.id),
                    self.load_segment_at(l.id, Some(l.stored_at_ns)).await.map(|s| (l.id, s)),
                )
            })
            .buffer_unordered(LOAD_CONCURRENCY);
        Loaded::collect(loaded).await
    }

    /// Every pending prune plan that opens, with its ID and the time the store recorded it;
    /// damaged ones are skipped with a warning (their packs are then never deleted).
    pub async fn load_plans(&self) -> Result<Vec<(ObjectId, Listed, PrunePlan)>> {
        Ok(self.plans_and_damage().await?.objects)
    }

    /// Every pending prune plan that opens, and the damaged ones by name.
    pub async fn plans_and_damage(&self) -> Result<Loaded<(ObjectId, Listed, PrunePlan)>> {
        let listed = self.store.list_detailed(ObjectKind::PrunePlan).await?;
        let loaded = futures::stream::iter(listed)
            .map(|l| async move {
                let key = ObjectKind::PrunePlan.key(&l.id);
                let plan = async {
                    let bytes = self.store.get(&key).await?;
                    check_object_id(&key, &l.id, &bytes)?;
                    self.open_meta(ObjectKind::PrunePlan, &l.id, Some(l.stored_at_ns), |k| PrunePlan::decode(k, &bytes))
                        .await
                }
                .await;
                (key, plan.map(|p| (l.id, l, p)))
            })
            .buffer_unordered(LOAD_CONCURRENCY);
        Loaded::collect(loaded).await
    }

    /// All snapshots that open, by effective time (oldest first); damaged ones are skipped
    /// with a warning.
    pub async fn list_snapshots(&self) -> Result<Vec<(ObjectId, Snapshot)>> {
        Ok(self.timeline().await?.objects.into_iter().map(|t| (t.id, t.snapshot)).collect())
    }

    /// All snapshots that open, with when the storage recorded each, by effective time
    /// (oldest first) and judged (`repo::timeline`); and the damaged ones by name.
    pub async fn timeline(&self) -> Result<Loaded<TimedSnapshot>> {
        let listed = self.store.list_detailed(ObjectKind::Snapshot).await?;
        let loaded = futures::stream::iter(listed)
            .map(|l| async move {
                let opened = self
                    .load_snapshot_at(l.id, Some(l.stored_at_ns))
                    .await
                    .map(|s| TimedSnapshot::new(l.id, s, l.stored_at_ns));
                (ObjectKind::Snapshot.key(&l.id), opened)
            })
            .buffer_unordered(LOAD_CONCURRENCY);
        let mut all = Loaded::collect(loaded).await?;
        all.objects = timeline::assess(all.objects);
        Ok(all)
    }

    /// Reads, checks and opens one index segment.
    pub async fn load_segment(&self, id: ObjectId) -> Result<IndexSegment> {
        self.load_segment_at(id, None).await
    }

    /// Like `load_segment`, given when the store recorded it (from a listing).
    async fn load_segment_at(&self, id: ObjectId, stored_at_ns: Option<i64>) -> Result<IndexSegment> {
        let key = ObjectKind::Index.key(&id);
        let bytes = self.store.get(&key).await?;
        check_object_id(&key, &id, &bytes)?;
        self.open_meta(ObjectKind::Index, &id, stored_at_ns, |k| IndexSegment::decode(k, &bytes)).await
    }

    /// Reads, checks and opens one snapshot.
    pub async fn load_snapshot(&self, id: ObjectId) -> Result<Snapshot> {
        self.load_snapshot_at(id, None).await
    }

    /// Like `load_snapshot`, given when the store recorded it (from a listing).
    async fn load_snapshot_at(&self, id: ObjectId, stored_at_ns: Option<i64>) -> Result<Snapshot> {
        let key = ObjectKind::Snapshot.key(&id);
        let bytes = self.store.get(&key).await?;
        check_object_id(&key, &id, &bytes)?;
        self.open_meta(ObjectKind::Snapshot, &id, stored_at_ns, |k| Snapshot::decode(k, &bytes)).await
    }

    /// Writes a content-addressed object of `kind`; returns its ID.
    pub async fn put_object(&self, kind: ObjectKind, bytes: Vec<u8>) -> Result<ObjectId> {
        let id = ObjectId::of(&bytes);
        self.store.put_new(&kind.key(&id), bytes.into()).await?;
        Ok(id)
    }
}

/// When `config` is of a later generation than the copy the identity opened, and its
/// sealed agent key does not open with the identity: the generation it was removed at.
async fn removed_at(store: &Store, opened: &OpenedConfig) -> Result<Option<u32>> {
    if opened.origin == ConfigOrigin::Config {
        return Ok(None);
    }
    let Some(bytes) = store.get_opt(CONFIG_KEY).await? else { return Ok(None) };
    let Ok((main, _, _)) = RepoConfig::decode_unauthenticated(&bytes) else { return Ok(None) };
    let removed = main.repo_id == opened.config.repo_id && main.generation > opened.config.generation;
    if removed {
        tracing::warn!(
            "this identity is no longer one of the repository's holders (removed by key generation {}): it reads \
             only what was written before",
            main.generation
        );
    }
    Ok(removed.then_some(main.generation))
}

/// Storage must return the bytes whose hash names the object; anything else is corruption
/// (bit rot, a buggy or malicious store) and is reported, never used.
pub fn check_object_id(key: &str, id: &ObjectId, bytes: &[u8]) -> Result<()> {
    if ObjectId::of(bytes) != *id {
        return Err(Error::Corrupt { key: key.into(), reason: "content does not match its hash".into() });
    }
    Ok(())
}

/// The objects of one kind that opened, and those that did not: one damaged object (bit
/// rot, or junk an append-only token wrote) must not fail the whole repository.
pub struct Loaded<T> {
    pub objects: Vec<T>,
    /// Object key and why it could not be opened.
    pub damaged: Vec<(String, String)>,
}

impl<T> Loaded<T> {
    /// The IDs of the objects that did not open.
    pub fn damaged_ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.damaged.iter().filter_map(|(key, _)| ObjectId::from_hex(key.rsplit('/').next()?).ok())
    }

    /// Sorts loads into objects and damaged ones. A failure to read (the store) is not
    /// damage and fails the whole load: skipping what could not be fetched would make an
    /// outage look like missing snapshots.
    pub(crate) async fn collect(loads: impl futures::Stream<Item = (String, Result<T>)>) -> Result<Loaded<T>> {
        futures::pin_mut!(loads);
        let mut out = Loaded { objects: Vec::new(), damaged: Vec::new() };
        while let Some((key, result)) = loads.next().await {
            match result {
                Ok(object) => out.objects.push(object),
                Err(e) if e.kind() == ErrorKind::Damaged => {
                    tracing::warn!("skipping {key}, which cannot be opened: {e}; `arka verify` lists it");
                    out.damaged.push((key, e.into_reason()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
