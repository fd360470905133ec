//! When jobs run: schedules parsed from the config (`every 15m`, `daily 02:00`, …), the next
//! run with catch-up after downtime, a [`Clock`] the runner sleeps on (a [`ManualClock`] in
//! tests), and the small per-job state file that remembers the last runs across restarts.
//!
//! Slot schedules are in the machine's local time ([`TimeZone::system`]); every function
//! takes the zone as an argument so tests pin one. DST never panics: a slot in a spring
//! gap runs at the same distance after the gap (02:30 → 03:30), a slot in an autumn fold
//! runs once, at its first occurrence.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::platform::units::parse_span;

/// The shortest `every` interval: anything faster is a busy loop, not a backup schedule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// The longest `every` interval: a job run less often than monthly is not a schedule
/// anyone watches, and longer values once overflowed the RPO into "never late".
pub const MAX_INTERVAL: Duration = Duration::from_secs(31 * 86_400);

const HOUR: Duration = Duration::from_secs(3600);
const WEEK_MINUTES: u32 = 7 * 24 * 60;

const FORMS: &str = "use one of: \"every 15m\" (units s, m, h, d; at least 10s), \"hourly\", \
                     \"hourly at :15\", \"daily 02:00\", \"weekly sun 03:00\", \"mon-fri 18:30\" \
                     (days mon…sun, ranges like mon-fri, lists like sat,sun; times like 02:00,14:00)";

/// When a job runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// A fixed interval after the previous run's start.
    Every(Duration),
    /// Every hour of local time at this minute.
    Hourly { minute: u8 },
    /// At these local times (sorted, deduplicated) on these weekdays.
    Weekly { days: Weekdays, times: Vec<Time> },
}

/// A set of weekdays; bit 0 is Monday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weekdays(u8);

impl Weekdays {
    pub const ALL: Self = Self(0x7f);

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }

    fn add(&mut self, day: Weekday) {
        self.0 |= 1 << day.to_monday_zero_offset();
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let bad = |why: &str| format!("schedule {s:?}: {why}; {FORMS}");
        match words.as_slice() {
            [] => Err(bad("empty")),
            ["every", rest @ ..] if !rest.is_empty() => {
                let every = parse_span(&rest.concat()).map_err(|e| bad(&e))?;
                if every < MIN_INTERVAL {
                    return Err(bad("the interval must be at least 10s"));
                }
                if every > MAX_INTERVAL {
                    return Err(bad("the interval must be at most 31d"));
                }
                Ok(Self::Every(every))
            }
            ["hourly"] => Ok(Self::Hourly { minute: 0 }),
            ["hourly", "at", minute] | ["hourly", minute] => {
                let minute = minute.strip_prefix(':').unwrap_or(minute);
                match minute.parse::<u8>() {
                    Ok(m) if m < 60 && !minute.is_empty() => Ok(Self::Hourly { minute: m }),
                    _ => Err(bad("the minute must be :00 to :59")),
                }
            }
            ["daily", "at", times @ ..] | ["daily", times @ ..] => weekly(Weekdays::ALL, times).map_err(|e| bad(&e)),
            ["weekly", "on", day, rest @ ..] | ["weekly", day, rest @ ..] => {
                let days = parse_days(day).map_err(|e| bad(&e))?;
                let times = rest.strip_prefix(&["at"]).unwrap_or(rest);
                weekly(days, times).map_err(|e| bad(&e))
            }
            [day, rest @ ..] => {
                let days = parse_days(day).map_err(|_| bad("unknown form"))?;
                let times = rest.strip_prefix(&["at"]).unwrap_or(rest);
                weekly(days, times).map_err(|e| bad(&e))
            }
        }
    }
}

fn weekly(days: Weekdays, times: &[&str]) -> Result<Schedule, String> {
    if times.is_empty() {
        return Err("a time of day is missing (HH:MM, 24-hour)".into());
    }
    let mut parsed = Vec::new();
    for t in times.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()) {
        parsed.push(parse_time(t)?);
    }
    parsed.sort();
    parsed.dedup();
    Ok(Schedule::Weekly { days, times: parsed })
}

