//! S3 repositories on a real Garage (single node on loopback): every command works on
//! `s3://bucket/prefix`, `sync` feeds an offsite copy and resumes, backups to the primary
//! keep working while the offsite store is down, and S3 failures come with advice.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use arka_tests::garage::Garage;
use arka_tests::{assert_same_tree, os_args, pseudo_random, write_file, Fixture, Run};

/// A few MiB of SQL-like text, deterministic.
const SQL_COMMAND: &str = r#"echo 'BEGIN;'; seq 1 40000 | awk '{ printf "INSERT INTO visits (id, patient, note) VALUES (%d, %d, \"wizyta kontrolna %d\");\n", $1, ($1 * 7919) % 100003, $1 }'; echo 'COMMIT;'"#;

/// A small clinic-like tree: an image, notes, an empty file, a symlink, non-ASCII names.
pub(crate) fn small_tree(root: &Path, seed: u64) {
    write_file(&root.join("imaging").join("Wiśniewska_Zofia_CBCT.dcm"), &pseudo_random(seed, 3 << 20));
    write_file(&root.join("imaging").join("Nowak_Jan_RTG.dcm"), &pseudo_random(seed + 1, 200_000));
    for i in 0..20u64 {
        let text = format!("wizyta {i}: kontrola, ząb {}\n", 11 + i % 32).repeat(50 + i as usize);
        write_file(&root.join("notes").join(format!("2026-03-{:02}_note.txt", 1 + i % 28)), text.as_bytes());
    }
    write_file(&root.join("empty.txt"), b"");
    std::os::unix::fs::symlink("imaging/Nowak_Jan_RTG.dcm", root.join("latest-rtg")).unwrap();
}

/// `arka --json sync --repo FROM --to TO` with the fixture's environment.
fn sync(fx: &Fixture, from: impl AsRef<std::ffi::OsStr>, to: &str) -> Run {
    fx.arka(os_args!["--json", "sync", "--repo", from, "--to", to])
}

#[track_caller]
fn report(run: Run) -> Value {
    run.ok().json()["report"].clone()
}

fn count(report: &Value, field: &str) -> u64 {
    report[field].as_u64().unwrap_or_else(|| panic!("sync report has no {field}: {report}"))
}

/// `arka --json restore --repo REPO --identity … SNAPSHOT --target TARGET`.
fn restore_from(fx: &Fixture, repo: &str, snapshot: &str, target: &Path) -> Run {
    fx.arka(os_args!["--json", "restore", "--repo", repo, "--identity", fx.identity, snapshot, "--target", target])
}

/// Snapshot IDs of `repo`, read with the recovery identity.
#[track_caller]
fn snapshot_ids(fx: &Fixture, repo: impl AsRef<std::ffi::OsStr>) -> Vec<String> {
    let out = fx.arka(os_args!["--json", "snapshots", "--repo", repo, "--identity", fx.identity]).ok();
    let Value::Array(list) = out.json() else { panic!("snapshots --json printed no array") };
    list.iter().map(|s| s["id"].as_str().expect("snapshot id").to_string()).collect()
}

#[test]
fn backup_restore_and_dump_through_garage() {
    let garage = Garage::single();
    let fx = Fixture::at(&garage.url("clinic/arka"), garage.env());
    let src = fx.path("src");
    small_tree(&src, 1);
    let files = fx.backup_ok(&[&src], &["--tag", "nightly"]);
    let args = fx.backup_args::<&str>(&[], &["--stdin-from-command", SQL_COMMAND, "--name", "clinic.sql"]);
    let stream = fx.arka(args).ok().json();

    let snaps = fx.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let kinds: Vec<_> = snaps.iter().map(|s| s["source_kind"].as_str().unwrap_or_default()).collect();
    assert!(kinds.contains(&"files") && kinds.contains(&"command"), "{kinds:?}");

    let target = fx.path("restored");
    fx.restore(files["snapshot_id"].as_str().unwrap(), &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));

    let expected = Command::new("/bin/sh").arg("-c").arg(SQL_COMMAND).output().expect("sh");
    assert!(expected.status.success() && expected.stdout.len() > 1 << 20);
    let dumped = fx.dump(stream["snapshot_id"].as_str().unwrap(), "clinic.sql").ok();
    assert!(
        dumped.stdout == expected.stdout,
        "dump from S3 differs: {} bytes vs {}",
        dumped.stdout.len(),
        expected.stdout.len()
    );

    // The same bucket, another prefix: an independent repository; its own init works and
    // the first one is untouched.
    let other = Fixture::at(&garage.url("clinic/other"), garage.env());
    assert_eq!(other.snapshots().len(), 0);
    assert_eq!(fx.snapshots().len(), 2);
    // init refuses a prefix that already holds a repository.
    fx.arka(os_args!["init", "--repo", fx.repo, "--recipient", fx.recipient])
        .expect_code(1)
        .expect_stderr("already holds an arka repository");
}

