//! Picking a snapshot: `latest`, an ID or unique ID prefix, or the newest at or before a time.
//!
//! Times are effective times (`repo::timeline`), and `latest` passes over snapshots that
//! only an attack explains (a claimed future, a rollback to an older tree); the caller
//! warns about each one passed over.

use arka_proto::Snapshot;

use crate::error::{Error, Result};
use crate::repo::timeline::TimedSnapshot;

/// Chooses from `snaps` (oldest first, as `Repository::timeline` gives them). `at` is a
/// Unix time in nanoseconds.
pub fn select<'a>(snaps: &'a [TimedSnapshot], spec: &str, at: Option<i64>) -> Result<&'a TimedSnapshot> {
    let not_found = || Error::NoSuchSnapshot(spec.to_string());
    if spec == "latest" {
        // Passed over only when something else is left: with every snapshot flagged (a
        // clinic server whose clock runs fast flags them all) the newest is still `latest`.
        let mut candidates = snaps.iter().rev().filter(|t| at.is_none_or(|at| t.effective_ns <= at));
        let newest = candidates.clone().next().ok_or_else(not_found)?;
        return Ok(candidates.find(|t| !t.passed_over_by_latest()).unwrap_or(newest));
    }
    let spec_lower = spec.to_ascii_lowercase();
    if spec_lower.len() < 4 || !spec_lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!("{spec:?} is not a snapshot ID (hex, at least 4 digits) or `latest`")));
    }
    let mut matching = snaps.iter().filter(|t| t.id.to_hex().starts_with(&spec_lower));
    let first = matching.next().ok_or_else(not_found)?;
    if matching.next().is_some() {
        return Err(Error::Usage(format!("{spec:?} matches several snapshots; give more digits")));
    }
    Ok(first)
}

/// The flagged snapshots newer than `chosen` (and not after `at`) that `latest` passed over.
pub fn passed_over<'a>(
    snaps: &'a [TimedSnapshot],
    chosen: &TimedSnapshot,
    at: Option<i64>,
) -> impl Iterator<Item = &'a TimedSnapshot> {
    let chosen = (chosen.effective_ns, chosen.id);
    snaps.iter().filter(move |t| {
        (t.effective_ns, t.id) > chosen && at.is_none_or(|at| t.effective_ns <= at) && t.passed_over_by_latest()
    })
}

/// Which snapshots a command considers (`--source`, `--host`, `--tag`, `--path`). Each
/// list given must match: any of its sources, any of its hosts, all of its tags, all of its
/// paths. Empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    /// Configured source names (agent.toml `name`); for a command backup made with the CLI,
    /// its `--name` matches too.
    pub sources: Vec<String>,
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    /// Backed-up paths, as the snapshot records them.
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    pub fn matches(&self, s: &Snapshot) -> bool {
        let named = |n: &String| {
            s.source_name.as_ref() == Some(n) || (s.source_kind == "command" && s.source.first() == Some(n))
        };
        (self.sources.is_empty() || self.sources.iter().any(named))
            && (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self.paths.iter().all(|p| s.source.contains(p))
    }

    /// What it selects, for a report: "source imaging, host reception". Source names,
    /// hosts and tags are the operator's configuration; paths are the backed-up roots.
    pub fn describe(&self) -> String {
        let lists = [
            ("source", &self.sources, " or "),
            ("host", &self.hosts, " or "),
            ("tag", &self.tags, " and "),
            ("path", &self.paths, " and "),
        ];
        let parts: Vec<String> = lists
            .iter()
            .filter(|(_, l, _)| !l.is_empty())
            .map(|(what, l, join)| format!("{what} {}", l.join(join)))
            .collect();
        parts.join(", ")
    }

    /// The snapshots of `snaps` it matches, in the same order.
    pub fn apply(&self, snaps: Vec<TimedSnapshot>) -> Vec<TimedSnapshot> {
        snaps.into_iter().filter(|t| self.matches(&t.snapshot)).collect()
    }
}

/// Parses `--at`: RFC 3339 (`2026-05-01T14:00:00Z`), or a civil time in the local zone
/// (`2026-05-01 14:00`, `2026-05-01`).
pub fn parse_time(s: &str) -> Result<i64> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_nanosecond() as i64);
    }
    let civil = s
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| s.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::MAX)))
        .map_err(|_| Error::Usage(format!("cannot read the time {s:?}; use e.g. \"2026-05-01 14:00\"")))?;
    let zoned = civil
        .to_zoned(jiff::tz::TimeZone::system())
        .map_err(|e| Error::Usage(format!("cannot place {s:?} in the local time zone: {e}")))?;
    Ok(zoned.timestamp().as_nanosecond() as i64)
}

