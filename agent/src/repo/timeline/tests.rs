use super::*;
use arka_proto::SnapshotStats;

const HOUR: i64 = 3600 * NS;

fn snap(time_ns: i64, tree: u8, files: u64) -> Snapshot {
    Snapshot {
        time_ns,
        written_ns: time_ns,
        hostname: "clinic".into(),
        source_kind: "files".into(),
        source: vec!["/srv/rtg".into()],
        tags: vec![],
        tree: BlobId([tree; 32]),
        refs: BlobId::default(),
        partial: false,
        stats: SnapshotStats { files, bytes: files << 20, ..Default::default() },
        program: String::new(),
        repaired_from: None,
        lost_files: 0,
        source_name: None,
    }
}

/// Snapshots stored when they claim, one hour apart, with the given trees and file counts.
fn honest(runs: &[(u8, u64)]) -> Vec<TimedSnapshot> {
    let start = 1_800_000_000 * NS;
    runs.iter()
        .enumerate()
        .map(|(i, &(tree, files))| {
            let t = start + i as i64 * HOUR;
            TimedSnapshot::new(ObjectId([i as u8; 32]), snap(t, tree, files), t + 60 * NS)
        })
        .collect()
}

fn flags(snaps: &[TimedSnapshot]) -> Vec<&'static str> {
    snaps
        .iter()
        .map(|t| match &t.suspicion {
            None => "-",
            Some(Suspicion::FutureTime { .. }) => "future",
            Some(Suspicion::BackDated { .. }) => "backdated",
            Some(Suspicion::Rollback { .. }) => "rollback",
            Some(Suspicion::Shrink { .. }) => "shrink",
        })
        .collect()
}

#[test]
fn a_future_claim_is_bounded_by_the_storage_and_flagged() {
    let mut snaps = honest(&[(1, 100), (2, 100)]);
    let stored = snaps[1].stored_at_ns + HOUR;
    let plant = TimedSnapshot::new(ObjectId([9; 32]), snap(stored + 3650 * 24 * HOUR, 3, 100), stored);
    assert_eq!(plant.effective_ns, stored + MAX_SKEW_NS);
    snaps.push(plant);
    // A real backup after the plant is newer than it, whatever the plant claims.
    let later = stored + HOUR;
    snaps.push(TimedSnapshot::new(ObjectId([10; 32]), snap(later, 4, 100), later + 60 * NS));
    let snaps = assess(snaps);
    assert_eq!(flags(&snaps), ["-", "-", "future", "-"]);
    assert_eq!(snaps.last().unwrap().id, ObjectId([10; 32]));
}

#[test]
fn a_back_dated_claim_keeps_its_time_but_is_flagged_without_alarm() {
    let mut snaps = honest(&[(1, 100)]);
    let stored = snaps[0].stored_at_ns + 40 * 24 * HOUR;
    snaps.push(TimedSnapshot::new(ObjectId([9; 32]), snap(stored - 30 * 24 * HOUR, 2, 100), stored));
    let snaps = assess(snaps);
    assert_eq!(flags(&snaps), ["-", "backdated"]);
    assert_eq!(snaps[1].effective_ns, snaps[1].snapshot.time_ns);
    assert!(!snaps[1].suspicion.as_ref().unwrap().is_alarming());
}

#[test]
fn going_back_to_an_older_tree_is_a_rollback_but_an_unchanged_source_is_not() {
    let snaps = assess(honest(&[(1, 100), (1, 100), (2, 100), (2, 100), (1, 100), (3, 100)]));
    assert_eq!(flags(&snaps), ["-", "-", "-", "-", "rollback", "-"]);
    assert!(snaps[4].suspicion.as_ref().unwrap().passed_over_by_latest());
}

#[test]
fn a_shrink_is_flagged_once_and_the_smaller_source_is_normal_after_it() {
    let snaps = assess(honest(&[(1, 100), (2, 100), (3, 30), (4, 30), (5, 31)]));
    assert_eq!(flags(&snaps), ["-", "-", "shrink", "-", "-"]);
    // Small sources are not judged: 10 files to 2 is not worth an alarm.
    let mut small = honest(&[(1, 10), (2, 2)]);
    small.iter_mut().for_each(|t| t.snapshot.stats.bytes = 1000);
    assert_eq!(flags(&assess(small)), ["-", "-"]);
}

#[test]
fn partial_runs_and_plants_are_not_what_the_next_snapshot_is_compared_with() {
    let mut runs = honest(&[(1, 100), (2, 10), (3, 100)]);
    runs[1].snapshot.partial = true;
    // The partial run shrank: flagged. The next full run is compared with the first, not
    // with the partial one, so it is not a jump.
    assert_eq!(flags(&assess(runs)), ["-", "shrink", "-"]);
    // A plant from the future with a tree that comes back later does not make that
    // later snapshot a rollback.
    let mut snaps = honest(&[(1, 100), (2, 100), (3, 100)]);
    snaps[1].snapshot.time_ns += 10 * 24 * HOUR;
    snaps[2].snapshot.tree = BlobId([7; 32]);
    snaps[1].snapshot.tree = BlobId([7; 32]);
    assert_eq!(flags(&assess(snaps)), ["-", "future", "-"]);
}

#[test]
fn groups_are_judged_apart_and_an_unknown_storage_time_is_not_suspicious() {
    let mut snaps = honest(&[(1, 100), (2, 100), (1, 100)]);
    snaps[1].snapshot.hostname = "other".into();
    snaps[2].stored_at_ns = i64::MAX;
    snaps[2].snapshot.time_ns += 100 * 24 * HOUR;
    snaps[2].effective_ns = effective_time(snaps[2].snapshot.time_ns, i64::MAX);
    assert_eq!(flags(&assess(snaps)), ["-", "-", "-"]);
}
