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

    let dumped = fx.dump("latest", "clinic.sql").ok();
    assert!(
        dumped.stdout == expected.stdout,
        "dump differs: {} bytes vs {} expected",
        dumped.stdout.len(),
        expected.stdout.len()
    );
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
