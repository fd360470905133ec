//! Key changes on a real local repository: who opens which packs' data keys afterwards.

use std::sync::Arc;

use arka_proto::{RecoveryIdentities, RepoConfig};

use super::*;
use crate::engine::backup::{run, BackupOptions, Source};
use crate::repo::blob::sealed_data_keys;
use crate::store::{ObjectKind, Store};

struct Fixture {
    dir: tempfile::TempDir,
    owner: RecoveryIdentities,
}

impl Fixture {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), owner: RecoveryIdentities::generate() }
    }

    fn store(&self) -> Store {
        Store::open(self.dir.path().join("repo").to_str().unwrap(), true).unwrap()
    }

    async fn open(&self, who: &RecoveryIdentities) -> Repository {
        let copy = RecoveryIdentities::parse(&who.to_file_text()).unwrap();
        Repository::open_with_identity(self.store(), copy).await.unwrap()
    }

    /// A backup of one new file with the agent key (as the agent makes it).
    async fn backup(&self, n: u64) {
        let repo = Arc::new(self.open(&self.owner).await);
        let src = self.dir.path().join(format!("src{n}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("x.bin"), crate::platform::test_data::pseudo_random(50_000, n)).unwrap();
        let opts = BackupOptions {
            hostname: "test".into(),
            tags: vec![],
            cache_dir: Some(self.dir.path().join("cache")),
            progress: Default::default(),
            check_packs: true,
            excludes: Default::default(),
            source_name: None,
        };
        run(repo, Source::Paths(vec![src]), opts).await.unwrap();
    }

    /// How many pack data keys `who` opens, of how many.
    async fn opens(&self, who: &RecoveryIdentities) -> (usize, usize) {
        let repo = self.open(who).await;
        let (mut opened, mut all) = (0, 0);
        for (id, len) in repo.store.list(ObjectKind::Pack).await.unwrap() {
            for sealed in sealed_data_keys(&repo.store, &id, len).await.unwrap() {
                all += 1;
                opened += usize::from(repo.open_data_key(&sealed).is_ok());
            }
        }
        (opened, all)
    }
}

/// Makes a repository `init` just wrote what `init` wrote before keyrings: a config without
/// reader, keyring or generation, and no keyring or config copy of a later generation.
pub(crate) async fn make_legacy(store: &Store, repo: &Repository) {
    let legacy = RepoConfig { generation: 0, reader: None, keyring: None, ..repo.config.clone() };
    let bytes = bytes::Bytes::from(legacy.encode(&repo.key));
    for kind in [ObjectKind::Keyring, ObjectKind::ConfigCopy] {
        for (id, _) in store.list(kind).await.unwrap() {
            store.delete(&kind.key(&id)).await.unwrap();
        }
    }
    store.put_new(&crate::repo::config::copy_key(&bytes), bytes.clone()).await.unwrap();
    crate::engine::repair::config::replace_config(repo, &bytes).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_holder_reads_everything_and_a_removed_one_nothing_new() {
    let f = Fixture::new();
    let (repo, _) = Repository::init(f.store(), &f.owner.recipients(), None).await.unwrap();
    assert!(repo.config.reader.is_some() && repo.config.keyring.is_some(), "a new repository has a keyring");
    f.backup(1).await;
    let contractor = RecoveryIdentities::generate();
    let copy = RecoveryIdentities::parse(&contractor.to_file_text()).unwrap();
    assert!(Repository::open_with_identity(f.store(), copy).await.is_err(), "not a holder yet");

    let owner_repo = f.open(&f.owner).await;
    let done = add(&owner_repo, &contractor.recipients()[0], "contractor", &Progress::default()).await.unwrap();
    assert_eq!(done.config.generation, 2);
    assert_eq!(f.opens(&contractor).await, f.opens(&f.owner).await, "the new holder opens every pack");
    let listing = list(&f.open(&contractor).await).await.unwrap();
    assert_eq!(listing.holders.len(), 2);
    assert_eq!(listing.holders[1].label, "contractor");
    let e = add(&f.open(&f.owner).await, &contractor.recipients()[0], "again", &Progress::default()).await;
    assert!(e.unwrap_err().to_string().contains("already holds"));

    // The owner removes the contractor: what is written next is sealed to a new reader key.
    let (_, removed) = remove(&f.open(&f.owner).await, "contractor", &Progress::default()).await.unwrap();
    assert_eq!(removed.readable_through_epoch, 1);
    let before = f.opens(&contractor).await;
    f.backup(2).await;
    let (owner_opens, all) = f.opens(&f.owner).await;
    assert_eq!(owner_opens, all);
    assert_eq!(f.opens(&contractor).await, (before.0, all), "the removed holder opens only the older packs");
    let listing = list(&f.open(&f.owner).await).await.unwrap();
    assert_eq!((listing.holders.len(), listing.epoch), (1, 2));
    assert!(listing.removed[0].can_read_older_data);
    let e = remove(&f.open(&f.owner).await, &f.owner.recipients()[0], &Progress::default()).await;
    assert!(e.unwrap_err().to_string().contains("only holder"));
    // The removed holder cannot make changes any more.
    let stranger = RecoveryIdentities::generate().recipients().remove(0);
    let e = add(&f.open(&contractor).await, &stranger, "x", &Progress::default()).await.unwrap_err();
    assert!(e.to_string().contains("not one of the current holders"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_made_before_keyrings_escrows_its_pack_keys_on_the_first_change() {
    let f = Fixture::new();
    let (repo, _) = Repository::init(f.store(), &f.owner.recipients(), None).await.unwrap();
    make_legacy(&f.store(), &repo).await;
    f.backup(1).await;
    f.backup(2).await;
    let legacy_repo = f.open(&f.owner).await;
    assert_eq!(legacy_repo.config.reader, None);
    assert_eq!(list(&legacy_repo).await.unwrap().epoch, 0);

    let contractor = RecoveryIdentities::generate();
    add(&legacy_repo, &contractor.recipients()[0], "contractor", &Progress::default()).await.unwrap();
    let (opened, all) = f.opens(&contractor).await;
    assert!(all >= 2 && opened == all, "escrowed: {opened} of {all}");
    f.backup(3).await;
    assert_eq!(f.opens(&contractor).await.0, all + 1, "new packs are sealed to the reader key");
}
