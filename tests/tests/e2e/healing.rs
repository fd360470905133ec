//! Self-healing: damage that verify, a restore or a backup's own pack check finds is
//! recorded in the repository, and the next backup stores the data again, also for files
//! the files cache calls unchanged. Snapshots name blobs, not copies, so once a healthy
//! copy exists every snapshot that needs the blob is whole again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use arka_tests::{assert_same_tree, flip_byte, pseudo_random, walk_files, write_file, Fixture};

/// A source of several incompressible files in 1 MiB packs, backed up once, old enough
/// that the files cache trusts it at the next backup.
fn source_in_many_packs(fx: &Fixture) -> PathBuf {
    let src = fx.path("src");
    for i in 0..4u64 {
        write_file(&src.join(format!("scan-{i}.dcm")), &pseudo_random(70 + i, 700_000));
    }
    write_file(&src.join("notes.txt"), b"visit notes\n");
    // Files changed in the last two seconds are not cached (they may change again unseen).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    fx.backup_ok(&[&src], &[]);
    src
}

fn packs(fx: &Fixture) -> Vec<PathBuf> {
    let mut packs = walk_files(&fx.repo.join("packs"));
    packs.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    packs
}

fn verify(fx: &Fixture, extra: &[&str]) -> arka_tests::Run {
    let mut args: Vec<OsString> = vec!["verify".into()];
    args.extend(extra.iter().map(OsString::from));
    args.extend(fx.agent_args());
    fx.arka(args)
}

fn restores_whole(fx: &Fixture, snapshot: &str, src: &Path, name: &str) {
    let target = fx.path(name);
    fx.restore(snapshot, &target, &[]).ok();
    assert_same_tree(src, &target.join("src"));
}

#[test]
fn a_damaged_pack_found_by_verify_heals_at_the_next_backup() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = source_in_many_packs(&fx);
    let first = fx.snapshots()[0]["id"].as_str().unwrap().to_string();
    let pack = packs(&fx).remove(0);
    flip_byte(&pack, 5000);

    let found = verify(&fx, &["--read-data"]).expect_code(1);
    let text = found.stdout_text();
    assert!(text.contains("DAMAGED packs/"), "verify does not name the pack:\n{text}");
    assert!(text.contains("recorded"), "verify does not say it recorded the damage:\n{text}");
    assert_eq!(walk_files(&fx.repo.join("damage")).len(), 1, "one damage report");

    // The files cache calls every file unchanged; the damaged ones are read again all the same.
    let healed = fx.backup(&[&src], &[]).ok();
    let summary = healed.json();
    assert!(summary["healing"]["damaged"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["healing"]["healed"], summary["healing"]["damaged"], "{summary}");

    let after = verify(&fx, &["--read-data"]).ok();
    assert!(after.stdout_text().contains("healed packs/"), "{}", after.stdout_text());
    restores_whole(&fx, "latest", &src, "latest");
    // Snapshots name blobs, not copies: the first snapshot is whole again too.
    restores_whole(&fx, &first, &src, "first");

    // Prune deletes the damaged pack, then the report that named it.
    let mut prune: Vec<OsString> = vec!["prune".into(), "--grace".into(), "0".into()];
    prune.extend(fx.agent_args());
    fx.arka(prune).ok();
    assert!(!pack.exists(), "prune kept the damaged pack");
    assert!(walk_files(&fx.repo.join("damage")).is_empty(), "the damage report outlived its pack");
    let clean = verify(&fx, &["--read-data"]).ok();
    assert!(!clean.stdout_text().contains("packs/"), "{}", clean.stdout_text());
    restores_whole(&fx, &first, &src, "after-prune");
}

#[test]
fn a_deleted_pack_is_healed_by_the_next_backup_without_a_verify() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = source_in_many_packs(&fx);
    let pack = packs(&fx).remove(0);
    std::fs::remove_file(&pack).unwrap();

    let summary = fx.backup_ok(&[&src], &[]);
    assert!(summary["healing"]["healed"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["healing"]["healed"], summary["healing"]["damaged"], "{summary}");
    verify(&fx, &[]).ok();
    restores_whole(&fx, "latest", &src, "latest");
}

#[test]
fn damage_a_restore_meets_is_recorded_and_healed() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = source_in_many_packs(&fx);
    flip_byte(&packs(&fx)[0], 5000);
    let target = fx.path("broken");
    let restore = fx.restore("latest", &target, &[]);
    assert_ne!(restore.code, 0, "a restore through a damaged pack reported success");
    assert!(!walk_files(&fx.repo.join("damage")).is_empty(), "the restore recorded nothing");

    let summary = fx.backup_ok(&[&src], &[]);
    assert!(summary["healing"]["healed"].as_u64().unwrap() > 0, "{summary}");
    restores_whole(&fx, "latest", &src, "latest");
}

#[test]
fn damage_whose_source_is_gone_is_reported_as_not_healable() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = source_in_many_packs(&fx);
    let pack = packs(&fx).remove(0);
    std::fs::remove_dir_all(&src).unwrap();
    write_file(&src.join("other.txt"), b"something else\n");
    std::fs::remove_file(&pack).unwrap();
    let run = fx.backup(&[&src], &[]).ok();
    let summary = run.json();
    assert_eq!(summary["healing"]["healed"], 0, "{summary}");
    assert!(summary["healing"]["damaged"].as_u64().unwrap() > 0, "{summary}");
    verify(&fx, &[]).expect_code(1);
}

/// A pack damaged on the NAS is not spread to the offsite copy: sync names it, copies the
/// rest and exits 3; once a backup heals the NAS, the next sync makes the copy whole.
#[test]
fn sync_leaves_a_damaged_pack_out_and_carries_the_healing_over() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = source_in_many_packs(&fx);
    let pack = packs(&fx).remove(0);
    flip_byte(&pack, 5000);
    let offsite = fx.path("offsite");
    let pack_key = pack.strip_prefix(&fx.repo).unwrap().to_string_lossy().into_owned();
    let sync = |code: i32| {
        let mut args: Vec<OsString> = vec!["sync".into(), "--repo".into(), fx.repo.clone().into()];
        args.extend(["--to".into(), offsite.clone().into_os_string()]);
        fx.arka(args).expect_code(code)
    };
    let first = sync(3);
    assert!(first.stdout_text().contains(&format!("NOT COPIED {pack_key}")), "{}", first.stdout_text());
    assert!(!offsite.join(&pack_key).exists(), "the damaged pack was copied");

    verify(&fx, &["--read-data"]).expect_code(1);
    fx.backup_ok(&[&src], &[]);
    sync(3); // the damaged pack is still at the source, and still left out
    let mut args: Vec<OsString> = vec!["--json".into(), "restore".into(), "--repo".into(), offsite.clone().into()];
    args.extend(["--identity".into(), fx.identity.clone().into_os_string(), "latest".into()]);
    args.extend(["--target".into(), fx.path("from-offsite").into_os_string()]);
    fx.arka(args).ok();
    assert_same_tree(&src, &fx.path("from-offsite").join("src"));
}
