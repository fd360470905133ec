//! What a compromised clinic server can do with the agent key, and what it cannot: snapshots
//! planted with a future time, a rollback to an older tree, a made-up reference list, junk
//! under `snapshots/`, and a snapshot deleted outside arka. Each plant is a real snapshot
//! object sealed with the agent key, written the way ransomware holding the key would.

use std::ffi::OsString;

use arka_agent::repo::keys::load_agent_key;
use arka_agent::repo::Repository;
use arka_agent::store::{ObjectKind, Store};
use arka_proto::{BlobId, Snapshot};
use arka_tests::{set_mtime, write_file, Fixture};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

/// Writes `edit` applied to the snapshot `template` as a new snapshot object; returns its ID.
/// `stored_secs`: the object's mtime, which is what a directory store reports as its
/// storage time (`None`: now, as for a plant written now).
fn plant(fx: &Fixture, template: &str, stored_secs: Option<i64>, edit: impl FnOnce(&mut Snapshot)) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let key = load_agent_key(&fx.agent_key).unwrap();
        let store = Store::open(fx.repo.to_str().unwrap(), false).unwrap();
        let repo = Repository::open_with_agent_key(store, key).await.unwrap();
        let snaps = repo.list_snapshots().await.unwrap();
        let (_, mut s) = snaps.into_iter().find(|(id, _)| id.to_hex().starts_with(template)).unwrap();
        edit(&mut s);
        let id = repo.put_object(ObjectKind::Snapshot, s.encode(repo.key.meta_key())).await.unwrap();
        if let Some(secs) = stored_secs {
            set_mtime(&fx.repo.join(ObjectKind::Snapshot.key(&id)), secs, 0);
        }
        id.to_hex()
    })
}

fn json(fx: &Fixture, words: &[&str]) -> serde_json::Value {
    let mut args: Vec<OsString> = vec!["--json".into()];
    args.extend(words.iter().map(OsString::from));
    args.extend(fx.agent_args());
    fx.arka(args).ok().json()
}

fn suspicion_of(fx: &Fixture, id: &str) -> serde_json::Value {
    let snaps = fx.snapshots();
    snaps.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{id} not listed")).get("suspicion").unwrap().clone()
}

/// Two real backups of different content: (older ID, newer ID).
fn two_real_backups(fx: &Fixture) -> (String, String) {
    let src = fx.path("src");
    write_file(&src.join("db.sql"), b"yesterday's rows\n");
    let old = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    write_file(&src.join("db.sql"), b"today's rows, the ones that matter\n");
    let new = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    (old, new)
}

#[test]
fn a_future_dated_plant_is_not_latest_and_takes_no_real_snapshots_slot() {
    let fx = Fixture::new();
    let (old, new) = two_real_backups(&fx);
    // Real history: a snapshot a day for the week before, each stored when it was taken.
    for day in 1..8 {
        let t = now_ns() - day * DAY_NS;
        plant(&fx, &old, Some(t / 1_000_000_000), |s| {
            s.time_ns = t;
            s.written_ns = t;
        });
    }
    // The plant: yesterday's data, claiming next year, written now.
    let planted = plant(&fx, &old, None, |s| {
        s.time_ns = now_ns() + 365 * DAY_NS;
        s.written_ns = s.time_ns;
    });
    assert_eq!(suspicion_of(&fx, &planted)["kind"], "future_time");

    for policy in [
        ["--keep-daily", "7"],
        ["--keep-daily", "30d"],
        ["--keep-weekly", "8"],
        ["--keep-monthly", "12"],
        ["--keep-yearly", "5"],
    ] {
        let report = json(&fx, &["forget", "--dry-run", policy[0], policy[1]]);
        let decisions = report["decisions"].as_array().unwrap();
        let newest = decisions.iter().find(|d| d["id"] == new.as_str()).unwrap();
        assert_eq!(newest["keep"], true, "{policy:?} dropped the newest real snapshot: {report}");
    }

    // `latest` is the real newest: today's rows come back, and the plant is named.
    let target = fx.path("restored");
    let restored = fx.restore("latest", &target, &[]).ok();
    assert_eq!(std::fs::read(target.join("src/db.sql")).unwrap(), b"today's rows, the ones that matter\n");
    assert!(
        restored.stderr.contains(&format!("passed over the newer snapshot {}", &planted[..8])),
        "{}",
        restored.stderr
    );
}

