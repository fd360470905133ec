//! Rewrap on a real local repository: afterwards a removed holder opens no pack data key,
//! the remaining holders restore everything, and a run stopped half-way loses nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arka_proto::RecoveryIdentities;

use super::*;
use crate::engine::backup::{run, BackupOptions, Source};
use crate::engine::keys::{add, list, remove};
use crate::repo::blob::BlobReader;
use crate::store::Store;

const FILE_LEN: usize = 50_000;

struct Fixture {
    dir: tempfile::TempDir,
    owner: RecoveryIdentities,
    agent_key: Option<arka_proto::AgentKey>,
}

fn copy(who: &RecoveryIdentities) -> RecoveryIdentities {
    RecoveryIdentities::parse(&who.to_file_text()).unwrap()
}

fn now_grace() -> RewrapOptions {
    RewrapOptions { grace: Duration::ZERO, dry_run: false }
}

impl Fixture {
    async fn new() -> Self {
        let mut f = Self { dir: tempfile::tempdir().unwrap(), owner: RecoveryIdentities::generate(), agent_key: None };
        f.agent_key = Some(Repository::init(f.store(), &f.owner.recipients(), None).await.unwrap().1);
        f
    }

    fn store(&self) -> Store {
        Store::open(self.dir.path().join("repo").to_str().unwrap(), true).unwrap()
    }

    async fn open(&self, who: &RecoveryIdentities) -> Arc<Repository> {
        Arc::new(Repository::open_with_identity(self.store(), copy(who)).await.unwrap())
    }

    /// A backup of `src<n>/x.bin` with the agent key, as the agent makes it (it opens
    /// `config`, so it seals to the current reader key); returns the snapshot's stats.
    async fn backup(&self, n: u64) -> arka_proto::snapshot::SnapshotStats {
        let src = self.dir.path().join(format!("src{n}"));
        std::fs::create_dir_all(&src).unwrap();
        if !src.join("x.bin").exists() {
            std::fs::write(src.join("x.bin"), crate::platform::test_data::pseudo_random(FILE_LEN, n)).unwrap();
        }
        let opts = BackupOptions {
            hostname: "test".into(),
            tags: vec![],
            cache_dir: Some(self.dir.path().join(format!("cache{n}"))),
            progress: Default::default(),
            check_packs: true,
            excludes: Default::default(),
            source_name: None,
        };
        let key = self.agent_key.clone().unwrap();
        let repo = Arc::new(Repository::open_with_agent_key(self.store(), key).await.unwrap());
        run(repo, Source::Paths(vec![src]), opts).await.unwrap().snapshot.stats
    }

    /// How many pack data keys `who` opens, of how many; none when it cannot open the
    /// repository at all.
    async fn opens(&self, who: &RecoveryIdentities) -> (usize, usize) {
        let Ok(repo) = Repository::open_with_identity(self.store(), copy(who)).await else { return (0, 0) };
        let (mut opened, mut all) = (0, 0);
        for (id, len) in repo.store.list(ObjectKind::Pack).await.unwrap() {
            for sealed in sealed_data_keys(&repo.store, &id, len).await.unwrap() {
                all += 1;
                opened += usize::from(repo.open_data_key(&sealed).is_ok());
            }
        }
        (opened, all)
    }

    /// Restores every snapshot as `who` and checks every file against its source; returns
    /// how many files were checked.
    async fn restore_all(&self, who: &RecoveryIdentities) -> usize {
        let repo = self.open(who).await;
        let index = Arc::new(repo.load_index_for_reading().await.unwrap());
        let reader = Arc::new(BlobReader::new(repo.clone(), index));
        let mut checked = 0;
        for (id, snapshot) in repo.list_snapshots().await.unwrap() {
            let target = self.dir.path().join(format!("restored-{}", id.short()));
            let summary = crate::engine::restore::restore(
                reader.clone(),
                &snapshot,
                None,
                &target,
                Default::default(),
                Default::default(),
            )
            .await
            .unwrap();
            assert!(summary.damaged.is_empty(), "{:?}", summary.damaged);
            checked += check_tree(&target);
            std::fs::remove_dir_all(&target).unwrap();
        }
        checked
    }
}

