//! Retention: which snapshots a policy keeps, and why.
//!
//! Snapshots are grouped by host and source; within a group, each rule keeps the newest
//! snapshot of each hour/day/week/month/year bucket (in the clinic's time zone), either
//! for the last N buckets or for buckets within a duration of now. The newest snapshot
//! of every group is always kept.
//!
//! The time a rule sees is the snapshot's effective time (`repo::timeline`): a compromised
//! agent can write snapshots claiming any time, but not when the store received them. And
//! a snapshot the timeline flags (a time the storage contradicts, a rollback, a shrink)
//! never takes a slot from an unflagged one: the policy is applied to the unflagged
//! snapshots alone, and a flagged one is kept only where the policy applied to all of
//! them keeps it.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use arka_proto::ObjectId;

use crate::platform::units::parse_keep_span;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
const NS: i64 = 1_000_000_000;

/// How long to keep one kind of bucket: a number of buckets, or buckets within a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Keep {
    Count(u32),
    /// Seconds.
    Within(i64),
}

impl std::str::FromStr for Keep {
    type Err = String;
    /// `24` keeps 24 buckets; `7d`, `48h`, `6mo` (months), `2y` keep buckets within that time.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.parse::<u32>() {
            return Ok(Self::Count(n));
        }
        parse_duration(s).map(Self::Within)
    }
}

/// Parses how long to keep: `48h`, `7d`, `2w`, `6mo` (30-day months), `10y` (365-day
/// years) into seconds; `6m` (minutes) is refused with the fix (`platform::units`).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    parse_keep_span(s).map(|d| d.as_secs() as i64)
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RetentionPolicy {
    pub last: Option<u32>,
    /// Keep every snapshot within this many seconds of now.
    pub within: Option<i64>,
    pub hourly: Option<Keep>,
    pub daily: Option<Keep>,
    pub weekly: Option<Keep>,
    pub monthly: Option<Keep>,
    pub yearly: Option<Keep>,
}

