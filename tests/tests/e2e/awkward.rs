//! One tree of awkward cases: Polish diacritics, a non-UTF-8 name, empty file and
//! directory, symlinks, modes, old (and pre-1970) mtimes, a sparse file over 4 GiB, and a
//! FIFO that must be skipped with a warning while the backup still succeeds.

use std::ffi::OsStr;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use arka_tests::{assert_same_tree, mtime_ns, pseudo_random, set_mode, set_mtime, write_file, Fixture};

const SPARSE_LEN: u64 = 4 * (1 << 30) + (1 << 29); // 4.5 GiB

/// Names in Polish and not in UTF-8, empty files and folders, links (one dangling), private
/// and executable modes, times before 2000 and before 1970, a 4.5 GiB sparse file, and a
/// FIFO (returned) that a backup must skip.
fn make_awkward_tree(src: &std::path::Path) -> std::path::PathBuf {
    write_file(&src.join("Wiśniewska_Zofia_RVG.dcm"), &pseudo_random(1, 300_000));
    write_file(&src.join("Łódź").join("Żółć_gęślą_jaźń.txt"), "zażółć gęślą jaźń\n".repeat(500).as_bytes());
    write_file(&src.join(OsStr::from_bytes(b"bad\xffname")), b"a name that is not UTF-8\n");
    write_file(&src.join("empty.dat"), b"");
    std::fs::create_dir_all(src.join("empty_dir")).unwrap();
    std::os::unix::fs::symlink("Wiśniewska_Zofia_RVG.dcm", src.join("rvg_link")).unwrap();
    std::os::unix::fs::symlink("../nowhere/Łódź", src.join("Łódź").join("dangling")).unwrap();

    let private = src.join("private.pem");
    write_file(&private, b"-----BEGIN NOTHING-----\n");
    set_mode(&private, 0o600);
    let script = src.join("nightly.sh");
    write_file(&script, b"#!/bin/sh\necho ok\n");
    set_mode(&script, 0o755);
    let secret_dir = src.join("private_dir");
    write_file(&secret_dir.join("inside.txt"), b"inside\n");
    set_mode(&secret_dir, 0o700);

    let old = src.join("old_2000.txt");
    write_file(&old, b"from the last millennium\n");
    set_mtime(&old, 946_684_799, 500_000_000); // 1999-12-31T23:59:59.5Z
    let moon = src.join("moon_1969.txt");
    write_file(&moon, b"before the epoch\n");
    set_mtime(&moon, -14_182_940, 0); // 1969-07-20T20:17:40Z

    // Sparse: 4.5 GiB, a few KiB of data at a few offsets, holes elsewhere.
    let sparse = src.join("sparse.img");
    {
        let mut f = std::fs::File::create(&sparse).unwrap();
        f.set_len(SPARSE_LEN).unwrap();
        for (i, offset) in [4096u64, 3 * (1 << 30) + 12_345, SPARSE_LEN - 8192].into_iter().enumerate() {
            f.seek(SeekFrom::Start(offset)).unwrap();
            f.write_all(&pseudo_random(100 + i as u64, 3000)).unwrap();
        }
    }
    let original_blocks = std::fs::metadata(&sparse).unwrap().blocks();
    assert!(original_blocks * 512 < 1 << 20, "the test's own sparse file is not sparse here; cannot test");

    let fifo = src.join("clinic.fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(st.success(), "mkfifo failed");

    set_mtime(&src.join("Łódź"), 1_300_000_000, 123_456_789);
    set_mtime(&src.join("empty_dir"), 1_200_000_000, 1);
    set_mtime(src, 1_400_000_000, 0);
    fifo
}

#[test]
fn awkward_tree_round_trips_and_fifo_is_skipped() {
    let fx = Fixture::new();
    let src = fx.path("src");

    let fifo = make_awkward_tree(&src);

    let run = fx.backup(&[&src], &[]).ok();
    let run = run.expect_stderr("special file skipped").expect_stderr(&fifo.display().to_string());
    let summary = run.json();
    assert_eq!(summary["partial"].as_bool(), Some(false), "{summary}");
    assert_eq!(summary["stats"]["skipped_special"].as_u64(), Some(1), "{summary}");
    assert_eq!(summary["stats"]["unreadable"].as_u64(), Some(0), "{summary}");

    // The FIFO is not in the snapshot, so drop it from the expected tree (keeping the
    // directory's recorded mtime).
    let root_mtime = mtime_ns(&std::fs::metadata(&src).unwrap());
    std::fs::remove_file(&fifo).unwrap();
    set_mtime(&src, (root_mtime / 1_000_000_000) as i64, (root_mtime % 1_000_000_000) as u32);

    let listing = fx.ls("latest");
    let paths: Vec<&str> = listing.iter().filter_map(|e| e["path"].as_str()).collect();
    for want in ["src/Wiśniewska_Zofia_RVG.dcm", "src/Łódź/Żółć_gęślą_jaźń.txt", "src/empty_dir", "src/sparse.img"]
    {
        assert!(paths.contains(&want), "ls does not list {want:?}: {paths:?}");
    }
    assert!(!paths.iter().any(|p| p.contains("clinic.fifo")), "the FIFO is listed: {paths:?}");

    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));

    let restored = std::fs::metadata(target.join("src").join("sparse.img")).unwrap();
    assert_eq!(restored.len(), SPARSE_LEN);
    assert!(
        restored.blocks() * 512 < 64 << 20,
        "restored sparse file is not sparse: {} bytes allocated for {} bytes",
        restored.blocks() * 512,
        restored.len()
    );
}

/// #15 point 7: as root, a restore gives files the restorer's ownership and only their
/// read/write/execute bits, whatever the (possibly compromised) agent recorded; with
/// `--same-owner` it gives back the recorded owner and the setuid/setgid/sticky bits.
#[test]
fn a_restore_drops_setuid_bits_and_recorded_owners_unless_asked_with_same_owner() {
    let fx = Fixture::new();
    let src = fx.path("src");
    let tool = src.join("bin/tool");
    write_file(&tool, b"#!/bin/sh\necho hi\n");
    let shared = src.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    set_mode(&tool, 0o4755);
    set_mode(&shared, 0o1777);
    let root = arka_tests::is_root();
    if root {
        std::os::unix::fs::chown(&tool, Some(4321), Some(4321)).unwrap();
        set_mode(&tool, 0o4755);
    }
    fx.backup_ok(&[&src], &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    let owner = |p: &std::path::Path| std::fs::metadata(p).unwrap().uid();
    let me = std::fs::metadata(fx.path(".")).unwrap().uid();

    let safe = fx.path("safe");
    fx.restore("latest", &safe, &[]).ok();
    assert_eq!(mode(&safe.join("src/bin/tool")), 0o755);
    assert_eq!(mode(&safe.join("src/shared")), 0o777);
    assert_eq!(owner(&safe.join("src/bin/tool")), me, "the restorer owns what it restores");

    let same = fx.path("same");
    fx.restore("latest", &same, &["--same-owner"]).ok();
    assert_eq!(mode(&same.join("src/bin/tool")), 0o4755);
    assert_eq!(mode(&same.join("src/shared")), 0o1777);
    if root {
        assert_eq!(owner(&same.join("src/bin/tool")), 4321);
    }
}