#[test]
fn sync_to_garage_copies_what_is_missing_and_restores() {
    let garage = Garage::single();
    let mut fx = Fixture::new();
    fx.env = garage.env();
    let offsite = garage.url("offsite");
    let src = fx.path("src");
    small_tree(&src, 2);
    let first = fx.backup_ok(&[&src], &[]);

    let r = report(sync(&fx, &fx.repo, &offsite));
    assert!(count(&r, "packs_copied") > 0 && count(&r, "index_copied") > 0, "{r}");
    assert_eq!(count(&r, "snapshots_copied"), 1, "{r}");
    assert_eq!(count(&r, "already_present"), 0, "{r}");

    // Resumable and idempotent: a second run copies nothing.
    let again = report(sync(&fx, &fx.repo, &offsite));
    for field in ["packs_copied", "index_copied", "snapshots_copied", "bytes_copied"] {
        assert_eq!(count(&again, field), 0, "second sync copied {field}: {again}");
    }
    assert!(count(&again, "already_present") >= count(&r, "packs_copied") + 2, "{again}");

    // A new backup: only what is new goes over.
    write_file(&src.join("notes").join("2026-03-30_new.txt"), b"nowa notatka\n");
    fx.backup_ok(&[&src], &[]);
    let third = report(sync(&fx, &fx.repo, &offsite));
    assert_eq!(count(&third, "snapshots_copied"), 1, "{third}");
    assert!(count(&third, "bytes_copied") < 1 << 20, "an incremental sync re-sent old data: {third}");

    assert_eq!(snapshot_ids(&fx, &offsite), snapshot_ids(&fx, &fx.repo), "the copy lists other snapshots");
    let target = fx.path("from-s3");
    restore_from(&fx, &offsite, "latest", &target).ok();
    assert_same_tree(&src, &target.join("src"));
    // The older snapshot restores from the copy too (the new note is not in it).
    let older = fx.path("older-from-s3");
    restore_from(&fx, &offsite, first["snapshot_id"].as_str().unwrap(), &older).ok();
    assert!(!older.join("src").join("notes").join("2026-03-30_new.txt").exists());
    assert!(older.join("src").join("imaging").join("Wiśniewska_Zofia_CBCT.dcm").exists());

    // A different repository is refused, and the copy is untouched.
    let mut stranger = Fixture::new();
    stranger.env = garage.env();
    stranger.backup_ok(&[&src], &[]);
    sync(&stranger, &stranger.repo, &offsite).expect_code(2).expect_stderr("holds a different repository");
    assert_eq!(snapshot_ids(&fx, &offsite).len(), 2);
}

