//! The status page's pictures, inline SVG (no script, no request): per source a strip of
//! the last 30 days (one square per day: green ok, red failed, amber late or mixed, grey
//! nothing) and bars of what each day added to the backups. Each square and bar has a
//! tooltip with the day's figures, and the page says the same in words beside them.

use std::fmt::Write;

use arka_proto::status::{esc, human_bytes, DayRecord, HISTORY_DAYS};
use arka_proto::SourceStatus;
use jiff::civil::Date;

const CELL: usize = 11;
const GAP: usize = 2;
const PLOT_HEIGHT: usize = 36;

/// The last [`HISTORY_DAYS`] dates up to `today`, oldest first, with the record of each.
fn window(s: &SourceStatus, today: Date) -> Vec<(Date, Option<&DayRecord>)> {
    (0..HISTORY_DAYS as i64)
        .rev()
        .filter_map(|back| today.checked_sub(jiff::Span::new().days(back)).ok())
        .map(|d| (d, s.days.iter().find(|r| r.day == d.to_string())))
        .collect()
}

/// What a day was, as (CSS colour, word).
fn verdict(r: Option<&DayRecord>) -> (&'static str, &'static str) {
    match r {
        None => ("#d0d0d0", "no backup"),
        Some(r) if r.failed > 0 && r.ok == 0 => ("#b3261e", "failed"),
        Some(r) if r.late || r.failed > 0 => ("#e0a100", if r.late { "late" } else { "some runs failed" }),
        Some(r) if r.ok > 0 => ("#1b7f3b", "ok"),
        Some(_) => ("#d0d0d0", "no backup"),
    }
}

/// The 30-day strip and the growth bars, as two table rows.
pub(super) fn source_history(h: &mut String, s: &SourceStatus, today: Date) {
    let days = window(s, today);
    let width = days.len() * (CELL + GAP);
    let mut strip = format!(
        "<svg class=\"strip\" width=\"{width}\" height=\"{CELL}\" viewBox=\"0 0 {width} {CELL}\" role=\"img\" \
         aria-label=\"runs of the last {HISTORY_DAYS} days\">"
    );
    let (mut ok_days, mut bad_days) = (0u32, 0u32);
    for (i, (date, r)) in days.iter().enumerate() {
        let (colour, word) = verdict(*r);
        match word {
            "ok" => ok_days += 1,
            "no backup" => {}
            _ => bad_days += 1,
        }
        let runs = r.map(|r| format!(": {} ok, {} failed", r.ok, r.failed)).unwrap_or_default();
        let _ = write!(
            strip,
            "<rect x=\"{}\" width=\"{CELL}\" height=\"{CELL}\" rx=\"2\" fill=\"{colour}\"><title>{date} {word}{runs}</title></rect>",
            i * (CELL + GAP)
        );
    }
    strip.push_str("</svg>");
    let days_word = |n: u32| if n == 1 { "1 day".to_string() } else { format!("{n} days") };
    let words = format!("{} ok, {} with problems", days_word(ok_days), bad_days);
    super::page::row(h, "Last 30 days", &format!("{strip}<br><small>{}</small>", esc(&words)));

    let most = days.iter().filter_map(|(_, r)| r.map(|r| r.added_bytes)).max().unwrap_or(0);
    if most == 0 {
        return;
    }
    let mut plot = format!(
        "<svg class=\"plot\" width=\"{width}\" height=\"{PLOT_HEIGHT}\" viewBox=\"0 0 {width} {PLOT_HEIGHT}\" role=\"img\" \
         aria-label=\"data added per day\">"
    );
    let mut total = 0u64;
    for (i, (date, r)) in days.iter().enumerate() {
        let Some(r) = r.filter(|r| r.added_bytes > 0) else { continue };
        total += r.added_bytes;
        let height = ((r.added_bytes as f64 / most as f64) * PLOT_HEIGHT as f64).ceil().max(1.0) as usize;
        let size = r.size_bytes.map(|b| format!(", source {}", human_bytes(b))).unwrap_or_default();
        let _ = write!(
            plot,
            "<rect x=\"{}\" y=\"{}\" width=\"{CELL}\" height=\"{height}\" fill=\"#1f5fbf\"><title>{date}: {} added{size}</title></rect>",
            i * (CELL + GAP),
            PLOT_HEIGHT - height,
            human_bytes(r.added_bytes)
        );
    }
    plot.push_str("</svg>");
    let words = format!("{} in 30 days, at most {} a day", human_bytes(total), human_bytes(most));
    super::page::row(h, "Stored per day", &format!("{plot}<br><small>{}</small>", esc(&words)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use arka_proto::status::SourceKind;

    #[test]
    fn the_strip_has_a_square_per_day_coloured_by_what_happened() {
        let mut s = SourceStatus::new("db", SourceKind::Command, "every 1h", 3600);
        s.day_mut("2026-12-01").ok = 3;
        let bad = s.day_mut("2026-12-02");
        bad.failed = 2;
        let late = s.day_mut("2026-12-03");
        (late.ok, late.late, late.added_bytes) = (1, true, 5 << 20);
        let mut h = String::new();
        source_history(&mut h, &s, "2026-12-04".parse().unwrap());
        assert_eq!(h.matches("<rect").count(), HISTORY_DAYS + 1, "30 squares and one bar: {h}");
        assert!(h.contains("2026-12-01 ok: 3 ok, 0 failed"));
        assert!(h.contains("#b3261e\"><title>2026-12-02 failed"));
        assert!(h.contains("2026-12-03 late"));
        assert!(h.contains("2026-12-04 no backup"));
        assert!(h.contains("1 day ok, 2 with problems"), "{h}");
        assert!(h.contains("5.0 MiB in 30 days"), "{h}");
    }
}
