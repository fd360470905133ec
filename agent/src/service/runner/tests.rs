//! The runner against a controllable clock: a source runs at start, not again before its
//! interval, again after it, and once (not once per missed slot) after a long downtime.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::repo::Repository;
use crate::service::config;
use crate::service::schedule::{Clock, ManualClock};
use crate::store::Store;

async fn snapshot_count(repo: &Repository) -> usize {
    repo.list_snapshots().await.unwrap().len()
}

/// Waits (in real time) until the repository holds `n` snapshots.
async fn until_snapshots(repo: &Repository, n: usize) {
    for _ in 0..200 {
        if snapshot_count(repo).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the repository never reached {n} snapshots (has {})", snapshot_count(repo).await);
}

/// Waits until the runner's tasks are all asleep on the clock (source, RPO watch).
async fn until_asleep(clock: &ManualClock, sleepers: usize) {
    for _ in 0..200 {
        if clock.sleepers() >= sleepers {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the runner never went to sleep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_follow_the_schedule_and_catch_up_once_after_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let recipient = arka_proto::RecoveryIdentities::generate().recipients().remove(0);
    let repo_dir = dir.path().join("repo");
    let store = Store::open(repo_dir.to_str().unwrap(), true).unwrap();
    let (_, key) = Repository::init(store, &[recipient], None).await.unwrap();
    let key_file = dir.path().join("agent.key");
    crate::repo::keys::write_secret_file(&key_file, key.to_file_text().as_bytes()).unwrap();
    let text = format!(
        "agent_key = {key_file:?}\nstate_dir = {state:?}\n[[target]]\nurl = {repo_dir:?}\n\
         [[source]]\nname = \"db\"\nkind = \"command\"\ncommand = \"echo rows\"\nschedule = \"every 1h\"\n\
         [status]\nbind = \"127.0.0.1:0\"\n",
        state = dir.path().join("state"),
    );
    let cfg = config::parse(&text, &dir.path().join("agent.toml")).unwrap();
    let reader =
        Repository::open_with_agent_key(Store::open(repo_dir.to_str().unwrap(), false).unwrap(), key).await.unwrap();

    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(super::run(cfg, clock.clone(), stop));

    // Never run before: at once.
    until_snapshots(&reader, 1).await;
    until_asleep(&clock, 2).await;
    // Not before the hour is up...
    clock.advance(Duration::from_secs(59 * 60));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(snapshot_count(&reader).await, 1, "ran before its interval");
    // ...and once it is.
    clock.advance(Duration::from_secs(2 * 60));
    until_snapshots(&reader, 2).await;
    until_asleep(&clock, 2).await;
    // Three days down (the clock jumps): one catch-up run, not seventy-two.
    clock.set(clock.now() + SignedDuration::from_hours(72));
    until_snapshots(&reader, 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(snapshot_count(&reader).await, 3, "more than one catch-up run");

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), runner).await.expect("the runner stops").unwrap().unwrap();
}