fn parse_time(t: &str) -> Result<Time, String> {
    let bad = || format!("{t:?} is not a time of day (HH:MM, 24-hour, e.g. 02:00 or 18:30)");
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    if !(1..=2).contains(&h.len()) || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn parse_days(s: &str) -> Result<Weekdays, String> {
    let mut days = Weekdays(0);
    match s {
        "weekdays" => return Ok(Weekdays(0x1f)),
        "weekends" => return Ok(Weekdays(0x60)),
        _ => {}
    }
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a)?, parse_day(b)?);
                let mut d = a;
                days.add(d);
                while d != b {
                    d = d.next();
                    days.add(d);
                }
            }
            None => days.add(parse_day(part)?),
        }
    }
    if days.0 == 0 {
        return Err(format!("{s:?} names no weekday"));
    }
    Ok(days)
}

fn parse_day(s: &str) -> Result<Weekday, String> {
    const NAMES: [(&str, Weekday); 7] = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    NAMES
        .iter()
        .find(|(n, _)| s.len() >= 3 && s.starts_with(n))
        .map(|&(_, d)| d)
        .ok_or_else(|| format!("{s:?} is not a weekday (mon, tue, wed, thu, fri, sat, sun)"))
}

impl Schedule {
    /// When the job should next run, given when it last started (`None`: never) and now.
    ///
    /// Catch-up: if a run fell due while the agent was down (`last_run + interval <= now`,
    /// or a slot passed since `last_run`), the answer is `now`: one run at once, however
    /// many slots were missed. A job that never ran is due at once with `every`; slot
    /// schedules wait for their first slot (a dump set for 02:00 is set there because the
    /// database is busy by day). If the clock went back past `last_run`, the schedule
    /// counts from `now`. The result is never before `now`.
    pub fn next_run(&self, last_run: Option<Timestamp>, now: Timestamp, tz: &TimeZone) -> Timestamp {
        let last = match last_run {
            Some(last) if last <= now => last,
            Some(_) => return self.next_slot_after(now, now, tz),
            None if matches!(self, Self::Every(_)) => return now,
            None => return self.next_slot_after(now, now, tz),
        };
        self.next_slot_after(last, now, tz).max(now)
    }

    /// The first time strictly after `after` the schedule names (for `every`, `after` plus
    /// the interval). `now` bounds the search when no slot can be computed.
    fn next_slot_after(&self, after: Timestamp, now: Timestamp, tz: &TimeZone) -> Timestamp {
        let slot = match self {
            Self::Every(every) => after.checked_add(*every).ok(),
            Self::Hourly { minute } => Some(next_hourly(after, *minute, tz)),
            Self::Weekly { days, times } => next_weekly(after, *days, times, tz),
        };
        // Only at the ends of jiff's range (year ±9999) is there no slot: retry in an hour.
        slot.unwrap_or_else(|| now.checked_add(HOUR).unwrap_or(now))
    }

    /// The longest time between two runs when all goes well: the interval for `every`,
    /// an hour for `hourly`, the longest gap between slots in a week otherwise (24 h for
    /// `daily`, 72 h from Friday to Monday for `mon-fri`).
    pub fn nominal_interval(&self) -> Duration {
        match self {
            Self::Every(every) => *every,
            Self::Hourly { .. } => HOUR,
            Self::Weekly { days, times } => {
                let mut slots: Vec<u32> = (0..7u32)
                    .filter(|d| days.0 & (1 << d) != 0)
                    .flat_map(|d| times.iter().map(move |t| d * 1440 + t.hour() as u32 * 60 + t.minute() as u32))
                    .collect();
                slots.sort_unstable();
                let gaps = slots.windows(2).map(|w| w[1] - w[0]);
                let wrap = slots.first().map_or(WEEK_MINUTES, |f| f + WEEK_MINUTES - slots[slots.len() - 1]);
                Duration::from_secs(60 * u64::from(gaps.chain([wrap]).max().unwrap_or(WEEK_MINUTES)))
            }
        }
    }

    /// The recovery point objective a source gets when the config names none: twice the
    /// interval for `every` and `hourly` (at least 10 minutes, so a backup that takes a
    /// while is not an alarm), the longest gap plus 2 hours for slot schedules (26 h for
    /// `daily`).
    pub fn default_rpo(&self) -> Duration {
        match self {
            Self::Every(_) | Self::Hourly { .. } => (self.nominal_interval() * 2).max(Duration::from_secs(600)),
            Self::Weekly { .. } => self.nominal_interval() + 2 * HOUR,
        }
    }
}

/// The next instant after `after` whose local minute-of-hour is `minute`. Offsets change
/// by whole hours almost everywhere, so stepping an hour keeps the local minute.
fn next_hourly(after: Timestamp, minute: u8, tz: &TimeZone) -> Timestamp {
    let offset = i64::from(tz.to_offset(after).seconds());
    let local = after.as_second() + offset;
    let base = local - local.rem_euclid(3600) + i64::from(minute) * 60 - offset;
    let mut t = Timestamp::from_second(base).unwrap_or(after);
    while t <= after {
        match t.checked_add(HOUR) {
            Ok(next) => t = next,
            Err(_) => return after,
        }
    }
    t
}

