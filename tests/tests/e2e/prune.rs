//! `arka prune` with the agent key alone: it frees what forgotten snapshots used, keeps
//! everything listed restorable, waits out its grace period before deleting, spares what a
//! backup running at the same time came to need, survives kill -9 at any point, and never
//! deletes on an empty listing.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arka_tests::{assert_same_tree, pseudo_random, walk_files, write_file, Fixture};
use serde_json::Value;

fn prune(fx: &Fixture, extra: &[&str]) -> arka_tests::Run {
    let mut args: Vec<OsString> = vec!["--json".into(), "prune".into()];
    args.extend(fx.agent_args());
    args.extend(extra.iter().map(OsString::from));
    fx.arka(args)
}

fn prune_ok(fx: &Fixture, extra: &[&str]) -> Value {
    prune(fx, extra).ok().json()
}

fn forget_keep_last(fx: &Fixture, n: u32) {
    let mut args: Vec<OsString> = vec!["forget".into()];
    args.extend(fx.agent_args());
    args.extend(["--keep-last".into(), n.to_string().into()]);
    fx.arka(args).ok();
}

fn verify_all(fx: &Fixture) {
    let mut args: Vec<OsString> = vec!["verify".into(), "--read-data".into()];
    args.extend(fx.reader_args());
    fx.arka(args).ok();
}

pub(crate) fn bytes_under(dir: &Path) -> u64 {
    walk_files(dir).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum()
}

/// The snapshot restores to exactly the tree at `expected`.
fn restores_as(fx: &Fixture, id: &str, expected: &Path) {
    let target = fx.path(format!("restored-{id}"));
    fx.restore(id, &target, &[]).ok();
    assert_same_tree(expected, &target.join(expected.file_name().unwrap()));
}

/// Ten 700 kB scans in 1 MiB packs: most packs hold parts of two files, so forgetting some
/// files leaves packs partly used (repacked) as well as wholly unused ones (deleted).
fn scans(fx: &Fixture, dir: &Path, seeds: std::ops::Range<u64>) {
    for i in seeds {
        write_file(&fx.path(dir).join(format!("scan_{i}.dcm")), &pseudo_random(i, 700_000));
    }
}

