//! Opening from the config's copy: a missing or damaged `config` loses nothing, and a
//! copy planted by someone who can only append never opens the repository.

use arka_proto::{AgentKey, ChunkerParams, IndexSegment, Recipients, RecoveryIdentities, RepoConfig};

use super::*;
use crate::error::ErrorKind;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    key: AgentKey,
    identities: RecoveryIdentities,
    config: Bytes,
}

impl Fixture {
    fn ids(&self) -> RecoveryIdentities {
        RecoveryIdentities::parse(&self.identities.to_file_text()).unwrap()
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("repo").to_str().unwrap(), true).unwrap();
    let identities = RecoveryIdentities::generate();
    let (_, key) = Repository::init(store.clone(), &identities.recipients(), None).await.unwrap();
    let config = store.get_opt(CONFIG_KEY).await.unwrap().unwrap();
    Fixture { _dir: dir, store, key, identities, config }
}

/// What an attacker with an append-only token can write: a config naming the same
/// repository and recipients (both public), carrying an agent key of their own.
async fn plant_forged_copy(f: &Fixture) -> (String, AgentKey) {
    let mut raw = zeroize::Zeroizing::new(AgentKey::generate().to_raw());
    raw[..32].copy_from_slice(&f.key.repo_id().0);
    let forged_key = AgentKey::from_raw(&raw[..]).unwrap();
    let recipients = Recipients::parse(&f.identities.recipients()).unwrap();
    let (real, _, _) = RepoConfig::decode_unauthenticated(&f.config).unwrap();
    let forged = RepoConfig {
        chunker_files: ChunkerParams::FILES,
        sealed_agent_key: recipients.seal(&forged_key.to_raw()),
        ..real
    };
    let bytes = forged.encode(&forged_key);
    let key = copy_key(&bytes);
    assert!(f.store.put_new(&key, bytes.into()).await.unwrap());
    (key, forged_key)
}

fn flipped(bytes: &[u8], at: usize) -> Bytes {
    let mut b = bytes.to_vec();
    b[at] ^= 0x40;
    b.into()
}

async fn replace_config(f: &Fixture, bytes: Option<Bytes>) {
    f.store.delete(CONFIG_KEY).await.unwrap();
    if let Some(b) = bytes {
        assert!(f.store.put_new(CONFIG_KEY, b).await.unwrap());
    }
}

#[tokio::test]
async fn init_writes_a_copy_byte_identical_to_config() {
    let f = fixture().await;
    let copy = f.store.get_opt(&copy_key(&f.config)).await.unwrap().unwrap();
    assert_eq!(copy, f.config);
    assert_eq!(f.store.list(ObjectKind::ConfigCopy).await.unwrap().len(), 1);
    let repo = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.unwrap();
    assert_eq!(*repo.config_origin(), ConfigOrigin::Config);
}

#[tokio::test]
async fn a_missing_or_damaged_config_opens_from_its_copy_with_either_key() {
    let f = fixture().await;
    let n = f.config.len();
    // Missing, then a flip in the magic, the CBOR body, the sealed key and the MAC.
    for damage in [None, Some(0), Some(20), Some(n / 2), Some(n - 5)] {
        replace_config(&f, damage.map(|at| flipped(&f.config, at))).await;
        let by_key = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.unwrap();
        let by_identity = Repository::open_with_identity(f.store.clone(), f.ids()).await.unwrap();
        for repo in [&by_key, &by_identity] {
            assert_eq!(*repo.config_bytes(), f.config, "{damage:?}");
            let ConfigOrigin::Copy { key, why } = repo.config_origin() else { panic!("{damage:?}: not from the copy") };
            assert_eq!(*key, copy_key(&f.config));
            assert!(why.contains(if damage.is_none() { "missing" } else { "damaged" }), "{why}");
        }
        assert_eq!(by_identity.key.to_raw(), f.key.to_raw());
    }
}

#[tokio::test]
async fn a_wrong_key_is_still_a_wrong_key() {
    let f = fixture().await;
    let e = Repository::open_with_agent_key(f.store.clone(), AgentKey::generate()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Key, "{e}");
    let e = Repository::open_with_identity(f.store.clone(), RecoveryIdentities::generate()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Key, "{e}");
    // With nothing at all: not a repository.
    replace_config(&f, None).await;
    f.store.delete(&copy_key(&f.config)).await.unwrap();
    let e = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NoRepository, "{e}");
}

