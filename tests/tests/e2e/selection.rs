//! Picking what to restore: a snapshot ID prefix, `latest --at TIME`, and `--path` for
//! one subtree.

use std::time::Duration;

use arka_tests::{pseudo_random, same_contents, write_file, Fixture};

/// A snapshot's `time` from `snapshots --json`: RFC 3339.
fn time_of(snapshot: &serde_json::Value) -> jiff::Timestamp {
    let text = snapshot["time"].as_str().unwrap_or_else(|| panic!("no RFC 3339 `time` in {snapshot}"));
    text.parse().unwrap_or_else(|e| panic!("`time` {text:?} is not RFC 3339: {e}"))
}

/// `t` shifted by `seconds`, as RFC 3339 for `--at`.
fn shifted(t: jiff::Timestamp, seconds: i64) -> String {
    (t + jiff::SignedDuration::from_secs(seconds)).to_string()
}

#[test]
fn snapshots_are_selected_by_id_prefix_time_and_path() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("version.txt"), b"version 1\n");
    write_file(&src.join("imaging").join("Kowalski_Jan_CBCT.dcm"), &pseudo_random(41, 600_000));
    write_file(&src.join("imaging").join("2026").join("pano.jpg"), &pseudo_random(42, 100_000));
    write_file(&src.join("notes").join("Kowalski.txt"), b"note\n");
    let first = fx.backup_ok(&[&src], &[]);
    // Snapshot times have one-second resolution.
    std::thread::sleep(Duration::from_millis(1100));
    write_file(&src.join("version.txt"), b"version 2, a little longer\n");
    let second = fx.backup_ok(&[&src], &[]);

    let snaps = fx.snapshots();
    assert_eq!(snaps.len(), 2);
    let (id1, id2) = (first["snapshot_id"].as_str().unwrap(), second["snapshot_id"].as_str().unwrap());
    assert_eq!(snaps[0]["id"].as_str(), Some(id1), "snapshots are not listed oldest first");
    let (t1, t2) = (time_of(&snaps[0]), time_of(&snaps[1]));
    assert!(t2.as_second() > t1.as_second(), "times {t1} and {t2}");

    let version_in = |target: &std::path::Path| std::fs::read_to_string(target.join("src/version.txt")).unwrap();

    let by_id = fx.path("by_id");
    fx.restore(&id1[..8], &by_id, &[]).ok();
    assert_eq!(version_in(&by_id), "version 1\n");
    let by_upper_id = fx.path("by_upper_id");
    fx.restore(&id2[..6].to_ascii_uppercase(), &by_upper_id, &[]).ok();
    assert_eq!(version_in(&by_upper_id), "version 2, a little longer\n");

    // Between the two (at least 1.1 s apart): the older one.
    let between = fx.path("between");
    let out = fx.restore("latest", &between, &["--at", &shifted(t2, -1)]).ok();
    assert_eq!(out.json()["snapshot_id"].as_str(), Some(id1));
    assert_eq!(version_in(&between), "version 1\n");
    let at_second = fx.path("at_second");
    fx.restore("latest", &at_second, &["--at", &shifted(t2, 5)]).ok();
    assert_eq!(version_in(&at_second), "version 2, a little longer\n");
    fx.restore("latest", &fx.path("too_early"), &["--at", &shifted(t1, -1)])
        .expect_code(1)
        .expect_stderr("no snapshot matches");

    // One subtree only, in its place within the snapshot.
    let subtree = fx.path("subtree");
    fx.restore(&id1[..8], &subtree, &["--path", "src/imaging"]).ok();
    let scan = "src/imaging/Kowalski_Jan_CBCT.dcm";
    assert!(same_contents(&src.join("imaging/Kowalski_Jan_CBCT.dcm"), &subtree.join(scan)));
    assert!(same_contents(&src.join("imaging/2026/pano.jpg"), &subtree.join("src/imaging/2026/pano.jpg")));
    assert!(!subtree.join("src/version.txt").exists(), "--path restored a file outside the subtree");
    assert!(!subtree.join("src/notes").exists(), "--path restored a directory outside the subtree");

    // A single file, with the directories above it created.
    let one_file = fx.path("one_file");
    fx.restore(&id1[..8], &one_file, &["--path", "src/imaging/2026/pano.jpg"]).ok();
    assert!(same_contents(&src.join("imaging/2026/pano.jpg"), &one_file.join("src/imaging/2026/pano.jpg")));
    assert!(!one_file.join("src/imaging/Kowalski_Jan_CBCT.dcm").exists(), "--path restored a sibling");

    let dumped = fx.dump(&id1[..8], "src/version.txt").ok();
    assert_eq!(dumped.stdout, b"version 1\n");
    fx.dump("latest", "src/no_such_file.txt").expect_code(1).expect_stderr("not in the snapshot");
}