/// The earliest slot after `after`. Days are scanned from the day before (a gap can move a
/// slot across midnight) and every candidate is resolved with jiff's "compatible" rule:
/// a time in a gap moves forward by the gap, a time in a fold takes its first occurrence.
fn next_weekly(after: Timestamp, days: Weekdays, times: &[Time], tz: &TimeZone) -> Option<Timestamp> {
    let start: Date = after.to_zoned(tz.clone()).date().yesterday().ok()?;
    let mut best: Option<Timestamp> = None;
    let mut date = start;
    for _ in 0..10 {
        if days.contains(date.weekday()) {
            for t in times {
                let Ok(zoned) = tz.to_ambiguous_zoned(date.to_datetime(*t)).compatible() else { continue };
                let ts = zoned.timestamp();
                if ts > after && best.is_none_or(|b| ts < b) {
                    best = Some(ts);
                }
            }
        }
        date = date.tomorrow().ok()?;
    }
    best
}

impl fmt::Display for Schedule {
    /// The canonical spelling, which parses back to the same schedule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every(d) => {
                let s = d.as_secs();
                match s {
                    _ if s % 86_400 == 0 => write!(f, "every {}d", s / 86_400),
                    _ if s % 3600 == 0 => write!(f, "every {}h", s / 3600),
                    _ if s % 60 == 0 => write!(f, "every {}m", s / 60),
                    _ => write!(f, "every {s}s"),
                }
            }
            Self::Hourly { minute: 0 } => f.write_str("hourly"),
            Self::Hourly { minute } => write!(f, "hourly at :{minute:02}"),
            Self::Weekly { days, times } => {
                if *days == Weekdays::ALL {
                    f.write_str("daily")?;
                } else {
                    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                    let names: Vec<&str> = (0..7).filter(|d| days.0 & (1 << d) != 0).map(|d| NAMES[d]).collect();
                    f.write_str(&names.join(","))?;
                }
                let times: Vec<String> = times.iter().map(|t| format!("{:02}:{:02}", t.hour(), t.minute())).collect();
                write!(f, " {}", times.join(","))
            }
        }
    }
}

/// Time as the runner sees it: real in the agent, driven by hand in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// Completes once `now() >= t` (at once if it already is). Dropping the future cancels
    /// the sleep.
    fn sleep_until(&self, t: Timestamp) -> BoxFuture<'_, ()>;
}

/// The system's wall clock, with tokio timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// Sleeps are cut into steps of at most this, so a wall-clock jump (NTP correction, a
/// suspended virtual machine) delays a due job by no more than a step.
const MAX_SLEEP_STEP: Duration = Duration::from_secs(30);

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, t: Timestamp) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            loop {
                let left = t.duration_since(Timestamp::now());
                let Ok(left) = Duration::try_from(left) else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(MAX_SLEEP_STEP)).await;
            }
        })
    }
}

/// A clock that moves only when told to, for tests: [`ManualClock::advance`] wakes every
/// sleeper whose deadline it reaches. Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualInner>>,
}

#[derive(Debug)]
struct ManualInner {
    now: Timestamp,
    sleepers: Vec<(Timestamp, Waker)>,
}

impl ManualClock {
    pub fn new(now: Timestamp) -> Self {
        Self { inner: Arc::new(Mutex::new(ManualInner { now, sleepers: Vec::new() })) }
    }

    /// Moves time forward and wakes the sleepers now due.
    pub fn advance(&self, by: Duration) {
        let now = self.now();
        self.set(now.checked_add(by).expect("ManualClock advanced past year 9999"));
    }

    /// Sets the time (backwards too: a sleeper then waits for the new distance).
    pub fn set(&self, now: Timestamp) {
        let due: Vec<Waker> = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.now = now;
            let (due, waiting) = std::mem::take(&mut inner.sleepers).into_iter().partition(|(t, _)| *t <= now);
            inner.sleepers = waiting;
            due.into_iter().map(|(_, w)| w).collect()
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// How many futures are sleeping on this clock: lets a test wait until the code under
    /// test has gone to sleep before advancing.
    pub fn sleepers(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).sleepers.len()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).now
    }

    fn sleep_until(&self, t: Timestamp) -> BoxFuture<'_, ()> {
        Box::pin(futures::future::poll_fn(move |cx| {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if inner.now >= t {
                return Poll::Ready(());
            }
            inner.sleepers.retain(|(_, w)| !w.will_wake(cx.waker()));
            inner.sleepers.push((t, cx.waker().clone()));
            Poll::Pending
        }))
    }
}

