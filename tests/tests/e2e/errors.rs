//! Failures an IT contractor meets must be clear: which key is wrong, which path is not
//! a repository, which object is damaged — and a damaged restore leaves no bad files.

use std::ffi::OsString;
use std::path::PathBuf;

use arka_tests::os_args;
use arka_tests::{
    assert_same_tree, flip_byte, pseudo_random, restore_temp_files, same_contents, scan_tree, walk_files, write_file,
    EntryKind, Fixture,
};

fn small_backup(fx: &Fixture) -> PathBuf {
    let src = fx.path("src");
    write_file(&src.join("Kowalski_Jan_CBCT.dcm"), &pseudo_random(51, 100_000));
    write_file(&src.join("notes.txt"), b"note\n");
    fx.backup_ok(&[&src], &[]);
    src
}

#[test]
fn a_foreign_recovery_identity_is_named_as_such() {
    let fx = Fixture::new();
    small_backup(&fx);
    let other = fx.path("other.key");
    fx.keygen(&other, false);
    let target = fx.path("restored");
    fx.arka(os_args!["restore", "--repo", fx.repo, "--identity", other, "latest", "--target", target])
        .expect_code(12)
        .expect_stderr("not one of this repository's recipients");
    fx.arka(os_args!["ls", "--repo", fx.repo, "--identity", other, "latest"])
        .expect_code(12)
        .expect_stderr("not one of this repository's recipients");
    assert!(!target.join("src").exists());
}

#[test]
fn a_path_that_is_not_a_repository_is_named_as_such() {
    let fx = Fixture::new();
    let empty = fx.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = fx.path("missing");
    for repo in [&empty, &missing] {
        fx.arka(os_args!["snapshots", "--repo", repo, "--agent-key", fx.agent_key])
            .expect_code(10)
            .expect_stderr("not an arka repository");
        fx.arka(os_args!["restore", "--repo", repo, "--identity", fx.identity, "latest", "--target", fx.path("t")])
            .expect_code(10)
            .expect_stderr("not an arka repository");
        fx.arka(os_args!["backup", "--repo", repo, "--agent-key", fx.agent_key, fx.path("repo")])
            .expect_code(10)
            .expect_stderr("not an arka repository");
    }
    assert!(walk_files(&empty).is_empty(), "a failed command wrote into a directory that is not a repository");
}