#[test]
fn prune_frees_forgotten_data_and_everything_kept_restores() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = fx.path("src");
    scans(&fx, &src, 0..10);
    // Small incompressible notes share packs with each other and with the scans, so
    // forgetting every other one leaves packs partly used: those are repacked.
    for i in 0..24u64 {
        write_file(&src.join(format!("note_{i}.bin")), &pseudo_random(1000 + i, 40_000));
    }
    fx.backup_ok(&[&src], &[]);
    for i in 0..6 {
        std::fs::remove_file(src.join(format!("scan_{i}.dcm"))).unwrap();
    }
    for i in (0..24).step_by(2) {
        std::fs::remove_file(src.join(format!("note_{i}.bin"))).unwrap();
    }
    scans(&fx, &src, 10..12);
    let kept = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    forget_keep_last(&fx, 1);

    let before = bytes_under(&fx.repo.join("packs"));
    let dry = prune_ok(&fx, &["--grace", "0", "--dry-run"]);
    assert_eq!(bytes_under(&fx.repo.join("packs")), before, "--dry-run changed the packs");
    assert!(dry["packs_condemned"].as_u64().unwrap() > 0, "{dry}");

    let report = prune_ok(&fx, &["--grace", "0"]);
    let after = bytes_under(&fx.repo.join("packs"));
    println!("prune: packs {before} -> {after} bytes; {report}");
    assert!(report["packs_repacked"].as_u64().unwrap() >= 1, "no partly used pack was repacked: {report}");
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    // Six scans and twelve notes (4.7 MB, incompressible) were forgotten; packs under 10%
    // garbage are kept as they are.
    assert!(before - after > 4_000_000, "freed only {} bytes", before - after);
    assert!(report["plans_pending"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(std::fs::read_dir(fx.repo.join("prune")).map(|d| d.count()).unwrap_or(0), 0);

    restores_as(&fx, &kept, &src);
    verify_all(&fx);
    let again = prune_ok(&fx, &["--grace", "0"]);
    assert_eq!(again["packs_condemned"], 0, "a second prune found more to do: {again}");
}

#[test]
fn nothing_is_deleted_before_the_grace_period_ends_and_new_backups_store_condemned_data_again() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = fx.path("src");
    scans(&fx, &src, 0..4);
    fx.backup_ok(&[&src], &[]);
    let moved = fx.path("moved");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::rename(src.join("scan_0.dcm"), moved.join("scan_0.dcm")).unwrap();
    fx.backup_ok(&[&src], &[]);
    forget_keep_last(&fx, 1);

    let packs_before = walk_files(&fx.repo.join("packs"));
    // --max-unused 0: a pack holding a small dead piece of the scan beside live data is
    // repacked too, so every blob of the scan ends up only in condemned packs (with the
    // default 10% such a piece stays live and a backup may rightly reuse it).
    let first = prune_ok(&fx, &["--grace", "4s", "--max-unused", "0"]);
    assert!(first["packs_condemned"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["packs_deleted"], 0, "deleted inside the grace period: {first}");
    for p in &packs_before {
        assert!(p.exists(), "{} was deleted inside the grace period", p.display());
    }

    // The forgotten scan comes back: its blobs are only in condemned packs, so the backup
    // must store them again rather than reference packs about to be deleted.
    let back = fx.backup_ok(&[&moved], &[]);
    assert!(back["stats"]["bytes_new"].as_u64().unwrap() >= 700_000, "deduplicated against condemned packs: {back}");

    std::thread::sleep(Duration::from_secs(5));
    let second = prune_ok(&fx, &["--grace", "4s"]);
    assert!(second["packs_deleted"].as_u64().unwrap() > 0, "{second}");
    for s in fx.snapshots() {
        let id = s["id"].as_str().unwrap();
        let dir = if s["source"].to_string().contains("moved") { &moved } else { &src };
        restores_as(&fx, id, dir);
    }
    verify_all(&fx);
}

/// The dedup-then-delete race: a backup loads the index, a prune then condemns packs
/// holding blobs the backup reuses, and the backup's snapshot appears only afterwards. The
/// sweep at the end of the grace period must see that snapshot and keep those packs.
#[test]
fn a_backup_running_during_prune_keeps_the_data_it_reused() {
    let fx = Fixture::with_pack_size_mib(1);
    let data = fx.path("dump.sql");
    write_file(&data, &pseudo_random(7, 3_000_000));
    let other = fx.path("other");
    write_file(&other.join("note.txt"), b"keeps the repository non-empty\n");
    fx.backup_ok(&[&other], &[]);
    let cmd = format!("cat {}", data.display());
    let mut args: Vec<OsString> = vec!["--json".into(), "backup".into()];
    args.extend(fx.agent_args());
    args.extend(["--stdin-from-command".into(), cmd.into(), "--name".into(), "clinic.sql".into()]);
    let first = fx.arka(args).ok().json()["snapshot_id"].as_str().unwrap().to_string();
    // Forget the dump's snapshot: its blobs are now unreferenced.
    let mut forget: Vec<OsString> = vec!["forget".into(), first.into()];
    forget.extend(fx.agent_args());
    fx.arka(forget).ok();

    // A backup of the same dump that reads it at once and then takes its time to finish.
    let slow = format!("cat {}; sleep 4", data.display());
    let mut args: Vec<OsString> = vec!["--json".into(), "backup".into()];
    args.extend(fx.agent_args());
    args.extend(["--stdin-from-command".into(), slow.into(), "--name".into(), "clinic.sql".into()]);
    let mut cmd: Command = fx.command();
    cmd.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let backup = cmd.spawn().expect("start the slow backup");
    std::thread::sleep(Duration::from_millis(1500));

    let marked = prune_ok(&fx, &["--grace", "6s"]);
    assert!(marked["packs_condemned"].as_u64().unwrap() > 0, "the dump's packs were not condemned: {marked}");
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success(), "slow backup failed: {}", String::from_utf8_lossy(&out.stderr));
    let racing: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        racing["stats"]["bytes_new"].as_u64().unwrap() < 100_000,
        "the racing backup should have deduplicated against the condemned packs: {racing}"
    );

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(7) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let swept = prune_ok(&fx, &["--grace", "6s"]);
    assert!(swept["packs_spared"].as_u64().unwrap() > 0, "the sweep did not spare the reused packs: {swept}");
    let id = racing["snapshot_id"].as_str().unwrap();
    let dumped = fx.dump(id, "clinic.sql").ok();
    assert!(dumped.stdout == std::fs::read(&data).unwrap(), "the racing backup's dump does not restore");
    verify_all(&fx);
}

