//! What the two status pages share, the agent's own (`GET /` on the agent) and the
//! server's fleet dashboard: the base stylesheet, and how a time reads ("12 minutes ago
//! (today 14:03)"), so both pages look and read alike.
//!
//! This crate holds no time-zone database (it is pure), so the caller converts an instant
//! to its [`WallTime`] and this module only words it.

use crate::status::{ago, esc};

/// The rules both pages use unchanged. Each page appends its own stylesheet after this
/// one, so a page's rule overrides a base rule of the same selector.
pub const BASE_CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Liberation Sans','DejaVu Sans',sans-serif;\
color:#1d1d1f;background:#f3f4f6}\
.verdict{border-radius:14px;padding:22px 26px;color:#fff;margin-bottom:10px}\
.verdict.ok{background:#1b7f3b}.verdict.bad{background:#b3261e}\
.verdict h1{margin:0;font-size:2.1em;line-height:1.2}\
.verdict p{margin:10px 0 0;font-size:1.1em}\
h2{font-size:1.3em;margin:26px 2px 10px}\
table{border-collapse:collapse;width:100%}\
td{overflow-wrap:anywhere}\
.when{color:#666;white-space:nowrap}\
.badge{font-size:.8em;font-weight:700;border-radius:999px;padding:3px 11px;color:#fff;white-space:nowrap}\
.err{color:#b3261e;font-weight:600}\
footer{color:#666;font-size:.9em;margin:26px 2px 8px}";

/// A moment as the viewer's wall clock shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallTime {
    pub year: i16,
    /// 1 to 12.
    pub month: i8,
    /// 1 to 31.
    pub day: i8,
    pub hour: i8,
    pub minute: i8,
}

/// Converts an instant (ns since the Unix epoch) to the viewer's wall clock; `None` when
/// out of range.
pub type ToWall<'a> = &'a dyn Fn(i64) -> Option<WallTime>;

/// Times as people say them, relative to `now_ns`, on the viewer's wall clock.
pub struct Clock<'a> {
    pub now_ns: i64,
    pub wall: ToWall<'a>,
}

impl Clock<'_> {
    /// "12 minutes ago <span class=\"when\">(today 14:03)</span>", escaped.
    pub fn relative(&self, t_ns: i64) -> String {
        format!("{} <span class=\"when\">({})</span>", esc(&ago(self.now_ns, t_ns)), esc(&self.at(t_ns)))
    }

    /// "today 14:03", "yesterday 23:10", "tomorrow 02:00", "Mon 3 Mar 14:03" (within a
    /// week), "3 Mar 14:03" (this year), "3 Mar 2024 14:03".
    pub fn at(&self, t_ns: i64) -> String {
        let (Some(t), Some(now)) = ((self.wall)(t_ns), (self.wall)(self.now_ns)) else {
            return "unknown time".into();
        };
        let time = format!("{:02}:{:02}", t.hour, t.minute);
        let day_month = format!("{} {}", t.day, MONTHS[(t.month - 1).clamp(0, 11) as usize]);
        match days_from_civil(t) - days_from_civil(now) {
            0 => format!("today {time}"),
            -1 => format!("yesterday {time}"),
            1 => format!("tomorrow {time}"),
            -6..=6 => format!("{} {day_month} {time}", WEEKDAYS[days_from_civil(t).rem_euclid(7) as usize]),
            _ if t.year == now.year => format!("{day_month} {time}"),
            _ => format!("{day_month} {} {time}", t.year),
        }
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/// Indexed by days since 1970-01-01 modulo 7: that day was a Thursday.
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(t: WallTime) -> i64 {
    let (m, d) = (i64::from(t.month), i64::from(t.day));
    let y = i64::from(t.year) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;
    const DAY: i64 = 24 * 60 * MIN;

    /// UTC, from days since the epoch: enough to test against without a time-zone library.
    fn utc(ns: i64) -> Option<WallTime> {
        let days = ns.div_euclid(DAY);
        let mins = ns.rem_euclid(DAY) / MIN;
        // Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Some(WallTime {
            year: year as i16,
            month: month as i8,
            day: day as i8,
            hour: (mins / 60) as i8,
            minute: (mins % 60) as i8,
        })
    }

    #[test]
    fn times_read_like_a_person_says_them() {
        // 2023-11-14 22:13:20 UTC, a Tuesday.
        let now = 1_700_000_000_000_000_000;
        let clock = Clock { now_ns: now, wall: &utc };
        assert_eq!(clock.at(now - 10 * MIN), "today 22:03");
        assert_eq!(clock.at(now - 23 * 60 * MIN), "yesterday 23:13");
        assert_eq!(clock.at(now + 120 * MIN), "tomorrow 00:13");
        assert_eq!(clock.at(now - 3 * DAY), "Sat 11 Nov 22:13");
        assert_eq!(clock.at(now + 5 * DAY), "Sun 19 Nov 22:13");
        assert_eq!(clock.at(now - 30 * DAY), "15 Oct 22:13");
        assert_eq!(clock.at(now - 400 * DAY), "10 Oct 2022 22:13");
        assert_eq!(clock.at(now - 320 * DAY), "29 Dec 2022 22:13");
        assert!(clock.relative(now - 12 * MIN).starts_with("12 minutes ago <span class=\"when\">(today 22:01)"));
        let nowhere = |_| None;
        assert_eq!(Clock { now_ns: now, wall: &nowhere }.at(now), "unknown time");
    }

    #[test]
    fn day_numbers_and_weekdays_match_the_calendar() {
        let date = |year, month, day| WallTime { year, month, day, hour: 0, minute: 0 };
        assert_eq!(days_from_civil(date(1970, 1, 1)), 0);
        assert_eq!(days_from_civil(date(2000, 3, 1)), 11_017);
        assert_eq!(days_from_civil(date(2024, 2, 29)) + 1, days_from_civil(date(2024, 3, 1)));
        assert_eq!(days_from_civil(date(1969, 12, 31)), -1);
        // 2026-12-04 is a Friday.
        assert_eq!(WEEKDAYS[days_from_civil(date(2026, 12, 4)).rem_euclid(7) as usize], "Fri");
        for days in [-100_000, -1, 0, 59, 11_017, 19_675, 100_000] {
            assert_eq!(days_from_civil(utc(days * DAY).unwrap()), days);
        }
    }
}