#[test]
fn a_damaged_pack_fails_the_restore_without_leaving_bad_files() {
    let fx = Fixture::new();
    let src = fx.path("src");
    for i in 0..6u64 {
        write_file(&src.join(format!("scan_{i}.dcm")), &pseudo_random(60 + i, 5 << 20));
    }
    write_file(&src.join("notes.txt"), b"small\n");
    fx.backup_ok(&[&src], &[]);

    let largest = walk_files(&fx.repo.join("packs"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("some pack");
    let len = std::fs::metadata(&largest).unwrap().len();
    assert!(len > 4 << 20, "the largest pack is only {len} bytes");
    flip_byte(&largest, len / 2);

    // Each file on its own: the damaged one fails, the others still dump.
    let mut failed = 0;
    for i in 0..6 {
        let name = format!("src/scan_{i}.dcm");
        let out = fx.dump("latest", &name);
        if out.code == 0 {
            assert!(
                out.stdout == std::fs::read(src.join(format!("scan_{i}.dcm"))).unwrap(),
                "{name} dumped wrong bytes"
            );
        } else {
            out.expect_code(1).expect_stderr("damaged");
            failed += 1;
        }
    }
    assert!(failed >= 1, "no file was affected by the damaged pack");

    let target = fx.path("restored");
    let out = fx.restore("latest", &target, &[]);
    assert_ne!(out.code, 0, "restoring from a damaged pack succeeded:\n{}", out.stderr);
    let out = out.expect_stderr("damaged");
    let pack_name = largest.file_name().unwrap().to_string_lossy().into_owned();
    assert!(out.stderr.contains(&pack_name), "stderr does not name the damaged pack {pack_name}:\n{}", out.stderr);

    if target.exists() {
        let leftovers = restore_temp_files(&target);
        for (rel, meta) in scan_tree(&target) {
            if matches!(meta.kind, EntryKind::File { .. }) && !leftovers.contains(&rel) {
                let rel = rel.strip_prefix("src").unwrap();
                assert!(
                    same_contents(&src.join(rel), &target.join("src").join(rel)),
                    "{rel:?} was restored with damaged content"
                );
            }
        }
        assert!(leftovers.is_empty(), "a failed restore left temporary files behind: {leftovers:?}");
    }
}

/// One damaged snapshot, and junk objects under `snapshots/` and `index/` (which an
/// append-only token can write), cost only themselves: listing, restore, backup, forget
/// and prune go on with a warning naming each object, and verify names them and fails.
#[test]
fn damaged_and_junk_objects_cost_only_themselves() {
    let fx = Fixture::new();
    let src = small_backup(&fx);
    let damaged = walk_files(&fx.repo.join("snapshots")).pop().expect("a snapshot object");
    flip_byte(&damaged, std::fs::metadata(&damaged).unwrap().len() / 2);
    write_file(&src.join("notes.txt"), b"note, later\n");
    fx.backup_ok(&[&src], &[]);
    let junk_name = "ab".repeat(32);
    write_file(&fx.repo.join("snapshots").join(&junk_name), &pseudo_random(9, 64));
    write_file(&fx.repo.join("index").join(&junk_name), &pseudo_random(10, 64));
    let keys = [
        format!("snapshots/{}", damaged.file_name().unwrap().to_string_lossy()),
        format!("snapshots/{junk_name}"),
        format!("index/{junk_name}"),
    ];

    let mut list: Vec<OsString> = vec!["--json".into(), "snapshots".into()];
    list.extend(fx.agent_args());
    let listed = fx.arka(list).ok().expect_stderr(&keys[0]).expect_stderr(&keys[1]);
    assert_eq!(listed.json().as_array().map(Vec::len), Some(1), "only the intact snapshot is listed");
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
    fx.backup_ok(&[&src], &[]);

    let mut verify: Vec<OsString> = vec!["verify".into()];
    verify.extend(fx.agent_args());
    let report = fx.arka(verify).expect_code(1);
    for key in &keys {
        assert!(report.stdout_text().contains(key.as_str()), "verify does not name {key}:\n{}", report.stdout_text());
    }
    let mut forget: Vec<OsString> = vec!["forget".into(), "--keep-last".into(), "1".into()];
    forget.extend(fx.agent_args());
    fx.arka(forget).ok();
    let mut prune: Vec<OsString> = vec!["prune".into(), "--grace".into(), "0".into()];
    prune.extend(fx.agent_args());
    fx.arka(prune).ok().expect_stderr(&keys[2]);
    fx.restore("latest", &fx.path("after-prune"), &[]).ok();
    assert_same_tree(&src, &fx.path("after-prune").join("src"));
}

#[test]
fn a_passphrase_protected_identity_restores_only_with_its_passphrase() {
    let fx = Fixture::with_passphrase("x");
    let identity = std::fs::read(&fx.identity).unwrap();
    assert!(identity.starts_with(b"age-encryption.org/v1\n"), "the identity file is not passphrase-protected");
    assert!(!arka_tests::contains(&identity, b"AGE-SECRET-KEY"), "the identity is stored in the clear");
    let src = small_backup(&fx);

    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));

    let wrong_target = fx.path("wrong");
    let mut cmd = fx.command();
    cmd.env("ARKA_PASSPHRASE", "not x")
        .args(["restore", "latest", "--target"])
        .arg(&wrong_target)
        .args(fx.reader_args());
    let out = arka_tests::run(cmd);
    out.expect_code(12).expect_stderr("wrong passphrase");
    assert!(!wrong_target.join("src").exists(), "restored with a wrong passphrase");
}

