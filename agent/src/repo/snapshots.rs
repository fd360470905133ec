//! Picking a snapshot: `latest`, an ID or unique ID prefix, or the newest at or before a time.

use arka_proto::{ObjectId, Snapshot};

use crate::error::{Error, Result};

/// Chooses from `snaps` (oldest first). `at` is a Unix time in nanoseconds.
pub fn select<'a>(snaps: &'a [(ObjectId, Snapshot)], spec: &str, at: Option<i64>) -> Result<&'a (ObjectId, Snapshot)> {
    let not_found = || Error::NoSuchSnapshot(spec.to_string());
    if spec == "latest" {
        return snaps.iter().rev().find(|(_, s)| at.is_none_or(|t| s.time_ns <= t)).ok_or_else(not_found);
    }
    let spec_lower = spec.to_ascii_lowercase();
    if spec_lower.len() < 4 || !spec_lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!("{spec:?} is not a snapshot ID (hex, at least 4 digits) or `latest`")));
    }
    let mut matching = snaps.iter().filter(|(id, _)| id.to_hex().starts_with(&spec_lower));
    let first = matching.next().ok_or_else(not_found)?;
    if matching.next().is_some() {
        return Err(Error::Usage(format!("{spec:?} matches several snapshots; give more digits")));
    }
    Ok(first)
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

#[cfg(test)]
mod tests {
    use super::*;
    use arka_proto::{BlobId, SnapshotStats};

    fn snap(time: i64) -> Snapshot {
        Snapshot {
            time_ns: time,
            written_ns: time,
            hostname: "h".into(),
            source_kind: "files".into(),
            source: vec![],
            tags: vec![],
            tree: BlobId::default(),
            refs: BlobId::default(),
            partial: false,
            stats: SnapshotStats::default(),
            program: String::new(),
            repaired_from: None,
            lost_files: 0,
        }
    }

    #[test]
    fn selects_latest_by_id_and_at_time() {
        let snaps = vec![
            (ObjectId([0xaa; 32]), snap(100)),
            (ObjectId([0xab; 32]), snap(200)),
            (ObjectId([0xcc; 32]), snap(300)),
        ];
        assert_eq!(select(&snaps, "latest", None).unwrap().1.time_ns, 300);
        assert_eq!(select(&snaps, "latest", Some(250)).unwrap().1.time_ns, 200);
        assert_eq!(select(&snaps, "latest", Some(200)).unwrap().1.time_ns, 200);
        assert!(select(&snaps, "latest", Some(50)).is_err());
        assert_eq!(select(&snaps, "cccc", None).unwrap().1.time_ns, 300);
        assert!(select(&snaps, "aaaa", None).is_ok());
        assert!(matches!(select(&snaps, "a", None), Err(Error::Usage(_))));
        assert!(matches!(select(&snaps, "dddd", None), Err(Error::NoSuchSnapshot(_))));
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("2026-05-01T14:00:00Z").unwrap(), 1_777_644_000_000_000_000);
        assert!(parse_time("2026-05-01 14:00").is_ok());
        assert!(parse_time("2026-05-01").is_ok());
        assert!(parse_time("yesterday-ish").is_err());
    }
}