#[test]
fn backups_continue_while_garage_is_down_and_sync_catches_up() {
    let garage = Garage::single();
    let mut fx = Fixture::new();
    fx.env = garage.env();
    let offsite = garage.url("offsite");
    let src = fx.path("src");
    small_tree(&src, 3);
    fx.backup_ok(&[&src], &[]);
    report(sync(&fx, &fx.repo, &offsite));

    garage.stop_node(0);
    // The primary keeps taking backups while the offsite store is unreachable.
    write_file(&src.join("imaging").join("Kowalski_Adam_CT.dcm"), &pseudo_random(33, 1 << 20));
    fx.backup_ok(&[&src], &[]);
    write_file(&src.join("notes").join("2026-03-31_offline.txt"), b"pisane bez sieci\n");
    fx.backup_ok(&[&src], &[]);
    assert_eq!(fx.snapshots().len(), 3);

    let started = Instant::now();
    let failed = sync(&fx, &fx.repo, &offsite);
    let took = started.elapsed();
    eprintln!("sync to a stopped Garage failed after {:.1} s", took.as_secs_f64());
    failed.expect_code(1).expect_stderr("cannot reach the S3 endpoint");
    assert!(took < Duration::from_secs(120), "sync took {took:?} to give up on a dead endpoint");

    garage.start_node(0);
    let first_try = sync(&fx, &fx.repo, &offsite);
    if first_try.code == 0 {
        assert_eq!(count(&report(first_try), "snapshots_copied"), 2);
    } else {
        // Under a loaded CI machine a restarted Garage has refused a request once while
        // it caught up (seen once, in a full e2e run). The agent's next scheduled sync would
        // simply run again; so does the test, once, and shows why it had to.
        eprintln!("the first sync after Garage restarted failed; retrying:\n{}", first_try.stderr);
        std::thread::sleep(Duration::from_secs(5));
        report(sync(&fx, &fx.repo, &offsite));
    }
    assert_eq!(snapshot_ids(&fx, &offsite), snapshot_ids(&fx, &fx.repo));
    let target = fx.path("from-s3");
    restore_from(&fx, &offsite, "latest", &target).ok();
    assert_same_tree(&src, &target.join("src"));
}

#[test]
fn a_killed_sync_leaves_no_dangling_snapshot_and_resumes() {
    let garage = Garage::single();
    let mut fx = Fixture::new();
    fx.env = garage.env();
    // 1 MiB packs: when a kill lands, some packs are complete and others in flight.
    fx.repo = fx.path("small-packs");
    fx.agent_key = fx.path("small-packs.key");
    fx.arka(os_args![
        "init",
        "--repo",
        fx.repo,
        "--recipient",
        fx.recipient,
        "--agent-key-out",
        fx.agent_key,
        "--pack-size-mib",
        "1"
    ])
    .ok();
    let offsite = garage.url("offsite");
    let src = fx.path("src");
    for i in 0..8u64 {
        write_file(&src.join("imaging").join(format!("slice_{i:02}.dcm")), &pseudo_random(500 + i, 12 << 20));
    }
    small_tree(&src.join("small"), 4);
    fx.backup_ok(&[&src], &[]);

    // kill -9 the sync once a good part of the data has arrived.
    let mut cmd = fx.command();
    cmd.args(os_args!["--json", "sync", "--repo", fx.repo, "--to", offsite])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start sync");
    let base = garage.data_bytes(0);
    let started = Instant::now();
    while garage.data_bytes(0) - base < 24 << 20 && started.elapsed() < Duration::from_secs(30) {
        if child.try_wait().expect("poll sync").is_some() {
            panic!("the sync finished before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill sync");
    child.wait().expect("reap sync");

    // Snapshots go last: the copy lists none yet, so it never shows one without its data.
    assert_eq!(snapshot_ids(&fx, &offsite), Vec::<String>::new(), "a snapshot was copied before its packs");
    let resumed = report(sync(&fx, &fx.repo, &offsite));
    assert!(count(&resumed, "already_present") > 0, "the rerun copied everything again: {resumed}");
    assert_eq!(count(&resumed, "snapshots_copied"), 1, "{resumed}");
    let target = fx.path("from-s3");
    restore_from(&fx, &offsite, "latest", &target).ok();
    assert_same_tree(&src, &target.join("src"));
}

/// A port on which nothing listens: connection refused, the fastest kind of dead endpoint.
fn dead_endpoint_env(garage: &Garage) -> Vec<(String, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    with(garage.env(), "AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{port}"))
}

fn with(mut env: Vec<(String, String)>, var: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != var);
    env.push((var.into(), value.into()));
    env
}

