//! `arka audit`: every operation leaves a record, in order and without file names, and
//! `arka audit verify` finds an altered, removed or reordered record, naming it. Removing
//! the newest record is found through the machine's memory of the records it has seen;
//! concurrent writers fork the chain, which is a warning, not tampering.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;

use arka_tests::{contains, flip_byte, walk_files, write_file, Fixture};

/// Names that must never appear in audit records: they are health data.
const NAMES: [&str; 3] = ["Kowalczyk_Zenon_CBCT_2026.dcm", "Wójcik_Halina_zgoda.pdf", "Pacjenci_Zielona_Góra"];

fn audit_args(fx: &Fixture, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--json".into(), "audit".into()];
    args.extend(extra.iter().map(OsString::from));
    args.extend(fx.agent_args());
    args
}

/// `arka --json audit`: the records, oldest first.
#[track_caller]
fn records(fx: &Fixture) -> Vec<Value> {
    match fx.arka(audit_args(fx, &[])).ok().json() {
        Value::Array(v) => v,
        other => panic!("audit --json printed {other}, not an array"),
    }
}

/// `arka --json audit verify`, remembering records in `cache` (the fixture's own cache is
/// the machine that wrote them; another directory is an auditor's machine).
fn verify(fx: &Fixture, cache: Option<&PathBuf>) -> arka_tests::Run {
    let mut args = audit_args(fx, &["verify"]);
    if let Some(c) = cache {
        args.extend(["--cache-dir".into(), c.into()]);
    }
    fx.arka(args)
}

#[track_caller]
fn intact(fx: &Fixture, cache: Option<&PathBuf>) -> Value {
    let report = verify(fx, cache).ok().json();
    assert_eq!(report["intact"], true, "{report}");
    report
}

/// Asserts verification fails and names `record`; returns the report.
#[track_caller]
fn tampered(fx: &Fixture, cache: Option<&PathBuf>, record: &str) -> Value {
    let run = verify(fx, cache).expect_code(1).expect_stderr("NOT intact");
    let report = run.json();
    assert_eq!(report["intact"], false, "{report}");
    let named = report["problems"].as_array().unwrap().iter().any(|p| p["record"] == record);
    assert!(named, "record {record} is not named: {report}");
    report
}

fn record_file(fx: &Fixture, id: &str) -> PathBuf {
    fx.repo.join("audit").join(id)
}

fn id_of(r: &Value) -> String {
    r["id"].as_str().unwrap().to_string()
}

/// A repository with a chain of `1 + backups + verifies` records: init, backups, verifies.
fn chain(backups: usize, verifies: usize) -> (Fixture, Vec<String>) {
    let fx = Fixture::new();
    let src = fx.path("src");
    for i in 0..backups {
        write_file(&src.join(NAMES[0]), format!("scan {i}").as_bytes());
        fx.backup_ok(&[&src], &[]);
    }
    for _ in 0..verifies {
        let mut args: Vec<OsString> = vec!["verify".into()];
        args.extend(fx.agent_args());
        fx.arka(args).ok();
    }
    let ids: Vec<String> = records(&fx).iter().map(id_of).collect();
    assert_eq!(ids.len(), 1 + backups + verifies);
    (fx, ids)
}

