//! `arka key rewrap` with the real binary: after `key add`, `key remove` and `key rewrap`,
//! the removed holder's identity restores nothing (exit 12, no damage recorded), the
//! remaining holder restores the source exactly, and `key list` says the removed holder
//! reads no backup. On a local repository, on Garage S3, and on arka-server, where a token
//! that may not delete is refused before anything changes.

use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

use arka_tests::garage::Garage;
use arka_tests::server::{ServerProcess, TokenSpec};
use arka_tests::{assert_same_tree, os_args, Fixture, Run};

/// `arka ARGS… --repo R --identity IDENTITY`.
fn as_holder(fx: &Fixture, identity: &Path, args: &[&str]) -> Run {
    let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
    all.extend(os_args!["--repo", fx.repo, "--identity", identity]);
    fx.arka(all)
}

/// Backs up a small tree, adds holder B, has B remove the owner; returns B's identity
/// file and the snapshot.
fn remove_owner(fx: &Fixture) -> (std::path::PathBuf, String) {
    let src = fx.path("src");
    crate::s3::small_tree(&src, 7);
    let snapshot = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().expect("snapshot id").to_string();
    let b_key = fx.path("b.key");
    let b = fx.keygen(&b_key, false);
    as_holder(fx, &fx.identity, &["key", "add", "--recipient", &b, "--label", "b"]).ok();
    as_holder(fx, &b_key, &["key", "remove", &fx.recipient]).ok();
    (b_key, snapshot)
}

/// Rewraps as B (old packs deleted at once) and checks who reads what afterwards.
fn rewrap_and_check(fx: &Fixture, b_key: &Path, snapshot: &str) {
    let report = as_holder(fx, b_key, &["--json", "key", "rewrap", "--grace", "0"]).ok().json();
    assert_eq!(report["old_keys_retired"], Value::Bool(true), "{report}");
    assert!(report["packs_rewrapped"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["packs_rewrapped"], report["packs_deleted"], "{report}");

    let run = fx.restore(snapshot, &fx.path("as-owner"), &[]);
    run.expect_code(12).expect_stderr("removed from the repository's holders");

    let target = fx.path("as-b");
    as_holder(fx, b_key, &["--json", "restore", snapshot, "--target", target.to_str().unwrap()]).ok();
    assert_same_tree(&fx.path("src"), &target.join("src"));

    let listing = as_holder(fx, b_key, &["--json", "key", "list"]).ok().json();
    assert_eq!(listing["removed"][0]["can_read_older_data"], Value::Bool(false), "{listing}");
    // A second run finds nothing to do.
    let again = as_holder(fx, b_key, &["--json", "key", "rewrap", "--grace", "0"]).ok().json();
    assert_eq!(again["packs_found"], 0, "{again}");
}

#[test]
fn rewrap_leaves_a_removed_holder_nothing_on_a_local_repository() {
    let fx = Fixture::new();
    let (b_key, snapshot) = remove_owner(&fx);
    // A dry run changes nothing.
    let dry = as_holder(&fx, &b_key, &["--json", "key", "rewrap", "--dry-run"]).ok().json();
    assert!(dry["packs_found"].as_u64().unwrap() >= 1 && dry["packs_written"] == 0, "{dry}");
    fx.restore(&snapshot, &fx.path("before"), &[]).ok();
    rewrap_and_check(&fx, &b_key, &snapshot);
    // The removed holder's failed restore is not taken for damage: nothing to re-upload.
    let reports = std::fs::read_dir(fx.repo.join("damage")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(reports, 0, "a restore with a removed identity recorded damage");
}

#[test]
fn rewrap_with_a_grace_period_leaves_the_old_packs_to_prune() {
    let fx = Fixture::new();
    let (b_key, snapshot) = remove_owner(&fx);
    let out = as_holder(&fx, &b_key, &["key", "rewrap"]).ok().stdout_text();
    assert!(out.contains("wait for prune") && out.contains("arka prune"), "{out}");
    // The remaining holder reads the new copies at once.
    let target = fx.path("as-b");
    as_holder(&fx, &b_key, &["--json", "restore", &snapshot, "--target", target.to_str().unwrap()]).ok();
    assert_same_tree(&fx.path("src"), &target.join("src"));
}

#[test]
fn rewrap_leaves_a_removed_holder_nothing_on_garage_s3() {
    let garage = Garage::single();
    let fx = Fixture::at(&garage.url("clinic/rewrap"), garage.env());
    let (b_key, snapshot) = remove_owner(&fx);
    rewrap_and_check(&fx, &b_key, &snapshot);
}

#[test]
fn rewrap_on_arka_server_needs_a_token_that_may_delete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = [
        TokenSpec::new("clinic-agent", "append", &["clinic"]),
        TokenSpec::new("nas-maintain", "maintain", &["clinic"]),
    ];
    let server = ServerProcess::start(dir.path(), &tokens);
    let env = vec![("ARKA_SERVER_TOKEN".to_string(), server.secret("nas-maintain"))];
    let fx = Fixture::at(&server.repo_url("clinic"), env);
    let (b_key, snapshot) = remove_owner(&fx);

    let mut cmd = fx.command();
    cmd.env("ARKA_SERVER_TOKEN", server.secret("clinic-agent"));
    cmd.args(os_args!["key", "rewrap", "--grace", "0", "--repo", fx.repo, "--identity", b_key]);
    arka_tests::run(cmd).expect_code(12).expect_stderr("this token may not delete");
    // Nothing changed: the owner still reads the old packs.
    fx.restore(&snapshot, &fx.path("still"), &[]).ok();

    rewrap_and_check(&fx, &b_key, &snapshot);
}