#[test]
fn a_rollback_plant_is_flagged_and_reported_by_verify() {
    let fx = Fixture::new();
    let (old, new) = two_real_backups(&fx);
    // Written now with a believable time, holding yesterday's tree again.
    let planted = plant(&fx, &old, None, |s| {
        s.time_ns = now_ns();
        s.written_ns = s.time_ns;
    });
    assert_eq!(suspicion_of(&fx, &planted)["kind"], "rollback");
    let mut args: Vec<OsString> = vec!["verify".into()];
    args.extend(fx.agent_args());
    let verified = fx.arka(args).ok();
    assert!(
        verified.stdout_text().contains(&format!("FLAGGED snapshot {}", &planted[..8])),
        "{}",
        verified.stdout_text()
    );
    // Retention keeps the real newest however the plant competes with it.
    let report = json(&fx, &["forget", "--keep-last", "1"]);
    let kept: Vec<&str> = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(kept.contains(&new.as_str()), "{report}");
    assert!(fx.snapshots().iter().any(|s| s["id"] == new.as_str()));
}

#[test]
fn a_plant_with_made_up_references_does_not_stop_prune_and_forget_by_id_removes_it() {
    let fx = Fixture::new();
    let (old, _) = two_real_backups(&fx);
    let planted = plant(&fx, &old, None, |s| {
        s.tree = BlobId([0x5a; 32]);
        s.refs = BlobId([0xa5; 32]);
    });
    let pruned = json(&fx, &["prune", "--grace", "0"]);
    assert_eq!(pruned["snapshots_skipped"], serde_json::json!([planted]), "{pruned}");

    // Junk an append token could write under snapshots/ goes the same way.
    let junk = b"not a snapshot at all, 64 bytes of it, as the red team wrote....";
    let junk_id = arka_proto::ObjectId::of(junk).to_hex();
    write_file(&fx.repo.join("snapshots").join(&junk_id), junk);

    let mut args: Vec<OsString> = vec!["--json".into(), "forget".into(), planted[..12].into(), junk_id[..12].into()];
    args.extend(fx.agent_args());
    let forgot = fx.arka(args).ok().json();
    assert_eq!(forgot["deleted"], 2, "{forgot}");
    assert!(!fx.snapshots().iter().any(|s| s["id"] == planted.as_str()));
    assert!(!fx.repo.join("snapshots").join(&junk_id).exists());
    let mut audit: Vec<OsString> = vec!["--json".into(), "audit".into()];
    audit.extend(fx.agent_args());
    let trail = fx.arka(audit).ok().stdout_text();
    assert!(trail.contains(&planted), "the forget by ID was not audited: {trail}");
}

#[test]
fn a_snapshot_deleted_outside_arka_is_reported_until_someone_forgets_it() {
    let fx = Fixture::new();
    let (old, _) = two_real_backups(&fx);
    std::fs::remove_file(fx.repo.join("snapshots").join(&old)).unwrap();
    let mut verify: Vec<OsString> = vec!["verify".into()];
    verify.extend(fx.agent_args());
    let found = fx.arka(verify.clone()).expect_code(1);
    assert!(found.stdout_text().contains(&format!("VANISHED snapshot {}", &old[..8])), "{}", found.stdout_text());

    let mut forget: Vec<OsString> = vec!["forget".into(), old[..8].into()];
    forget.extend(fx.agent_args());
    let forgot = fx.arka(forget).ok();
    assert!(forgot.stdout_text().contains("already gone"), "{}", forgot.stdout_text());
    fx.arka(verify).ok();
}

#[test]
fn a_forged_prune_plan_deletes_nothing_snapshots_need() {
    let fx = Fixture::new();
    let (_, new) = two_real_backups(&fx);
    let list = |dir: &str| -> Vec<arka_proto::ObjectId> {
        arka_tests::walk_files(&fx.repo.join(dir))
            .iter()
            .map(|p| arka_proto::ObjectId::from_hex(&p.file_name().unwrap().to_string_lossy()).unwrap())
            .collect()
    };
    // A plan condemning every pack and every index segment, due long ago, sealed with the
    // agent key: what a compromised agent without delete rights can leave for a later prune.
    let forged = arka_proto::PrunePlan {
        created_ns: now_ns() - 30 * DAY_NS,
        delete_after_ns: now_ns() - 29 * DAY_NS,
        packs: list("packs"),
        index: list("index"),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let key = load_agent_key(&fx.agent_key).unwrap();
        let store = Store::open(fx.repo.to_str().unwrap(), false).unwrap();
        let repo = Repository::open_with_agent_key(store, key).await.unwrap();
        repo.put_object(ObjectKind::PrunePlan, forged.encode(repo.key.meta_key())).await.unwrap();
    });
    // Two prunes: the sweep acts on the plan, the next one would delete any pack the sweep
    // left unindexed as an orphan.
    json(&fx, &["prune", "--grace", "0"]);
    json(&fx, &["prune", "--grace", "0"]);
    let mut verify: Vec<OsString> = vec!["verify".into(), "--read-data".into()];
    verify.extend(fx.reader_args());
    fx.arka(verify).ok();
    let target = fx.path("restored");
    fx.restore(&new, &target, &[]).ok();
    assert_eq!(std::fs::read(target.join("src/db.sql")).unwrap(), b"today's rows, the ones that matter\n");
}
