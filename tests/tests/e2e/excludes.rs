//! `arka backup --exclude …`: gitignore-style patterns, a pattern file, marker files and a
//! size limit leave out exactly what they say; what is left out is counted, and the rest
//! restores byte for byte.

use std::ffi::OsString;

use arka_tests::{walk_files, write_file, Fixture};

#[test]
fn exclude_flags_leave_out_what_they_say_and_nothing_else() {
    let fx = Fixture::new();
    let src = fx.path("clinic");
    write_file(&src.join("rtg/2026/scan_001.dcm"), &vec![7u8; 4000]);
    write_file(&src.join("rtg/2026/scan_001.dcm.tmp"), b"partial write");
    write_file(&src.join("rtg/cache/thumb.jpg"), b"thumbnail");
    write_file(&src.join("cache/keep.txt"), b"another cache folder: kept by /clinic/rtg/cache/");
    write_file(&src.join("photos/big.raw"), &vec![1u8; 300_000]);
    write_file(&src.join("photos/small.jpg"), b"small");
    write_file(&src.join("export/.nobackup"), b"");
    write_file(&src.join("export/cd.iso"), b"a CD image");
    write_file(&src.join("notes/keep.tmp"), b"taken back by !keep.tmp");
    let patterns = fx.path("excludes.txt");
    write_file(&patterns, b"# thumbnails are made again by the viewer\n/clinic/rtg/cache/\n\n");

    let mut args: Vec<OsString> = vec!["--json".into(), "backup".into(), src.clone().into()];
    args.extend(fx.agent_args());
    for a in ["--exclude", "*.tmp", "--exclude", "!keep.tmp", "--exclude-if-present", ".nobackup"] {
        args.push(a.into());
    }
    args.extend(["--exclude-file".into(), patterns.into_os_string()]);
    args.extend(["--exclude-larger-than".into(), "100 KiB".into()]);
    let done = fx.arka(args).ok().json();
    // scan_001.dcm.tmp, rtg/cache, big.raw, export: four entries left out.
    assert_eq!(done["stats"]["excluded"], 4, "{done}");

    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    let root = target.join("clinic");
    let mut restored: Vec<String> =
        walk_files(&root).iter().map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/")).collect();
    restored.sort();
    assert_eq!(restored, ["cache/keep.txt", "notes/keep.tmp", "photos/small.jpg", "rtg/2026/scan_001.dcm"]);
    assert_eq!(std::fs::read(root.join("rtg/2026/scan_001.dcm")).unwrap(), vec![7u8; 4000]);
}

#[test]
fn a_bad_exclude_is_refused_before_anything_is_written() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("a.txt"), b"a");
    let before = walk_files(&fx.repo).len();
    for bad in [["--exclude", "scans{"], ["--exclude-larger-than", "2 parsecs"], ["--exclude-if-present", "a/b"]] {
        let mut args: Vec<OsString> = vec!["backup".into(), src.clone().into()];
        args.extend(fx.agent_args());
        args.extend(bad.iter().map(OsString::from));
        fx.arka(args).expect_code(2);
    }
    let mut args: Vec<OsString> = vec!["backup".into(), "--exclude-file".into(), fx.path("missing.txt").into()];
    args.push(src.into());
    args.extend(fx.agent_args());
    fx.arka(args).expect_code(2).expect_stderr("missing.txt");
    assert_eq!(walk_files(&fx.repo).len(), before, "a refused backup wrote something");
}
