//! The runner against a controllable clock: a source runs at start, not again before its
//! interval, again after it, and once (not once per missed slot) after a long downtime.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::retry_delay;
use crate::engine::audit::{self, Operation};
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

/// A new repository and an agent config for it: `extra` adds top-level keys and `tables`
/// sections after the one `db` command source. Returns the config and a reader.
async fn agent_on_new_repo(dir: &std::path::Path, extra: &str, tables: &str) -> (config::Config, Repository) {
    let recipient = arka_proto::RecoveryIdentities::generate().recipients().remove(0);
    let repo_dir = dir.join("repo");
    let store = Store::open(repo_dir.to_str().unwrap(), true).unwrap();
    let (_, key) = Repository::init(store, &[recipient], None).await.unwrap();
    let key_file = dir.join("agent.key");
    crate::repo::keys::write_secret_file(&key_file, key.to_file_text().as_bytes()).unwrap();
    let text = format!(
        "agent_key = {key_file:?}\nstate_dir = {state:?}\n{extra}[[target]]\nurl = {repo_dir:?}\n\
         [[source]]\nname = \"db\"\nkind = \"command\"\ncommand = \"echo rows\"\nschedule = \"every 1h\"\n\
         {tables}[status]\nbind = \"127.0.0.1:0\"\n",
        state = dir.join("state"),
    );
    let cfg = config::parse(&text, &dir.join("agent.toml")).unwrap();
    let reader =
        Repository::open_with_agent_key(Store::open(repo_dir.to_str().unwrap(), false).unwrap(), key).await.unwrap();
    (cfg, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_follow_the_schedule_and_catch_up_once_after_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, reader) = agent_on_new_repo(dir.path(), "", "").await;

    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(super::run(cfg, clock.clone(), stop.clone()));

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

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), runner).await.expect("the runner stops").unwrap().unwrap();
}

/// Waits until the audit trail holds a successful record (no `failed:` detail) of each of `ops`.
async fn until_recorded(repo: &Repository, ops: &[Operation]) -> Vec<arka_proto::AuditRecord> {
    for _ in 0..200 {
        let log = audit::load_all(repo).await.unwrap();
        let records: Vec<_> = log.records.into_iter().map(|(_, r)| r).collect();
        let ok = |op: &Operation| {
            records.iter().any(|r| r.operation == *op && !r.detail.as_deref().unwrap_or("").starts_with("failed"))
        };
        if ops.iter().all(ok) {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the audit trail never recorded all of {ops:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_maintenance_is_audited_as_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let maintenance = "[maintenance]\nforget = \"every 1h\"\nprune = \"every 1h\"\nprune_grace = \"1d\"\n\
                       verify = \"every 1h\"\n";
    let (cfg, reader) = agent_on_new_repo(dir.path(), "hostname = \"front-desk\"\n", maintenance).await;

    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(super::run(cfg, clock.clone(), stop.clone()));
    let all = [Operation::Backup, Operation::Forget, Operation::Prune, Operation::Verify];
    until_snapshots(&reader, 1).await;
    until_asleep(&clock, 3).await;
    // A prune that ran before the first backup refused (no snapshots) and is recorded as
    // failed; the next hour's runs find the backup.
    clock.advance(Duration::from_secs(2 * 3600));
    let records = until_recorded(&reader, &all).await;
    for r in &records {
        assert_eq!((r.host.as_str(), r.user.as_str()), ("front-desk", "service"), "{r:?}");
    }
    let prune = records.iter().rfind(|r| r.operation == Operation::Prune).unwrap();
    assert!(prune.counts.contains_key("packs_deleted") && prune.detail.is_none(), "{prune:?}");
    for failed in records.iter().filter(|r| r.detail.as_deref().is_some_and(|d| d.starts_with("failed"))) {
        assert_eq!(failed.detail.as_deref(), Some("failed: failed"), "only a refused prune may fail: {failed:?}");
    }
    let backup = records.iter().find(|r| r.operation == Operation::Backup).unwrap();
    assert_eq!(backup.detail.as_deref(), Some("agent source db"), "{backup:?}");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), runner).await.expect("the runner stops").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_whose_recipients_differ_from_the_pinned_ones_gets_no_backup() {
    let dir = tempfile::tempdir().unwrap();
    let other = arka_proto::RecoveryIdentities::generate().recipients().remove(0);
    let pin = format!("recipients = [{other:?}]\n");
    let (cfg, reader) = agent_on_new_repo(dir.path(), &pin, "").await;

    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(super::run(cfg.clone(), clock.clone(), stop.clone()));
    until_asleep(&clock, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(snapshot_count(&reader).await, 0, "a backup went to a repository with other recipients");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), runner).await.expect("the runner stops").unwrap().unwrap();

    // Pinned to what the repository names: backups go on.
    let cfg = config::Config { recipients: Some(reader.config.recipients.clone()), ..cfg };
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(super::run(cfg, clock.clone(), stop.clone()));
    until_asleep(&clock, 2).await;
    clock.advance(Duration::from_secs(2 * 3600)); // the refused run was an attempt
    until_snapshots(&reader, 1).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), runner).await.expect("the runner stops").unwrap().unwrap();
}

#[test]
fn failed_runs_are_retried_after_1_2_4_minutes_never_later_than_the_schedule() {
    let minutes = |n, schedule: &str| retry_delay(n, &schedule.parse().unwrap()).as_secs() / 60;
    let hourly: Vec<u64> = (1..=8).map(|n| minutes(n, "every 1h")).collect();
    assert_eq!(hourly, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(minutes(3, "every 15m"), 4);
    assert_eq!(minutes(9, "every 15m"), 15);
    assert_eq!(minutes(40, "daily 02:00"), 24 * 60, "no overflow, capped by a day");
}