#[tokio::test]
async fn a_forged_copy_never_opens_the_repository_with_the_agent_key() {
    let f = fixture().await;
    let (_, forged_key) = plant_forged_copy(&f).await;
    // The intact config wins over any copy.
    let repo = Repository::open_with_identity(f.store.clone(), f.ids()).await.unwrap();
    assert_eq!(repo.key.to_raw(), f.key.to_raw());
    replace_config(&f, None).await;
    let repo = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.unwrap();
    assert_eq!(*repo.config_bytes(), f.config);
    // Only the real copy gone: the forged one does not authenticate under the real key.
    f.store.delete(&copy_key(&f.config)).await.unwrap();
    let e = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NoRepository, "{e}");
    // The forger's own key opens only their copy, which is no use to them: it reads nothing.
    assert!(Repository::open_with_agent_key(f.store.clone(), forged_key).await.is_ok());
}

#[tokio::test]
async fn with_an_identity_disagreeing_copies_are_told_apart_by_the_repositorys_objects() {
    let f = fixture().await;
    let (forged, _) = plant_forged_copy(&f).await;
    // Damaged beyond what any key authenticates.
    replace_config(&f, Some(flipped(&f.config, f.config.len() - 1))).await;
    // No snapshot or index yet: nothing tells the copies apart, so opening is refused.
    let e = Repository::open_with_identity(f.store.clone(), f.ids()).await.err().unwrap();
    let text = e.to_string();
    assert!(text.contains(&forged) && text.contains(&copy_key(&f.config)), "{text}");
    assert!(text.contains("--agent-key"), "{text}");

    // The repository's own index segment (written with the real key) decides.
    let repo = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.unwrap();
    repo.put_object(ObjectKind::Index, IndexSegment::default().encode(f.key.meta_key())).await.unwrap();
    // A junk object beside it does not change that.
    repo.put_object(ObjectKind::Snapshot, b"junk".to_vec()).await.unwrap();
    let opened = Repository::open_with_identity(f.store.clone(), f.ids()).await.unwrap();
    assert_eq!(opened.key.to_raw(), f.key.to_raw());
    assert_eq!(*opened.config_bytes(), f.config);
}

#[tokio::test]
async fn a_missing_copy_is_written_once_and_a_planted_one_does_not_stand_in() {
    let f = fixture().await;
    f.store.delete(&copy_key(&f.config)).await.unwrap();
    plant_forged_copy(&f).await;
    let repo = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.unwrap();
    assert!(repo.ensure_config_copy().await.unwrap());
    assert_eq!(f.store.get_opt(&copy_key(&f.config)).await.unwrap().unwrap(), f.config);
    // Once per opened repository, and never rewritten.
    assert!(!repo.ensure_config_copy().await.unwrap());
    let again = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.unwrap();
    assert!(!again.ensure_config_copy().await.unwrap());
    assert_eq!(f.store.list(ObjectKind::ConfigCopy).await.unwrap().len(), 2);
}

/// Ransomware with the agent key and an append-only token can plant a copy that
/// authenticates (naming its own recipient, say); it is not used while the one stored
/// first is there.
#[tokio::test]
async fn of_copies_authenticating_under_one_key_the_oldest_stored_is_used() {
    let f = fixture().await;
    // The store's clock is coarse (a few ms on local disks): let it tick.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let attacker = RecoveryIdentities::generate();
    let mut recipients = f.identities.recipients();
    recipients.extend(attacker.recipients());
    let (real, _, _) = RepoConfig::decode_unauthenticated(&f.config).unwrap();
    let swapped = RepoConfig {
        recipients: recipients.clone(),
        sealed_agent_key: Recipients::parse(&recipients).unwrap().seal(&f.key.to_raw()),
        ..real
    }
    .encode(&f.key);
    f.store.put_new(&copy_key(&swapped), swapped.into()).await.unwrap();
    replace_config(&f, None).await;
    let by_key = Repository::open_with_agent_key(f.store.clone(), f.key.clone()).await.unwrap();
    let by_identity = Repository::open_with_identity(f.store.clone(), f.ids()).await.unwrap();
    for repo in [by_key, by_identity] {
        assert_eq!(*repo.config_bytes(), f.config);
        assert_eq!(repo.config.recipients, f.identities.recipients());
    }
}