#[test]
fn kill_9_at_any_point_of_a_prune_leaves_every_snapshot_restorable() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = fx.path("src");
    scans(&fx, &src, 0..30);
    let first = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    for i in 0..20 {
        std::fs::remove_file(src.join(format!("scan_{i}.dcm"))).unwrap();
    }
    let kept = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    // By ID: the second snapshot lost two thirds of the source, a shrink retention would
    // not let take the first one's place.
    let mut forget: Vec<OsString> = vec!["forget".into(), first.into()];
    forget.extend(fx.agent_args());
    fx.arka(forget).ok();
    let before = bytes_under(&fx.repo.join("packs"));

    let mut killed = 0;
    // Each run is killed a little later than the one before, so the kills land in the
    // mark phase (repacking, index rewriting) and in the sweep (deleting) alike.
    let delays = [2u64, 5, 10, 20, 35, 50, 80, 120, 200];
    for delay_ms in delays {
        let mut args: Vec<OsString> = vec!["prune".into()];
        args.extend(fx.agent_args());
        args.extend(["--grace".into(), "0".into()]);
        let mut cmd = fx.command();
        cmd.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("start prune");
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        // Whatever the prune had done, the listed snapshot restores in full.
        let target = fx.path(format!("after-kill-{delay_ms}"));
        fx.restore(&kept, &target, &[]).ok();
        assert_same_tree(&src, &target.join("src"));
    }
    println!("prune killed {killed} of {} times", delays.len());
    let last = prune_ok(&fx, &["--grace", "0"]);
    let after = bytes_under(&fx.repo.join("packs"));
    // 10 of 30 scans (7 MB) are live again; packs keep up to 10% garbage before a repack.
    let live = 10 * 700_000;
    assert!(after < live * 6 / 5, "after the kills and a last prune, {after} of {before} bytes remain: {last}");
    assert!(last["plans_pending"].as_array().unwrap().is_empty(), "{last}");
    verify_all(&fx);
    let again = prune_ok(&fx, &["--grace", "0"]);
    assert_eq!(again["packs_condemned"], 0, "{again}");
}

#[test]
fn an_empty_snapshot_listing_deletes_nothing() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = fx.path("src");
    scans(&fx, &src, 0..3);
    fx.backup_ok(&[&src], &[]);
    let packs = walk_files(&fx.repo.join("packs"));
    // Storage that lists no snapshots (a glitch, or an attacker who deleted them): a prune
    // taking that at its word would delete every pack.
    for s in walk_files(&fx.repo.join("snapshots")) {
        std::fs::remove_file(s).unwrap();
    }
    prune(&fx, &["--grace", "0"]).expect_code(1).expect_stderr("refuses to delete anything");
    for p in &packs {
        assert!(p.exists(), "{} was deleted", p.display());
    }
}

#[test]
fn forget_with_prune_schedules_the_deletion_a_day_ahead() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = fx.path("src");
    scans(&fx, &src, 0..3);
    fx.backup_ok(&[&src], &[]);
    std::fs::remove_file(src.join("scan_0.dcm")).unwrap();
    fx.backup_ok(&[&src], &[]);
    let mut args: Vec<OsString> = vec!["--json".into(), "forget".into()];
    args.extend(fx.agent_args());
    args.extend(["--keep-last".into(), "1".into(), "--prune".into()]);
    let report = fx.arka(args).ok().json();
    assert_eq!(report["deleted"], 1, "{report}");
    let prune = &report["prune"];
    assert!(prune["packs_condemned"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(prune["packs_deleted"], 0, "{report}");
    let after_ns = prune["plans_pending"][0][1].as_i64().unwrap();
    let hours = (after_ns - jiff::Timestamp::now().as_nanosecond() as i64) as f64 / 3.6e12;
    assert!((23.9..=24.0).contains(&hours), "deletion due in {hours:.2} h, expected a day");
}

#[test]
fn a_damaged_prune_plan_is_skipped_by_backups_and_restores() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = fx.path("src");
    scans(&fx, &src, 0..3);
    fx.backup_ok(&[&src], &[]);
    std::fs::remove_file(src.join("scan_0.dcm")).unwrap();
    fx.backup_ok(&[&src], &[]);
    forget_keep_last(&fx, 1);
    prune_ok(&fx, &["--grace", "1d"]);
    let plans = walk_files(&fx.repo.join("prune"));
    assert_eq!(plans.len(), 1);
    arka_tests::flip_byte(&plans[0], 40);

    // A restore only reads: the plan does not matter to it.
    restores_as(&fx, "latest", &src);
    // A backup skips it with a warning naming it. That is safe: no prune can read the plan
    // either, so the packs it condemned are never deleted and may be deduplicated against.
    fx.backup(&[&src], &[]).ok().expect_stderr("prune/");
    restores_as(&fx, "latest", &src);
    // Verify names it.
    let mut verify: Vec<std::ffi::OsString> = vec!["verify".into()];
    verify.extend(fx.agent_args());
    let out = fx.arka(verify).expect_code(1);
    assert!(out.stdout_text().contains("DAMAGED prune/"), "{}", out.stdout_text());
}