/// Every `src<n>/x.bin` under `root` holds what backup `n` wrote.
fn check_tree(root: &Path) -> usize {
    let mut n = 0;
    for entry in walkdir(root) {
        let parent = entry.parent().unwrap().file_name().unwrap().to_str().unwrap();
        let seed: u64 = parent.trim_start_matches("src").parse().unwrap();
        let want = crate::platform::test_data::pseudo_random(FILE_LEN, seed);
        assert!(std::fs::read(&entry).unwrap() == want, "restored content differs");
        n += 1;
    }
    n
}

fn walkdir(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rewrap_a_removed_holder_opens_nothing_and_the_others_read_everything() {
    let f = Fixture::new().await;
    f.backup(1).await;
    f.backup(2).await;
    let b = RecoveryIdentities::generate();
    add(&*f.open(&f.owner).await, &b.recipients()[0], "b", &Progress::default()).await.unwrap();
    remove(&*f.open(&b).await, &f.owner.recipients()[0], &Progress::default()).await.unwrap();
    f.backup(3).await; // sealed to the new reader key already
    assert!(f.opens(&f.owner).await.0 >= 2, "before rewrap the removed holder opens the older packs");

    let report = rewrap(f.open(&b).await, &now_grace(), &Progress::default()).await.unwrap();
    assert!(report.complete() && !report.partly_done(), "{report:?}");
    assert!(report.packs_found >= 2 && report.packs_rewrapped == report.packs_found, "{report:?}");
    assert_eq!(report.packs_deleted, report.packs_rewrapped);
    assert_eq!(f.opens(&f.owner).await.0, 0, "the removed holder opens no pack data key");
    let (opened, all) = f.opens(&b).await;
    assert!(all > 0 && opened == all);
    assert_eq!(f.restore_all(&b).await, 3, "every file of every snapshot");
    assert_eq!(f.store().list(ObjectKind::Keyring).await.unwrap().len(), 1, "older keyrings are deleted");
    let listing = list(&*f.open(&b).await).await.unwrap();
    assert!(!listing.removed[0].can_read_older_data);

    // Deduplication finds the rewrapped blobs, and a second run has nothing to do.
    let new = f.backup(1).await.bytes_new;
    assert!(new < FILE_LEN as u64 / 10, "the same file again stores only a directory listing: {new}");
    let again = rewrap(f.open(&b).await, &now_grace(), &Progress::default()).await.unwrap();
    assert!(again.complete() && again.packs_found == 0 && again.keyrings_deleted == 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_made_before_keyrings_keeps_no_escrow_after_rewrap() {
    let f = Fixture::new().await;
    let repo = f.open(&f.owner).await;
    crate::engine::keys::tests::make_legacy(&f.store(), &repo).await;
    f.backup(1).await;
    f.backup(2).await;
    let contractor = RecoveryIdentities::generate();
    add(&*f.open(&f.owner).await, &contractor.recipients()[0], "c", &Progress::default()).await.unwrap();

    let report = rewrap(f.open(&contractor).await, &now_grace(), &Progress::default()).await.unwrap();
    assert!(report.complete() && report.packs_found >= 2, "{report:?}");
    let repo = f.open(&contractor).await;
    let rings =
        crate::repo::keyring::open_all(&repo.store, repo.identities().unwrap(), repo.config.repo_id).await.unwrap();
    let ring = &rings.last().unwrap().ring;
    assert!(ring.escrow.is_empty() && ring.readers.len() == 1, "{ring:?}");
    // Every data key opens with the current reader key alone.
    let reader = ring.current_reader().unwrap().identity();
    for (id, len) in repo.store.list(ObjectKind::Pack).await.unwrap() {
        for sealed in sealed_data_keys(&repo.store, &id, len).await.unwrap() {
            assert!(reader.open(&sealed).is_ok());
        }
    }
    assert_eq!(f.restore_all(&contractor).await, 2);
    assert_eq!(f.restore_all(&f.owner).await, 2, "the owner still holds it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrap_stopped_after_the_new_packs_loses_nothing_and_a_later_one_finishes() {
    let f = Fixture::new().await;
    f.backup(1).await;
    let b = RecoveryIdentities::generate();
    add(&*f.open(&f.owner).await, &b.recipients()[0], "b", &Progress::default()).await.unwrap();
    remove(&*f.open(&b).await, &f.owner.recipients()[0], &Progress::default()).await.unwrap();

    // Cancelled before the first pack: nothing is condemned, everything still reads.
    let cancelled = Progress::default();
    cancelled.cancel.cancel();
    let e = rewrap(f.open(&b).await, &now_grace(), &cancelled).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert!(f.store().list(ObjectKind::PrunePlan).await.unwrap().is_empty());
    assert_eq!(f.restore_all(&b).await, 1);

    // What a run killed after storing and indexing the new packs leaves: no plan yet.
    let repo = f.open(&b).await;
    let reader = super::super::starting_ring(&repo, &Progress::default()).await.unwrap().current_reader().cloned();
    let found = scan(&repo, reader.as_ref(), &Default::default()).await.unwrap();
    let done = reseal::reseal(&repo, found.to_rewrap, &Progress::default()).await.unwrap();
    assert!(done.packs_written > 0 && !done.done.is_empty());
    assert_eq!(f.restore_all(&b).await, 1, "old and new copies both read");

    // A run with a grace period condemns the old packs, which then wait for prune.
    let opts = RewrapOptions { grace: Duration::from_secs(1), dry_run: false };
    let waiting = rewrap(f.open(&b).await, &opts, &Progress::default()).await.unwrap();
    assert!(waiting.packs_waiting > 0 && !waiting.old_keys_retired && !waiting.partly_done(), "{waiting:?}");
    assert!(waiting.delete_after_ns.is_some());
    assert_eq!(f.restore_all(&b).await, 1, "readers use the new copies");
    assert!(f.opens(&f.owner).await.0 > 0, "the old packs are still stored, and the keys kept");

    // Once the grace period is over, the next run sweeps the plan and retires the keys.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let done = rewrap(f.open(&b).await, &now_grace(), &Progress::default()).await.unwrap();
    assert!(done.complete() && done.packs_found == 0 && done.packs_deleted > 0, "{done:?}");
    assert_eq!(f.opens(&f.owner).await.0, 0);
    assert_eq!(f.restore_all(&b).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_blob_stays_where_it_is_and_the_old_keys_are_kept() {
    let f = Fixture::new().await;
    f.backup(1).await;
    f.backup(2).await;
    let b = RecoveryIdentities::generate();
    add(&*f.open(&f.owner).await, &b.recipients()[0], "b", &Progress::default()).await.unwrap();
    remove(&*f.open(&b).await, &f.owner.recipients()[0], &Progress::default()).await.unwrap();
    // Damage the Data blob of the first backup's pack.
    let repo = f.open(&b).await;
    let segments = repo.load_segments().await.unwrap();
    let (pack, entry) = segments
        .iter()
        .flat_map(|(_, s)| &s.packs)
        .flat_map(|p| p.blobs.iter().map(move |e| (p.pack_id, *e)))
        .find(|(_, e)| e.kind == arka_proto::pack::BlobKind::Data)
        .unwrap();
    let path = f.dir.path().join("repo").join(ObjectKind::Pack.key(&pack));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[entry.offset as usize + 3] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let report = rewrap(f.open(&b).await, &now_grace(), &Progress::default()).await.unwrap();
    assert!(report.partly_done() && !report.old_keys_retired, "{report:?}");
    assert_eq!(report.blobs_damaged, 1);
    assert_eq!(report.packs_left.len(), 1);
    assert!(report.packs_rewrapped >= 1, "the other packs are rewrapped: {report:?}");
    assert!(f.store().get_opt(&ObjectKind::Pack.key(&pack)).await.unwrap().is_some(), "left where it is");
    assert!(list(&*f.open(&b).await).await.unwrap().removed[0].can_read_older_data);
}