/// What cannot be written at the target (a folder where a file goes, a file where a folder
/// goes) is named and skipped; everything else is restored, and the exit code is 3.
#[test]
fn a_restore_goes_as_far_as_it_can() {
    let fx = Fixture::new();
    let src = small_backup(&fx);
    write_file(&src.join("sub").join("inner.txt"), b"inner\n");
    write_file(&src.join("keep.txt"), b"kept\n");
    fx.backup_ok(&[&src], &[]);
    let target = fx.path("restored");
    std::fs::create_dir_all(target.join("src").join("notes.txt").join("in-the-way")).unwrap();
    write_file(&target.join("src").join("sub"), b"a file where a folder goes\n");

    let out = fx.restore("latest", &target, &[]).expect_code(3);
    let out = out.expect_stderr("cannot be written here").expect_stderr("notes.txt").expect_stderr("sub");
    let summary = out.json()["summary"].clone();
    assert_eq!(summary["unwritable"].as_array().map(Vec::len), Some(3), "notes.txt, sub, sub/inner.txt: {summary}");
    for name in ["Kowalski_Jan_CBCT.dcm", "keep.txt"] {
        assert!(same_contents(&src.join(name), &target.join("src").join(name)), "{name} was not restored");
    }
    assert!(restore_temp_files(&target).is_empty(), "temporary files were left behind");
}

/// A small tmpfs for the full-disk test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts `size` of tmpfs at `dir`, or says why not (mounting needs root).
    fn mount(dir: PathBuf, size: &str) -> Option<Self> {
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("SKIPPED: cannot mount a tmpfs here: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full target disk stops the restore with how much is left, and leaves no partial file.
#[test]
fn a_full_disk_stops_the_restore_saying_how_much_is_left() {
    let fx = Fixture::new();
    let src = small_backup(&fx);
    write_file(&src.join("big.bin"), &pseudo_random(52, 600_000));
    fx.backup_ok(&[&src], &[]);
    let Some(disk) = SmallDisk::mount(fx.path("small-disk"), "300k") else { return };
    let out = fx.restore("latest", &disk.0.join("r"), &[]).expect_code(1);
    out.expect_stderr("the target disk is full").expect_stderr("still to go");
    assert!(restore_temp_files(&disk.0).is_empty(), "a partial file was left behind");
}

/// #15 point 5: a failing dump's stderr names a patient's file; `arka backup` says the exit
/// status and the last line with the path removed, in text and in JSON.
#[test]
fn a_failing_dump_command_is_reported_without_the_paths_its_stderr_names() {
    let fx = Fixture::new();
    let script = fx.path("dump.sh");
    std::fs::write(
        &script,
        "echo 'rows'\necho \"tar: '/srv/pacjenci/Wiśniewska Zofia.dcm': Cannot open: Permission denied\" >&2\nexit 2\n",
    )
    .unwrap();
    let command = format!("sh {}", script.display());
    for json in [false, true] {
        let mut args: Vec<OsString> = if json { vec!["--json".into()] } else { Vec::new() };
        args.push("backup".into());
        args.extend(fx.agent_args());
        args.extend(["--stdin-from-command".into(), command.clone().into(), "--name".into(), "db.sql".into()]);
        let run = fx.arka(args).expect_code(1);
        let said = format!("{}{}", run.stderr, run.stdout_text());
        assert!(said.contains("status 2") && said.contains("tar: '<path>': Cannot open"), "{said}");
        assert!(!said.contains("pacjenci") && !said.contains("Wiśniewska") && !said.contains("Zofia"), "{said}");
    }
    assert!(fx.snapshots().is_empty());
}

/// #15 point 7: a dump name is one file name in the snapshot; `..` or a `/` made a tree
/// that restore, ls and dump refused as malformed while verify passed.
#[test]
fn a_dump_name_that_is_not_one_plain_file_name_is_refused() {
    let fx = Fixture::new();
    for name in ["..", ".", "../etc/passwd", "db/clinic.sql", ""] {
        let mut args: Vec<OsString> = vec!["backup".into()];
        args.extend(fx.agent_args());
        args.extend(["--stdin-from-command".into(), "echo rows".into(), "--name".into(), name.into()]);
        fx.arka(args).expect_code(2).expect_stderr("letters A-Z a-z, digits and . _ -");
    }
    let config = fx.path("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_key = {:?}\nstate_dir = {:?}\n[[target]]\nurl = {:?}\n[[source]]\nname = \"..\"\nkind = \"command\"\n\
             command = \"echo rows\"\nschedule = \"every 1h\"\n",
            fx.agent_key,
            fx.path("state"),
            fx.repo
        ),
    )
    .unwrap();
    fx.arka(os_args!["agent", "check", "--config", config])
        .expect_code(2)
        .expect_stderr("source name \"..\" is not valid");
    assert!(fx.snapshots().is_empty());
}