#[test]
fn every_operation_leaves_an_ordered_record_without_file_names() {
    let fx = Fixture::new();
    let src = fx.path("src").join(NAMES[2]);
    write_file(&src.join(NAMES[0]), b"CBCT volume");
    write_file(&src.join(NAMES[1]), b"consent form");
    let first = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    write_file(&src.join(NAMES[1]), b"consent form, signed");
    let second = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    fx.restore("latest", &fx.path("restored"), &[]).ok();
    let dumped = fx.dump("latest", &format!("{}/{}", NAMES[2], NAMES[1])).ok();
    assert_eq!(dumped.stdout, b"consent form, signed");
    let mut verify_args: Vec<OsString> = vec!["verify".into()];
    verify_args.extend(fx.agent_args());
    fx.arka(verify_args).ok();
    let mut forget_args: Vec<OsString> = vec!["forget".into(), "--keep-last".into(), "1".into()];
    forget_args.extend(fx.agent_args());
    fx.arka(forget_args).ok();

    let list = records(&fx);
    let ops: Vec<&str> = list.iter().map(|r| r["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["init", "backup", "backup", "restore", "dump", "verify", "forget"]);
    for (i, r) in list.iter().enumerate() {
        assert_eq!(r["seq"], i as u64, "{r}");
        let prev = if i == 0 { Value::Null } else { list[i - 1]["id"].clone() };
        assert_eq!(r["prev"], prev, "record {i} does not follow the one before: {r}");
        assert!(!r["host"].as_str().unwrap().is_empty() && !r["user"].as_str().unwrap().is_empty(), "{r}");
        if i > 0 {
            assert!(r["time_unix_ns"].as_i64() >= list[i - 1]["time_unix_ns"].as_i64(), "{r}");
        }
    }
    let snaps = |i: usize| list[i]["snapshots"].clone();
    assert_eq!(snaps(1), serde_json::json!([first]));
    assert_eq!(snaps(2), serde_json::json!([second]));
    assert_eq!(snaps(3), serde_json::json!([second]), "restore names the snapshot restored");
    assert_eq!(snaps(4), serde_json::json!([second]), "dump names the snapshot read");
    assert_eq!(snaps(6), serde_json::json!([first]), "forget names the snapshot removed");
    assert_eq!(list[1]["counts"]["files"], 2);
    assert_eq!(list[3]["counts"]["files"], 2);
    assert_eq!(list[4]["counts"]["bytes"], 20);
    assert_eq!(list[5]["counts"]["damaged"], 0);
    assert_eq!(list[6]["counts"]["forgotten"], 1);
    assert_eq!(list[6]["counts"]["kept"], 1);

    // No name in any stored record, nor in what the agent key or the identity can list.
    let objects = walk_files(&fx.repo.join("audit"));
    assert_eq!(objects.len(), 7);
    let mut human: Vec<OsString> = vec!["audit".into()];
    human.extend(fx.agent_args());
    let mut with_identity: Vec<OsString> = vec!["--json".into(), "audit".into()];
    with_identity.extend(fx.reader_args());
    let listings = [fx.arka(human).ok().stdout, fx.arka(with_identity).ok().stdout];
    for name in NAMES {
        for object in &objects {
            assert!(!contains(&std::fs::read(object).unwrap(), name.as_bytes()), "{} holds {name}", object.display());
        }
        for l in &listings {
            assert!(!contains(l, name.as_bytes()), "the audit listing shows {name}");
        }
    }
    let report = intact(&fx, None);
    assert_eq!(report["records"], 7);
    assert!(report["warnings"].as_array().unwrap().is_empty(), "{report}");

    // `arka sync` carries the trail to the copy, where it verifies too.
    let copy = fx.path("copy");
    let mut sync: Vec<OsString> = vec!["--json".into(), "sync".into(), "--repo".into(), fx.repo.clone().into()];
    sync.extend(["--to".into(), copy.clone().into()]);
    let synced = fx.arka(sync).ok().json();
    assert_eq!(synced["report"]["audit_copied"], 7, "{synced}");
    let mut on_copy: Vec<OsString> = vec!["--json".into(), "audit".into(), "verify".into(), "--repo".into()];
    on_copy.extend([copy.into(), "--agent-key".into(), fx.agent_key.clone().into()]);
    assert_eq!(fx.arka(on_copy).ok().json()["records"], 7);
}

#[test]
fn an_altered_record_is_named() {
    let (fx, ids) = chain(1, 2);
    intact(&fx, None);
    let victim = record_file(&fx, &ids[2]);
    let len = std::fs::metadata(&victim).unwrap().len();
    flip_byte(&victim, len / 2);
    let auditor = fx.path("auditor");
    let report = tampered(&fx, Some(&auditor), &ids[2]);
    // The record after it is named too: it follows a record that no longer checks out.
    assert!(report["problems"].as_array().unwrap().iter().any(|p| p["record"] == ids[3].as_str()), "{report}");
    // The listing leaves it out and says so.
    let mut args: Vec<OsString> = vec!["audit".into()];
    args.extend(fx.agent_args());
    fx.arka(args).ok().expect_stderr("damaged or altered");
}

#[test]
fn a_removed_middle_record_is_found_without_any_memory() {
    let (fx, ids) = chain(1, 3);
    std::fs::remove_file(record_file(&fx, &ids[2])).unwrap();
    // An auditor's machine that never saw the repository finds the gap from the chain...
    let report = tampered(&fx, Some(&fx.path("auditor")), &ids[3]);
    assert!(report.to_string().contains("records were removed"), "{report}");
    // ...and the machine that wrote the records names the one removed as well.
    tampered(&fx, None, &ids[2]);
}

#[test]
fn records_swapped_between_their_names_are_found() {
    let (fx, ids) = chain(1, 2);
    let (a, b) = (record_file(&fx, &ids[1]), record_file(&fx, &ids[2]));
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, bytes_b).unwrap();
    std::fs::write(&b, bytes_a).unwrap();
    let auditor = fx.path("auditor");
    let report = tampered(&fx, Some(&auditor), &ids[1]);
    assert!(report["problems"].as_array().unwrap().iter().any(|p| p["record"] == ids[2].as_str()), "{report}");
}

#[test]
fn removing_the_newest_record_is_found_by_the_machines_memory() {
    let (fx, ids) = chain(1, 2);
    let auditor = fx.path("auditor");
    intact(&fx, Some(&auditor));
    let newest = ids.last().unwrap();
    std::fs::remove_file(record_file(&fx, newest)).unwrap();

    // A machine that never saw the chain cannot tell a shorter chain from a truncated one.
    let stranger = intact(&fx, Some(&fx.path("stranger")));
    assert_eq!(stranger["records"], 3);
    // The machine that wrote it, and the auditor who checked it before, can.
    for cache in [None, Some(&auditor)] {
        let report = tampered(&fx, cache, newest);
        assert!(report.to_string().contains("removed from the end"), "{report}");
    }
    // Writing on top of the shortened chain does not hide the removal.
    let mut args: Vec<OsString> = vec!["verify".into()];
    args.extend(fx.agent_args());
    fx.arka(args).ok();
    assert_eq!(records(&fx).last().unwrap()["seq"], 3);
    tampered(&fx, None, newest);
}

#[test]
fn concurrent_writers_fork_the_chain_and_verify_only_warns() {
    let (fx, ids) = chain(1, 0);
    let src = fx.path("src");
    // A fork for certain: a backup that listed the records before another one's record
    // landed. Hide the newest record while the next backup appends, then put it back.
    let hidden = record_file(&fx, &ids[1]);
    let aside = fx.path("aside");
    std::fs::rename(&hidden, &aside).unwrap();
    fx.backup_ok(&[&src], &[]);
    std::fs::rename(&aside, &hidden).unwrap();
    let after = records(&fx);
    let twins: Vec<&Value> = after.iter().filter(|r| r["seq"] == 1).collect();
    assert_eq!(twins.len(), 2, "no fork was made: {after:?}");
    assert_eq!(twins[0]["prev"], twins[1]["prev"]);

    let report = intact(&fx, Some(&fx.path("auditor")));
    let warnings = report["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w["message"].as_str().unwrap().contains("fork")), "{report}");
    intact(&fx, None);
    // The chain goes on from the twin with the highest ID.
    let mut args: Vec<OsString> = vec!["verify".into()];
    args.extend(fx.agent_args());
    fx.arka(args).ok();
    let last = records(&fx).pop().unwrap();
    let winner = twins.iter().map(|t| id_of(t)).max().unwrap();
    assert_eq!((last["seq"].as_u64(), last["prev"].as_str()), (Some(2), Some(winner.as_str())));

    // Two backups started at once: whatever the interleaving, the chain stays intact.
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = fx.command();
            cmd.args(fx.backup_args(&[&src], &[])).stdout(Stdio::null()).stderr(Stdio::null());
            cmd.spawn().expect("start arka backup")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(records(&fx).len(), 6);
    intact(&fx, None);
}