#[test]
fn s3_failures_come_with_advice() {
    let garage = Garage::single();
    let fx = Fixture::at(&garage.url("advice"), garage.env());
    let src = fx.path("src");
    write_file(&src.join("a.txt"), b"a");
    fx.backup_ok(&[&src], &[]);

    let run_with = |env: Vec<(String, String)>, args: Vec<OsString>| {
        let mut cmd = fx.command();
        cmd.envs(env).args(args);
        arka_tests::run(cmd)
    };
    let snapshots = |repo: &str| os_args!["snapshots", "--repo", repo, "--agent-key", fx.agent_key];

    // Wrong secret key.
    let wrong = with(garage.env(), "AWS_SECRET_ACCESS_KEY", &"0".repeat(64));
    run_with(wrong.clone(), snapshots(&garage.url("advice"))).expect_code(12).expect_stderr("refused the credentials");
    run_with(wrong.clone(), fx.backup_args(&[&src], &[])).expect_code(12).expect_stderr("refused the credentials");
    // Unknown key ID.
    let unknown = with(garage.env(), "AWS_ACCESS_KEY_ID", "GK000000000000000000000000");
    run_with(unknown, snapshots(&garage.url("advice"))).expect_code(12).expect_stderr("refused the credentials");

    // Missing bucket (a name without "bucket" in it, so only a hint can match): init names it.
    let nowhere = "s3://offsite-nowhere/arka";
    run_with(garage.env(), os_args!["init", "--repo", nowhere, "--recipient", fx.recipient])
        .expect_code(1)
        .expect_stderr("the bucket does not exist");

    // Unreachable endpoint.
    let started = Instant::now();
    let out = run_with(dead_endpoint_env(&garage), snapshots(&garage.url("advice")));
    eprintln!("snapshots against a port with nothing listening failed after {:.1} s", started.elapsed().as_secs_f64());
    out.expect_code(1).expect_stderr("cannot reach the S3 endpoint");
}

/// Reads of a missing bucket should name the bucket, as writes do.
#[test]
fn a_missing_bucket_is_named_on_reads() {
    let garage = Garage::single();
    let fx = Fixture::at(&garage.url("x"), garage.env());
    fx.arka(os_args!["snapshots", "--repo", "s3://offsite-nowhere/arka", "--agent-key", fx.agent_key])
        .expect_code(1)
        .expect_stderr("the bucket does not exist");
}

/// Prune and erase on S3: listings, store times and deletes through a real Garage.
#[test]
fn forget_prune_and_erase_on_garage() {
    let garage = Garage::single();
    let fx = Fixture::at(&garage.url("clinic/arka"), garage.env());
    let src = fx.path("src");
    small_tree(&src, 3);
    let first = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    std::fs::remove_file(src.join("imaging").join("Wiśniewska_Zofia_CBCT.dcm")).unwrap();
    let kept = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    // By ID: the second snapshot lost most of the source's bytes, so it is flagged as a
    // shrink and retention would keep the first as well.
    fx.arka(os_args!["forget", first, "--repo", fx.repo, "--agent-key", fx.agent_key]).ok();

    let pruned = fx.arka(os_args!["--json", "prune", "--repo", fx.repo, "--agent-key", fx.agent_key, "--grace", "0"]);
    let report = pruned.ok().json();
    assert!(report["bytes_freed"].as_u64().unwrap() >= 3 << 20, "the forgotten 3 MiB scan was not freed: {report}");
    let target = fx.path("restored");
    fx.restore(&kept, &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));

    let erased = fx
        .arka(os_args![
            "--json",
            "erase",
            "--repo",
            fx.repo,
            "--identity",
            fx.identity,
            "--path",
            "src/notes",
            "--grace",
            "0"
        ])
        .ok()
        .json();
    assert_eq!(erased["files_erased"], 20, "{erased}");
    let listed = fx.ls("latest");
    assert!(listed.iter().all(|e| !e["path"].as_str().unwrap().contains("notes")), "{listed:?}");
    fx.arka(os_args!["verify", "--repo", fx.repo, "--identity", fx.identity, "--read-data"]).ok();
}