/// A snapshot of files on host `h` taken at `time`, with nothing in it: what the selection
/// tests here and in `engine::source_groups` vary.
#[cfg(test)]
pub(crate) fn test_snapshot(time: i64) -> Snapshot {
    Snapshot {
        time_ns: time,
        written_ns: time,
        hostname: "h".into(),
        source_kind: "files".into(),
        source: vec![],
        tags: vec![],
        tree: arka_proto::BlobId::default(),
        refs: arka_proto::BlobId::default(),
        partial: false,
        stats: arka_proto::SnapshotStats::default(),
        program: String::new(),
        repaired_from: None,
        lost_files: 0,
        source_name: None,
    }
}

#[cfg(test)]
mod tests {
    use super::test_snapshot as snap;
    use super::*;
    use crate::repo::timeline::Suspicion;
    use arka_proto::ObjectId;

    fn timed(id: u8, time: i64) -> TimedSnapshot {
        TimedSnapshot::new(ObjectId([id; 32]), snap(time), time)
    }

    #[test]
    fn selects_latest_by_id_and_at_time() {
        let snaps = vec![timed(0xaa, 100), timed(0xab, 200), timed(0xcc, 300)];
        assert_eq!(select(&snaps, "latest", None).unwrap().snapshot.time_ns, 300);
        assert_eq!(select(&snaps, "latest", Some(250)).unwrap().snapshot.time_ns, 200);
        assert_eq!(select(&snaps, "latest", Some(200)).unwrap().snapshot.time_ns, 200);
        assert!(select(&snaps, "latest", Some(50)).is_err());
        assert_eq!(select(&snaps, "cccc", None).unwrap().snapshot.time_ns, 300);
        assert!(select(&snaps, "aaaa", None).is_ok());
        assert!(matches!(select(&snaps, "a", None), Err(Error::Usage(_))));
        assert!(matches!(select(&snaps, "dddd", None), Err(Error::NoSuchSnapshot(_))));
    }

    #[test]
    fn latest_passes_over_a_claimed_future_and_names_it() {
        let mut snaps = vec![timed(1, 100), timed(2, 200), timed(3, 300)];
        snaps[2].suspicion = Some(Suspicion::FutureTime { claimed_ns: 10_000, stored_at_ns: 300 });
        let chosen = select(&snaps, "latest", None).unwrap();
        assert_eq!(chosen.id, ObjectId([2; 32]));
        let passed: Vec<_> = passed_over(&snaps, chosen, None).map(|t| t.id).collect();
        assert_eq!(passed, [ObjectId([3; 32])]);
        // By ID it can still be chosen.
        assert_eq!(select(&snaps, "0303", None).unwrap().id, ObjectId([3; 32]));
        // With every snapshot flagged, the newest is still `latest`.
        for t in &mut snaps {
            t.suspicion = Some(Suspicion::FutureTime { claimed_ns: 10_000, stored_at_ns: 300 });
        }
        assert_eq!(select(&snaps, "latest", None).unwrap().id, ObjectId([3; 32]));
    }

    #[test]
    fn filters_match_source_host_tags_and_paths() {
        let mut s = snap(1);
        s.source_name = Some("imaging".into());
        s.source = vec!["/srv/imaging".into()];
        s.tags = vec!["daily".into(), "nas".into()];
        let f = |sources: &[&str], hosts: &[&str], tags: &[&str], paths: &[&str]| {
            let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
            SnapshotFilter { sources: v(sources), hosts: v(hosts), tags: v(tags), paths: v(paths) }.matches(&s)
        };
        assert!(f(&[], &[], &[], &[]));
        assert!(f(&["imaging", "db"], &["h"], &["nas"], &["/srv/imaging"]));
        assert!(!f(&["db"], &[], &[], &[]));
        assert!(!f(&[], &["other"], &[], &[]));
        assert!(!f(&[], &[], &["nas", "weekly"], &[]), "every tag must match");
        assert!(!f(&[], &[], &[], &["/srv"]));
        // A CLI dump is found by its --name.
        let mut dump = snap(1);
        dump.source_kind = "command".into();
        dump.source = vec!["clinic.sql".into()];
        assert!(SnapshotFilter { sources: vec!["clinic.sql".into()], ..Default::default() }.matches(&dump));
    }

    #[test]
    fn a_filter_describes_what_it_selects() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        let f = SnapshotFilter { sources: v(&["imaging", "db"]), hosts: vec![], tags: v(&["a", "b"]), paths: vec![] };
        assert_eq!(f.describe(), "source imaging or db, tag a and b");
        assert_eq!(SnapshotFilter::default().describe(), "");
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("2026-05-01T14:00:00Z").unwrap(), 1_777_644_000_000_000_000);
        assert!(parse_time("2026-05-01 14:00").is_ok());
        assert!(parse_time("2026-05-01").is_ok());
        assert!(parse_time("yesterday-ish").is_err());
    }
}
