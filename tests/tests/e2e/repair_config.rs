//! No single point of failure in `config` (#14 point 4): with `config` deleted or damaged
//! the repository still lists and restores with the recovery identity (saying so), `arka
//! repair config` writes it back byte for byte (`--dry-run` writes nothing), and a
//! repository from before copies gets its copy at its next backup.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use arka_tests::garage::Garage;
use arka_tests::{assert_same_tree, flip_byte, walk_files, Fixture, Run};

use crate::s3::small_tree;

fn with_identity(fx: &Fixture, command: &[&str]) -> Run {
    let mut args: Vec<OsString> = command.iter().map(OsString::from).collect();
    args.extend(fx.reader_args());
    fx.arka(args)
}

fn repair(fx: &Fixture, dry_run: bool) -> Run {
    let mut command = vec!["repair", "config"];
    if dry_run {
        command.push("--dry-run");
    }
    with_identity(fx, &command)
}

/// Backs up a small tree; returns it and the config's bytes.
fn backed_up(fx: &Fixture) -> (PathBuf, Vec<u8>) {
    let src = fx.path("src");
    small_tree(&src, 3);
    fx.backup_ok(&[&src], &[]);
    (src, std::fs::read(fx.repo.join("config")).expect("config"))
}

/// Lists and restores with the identity alone, each run warning about the copy.
#[track_caller]
fn lists_and_restores_from_the_copy(fx: &Fixture, src: &Path, why: &str) {
    let listed = with_identity(fx, &["--json", "snapshots"]).ok();
    let listed = listed.expect_stderr(why).expect_stderr("opened the repository from its copy configs/");
    let listed = listed.expect_stderr("run `arka repair config`");
    let id = listed.json()[0]["id"].as_str().expect("a snapshot").to_string();
    let target = fx.path(format!("restored-{}", why.len()));
    fx.restore(&id, &target, &[]).ok().expect_stderr("opened the repository from its copy");
    assert_same_tree(src, &target.join("src"));
}

#[track_caller]
fn repairs_byte_identical(fx: &Fixture, original: &[u8], before: Option<&[u8]>) {
    let config = fx.repo.join("config");
    let dry = repair(fx, true).ok();
    assert!(dry.stdout_text().contains("dry run: nothing was written"), "{}", dry.stdout_text());
    assert_eq!(std::fs::read(&config).ok().as_deref(), before, "a dry run changed config");
    let done = repair(fx, false).ok();
    assert!(done.stdout_text().contains("from its copy configs/"), "{}", done.stdout_text());
    assert_eq!(std::fs::read(&config).unwrap(), original, "config is not what it was");
    // Back to normal: no warning, and nothing more to repair.
    let listed = with_identity(fx, &["snapshots"]).ok();
    assert!(!listed.stderr.contains("copy"), "{}", listed.stderr);
    assert!(repair(fx, false).ok().stdout_text().contains("nothing to repair"));
    let mut audit: Vec<OsString> = vec!["audit".into()];
    audit.extend(fx.agent_args());
    let audit = fx.arka(audit).ok().stdout_text();
    assert!(audit.contains("repair") && audit.contains("from its copy"), "not in the audit trail:\n{audit}");
}

#[test]
fn a_deleted_config_is_read_from_its_copy_and_written_back() {
    let fx = Fixture::new();
    let (src, original) = backed_up(&fx);
    std::fs::remove_file(fx.repo.join("config")).unwrap();
    lists_and_restores_from_the_copy(&fx, &src, "config is missing");
    // Backups go on with the agent key meanwhile.
    fx.backup(&[&src], &[]).ok().expect_stderr("config is missing");
    repairs_byte_identical(&fx, &original, None);
}

#[test]
fn a_damaged_config_is_read_from_its_copy_and_replaced() {
    let fx = Fixture::new();
    let (src, original) = backed_up(&fx);
    let config = fx.repo.join("config");
    flip_byte(&config, original.len() as u64 / 2);
    let damaged = std::fs::read(&config).unwrap();
    lists_and_restores_from_the_copy(&fx, &src, "config is damaged");
    repairs_byte_identical(&fx, &original, Some(&damaged));
}

#[test]
fn a_repository_from_before_copies_gets_its_copy_at_the_next_backup() {
    let fx = Fixture::new();
    let (src, original) = backed_up(&fx);
    let copies = fx.repo.join("configs");
    std::fs::remove_dir_all(&copies).unwrap();
    // Read-only commands leave it alone.
    fx.snapshots();
    with_identity(&fx, &["snapshots"]).ok();
    assert!(!copies.exists(), "a read-only command wrote the copy");
    fx.backup_ok(&[&src], &[]);
    let written = walk_files(&copies);
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(std::fs::read(&written[0]).unwrap(), original);
}

#[test]
fn a_deleted_config_on_garage_is_read_from_its_copy_and_written_back() {
    let garage = Garage::single();
    let fx = Fixture::at(&garage.url("clinic/arka"), garage.env());
    let src = fx.path("src");
    small_tree(&src, 4);
    fx.backup_ok(&[&src], &[]);
    let original = garage.get_object("clinic/arka/config").expect("config on S3");
    garage.delete_object("clinic/arka/config");
    let listed = with_identity(&fx, &["--json", "snapshots"]).ok().expect_stderr("config is missing");
    let id = listed.json()[0]["id"].as_str().unwrap().to_string();
    let target = fx.path("restored");
    fx.restore(&id, &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
    repair(&fx, true).ok();
    assert_eq!(garage.get_object("clinic/arka/config"), None, "a dry run wrote config");
    repair(&fx, false).ok();
    assert_eq!(garage.get_object("clinic/arka/config"), Some(original));
}

/// On arka-server: the agent's append token may not delete the damaged `config`, and says
/// which token would; the NAS's maintain token repairs it.
#[test]
fn a_damaged_config_on_arka_server_needs_a_maintain_token_to_be_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::server_client::clinic_and_nas(dir.path());
    let token_env = |t: &str| crate::server_client::token_env(&server, t);
    let mut fx = crate::server_client::fixture_on(&server, "clinic", "reception");
    let src = fx.path("src");
    small_tree(&src, 5);
    fx.backup_ok(&[&src], &[]);
    let config = server.data_dir().join("clinic").join("config");
    let original = std::fs::read(&config).unwrap();
    assert_eq!(walk_files(&server.data_dir().join("clinic").join("configs")).len(), 1, "init wrote no copy");
    flip_byte(&config, original.len() as u64 / 2);

    with_identity(&fx, &["snapshots"]).ok().expect_stderr("config is damaged");
    repair(&fx, false).expect_code(12).expect_stderr("this token may not delete").expect_stderr("maintain token");
    fx.env = token_env("nas");
    repair(&fx, false).ok();
    assert_eq!(std::fs::read(&config).unwrap(), original);
}
