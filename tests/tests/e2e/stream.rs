//! Command sources (`--stdin-from-command`, e.g. `pg_dump`): the output is stored as one
//! file and dumps back byte for byte; a command that fails or is killed leaves no snapshot.

use std::process::Command;

use arka_tests::Fixture;

/// A few MiB of SQL-like text, deterministic.
const SQL_COMMAND: &str = r#"echo 'BEGIN;'; seq 1 60000 | awk '{ printf "INSERT INTO visits (id, patient, note) VALUES (%d, %d, \"wizyta kontrolna %d, ząb %d\");\n", $1, ($1 * 7919) % 100003, $1, $1 % 32 + 11 }'; echo 'COMMIT;'"#;

fn stream_backup(fx: &Fixture, command: &str) -> arka_tests::Run {
    let mut args = vec!["--json".to_string(), "backup".into()];
    args.extend(fx.agent_args().into_iter().map(|a| a.into_string().unwrap()));
    args.extend(["--stdin-from-command".into(), command.into(), "--name".into(), "clinic.sql".into()]);
    fx.arka(args)
}

#[test]
fn command_output_dumps_back_identically() {
    let fx = Fixture::new();
    let expected = Command::new("/bin/sh").arg("-c").arg(SQL_COMMAND).output().expect("sh");
    assert!(expected.status.success());
    assert!(expected.stdout.len() > 3 << 20, "the generated dump is only {} bytes", expected.stdout.len());

    let summary = stream_backup(&fx, SQL_COMMAND).ok().json();
    assert_eq!(summary["stats"]["bytes"].as_u64(), Some(expected.stdout.len() as u64), "{summary}");
    let snaps = fx.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["source_kind"].as_str(), Some("command"));

    assert_latest_dump_is(&fx, &expected.stdout);
}

fn assert_latest_dump_is(fx: &Fixture, expected: &[u8]) {
    let dumped = fx.dump("latest", "clinic.sql").ok();
    assert!(dumped.stdout == expected, "dump differs: {} bytes vs {} expected", dumped.stdout.len(), expected.len());
}

#[test]
fn failing_command_writes_no_snapshot() {
    let fx = Fixture::new();
    stream_backup(&fx, "echo first; echo ok").ok();
    let out = stream_backup(&fx, "seq 1 1000; echo 'pg_dump: connection refused' >&2; exit 7").expect_code(1);
    out.expect_stderr("status 7").expect_stderr("connection refused").expect_stderr("no snapshot");
    assert_eq!(fx.snapshots().len(), 1, "a failed command must not leave a snapshot");
}

#[test]
fn killed_command_writes_no_snapshot() {
    let fx = Fixture::new();
    let out = stream_backup(&fx, "seq 1 100000; kill -9 $$").expect_code(1);
    out.expect_stderr("killed");
    assert_eq!(fx.snapshots().len(), 0, "a killed command must not leave a snapshot");
}

/// A dump too long to list inline (about 1,900 blobs): a change in its middle stores a few
/// new content-list pieces instead of a new listing of the whole dump; it dumps back
/// identically after the older snapshot is forgotten and pruned, and verify follows the
/// pieces down to every blob.
#[test]
fn a_long_dump_is_listed_in_pieces_that_later_dumps_share() {
    const LONG: &str = "seq 1 15000000";
    const CHANGED: &str = "seq 1 15000000 | sed 's/^7500000$/changed/'";
    let fx = Fixture::new();
    let first = stream_backup(&fx, LONG).ok().json();
    let second = stream_backup(&fx, CHANGED).ok().json();
    let (blobs, new) = (first["stats"]["blobs_new"].as_u64().unwrap(), &second["stats"]);
    assert!(blobs > 1500, "the first dump made only {blobs} blobs: {first}");
    // One or two data chunks, the piece(s) naming them, a tree and a reference list. The
    // listing alone would be 60 KiB of IDs: the pieces keep the hour's cost to its change.
    assert!(new["blobs_new"].as_u64().unwrap() <= 8, "{second}");
    assert!(new["bytes_new"].as_u64().unwrap() < 800 << 10, "{second}");

    let mut forget: Vec<std::ffi::OsString> = vec!["forget".into(), "--keep-last".into(), "1".into()];
    forget.extend(fx.agent_args());
    fx.arka(forget).ok();
    let mut prune: Vec<std::ffi::OsString> = vec!["--json".into(), "prune".into()];
    prune.extend(fx.agent_args());
    prune.extend(["--grace".into(), "0".into(), "--max-unused".into(), "0".into()]);
    let report = fx.arka(prune).ok().json();
    assert!(report["packs_repacked"].as_u64().unwrap() + report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");

    let expected = Command::new("/bin/sh").arg("-c").arg(CHANGED).output().expect("sh");
    assert_latest_dump_is(&fx, &expected.stdout);
    let mut verify: Vec<std::ffi::OsString> = vec!["--json".into(), "verify".into(), "--read-data".into()];
    verify.extend(fx.reader_args());
    let report = fx.arka(verify).ok().json();
    assert_eq!(report["damage"].as_array().map(Vec::len), Some(0), "{report}");
    assert!(report["blobs"].as_u64().unwrap() > 1500, "{report}");
    assert_eq!(report["blobs_decrypted"], report["blobs"], "{report}");
}