impl RetentionPolicy {
    /// The clinic default: every backup of the last 48 h, hourly for 7 days, daily for
    /// 6 months, monthly for 2 years, yearly for 10.
    pub fn clinic_default() -> Self {
        Self {
            last: None,
            within: Some(48 * HOUR),
            hourly: Some(Keep::Within(7 * DAY)),
            daily: Some(Keep::Within(183 * DAY)),
            weekly: None,
            monthly: Some(Keep::Within(730 * DAY)),
            yearly: Some(Keep::Within(3650 * DAY)),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Maps a local time to its bucket (hour, day, ISO week, month or year).
type BucketOf = fn(&jiff::Zoned) -> (i32, i32);

/// A snapshot as retention sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: ObjectId,
    /// Host and source: rules apply within a group.
    pub group: String,
    pub time_ns: i64,
    /// Not flagged by the timeline: may take slots from flagged snapshots.
    pub trusted: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    pub id: ObjectId,
    pub group: String,
    pub time_ns: i64,
    /// Empty means the snapshot is forgotten.
    pub reasons: Vec<&'static str>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Applies `policy` at `now_ns`, bucketing in `tz`. Returns one decision per candidate,
/// newest first within each group. Every trusted candidate that the policy keeps among the
/// trusted ones alone is kept, whatever the untrusted ones claim.
pub fn apply(policy: &RetentionPolicy, candidates: &[Candidate], now_ns: i64, tz: &TimeZone) -> Vec<Decision> {
    let mut decisions = apply_to_all(policy, candidates, now_ns, tz);
    if candidates.iter().all(|c| c.trusted) {
        return decisions;
    }
    let trusted: Vec<Candidate> = candidates.iter().filter(|c| c.trusted).cloned().collect();
    let mut among_trusted: HashMap<ObjectId, Vec<&'static str>> =
        apply_to_all(policy, &trusted, now_ns, tz).into_iter().map(|d| (d.id, d.reasons)).collect();
    let trusted_ids: HashSet<ObjectId> = trusted.iter().map(|c| c.id).collect();
    for d in decisions.iter_mut().filter(|d| trusted_ids.contains(&d.id)) {
        for reason in among_trusted.remove(&d.id).unwrap_or_default() {
            if !d.reasons.contains(&reason) {
                d.reasons.push(reason);
            }
        }
    }
    decisions
}

fn apply_to_all(policy: &RetentionPolicy, candidates: &[Candidate], now_ns: i64, tz: &TimeZone) -> Vec<Decision> {
    let mut groups: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        groups.entry(&c.group).or_default().push(c);
    }
    let mut out = Vec::new();
    for (_, mut snaps) in groups {
        snaps.sort_by(|a, b| b.time_ns.cmp(&a.time_ns).then(b.id.cmp(&a.id)));
        let mut decisions: Vec<Decision> = snaps
            .iter()
            .map(|c| Decision { id: c.id, group: c.group.clone(), time_ns: c.time_ns, reasons: Vec::new() })
            .collect();
        decisions[0].reasons.push("latest");
        if let Some(n) = policy.last {
            decisions.iter_mut().take(n as usize).for_each(|d| d.reasons.push("last"));
        }
        if let Some(within) = policy.within {
            for d in decisions.iter_mut().filter(|d| d.time_ns >= now_ns - within * NS) {
                d.reasons.push("within");
            }
        }
        let rules: [(Option<Keep>, &'static str, BucketOf); 5] = [
            (policy.hourly, "hourly", |z| (z.year() as i32 * 400 + z.day_of_year() as i32, z.hour() as i32)),
            (policy.daily, "daily", |z| (z.year() as i32, z.day_of_year() as i32)),
            (policy.weekly, "weekly", |z| {
                let w = z.date().iso_week_date();
                (w.year() as i32, w.week() as i32)
            }),
            (policy.monthly, "monthly", |z| (z.year() as i32, z.month() as i32)),
            (policy.yearly, "yearly", |z| (z.year() as i32, 0)),
        ];
        for (keep, reason, bucket) in rules {
            let Some(keep) = keep else { continue };
            let mut last_bucket = None;
            let mut kept = 0u32;
            for d in decisions.iter_mut() {
                let Ok(ts) = Timestamp::from_nanosecond(d.time_ns as i128) else { continue };
                let b = bucket(&ts.to_zoned(tz.clone()));
                if last_bucket == Some(b) {
                    continue;
                }
                last_bucket = Some(b);
                let take = match keep {
                    Keep::Count(n) => kept < n,
                    Keep::Within(secs) => d.time_ns >= now_ns - secs * NS,
                };
                if take {
                    kept += 1;
                    d.reasons.push(reason);
                }
            }
        }
        out.extend(decisions);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::timeline::{self, TimedSnapshot};

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_nanosecond() as i64
    }

    fn snaps(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                id: ObjectId([i as u8; 32]),
                group: "h files /srv".into(),
                time_ns: at(t),
                trusted: true,
            })
            .collect()
    }

    fn kept(policy: &RetentionPolicy, times: &[&str], now: &str) -> Vec<String> {
        let c = snaps(times);
        let mut k: Vec<String> = apply(policy, &c, at(now), &TimeZone::UTC)
            .into_iter()
            .filter(Decision::keep)
            .map(|d| Timestamp::from_nanosecond(d.time_ns as i128).unwrap().to_string())
            .collect();
        k.sort();
        k
    }

    #[test]
    fn policies_against_a_table_of_snapshot_times() {
        let times = [
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:30:00Z",
            "2026-01-01T11:00:00Z",
            "2026-01-02T09:00:00Z",
            "2026-01-09T09:00:00Z",
            "2026-02-15T09:00:00Z",
            "2026-03-01T09:00:00Z",
            "2026-03-01T21:00:00Z",
        ];
        let now = "2026-03-02T00:00:00Z";
        let p = |f: fn(&mut RetentionPolicy)| {
            let mut p = RetentionPolicy::default();
            f(&mut p);
            p
        };
        // The newest is always kept.
        assert_eq!(kept(&RetentionPolicy::default(), &times, now), ["2026-03-01T21:00:00Z"]);
        assert_eq!(
            kept(&p(|p| p.last = Some(3)), &times, now),
            ["2026-02-15T09:00:00Z", "2026-03-01T09:00:00Z", "2026-03-01T21:00:00Z"]
        );
        assert_eq!(kept(&p(|p| p.within = Some(DAY)), &times, now), ["2026-03-01T09:00:00Z", "2026-03-01T21:00:00Z"]);
        // Daily: the newest of each of the last 3 days that have snapshots.
        assert_eq!(
            kept(&p(|p| p.daily = Some(Keep::Count(3))), &times, now),
            ["2026-01-09T09:00:00Z", "2026-02-15T09:00:00Z", "2026-03-01T21:00:00Z"]
        );
        // Hourly within a day: both of 1 March; on 1 January the newest of each hour.
        assert_eq!(
            kept(&p(|p| p.hourly = Some(Keep::Count(10))), &times, now),
            [
                "2026-01-01T10:30:00Z",
                "2026-01-01T11:00:00Z",
                "2026-01-02T09:00:00Z",
                "2026-01-09T09:00:00Z",
                "2026-02-15T09:00:00Z",
                "2026-03-01T09:00:00Z",
                "2026-03-01T21:00:00Z"
            ]
        );
        assert_eq!(
            kept(&p(|p| p.monthly = Some(Keep::Within(60 * DAY))), &times, now),
            ["2026-01-09T09:00:00Z", "2026-02-15T09:00:00Z", "2026-03-01T21:00:00Z"]
        );
        assert_eq!(kept(&p(|p| p.yearly = Some(Keep::Count(5))), &times, now), ["2026-03-01T21:00:00Z"]);
        // Weeks are ISO weeks: 1 and 2 Jan 2026 are in week 1, 9 Jan in week 2.
        assert_eq!(
            kept(&p(|p| p.weekly = Some(Keep::Count(4))), &times, now),
            ["2026-01-02T09:00:00Z", "2026-01-09T09:00:00Z", "2026-02-15T09:00:00Z", "2026-03-01T21:00:00Z"]
        );
    }

    #[test]
    fn groups_are_independent() {
        let mut c = snaps(&["2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z"]);
        c[0].group = "other host".into();
        let d = apply(&RetentionPolicy::default(), &c, at("2026-03-01T00:00:00Z"), &TimeZone::UTC);
        assert!(d.iter().all(Decision::keep), "each group keeps its latest");
    }

    /// Candidates as `forget` builds them: real snapshots stored when taken, and plants
    /// with their claimed and stored times, judged by the timeline.
    fn judged(real: &[i64], plants: &[(i64, i64)]) -> Vec<Candidate> {
        let real = real.iter().map(|&t| (t, t + 60 * NS));
        let timed = real
            .chain(plants.iter().copied())
            .enumerate()
            .map(|(i, (claimed, stored))| {
                let s = arka_proto::Snapshot {
                    time_ns: claimed,
                    written_ns: claimed,
                    hostname: "h".into(),
                    source_kind: "files".into(),
                    source: vec![],
                    tags: vec![],
                    tree: arka_proto::BlobId([i as u8; 32]),
                    refs: arka_proto::BlobId::default(),
                    partial: false,
                    stats: Default::default(),
                    program: String::new(),
                    repaired_from: None,
                    lost_files: 0,
                    source_name: None,
                };
                TimedSnapshot::new(ObjectId([i as u8; 32]), s, stored)
            })
            .collect();
        let c = timeline::assess(timed).into_iter();
        c.map(|t| Candidate { id: t.id, group: "g".into(), time_ns: t.effective_ns, trusted: t.is_trusted() }).collect()
    }

    fn real_kept(d: &[Decision], real: usize) -> usize {
        d.iter().filter(|d| d.keep() && (d.id.0[0] as usize) < real).count()
    }

    #[test]
    fn back_dated_plants_cannot_take_real_snapshots_slots() {
        // Real weekly snapshots; plants written today, claiming to be just after each.
        let real: Vec<i64> = (0..6).map(|w| at("2026-01-05T12:00:00Z") + w * 7 * DAY * NS).collect();
        let today = at("2026-02-16T12:00:00Z");
        let plants: Vec<(i64, i64)> = real.iter().map(|t| (t + HOUR * NS, today)).collect();
        let policy = RetentionPolicy { weekly: Some(Keep::Count(6)), ..Default::default() };
        let d = apply(&policy, &judged(&real, &plants), today, &TimeZone::UTC);
        assert_eq!(real_kept(&d, real.len()), 6, "plants displaced real snapshots");
    }

    #[test]
    fn future_dated_plants_cannot_take_the_newest_real_snapshots_slot() {
        // Ten real daily snapshots; then, an hour after the newest, plants that claim
        // next year: what the red team did to `--keep-daily 7` and friends.
        let real: Vec<i64> = (0..10).map(|d| at("2026-03-01T08:00:00Z") + d * DAY * NS).collect();
        let planted_at = real[9] + HOUR * NS;
        let plants: Vec<(i64, i64)> = (0..3).map(|i| (at("2027-06-01T00:00:00Z") + i, planted_at + i)).collect();
        let now = planted_at + HOUR * NS;
        let c = judged(&real, &plants);
        for policy in [
            RetentionPolicy { daily: Some(Keep::Count(7)), ..Default::default() },
            RetentionPolicy { daily: Some(Keep::Within(30 * DAY)), ..Default::default() },
            RetentionPolicy { weekly: Some(Keep::Count(8)), ..Default::default() },
            RetentionPolicy { monthly: Some(Keep::Count(12)), ..Default::default() },
            RetentionPolicy { yearly: Some(Keep::Count(5)), ..Default::default() },
        ] {
            let d = apply(&policy, &c, now, &TimeZone::UTC);
            let newest = d.iter().find(|d| d.id == ObjectId([9; 32])).unwrap();
            assert!(newest.keep(), "{policy:?} dropped the newest real snapshot");
            // Taken at their word, the plants would have won the slot.
            let naive: Vec<Candidate> = c.iter().cloned().map(|c| Candidate { trusted: true, ..c }).collect();
            let naive = apply(&policy, &naive, now, &TimeZone::UTC);
            assert!(!naive.iter().find(|d| d.id == ObjectId([9; 32])).unwrap().keep(), "{policy:?}");
        }
    }

    #[test]
    fn keep_values_parse() {
        assert_eq!("24".parse::<Keep>().unwrap(), Keep::Count(24));
        assert_eq!("7d".parse::<Keep>().unwrap(), Keep::Within(7 * DAY));
        assert_eq!("48h".parse::<Keep>().unwrap(), Keep::Within(48 * HOUR));
        assert!("7x".parse::<Keep>().is_err());
        assert!("d".parse::<Keep>().is_err());
    }
}
