//! Bandwidth limits (#16 point 7): `--limit-upload` and `--limit-download` pace a backup and
//! a restore on each kind of target (a local folder, S3 on Garage, arka-server), and what
//! comes back is byte for byte what was backed up. Only lower bounds on the time taken: a
//! slow machine may take longer, but no machine may beat the limit.

use std::time::{Duration, Instant};

use arka_tests::garage::Garage;
use arka_tests::{assert_same_tree, pseudo_random, write_file, Fixture};

use crate::server_client::{clinic_and_nas, fixture_on};

/// Random bytes, which neither compress nor deduplicate: all of it is uploaded.
const DATA: usize = 6 << 20;

/// Backs up 6 MiB at 1 MiB/s (at least 5.75 s once the 256 KiB burst is spent: 4 s is a
/// generous bound) and restores it at 2 MiB/s (at least 2.9 s: 2 s asked).
fn paced_round_trip(fx: &Fixture) {
    let src = fx.path("src");
    write_file(&src.join("imaging").join("Kowalski_Jan_CBCT.dcm"), &pseudo_random(16, DATA));
    write_file(&src.join("notes.txt"), b"kontrola\n");

    let started = Instant::now();
    let backup = fx.backup_ok(&[&src], &["--limit-upload", "1 MiB/s"]);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4), "6 MiB uploaded at 1 MiB/s in {took:?}");
    assert!(backup["stats"]["bytes_stored"].as_u64().unwrap() >= DATA as u64, "{backup}");

    let target = fx.path("restored");
    let started = Instant::now();
    fx.restore(backup["snapshot_id"].as_str().unwrap(), &target, &["--limit-download", "2 MiB/s"]).ok();
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "6 MiB read at 2 MiB/s in {took:?}");
    assert_same_tree(&src, &target.join("src"));
}

#[test]
fn limits_pace_a_local_repository() {
    paced_round_trip(&Fixture::new());
}

#[test]
fn limits_pace_an_s3_repository() {
    let garage = Garage::single();
    paced_round_trip(&Fixture::at(&garage.url("clinic/arka"), garage.env()));
}

#[test]
fn limits_pace_an_arka_server_repository() {
    let dir = tempfile::tempdir().unwrap();
    let server = clinic_and_nas(dir.path());
    paced_round_trip(&fixture_on(&server, "clinic", "reception"));
}

#[test]
fn a_limit_that_is_not_a_rate_is_refused_with_the_fix() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("a.txt"), b"a");
    fx.backup(&[&src], &["--limit-upload", "2 MiB"]).expect_code(2).expect_stderr("e.g. \"2 MiB/s\"");
    fx.backup(&[&src], &["--limit-upload", "0/s"]).expect_code(2).expect_stderr("would stop all traffic");
}
