//! A 3-node Garage cluster (replication factor 3) on loopback loses a node in the middle of
//! a backup: the backup still completes, everything restores byte for byte with the node
//! still down, and the node rejoins afterwards.
//!
//! arka talks to node 0 and node 2 dies: losing the node arka's endpoint points at is a
//! dead endpoint, which a load balancer (or the offline-first tests in `s3`) covers.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use arka_tests::garage::Garage;
use arka_tests::{assert_same_tree, pseudo_random, write_file, Fixture, Run};

const MIB: usize = 1 << 20;

/// About 150 MiB shaped like a clinic's data: incompressible photos, 2×-compressible
/// image slices, an SQL dump and many small notes.
fn corpus(root: &Path) -> u64 {
    let mut total = 0u64;
    let mut put = |rel: String, bytes: Vec<u8>| {
        total += bytes.len() as u64;
        write_file(&root.join(rel), &bytes);
    };
    for i in 0..6u64 {
        put(format!("photos/2026/Nowak_Jan/IMG_{i:04}.jpg"), pseudo_random(1000 + i, 17 * MIB));
    }
    for i in 0..30u64 {
        let slice: Vec<u8> = pseudo_random(2000 + i, MIB).into_iter().map(|b| b & 0x0f).collect();
        put(format!("imaging/Wiśniewska_Zofia_CT_2026-03-02/slice_{i:04}.dcm"), slice);
    }
    let sql: String = (0..200_000u64)
        .map(|i| format!("INSERT INTO visits VALUES ({i}, {}, 'kontrola, ząb {}');\n", i * 7919 % 100_003, 11 + i % 32))
        .collect();
    put("clinic.sql".into(), sql.into_bytes());
    for i in 0..300u64 {
        let text = format!("notatka {i}: pacjent zgłasza ból, zalecono kontrolę\n").repeat(40 + (i % 50) as usize);
        put(format!("notes/p{:03}/2026-03-{:02}.txt", i % 60, 1 + i % 28), text.into_bytes());
    }
    total
}

#[test]
fn a_backup_survives_losing_a_cluster_node() {
    let t = Instant::now();
    let garage = Garage::cluster(3);
    eprintln!("cluster up in {:.1} s", t.elapsed().as_secs_f64());
    let fx = Fixture::at(&garage.url("clinic"), garage.env());
    let src = fx.path("src");
    let bytes = corpus(&src);
    assert!(bytes > 140 * MIB as u64, "corpus is only {bytes} bytes");

    // The backup talks to node 0; node 2 dies under it.
    let mut cmd = fx.command();
    cmd.args(fx.backup_args(&[&src], &[])).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start arka backup");
    // Kill 1 s in, or as soon as a few packs have reached the cluster if that is sooner
    // (a busy machine), so that most of the upload happens with the node gone.
    let base = garage.data_bytes(0);
    while started.elapsed() < Duration::from_secs(1) && garage.data_bytes(0) - base < 24 * MIB as u64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().expect("poll backup").is_none(),
        "the backup finished before a node could be stopped: make the corpus bigger"
    );
    garage.stop_node(2);
    let killed_at = started.elapsed();
    let stored_at_kill = garage.data_bytes(0) - base;

    let out = child.wait_with_output().expect("wait for backup");
    let took = started.elapsed();
    let stored = garage.data_bytes(0) - base;
    eprintln!(
        "cluster backup of {} MiB: node 2 killed at {:.2} s with {} of {} MiB stored; backup done in {:.1} s",
        bytes >> 20,
        killed_at.as_secs_f64(),
        stored_at_kill >> 20,
        stored >> 20,
        took.as_secs_f64()
    );
    let run = Run {
        what: "arka backup (node 2 killed)".into(),
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let summary = run.ok().json();
    assert_eq!(summary["partial"].as_bool(), Some(false), "{summary}");

    // Everything restores with the node still down.
    let target = fx.path("restored");
    let t = Instant::now();
    fx.restore("latest", &target, &[]).ok();
    eprintln!("restore with node 2 down: {:.1} s", t.elapsed().as_secs_f64());
    assert_same_tree(&src, &target.join("src"));

    // The node comes back and the cluster takes backups again.
    let t = Instant::now();
    garage.start_node(2);
    eprintln!("node 2 restarted in {:.1} s", t.elapsed().as_secs_f64());
    write_file(&src.join("notes").join("after.txt"), b"po awarii\n");
    let t = Instant::now();
    fx.backup_ok(&[&src], &[]);
    eprintln!("backup after restart: {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(fx.snapshots().len(), 2);
}
