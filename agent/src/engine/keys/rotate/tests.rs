//! Rotating the agent key of a real local repository: the old key is refused, the new one
//! reads everything, and what the old key writes afterwards is refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arka_proto::{AgentKey, RecoveryIdentities};

use super::*;
use crate::engine::backup::{run, BackupOptions, Source};
use crate::error::ErrorKind;
use crate::store::{ObjectKind, Store, CONFIG_KEY};

struct Fixture {
    dir: tempfile::TempDir,
    owner: RecoveryIdentities,
}

impl Fixture {
    fn store(&self) -> Store {
        Store::open(self.dir.path().join("repo").to_str().unwrap(), true).unwrap()
    }

    async fn with_identity(&self) -> Result<Repository> {
        let copy = RecoveryIdentities::parse(&self.owner.to_file_text()).unwrap();
        Repository::open_with_identity(self.store(), copy).await
    }

    async fn with_key(&self, key: &AgentKey) -> Result<Repository> {
        Repository::open_with_agent_key(self.store(), key.clone()).await
    }

    async fn backup(&self, key: &AgentKey, n: u64) {
        let repo = Arc::new(self.with_key(key).await.unwrap());
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

    /// Rotates with the identity; returns the new key.
    async fn rotate(&self) -> AgentKey {
        let saved = Mutex::new(None);
        let repo = self.with_identity().await.unwrap();
        let done = rotate_agent(&repo, |k| {
            *saved.lock().unwrap() = Some(k.clone());
            Ok(())
        })
        .await
        .unwrap();
        let saved = saved.into_inner().unwrap().unwrap();
        assert_eq!(saved.id(), done.new.id());
        saved
    }

    /// Sets when the local store says `key` was stored.
    fn stored_at(&self, key: &str, at: SystemTime) {
        let f = std::fs::File::options().write(true).open(self.dir.path().join("repo").join(key)).unwrap();
        f.set_modified(at).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_key_is_refused_and_what_it_writes_afterwards_is_not_used() {
    let f = Fixture { dir: tempfile::tempdir().unwrap(), owner: RecoveryIdentities::generate() };
    let (_, a) = Repository::init(f.store(), &f.owner.recipients(), None).await.unwrap();
    f.backup(&a, 1).await;
    let b = f.rotate().await;
    assert!(b.supersedes(&a));

    let e = f.with_key(&a).await.err().expect("the retired key is refused");
    assert_eq!(e.kind(), ErrorKind::Key);
    assert!(e.to_string().contains("retired") && e.to_string().contains(&a.id()), "{e}");

    // The new key reads what the old one wrote, and writes on: dedup holds.
    let repo = f.with_key(&b).await.unwrap();
    assert_eq!(repo.config.retired_agent_keys[0].id, a.id());
    let before = repo.list_snapshots().await.unwrap();
    assert_eq!(before.len(), 1);
    let packed = |s: Store| async move { s.list(ObjectKind::Pack).await.unwrap().iter().map(|(_, n)| n).sum::<u64>() };
    let before_bytes = packed(f.store()).await;
    f.backup(&b, 1).await;
    let repo = f.with_key(&b).await.unwrap();
    assert_eq!(repo.list_snapshots().await.unwrap().len(), 2);
    // The file's 50 000 random bytes are not stored again (blob IDs did not change).
    let added = packed(f.store()).await - before_bytes;
    assert!(added < 20_000, "the second backup added {added} bytes");

    // A snapshot the old key seals now: refused once the store records it past the grace.
    let planted = repo.put_object(ObjectKind::Snapshot, before[0].1.encode(a.meta_key())).await.unwrap();
    f.stored_at(&ObjectKind::Snapshot.key(&planted), SystemTime::now() + Duration::from_secs(3600));
    let timeline = repo.timeline().await.unwrap();
    assert_eq!(timeline.objects.len(), 2);
    assert_eq!(timeline.damaged.len(), 1);
    assert!(timeline.damaged[0].0.contains(&planted.to_hex()) && timeline.damaged[0].1.contains("retired"));
    assert!(repo.load_snapshot(planted).await.is_err(), "refused when loaded by ID too");
    // Within the grace (the old key's last backup racing the rotation) it still counts.
    f.stored_at(&ObjectKind::Snapshot.key(&planted), SystemTime::now());
    assert_eq!(repo.timeline().await.unwrap().objects.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_config_the_identity_picks_the_successor_and_the_old_key_is_still_refused() {
    let f = Fixture { dir: tempfile::tempdir().unwrap(), owner: RecoveryIdentities::generate() };
    let (_, a) = Repository::init(f.store(), &f.owner.recipients(), None).await.unwrap();
    f.backup(&a, 1).await;
    let b = f.rotate().await;
    let c = f.rotate().await;
    f.store().delete(CONFIG_KEY).await.unwrap();
    // Copies under a, b and c: c carries b's and a's metadata keys, so it supersedes both.
    let repo = f.with_identity().await.unwrap();
    assert_eq!(repo.key.id(), c.id());
    assert_eq!(repo.list_snapshots().await.unwrap().len(), 1);
    assert_eq!(f.with_key(&c).await.unwrap().config.generation, repo.config.generation);
    for old in [&a, &b] {
        let e = f.with_key(old).await.err().expect("a retired key is refused from the copies too");
        assert_eq!(e.kind(), ErrorKind::Key, "{e}");
    }
    let listing = crate::engine::keys::list(&repo).await.unwrap();
    let states: Vec<(&str, &str)> = listing.agent_keys.iter().map(|k| (k.id.as_str(), k.state.as_str())).collect();
    assert_eq!(states, [(c.id().as_str(), "current"), (b.id().as_str(), "retired"), (a.id().as_str(), "retired")]);
}
