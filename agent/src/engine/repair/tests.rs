//! `repair config` on a local repository: dry runs write nothing, repairs put back the
//! exact bytes, and each repair is in the audit trail.

use std::sync::Arc;

use bytes::Bytes;

use arka_proto::{AgentKey, Operation, RecoveryIdentities};

use super::ConfigState;
use crate::engine::{Actor, Session};
use crate::repo::config::copy_key;
use crate::repo::Repository;
use crate::store::{ObjectKind, Store, CONFIG_KEY};

async fn setup(dir: &std::path::Path) -> (Store, AgentKey, Bytes) {
    let store = Store::open(dir.join("repo").to_str().unwrap(), true).unwrap();
    let recipients = RecoveryIdentities::generate().recipients();
    let (_, key) = Repository::init(store.clone(), &recipients, None).await.unwrap();
    let config = store.get_opt(CONFIG_KEY).await.unwrap().unwrap();
    (store, key, config)
}

async fn session(dir: &std::path::Path, store: &Store, key: &AgentKey) -> Session {
    let repo = Repository::open_with_agent_key(store.clone(), key.clone()).await.unwrap();
    Session::new(Arc::new(repo), Actor::cli(), dir.join("cache"))
}

async fn repair_records(session: &Session) -> Vec<String> {
    let (log, _) = crate::engine::audit::verify(session.repo(), session.cache_dir()).await.unwrap();
    log.records.into_iter().filter(|(_, r)| r.operation == Operation::Repair).filter_map(|(_, r)| r.detail).collect()
}

#[tokio::test]
async fn a_missing_config_is_written_back_byte_identical_and_a_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, config) = setup(dir.path()).await;
    store.delete(CONFIG_KEY).await.unwrap();
    let s = session(dir.path(), &store, &key).await;

    let dry = s.repair_config(true).await.unwrap();
    assert_eq!((dry.config.clone(), dry.copy_present, dry.config_written), (ConfigState::Missing, true, false));
    assert!(store.get_opt(CONFIG_KEY).await.unwrap().is_none());
    assert!(repair_records(&s).await.is_empty(), "a dry run is not recorded");

    let done = s.repair_config(false).await.unwrap();
    assert!(done.config_written && !done.copy_written);
    assert_eq!(store.get_opt(CONFIG_KEY).await.unwrap().unwrap(), config);
    let records = repair_records(&s).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].starts_with("config: wrote the missing config"), "{records:?}");

    // Nothing left to do.
    let again = s.repair_config(false).await.unwrap();
    assert!(!again.needed() && !again.config_written, "{again:?}");
}

#[tokio::test]
async fn a_damaged_config_is_replaced_and_a_missing_copy_written() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key, config) = setup(dir.path()).await;
    let mut damaged = config.to_vec();
    damaged[config.len() / 2] ^= 1;
    store.delete(CONFIG_KEY).await.unwrap();
    store.put_new(CONFIG_KEY, damaged.into()).await.unwrap();
    let s = session(dir.path(), &store, &key).await;
    let done = s.repair_config(false).await.unwrap();
    assert!(matches!(done.config, ConfigState::Damaged(_)) && done.config_written);
    assert_eq!(store.get_opt(CONFIG_KEY).await.unwrap().unwrap(), config);

    // A repository from before copies: the copy is written from the good config.
    store.delete(&copy_key(&config)).await.unwrap();
    let s = session(dir.path(), &store, &key).await;
    let done = s.repair_config(false).await.unwrap();
    assert_eq!((done.config.clone(), done.copy_written), (ConfigState::Intact, true));
    assert_eq!(store.get_opt(&copy_key(&config)).await.unwrap().unwrap(), config);
    assert_eq!(store.list(ObjectKind::ConfigCopy).await.unwrap().len(), 1);
}
