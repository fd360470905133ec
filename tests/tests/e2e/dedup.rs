//! Deduplication across sources and hosts sharing a repository: the same content is
//! stored once.

use arka_tests::{pseudo_random, same_contents, write_file, Fixture};

#[test]
fn the_same_file_backed_up_from_another_host_is_stored_once() {
    let fx = Fixture::new();
    let scan = pseudo_random(31, 12 << 20);
    let a = fx.path("reception");
    let b = fx.path("surgery");
    write_file(&a.join("Kowalski_Jan_CBCT.dcm"), &scan);
    write_file(&b.join("export").join("cbct_copy.dcm"), &scan);

    let first = fx.backup_ok(&[&a], &["--host", "clinic-reception"]);
    let first_stored = first["stats"]["bytes_stored"].as_u64().unwrap();
    assert!(first_stored >= scan.len() as u64, "random data cannot shrink: {first}");

    let second = fx.backup_ok(&[&b], &["--host", "clinic-surgery"]);
    assert_eq!(second["stats"]["bytes_read"].as_u64(), Some(scan.len() as u64), "{second}");
    let stored = second["stats"]["bytes_stored"].as_u64().unwrap();
    assert!(stored < scan.len() as u64 / 100, "the second copy stored {stored} bytes of {}: {second}", scan.len());
    assert!(second["stats"]["bytes_new"].as_u64().unwrap() < 64 << 10, "{second}");

    let snaps = fx.snapshots();
    let hosts: Vec<_> = snaps.iter().map(|s| s["hostname"].as_str().unwrap().to_string()).collect();
    assert_eq!(hosts, ["clinic-reception", "clinic-surgery"]);

    let target = fx.path("restored");
    let id = second["snapshot_id"].as_str().unwrap();
    fx.restore(id, &target, &[]).ok();
    assert!(same_contents(&b.join("export/cbct_copy.dcm"), &target.join("surgery/export/cbct_copy.dcm")));
}
