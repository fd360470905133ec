//! What a report remembers beyond the last run: a source's runs per day (the status page's
//! 30-day strip and growth plot), where its newest snapshot is kept ("protected up to T, on
//! targets X, Y"), and which targets the primary must take back backups from after a
//! failover. The agent keeps the whole report across restarts, so these survive them.

use serde::{Deserialize, Serialize};

use super::SourceStatus;

/// How many days of runs a source keeps.
pub const HISTORY_DAYS: usize = 30;

/// One local calendar day of a source's runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DayRecord {
    /// The agent's local date, `YYYY-MM-DD`.
    pub day: String,
    pub ok: u32,
    pub failed: u32,
    /// Whether the source was past its RPO at some point of the day.
    pub late: bool,
    /// Bytes the day's backups added to the repository (after deduplication).
    pub added_bytes: u64,
    /// The source's size at the day's last successful backup.
    pub size_bytes: Option<u64>,
}

/// The newest snapshot of a source on one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCopy {
    /// The target's name from the configuration.
    pub target: String,
    /// When that snapshot was taken.
    pub newest_ns: i64,
}

/// A target that took backups while the primary could not be reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    /// The target's name from the configuration.
    pub from: String,
    /// When the first of those backups started: what was stored there since then is
    /// copied back.
    pub since_ns: i64,
}

impl SourceStatus {
    /// The record of `day` (`YYYY-MM-DD`), added when missing; the oldest days beyond
    /// [`HISTORY_DAYS`] are dropped.
    pub fn day_mut(&mut self, day: &str) -> &mut DayRecord {
        if self.days.last().is_none_or(|d| d.day != day) {
            self.days.push(DayRecord { day: day.to_string(), ..DayRecord::default() });
            let excess = self.days.len().saturating_sub(HISTORY_DAYS);
            self.days.drain(..excess);
        }
        self.days.last_mut().expect("just pushed")
    }

    /// Records that `target` now holds a snapshot of this source taken at `newest_ns`.
    pub fn copied_to(&mut self, target: &str, newest_ns: i64) {
        match self.copies.iter_mut().find(|c| c.target == target) {
            Some(c) => c.newest_ns = c.newest_ns.max(newest_ns),
            None => self.copies.push(SourceCopy { target: target.to_string(), newest_ns }),
        }
    }

    /// The newest snapshot time on any target, and the targets that hold it.
    pub fn protected_up_to(&self) -> Option<(i64, Vec<&str>)> {
        let newest = self.copies.iter().map(|c| c.newest_ns).max()?;
        Some((newest, self.copies.iter().filter(|c| c.newest_ns == newest).map(|c| c.target.as_str()).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SourceKind, SourceStatus};

    #[test]
    fn days_roll_over_and_keep_thirty() {
        let mut s = SourceStatus::new("db", SourceKind::Command, "every 1h", 7200);
        for d in 1..=40 {
            let day = format!("2026-01-{d:02}");
            s.day_mut(&day).ok += 1;
            s.day_mut(&day).failed += 1;
        }
        assert_eq!(s.days.len(), super::HISTORY_DAYS);
        assert_eq!(s.days[0].day, "2026-01-11");
        assert!(s.days.iter().all(|d| d.ok == 1 && d.failed == 1));
    }

    #[test]
    fn protection_is_the_newest_copy_and_where_it_is() {
        let mut s = SourceStatus::new("db", SourceKind::Command, "every 1h", 7200);
        assert_eq!(s.protected_up_to(), None);
        s.copied_to("nas", 100);
        s.copied_to("offsite", 50);
        s.copied_to("offsite", 100);
        s.copied_to("nas", 90);
        assert_eq!(s.protected_up_to(), Some((100, vec!["nas", "offsite"])));
        s.copied_to("offsite", 120);
        assert_eq!(s.protected_up_to(), Some((120, vec!["offsite"])));
    }
}