/// The state-file keys of the maintenance jobs; sources use their own names, which cannot
/// contain `@`.
pub const FORGET_JOB: &str = "@forget";
pub const PRUNE_JOB: &str = "@prune";
pub const VERIFY_JOB: &str = "@verify";

/// What the agent remembers about each job across restarts, so catch-up and RPO survive a
/// reboot. Kept in `state_dir/schedule.state`; a missing or unreadable file is empty state
/// (every `every` job runs at once, which is the safe side).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScheduleState {
    #[serde(default)]
    pub jobs: BTreeMap<String, JobState>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobState {
    /// When the last run started (whatever its outcome): what [`Schedule::next_run`] takes.
    #[serde(default, with = "opt_timestamp")]
    pub last_run: Option<Timestamp>,
    /// When the last successful run started: what the RPO is measured from.
    #[serde(default, with = "opt_timestamp")]
    pub last_success: Option<Timestamp>,
}

impl ScheduleState {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("schedule.state")
    }

    pub fn load(state_dir: &Path) -> Self {
        crate::repo::local_state::load(&Self::path(state_dir))
    }

    /// Replaces the file atomically.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        crate::repo::local_state::save(&Self::path(state_dir), self)
    }

    /// The job's state (empty if it never ran).
    pub fn job(&self, key: &str) -> JobState {
        self.jobs.get(key).copied().unwrap_or_default()
    }

    /// Records a finished run that started at `started`.
    pub fn record(&mut self, key: &str, started: Timestamp, success: bool) {
        let job = self.jobs.entry(key.to_string()).or_default();
        job.last_run = Some(started);
        if success {
            job.last_success = Some(started);
        }
    }

    /// Drops jobs the config no longer has, so a renamed source does not linger.
    pub fn retain_jobs<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::BTreeSet<&str> = keys.into_iter().collect();
        self.jobs.retain(|k, _| keep.contains(k.as_str()));
    }
}

