//! `arka forget`: policies keep what they say, `--dry-run` deletes nothing, and snapshots
//! planted with old dates cannot push real ones out of a weekly policy, because retention
//! bounds claimed times by the storage's own write times.

use std::ffi::OsString;

use arka_agent::repo::Repository;
use arka_agent::store::{ObjectKind, Store};
use arka_tests::{set_mtime, write_file, Fixture};

fn forget(fx: &Fixture, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<OsString> = vec!["--json".into(), "forget".into()];
    args.extend(fx.agent_args());
    args.extend(extra.iter().map(OsString::from));
    fx.arka(args).ok().json()
}

#[test]
fn keep_last_keeps_the_newest_and_dry_run_deletes_nothing() {
    let fx = Fixture::new();
    let src = fx.path("src");
    let mut ids = Vec::new();
    for i in 0..4 {
        write_file(&src.join("db.sql"), format!("version {i}\n").as_bytes());
        ids.push(fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string());
    }
    let dry = forget(&fx, &["--keep-last", "2", "--dry-run"]);
    assert_eq!(dry["deleted"], 0);
    assert_eq!(fx.snapshots().len(), 4, "--dry-run deleted snapshots");
    let forgotten: Vec<&str> = dry["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == false)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(forgotten.len(), 2);

    let done = forget(&fx, &["--keep-last", "2"]);
    assert_eq!(done["deleted"], 2);
    let left: Vec<String> = fx.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(left, ids[2..], "keep-last 2 must keep the two newest");

    // The clinic default keeps everything this recent.
    let default = forget(&fx, &[]);
    assert_eq!(default["deleted"], 0, "{default}");
}

#[test]
fn back_dated_snapshots_cannot_push_real_ones_out_of_a_weekly_policy() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("db.sql"), b"rows\n");
    fx.backup_ok(&[&src], &[]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let week_ns = 7 * 86_400 * 1_000_000_000i64;
    let now_ns = jiff::Timestamp::now().as_nanosecond() as i64;
    let (real, planted) = rt.block_on(async {
        let key = arka_agent::repo::keys::load_agent_key(&fx.agent_key).unwrap();
        let store = Store::open(fx.repo.to_str().unwrap(), false).unwrap();
        let repo = Repository::open_with_agent_key(store, key).await.unwrap();
        let template = repo.list_snapshots().await.unwrap().remove(0).1;
        let mut real = Vec::new();
        let mut planted = Vec::new();
        // Five real weekly snapshots, 2 to 6 weeks old, stored when they were taken...
        for w in 2..7 {
            let mut s = template.clone();
            s.time_ns = now_ns - w * week_ns;
            s.written_ns = s.time_ns;
            let id = repo.put_object(ObjectKind::Snapshot, s.encode(repo.key.meta_key())).await.unwrap();
            let secs = s.time_ns.div_euclid(1_000_000_000);
            set_mtime(&fx.repo.join(ObjectKind::Snapshot.key(&id)), secs, 0);
            real.push(id.to_hex());
            // ...and a plant written now, claiming to be an hour newer than each.
            let mut p = template.clone();
            p.time_ns = s.time_ns + 3_600_000_000_000;
            p.written_ns = p.time_ns;
            planted.push(repo.put_object(ObjectKind::Snapshot, p.encode(repo.key.meta_key())).await.unwrap().to_hex());
        }
        (real, planted)
    });

    let report = forget(&fx, &["--keep-weekly", "7"]);
    let decisions = report["decisions"].as_array().unwrap();
    let kept = |id: &str| decisions.iter().find(|d| d["id"] == id).map(|d| d["keep"] == true).unwrap();
    for id in &real {
        assert!(kept(id), "real snapshot {id} was pushed out: {report}");
    }
    // The plants were judged by when the store received them, not by their claims.
    for id in &planted {
        let d = decisions.iter().find(|d| d["id"] == id.as_str()).unwrap();
        assert_eq!(d["suspicion"]["kind"], "back_dated", "a plant's claimed time was believed: {d}");
    }
    let left: Vec<String> = fx.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert!(real.iter().all(|id| left.contains(id)));
}

/// `m` is minutes everywhere; a retention in bare minutes is refused with the fix, before
/// anything is forgotten.
#[test]
fn a_retention_in_minutes_is_refused_with_the_fix() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("db.sql"), b"rows\n");
    fx.backup_ok(&[&src], &[]);
    for flag in ["--keep-daily", "--keep-within"] {
        let mut args: Vec<OsString> = vec!["forget".into(), flag.into(), "6m".into()];
        args.extend(fx.agent_args());
        fx.arka(args).expect_code(2).expect_stderr("\"6mo\"");
    }
    assert_eq!(fx.snapshots().len(), 1);
}
