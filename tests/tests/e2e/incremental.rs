//! Incremental backups: unchanged files are not read again (files cache), trees are
//! deduplicated, and a lost cache only costs re-reading, never storage.

use std::time::Duration;

use serde_json::Value;

use arka_tests::{assert_same_tree, pseudo_random, write_file, Fixture};

fn stat(summary: &Value, field: &str) -> u64 {
    summary["stats"][field].as_u64().unwrap_or_else(|| panic!("no stats.{field} in {summary}"))
}

#[test]
fn unchanged_files_are_not_read_and_a_lost_cache_costs_only_rereading() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("Kowalski_Jan_CBCT.dcm"), &pseudo_random(21, 3 << 20));
    write_file(&src.join("notes.txt"), "wizyta kontrolna\n".repeat(20_000).as_bytes());
    write_file(&src.join("imaging").join("pano.jpg"), &pseudo_random(22, 1 << 20));
    write_file(&src.join("imaging").join("empty.dcm"), b"");
    let size_of = |rel: &str| std::fs::metadata(src.join(rel)).unwrap().len();
    let total = |extra: u64| (3 << 20) + (1 << 20) + extra;
    // Files changed within 2 s of a backup's start are not cached (timestamp resolution).
    std::thread::sleep(Duration::from_millis(2100));

    let first = fx.backup_ok(&[&src], &[]);
    assert_eq!(stat(&first, "bytes_read"), total(size_of("notes.txt")), "{first}");
    assert!(stat(&first, "blobs_new") > 0, "{first}");

    let second = fx.backup_ok(&[&src], &[]);
    assert_eq!(stat(&second, "bytes_read"), 0, "an unchanged tree was read again: {second}");
    assert_eq!(stat(&second, "blobs_new"), 0, "an unchanged tree stored new blobs: {second}");
    assert_eq!(stat(&second, "bytes_new"), 0, "{second}");
    assert_eq!(stat(&second, "bytes_stored"), 0, "{second}");
    assert_eq!(stat(&second, "bytes"), stat(&first, "bytes"), "{second}");

    // Rewrite one file in place (same inode, new size and mtime).
    let notes = "wizyta kontrolna, nowy wpis\n".repeat(15_000);
    write_file(&src.join("notes.txt"), notes.as_bytes());
    let third = fx.backup_ok(&[&src], &[]);
    assert_eq!(stat(&third, "bytes_read"), notes.len() as u64, "only the changed file should be read: {third}");
    assert!(stat(&third, "blobs_new") > 0, "{third}");

    // Without the cache everything is read again, but nothing new is stored.
    std::fs::remove_dir_all(&fx.cache).unwrap();
    let fourth = fx.backup_ok(&[&src], &[]);
    assert_eq!(stat(&fourth, "bytes_read"), total(notes.len() as u64), "{fourth}");
    assert_eq!(stat(&fourth, "blobs_new"), 0, "a lost cache must not cost storage: {fourth}");
    assert_eq!(stat(&fourth, "bytes_stored"), 0, "{fourth}");

    let fifth = fx.backup_ok(&[&src], &["--no-cache"]);
    assert_eq!(stat(&fifth, "bytes_read"), total(notes.len() as u64), "--no-cache must read everything: {fifth}");
    assert_eq!(stat(&fifth, "blobs_new"), 0, "{fifth}");

    assert_eq!(fx.snapshots().len(), 5);
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
}