/// Timestamps as Unix nanoseconds (jiff is built without its serde feature).
mod opt_timestamp {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&(t.as_nanosecond() as i64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.and_then(|ns| Timestamp::from_nanosecond(i128::from(ns)).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn parses_every_documented_form() {
        let every = |secs| Schedule::Every(Duration::from_secs(secs));
        let at = |h, m| Time::new(h, m, 0, 0).unwrap();
        let cases: &[(&str, Schedule)] = &[
            ("every 15m", every(900)),
            ("every 1h", every(3600)),
            ("every 30s", every(30)),
            ("Every 1h 30m", every(5400)),
            ("every 2 hours", every(7200)),
            ("hourly", Schedule::Hourly { minute: 0 }),
            ("hourly at :15", Schedule::Hourly { minute: 15 }),
            ("daily 02:00", Schedule::Weekly { days: Weekdays::ALL, times: vec![at(2, 0)] }),
            ("daily at 2:00", Schedule::Weekly { days: Weekdays::ALL, times: vec![at(2, 0)] }),
            ("daily 14:00,02:00", Schedule::Weekly { days: Weekdays::ALL, times: vec![at(2, 0), at(14, 0)] }),
            ("weekly sun 03:00", Schedule::Weekly { days: Weekdays(0x40), times: vec![at(3, 0)] }),
            ("weekly on sunday at 03:00", Schedule::Weekly { days: Weekdays(0x40), times: vec![at(3, 0)] }),
            ("mon-fri 18:30", Schedule::Weekly { days: Weekdays(0x1f), times: vec![at(18, 30)] }),
            ("sat,sun at 09:00", Schedule::Weekly { days: Weekdays(0x60), times: vec![at(9, 0)] }),
            ("fri-mon 23:00", Schedule::Weekly { days: Weekdays(0x71), times: vec![at(23, 0)] }),
        ];
        for (text, want) in cases {
            assert_eq!(&text.parse::<Schedule>().unwrap(), want, "{text}");
            // The canonical spelling parses back to the same schedule.
            assert_eq!(&want.to_string().parse::<Schedule>().unwrap(), want, "{want}");
        }
    }

    #[test]
    fn bad_schedules_say_which_forms_exist() {
        for (text, why) in [
            ("", "empty"),
            ("evry 1h", "unknown form"),
            ("every 5s", "at least 10s"),
            ("every 5 fortnights", "unknown unit"),
            ("every", "unknown form"),
            ("every h", "number is missing"),
            ("hourly at :75", ":00 to :59"),
            ("daily", "time of day is missing"),
            ("daily 25:00", "not a time of day"),
            ("daily 2pm", "not a time of day"),
            ("weekly 03:00", "not a weekday"),
            ("mon-fry 18:30", "unknown form"),
        ] {
            let e = text.parse::<Schedule>().unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(e.contains("\"daily 02:00\""), "{text:?} lists the forms: {e}");
        }
    }

    #[test]
    fn next_run_table() {
        let tz = berlin();
        // (schedule, last run, now, expected next run); Berlin is UTC+1 in winter, +2 in summer.
        let cases = [
            // Never ran: `every` at once, slots wait for their slot.
            ("every 1h", None, "2026-01-10T10:00:00Z", "2026-01-10T10:00:00Z"),
            ("daily 02:00", None, "2026-01-10T10:00:00Z", "2026-01-11T01:00:00Z"),
            ("hourly at :15", None, "2026-01-10T10:20:00Z", "2026-01-10T11:15:00Z"),
            // On time.
            ("every 1h", Some("2026-01-10T10:00:00Z"), "2026-01-10T10:20:00Z", "2026-01-10T11:00:00Z"),
            ("every 15m", Some("2026-01-10T10:00:00Z"), "2026-01-10T10:00:00Z", "2026-01-10T10:15:00Z"),
            ("hourly", Some("2026-01-10T10:00:00Z"), "2026-01-10T10:00:01Z", "2026-01-10T11:00:00Z"),
            ("daily 02:00", Some("2026-01-10T01:00:00Z"), "2026-01-10T01:00:30Z", "2026-01-11T01:00:00Z"),
            ("mon-fri 18:30", Some("2026-01-09T17:30:00Z"), "2026-01-09T18:00:00Z", "2026-01-12T17:30:00Z"),
            ("weekly sun 03:00", Some("2026-01-11T02:00:00Z"), "2026-01-11T02:00:05Z", "2026-01-18T02:00:00Z"),
            // Catch-up after a 3-day downtime: once, at once.
            ("every 1h", Some("2026-01-07T10:00:00Z"), "2026-01-10T10:00:00Z", "2026-01-10T10:00:00Z"),
            ("daily 02:00", Some("2026-01-07T01:00:00Z"), "2026-01-10T10:00:00Z", "2026-01-10T10:00:00Z"),
            ("hourly at :15", Some("2026-01-07T10:15:00Z"), "2026-01-10T10:00:00Z", "2026-01-10T10:00:00Z"),
            // ...and after the catch-up run the schedule is back on its slots.
            ("daily 02:00", Some("2026-01-10T10:00:00Z"), "2026-01-10T10:05:00Z", "2026-01-11T01:00:00Z"),
            // Down over the weekend, but no weekday slot passed: no catch-up.
            ("mon-fri 18:30", Some("2026-01-09T17:30:00Z"), "2026-01-12T08:00:00Z", "2026-01-12T17:30:00Z"),
            // The clock went back past the last run: count from now.
            ("every 1h", Some("2026-01-10T12:00:00Z"), "2026-01-10T10:00:00Z", "2026-01-10T11:00:00Z"),
            // Spring forward (29 March 2026, 02:00 CET → 03:00 CEST): 02:30 does not exist
            // and runs at 03:30 CEST; the day after, 02:30 CEST again.
            ("daily 02:30", Some("2026-03-28T01:30:00Z"), "2026-03-28T12:00:00Z", "2026-03-29T01:30:00Z"),
            ("daily 02:30", Some("2026-03-29T01:30:00Z"), "2026-03-29T12:00:00Z", "2026-03-30T00:30:00Z"),
            ("daily 03:00", Some("2026-03-28T02:00:00Z"), "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"),
            // Fall back (25 October 2026, 03:00 CEST → 02:00 CET): 02:30 happens twice and
            // runs once, at the first.
            ("daily 02:30", Some("2026-10-24T00:30:00Z"), "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"),
            ("daily 02:30", Some("2026-10-25T00:30:00Z"), "2026-10-25T00:31:00Z", "2026-10-26T01:30:00Z"),
            // Hourly keeps its minute through both repeated hours of the fold.
            ("hourly at :30", Some("2026-10-25T00:30:00Z"), "2026-10-25T00:31:00Z", "2026-10-25T01:30:00Z"),
            ("every 1h", Some("2026-03-29T00:30:00Z"), "2026-03-29T00:31:00Z", "2026-03-29T01:30:00Z"),
        ];
        for (sched, last, now, want) in cases {
            let s: Schedule = sched.parse().unwrap();
            let got = s.next_run(last.map(ts), ts(now), &tz);
            assert_eq!(got, ts(want), "{sched}, last {last:?}, now {now}");
        }
    }

    #[test]
    fn slot_schedules_follow_the_given_zone() {
        let s: Schedule = "daily 02:00".parse().unwrap();
        let now = ts("2026-07-01T12:00:00Z");
        assert_eq!(s.next_run(None, now, &TimeZone::UTC), ts("2026-07-02T02:00:00Z"));
        assert_eq!(s.next_run(None, now, &berlin()), ts("2026-07-02T00:00:00Z"));
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        let h: Schedule = "hourly at :00".parse().unwrap();
        assert_eq!(h.next_run(None, now, &kolkata), ts("2026-07-01T12:30:00Z"));
    }

    #[test]
    fn nominal_interval_and_default_rpo() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        for (sched, interval, rpo) in [
            ("every 1h", h(1), h(2)),
            ("every 30s", Duration::from_secs(30), Duration::from_secs(600)),
            ("hourly at :15", h(1), h(2)),
            ("daily 02:00", h(24), h(26)),
            ("daily 02:00,14:00", h(12), h(14)),
            ("weekly sun 03:00", h(168), h(170)),
            ("mon-fri 18:30", h(72), h(74)),
        ] {
            let s: Schedule = sched.parse().unwrap();
            assert_eq!((s.nominal_interval(), s.default_rpo()), (interval, rpo), "{sched}");
        }
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_whose_deadline_passed() {
        let clock = Arc::new(ManualClock::new(ts("2026-01-10T10:00:00Z")));
        let spawn = |at: &str| {
            let clock = clock.clone();
            let t = ts(at);
            tokio::spawn(async move {
                clock.sleep_until(t).await;
                clock.now()
            })
        };
        let early = spawn("2026-01-10T10:05:00Z");
        let late = spawn("2026-01-10T11:00:00Z");
        while clock.sleepers() < 2 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(4 * 60));
        tokio::task::yield_now().await;
        assert_eq!(clock.sleepers(), 2, "nothing is due yet");
        clock.advance(Duration::from_secs(60));
        assert_eq!(early.await.unwrap(), ts("2026-01-10T10:05:00Z"));
        assert_eq!(clock.sleepers(), 1);
        assert!(!late.is_finished());
        clock.advance(Duration::from_secs(3600));
        assert_eq!(late.await.unwrap(), ts("2026-01-10T11:05:00Z"));
        // A deadline already passed does not sleep at all.
        clock.sleep_until(ts("2026-01-01T00:00:00Z")).await;
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn system_clock_sleeps_until_the_deadline() {
        let clock = SystemClock;
        let deadline = clock.now().checked_add(Duration::from_millis(50)).unwrap();
        clock.sleep_until(deadline).await;
        assert!(clock.now() >= deadline);
        clock.sleep_until(ts("2020-01-01T00:00:00Z")).await;
    }

    #[test]
    fn schedule_state_round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ScheduleState::load(dir.path()), ScheduleState::default());
        let mut state = ScheduleState::default();
        state.record("imaging", ts("2026-01-10T10:00:00Z"), true);
        state.record("imaging", ts("2026-01-10T11:00:00Z"), false);
        state.record(FORGET_JOB, ts("2026-01-10T03:00:00Z"), true);
        state.save(dir.path()).unwrap();
        let loaded = ScheduleState::load(dir.path());
        assert_eq!(loaded, state);
        let job = loaded.job("imaging");
        assert_eq!(job.last_run, Some(ts("2026-01-10T11:00:00Z")));
        assert_eq!(job.last_success, Some(ts("2026-01-10T10:00:00Z")));
        assert_eq!(loaded.job("clinic-db"), JobState::default());
        let mut pruned = loaded;
        pruned.retain_jobs(["imaging"]);
        assert_eq!(pruned.jobs.keys().collect::<Vec<_>>(), ["imaging"]);
        // A damaged file is a hint lost, not an error.
        std::fs::write(ScheduleState::path(dir.path()), b"garbage").unwrap();
        assert_eq!(ScheduleState::load(dir.path()), ScheduleState::default());
    }
}