/// `latest` is the newest of the selection: `--source`, `--host`, `--tag` on restore and
/// dump, and `--path` too on snapshots and forget.
#[test]
fn latest_is_the_newest_of_the_selection() {
    let fx = Fixture::new();
    let imaging = fx.path("imaging");
    write_file(&imaging.join("scan.dcm"), b"the scan");
    fx.backup_ok(&[&imaging], &["--tag", "rtg", "--host", "reception"]);
    let dump = fx.path("dump.sql");
    write_file(&dump, b"rows of the clinic database\n");
    let mut args: Vec<std::ffi::OsString> = vec!["backup".into()];
    args.extend(fx.agent_args());
    args.extend(["--stdin-from-command".into(), format!("cat {}", dump.display()).into()]);
    args.extend(["--name".into(), "clinic.sql".into(), "--host".into(), "db-server".into()]);
    fx.arka(args).ok();

    // Plain `latest` is the dump, the newest of all; with a filter, the scan.
    let target = fx.path("by-tag");
    fx.restore("latest", &target, &["--tag", "rtg"]).ok();
    assert_eq!(std::fs::read(target.join("imaging/scan.dcm")).unwrap(), b"the scan");
    let target = fx.path("by-host");
    fx.restore("latest", &target, &["--host", "reception"]).ok();
    assert!(target.join("imaging/scan.dcm").exists());
    assert_eq!(fx.dump("latest", "clinic.sql").ok().stdout, b"rows of the clinic database\n");
    let mut dumped: Vec<std::ffi::OsString> = vec!["dump".into(), "latest".into(), "clinic.sql".into()];
    dumped.extend(fx.reader_args());
    dumped.extend(["--source".into(), "clinic.sql".into()]);
    assert_eq!(fx.arka(dumped).ok().stdout, b"rows of the clinic database\n");
    fx.restore("latest", &fx.path("none"), &["--tag", "no-such-tag"]).expect_code(1);

    let mut list: Vec<std::ffi::OsString> = vec!["--json".into(), "snapshots".into()];
    list.extend(fx.agent_args());
    list.extend(["--path".into(), imaging.clone().into()]);
    let listed = fx.arka(list).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["hostname"], "reception");

    // forget with a filter touches only what it selects.
    let mut forget: Vec<std::ffi::OsString> = vec!["--json".into(), "forget".into(), "--keep-last".into(), "1".into()];
    forget.extend(fx.agent_args());
    forget.extend(["--host".into(), "db-server".into()]);
    let plan = fx.arka(forget).ok().json();
    assert_eq!(plan["decisions"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(fx.snapshots().len(), 2);
}

/// `arka restore --at T --target DIR` without a snapshot: every source's newest snapshot at
/// or before T, each into `DIR/<source name>/`; filters narrow it, `--path` is refused, and
/// the exit code is the worst of the sources'.
#[test]
fn every_source_is_restored_as_of_a_time() {
    let fx = Fixture::new();
    let imaging = fx.path("imaging");
    let dump_file = fx.path("dump.sql");
    let dump = |rows: &[u8]| {
        write_file(&dump_file, rows);
        let mut args: Vec<std::ffi::OsString> = vec!["backup".into()];
        args.extend(fx.agent_args());
        args.extend(["--stdin-from-command".into(), format!("cat {}", dump_file.display()).into()]);
        args.extend(["--name".into(), "clinic.sql".into(), "--host".into(), "db-server".into()]);
        fx.arka(args).ok();
    };
    write_file(&imaging.join("scan.dcm"), &pseudo_random(7, 300_000));
    let scan_v1 = std::fs::read(imaging.join("scan.dcm")).unwrap();
    fx.backup_ok(&[&imaging], &["--host", "reception"]);
    dump(b"rows of monday\n");
    std::thread::sleep(Duration::from_millis(1100));
    let monday = jiff::Timestamp::now().to_string();
    std::thread::sleep(Duration::from_millis(1100));
    write_file(&imaging.join("scan.dcm"), &pseudo_random(8, 300_000));
    write_file(&imaging.join("new.dcm"), b"a new study");
    fx.backup_ok(&[&imaging], &["--host", "reception"]);
    dump(b"rows of tuesday\n");

    let restore_all = |target: &std::path::Path, extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec!["--json".into(), "restore".into()];
        args.extend(fx.reader_args());
        args.extend(["--target".into(), target.into()]);
        args.extend(extra.iter().map(std::ffi::OsString::from));
        fx.arka(args)
    };
    // A files backup without a source name is named by its host and path.
    let imaging_folder = format!("reception-{}", imaging.display().to_string().trim_matches('/').replace('/', "-"));

    let as_of_monday = fx.path("monday");
    let out = restore_all(&as_of_monday, &["--at", &monday]).ok().json();
    let sources: Vec<&str> = out["sources"].as_array().unwrap().iter().map(|s| s["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["clinic.sql", imaging_folder.as_str()], "{out}");
    assert_eq!(std::fs::read(as_of_monday.join("clinic.sql/clinic.sql")).unwrap(), b"rows of monday\n");
    assert_eq!(std::fs::read(as_of_monday.join(&imaging_folder).join("imaging/scan.dcm")).unwrap(), scan_v1);
    assert!(!as_of_monday.join(&imaging_folder).join("imaging/new.dcm").exists(), "a later file came back");

    let now = fx.path("now");
    restore_all(&now, &[]).ok();
    assert_eq!(std::fs::read(now.join("clinic.sql/clinic.sql")).unwrap(), b"rows of tuesday\n");
    assert!(same_contents(&imaging.join("new.dcm"), &now.join(&imaging_folder).join("imaging/new.dcm")));

    // A filter narrows the sources.
    let one_host = fx.path("one-host");
    let out = restore_all(&one_host, &["--host", "db-server"]).ok().json();
    assert_eq!(out["sources"].as_array().unwrap().len(), 1, "{out}");
    assert!(!one_host.join(&imaging_folder).exists());

    restore_all(&fx.path("subtree"), &["--path", "imaging"]).expect_code(2).expect_stderr("--path needs a snapshot");
    restore_all(&fx.path("too-early"), &["--at", "2001-01-01T00:00:00Z"])
        .expect_code(1)
        .expect_stderr("no snapshot matches");

    // A dump that cannot be written (a folder in its place) is partial (3); the imaging
    // folder is still restored, and the worst code wins.
    let blocked = fx.path("blocked");
    std::fs::create_dir_all(blocked.join("clinic.sql/clinic.sql/in-the-way")).unwrap();
    let out = restore_all(&blocked, &[]).expect_code(3).expect_stderr("cannot be written here").json();
    assert_eq!(out["exit_code"], 3, "{out}");
    assert!(same_contents(&imaging.join("new.dcm"), &blocked.join(&imaging_folder).join("imaging/new.dcm")));
}
