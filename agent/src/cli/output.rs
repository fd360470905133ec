//! What every command shares for its output: human text on a terminal, `--json` for
//! scripts, a progress line while it works, and times in one format.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::backup::exclude::ExcludeRules;
use crate::engine::progress::Progress;

pub(super) struct Output {
    pub json: bool,
    pub progress: bool,
}

impl Output {
    /// Shows progress on the terminal until the returned guard is dropped: what is done
    /// and the rate, and once the totals are known, a bar with the percentage and an ETA.
    pub fn progress_bar(&self, progress: &Arc<Progress>, verb: &'static str) -> Option<ProgressGuard> {
        self.bar(progress, verb, false)
    }

    /// The progress line, with what has reached the repository when `uploads` (a backup
    /// reads ahead of its uploads, by a few packs, and more so under a bandwidth limit).
    fn bar(&self, progress: &Arc<Progress>, verb: &'static str, uploads: bool) -> Option<ProgressGuard> {
        if !self.progress {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        let (p, b) = (progress.clone(), bar.clone());
        let started = std::time::Instant::now();
        let task = tokio::spawn(async move {
            let mut with_bar = false;
            loop {
                let mut counts = Counts::of(&p);
                if !uploads {
                    counts.uploaded = 0;
                }
                if let Some((_, total)) = counts.totals {
                    if !with_bar {
                        let style = indicatif::ProgressStyle::with_template("{bar:30} {msg}").expect("valid template");
                        b.set_style(style);
                        b.set_length(total.max(1));
                        with_bar = true;
                    }
                    // Nothing to do (empty files only) is a full bar.
                    b.set_position(if total == 0 { 1 } else { counts.bytes.min(total) });
                }
                b.set_message(counts.line(verb, started.elapsed()));
                b.tick();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Some(ProgressGuard { bar, task, scan_stop: None })
    }

    /// [`Output::progress_bar`] for a backup; a files backup's totals are counted beside it
    /// (`engine::backup::scan`) on a thread of their own, only when progress is shown.
    pub fn backup_progress(
        &self,
        progress: &Arc<Progress>,
        files: Option<(Vec<PathBuf>, ExcludeRules)>,
    ) -> Option<ProgressGuard> {
        let mut guard = self.bar(progress, "backed up", true)?;
        if let Some((paths, rules)) = files {
            let stop = Arc::new(AtomicBool::new(false));
            let (p, s) = (progress.clone(), stop.clone());
            let spawned = std::thread::Builder::new()
                .name("arka-scan".into())
                .spawn(move || crate::engine::backup::scan::count(&paths, &rules, &p, &s));
            // Without a thread there are no totals; the backup itself goes on.
            if spawned.is_ok() {
                guard.scan_stop = Some(stop);
            }
        }
        Some(guard)
    }
}

pub(super) struct ProgressGuard {
    bar: indicatif::ProgressBar,
    task: tokio::task::JoinHandle<()>,
    /// Stops a backup's pre-scan that is still counting when the backup ends.
    scan_stop: Option<Arc<AtomicBool>>,
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        if let Some(stop) = &self.scan_stop {
            stop.store(true, Ordering::Relaxed);
        }
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// One reading of the counters.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    files: u64,
    bytes: u64,
    /// Final totals (files, bytes).
    totals: Option<(u64, u64)>,
    /// What a pre-scan has counted so far, while it runs.
    counting: (u64, u64),
    /// Bytes stored in the repository, shown when not zero.
    uploaded: u64,
}

impl Counts {
    fn of(p: &Progress) -> Self {
        Self {
            files: p.files.load(Ordering::Relaxed),
            bytes: p.bytes.load(Ordering::Relaxed),
            totals: p.totals(),
            counting: (p.total_files.load(Ordering::Relaxed), p.total_bytes.load(Ordering::Relaxed)),
            uploaded: p.uploaded.load(Ordering::Relaxed),
        }
    }

    /// The progress line after `elapsed`: done and rate; with totals, done of total,
    /// percentage and ETA; while a pre-scan counts, what it has found so far.
    fn line(&self, verb: &str, elapsed: Duration) -> String {
        let rate = self.bytes as f64 / elapsed.as_secs_f64().max(0.001);
        let speed = format!("{}/s", human_bytes(rate as u64));
        let stored = match self.uploaded {
            0 => String::new(),
            n => format!("; {} stored", human_bytes(n)),
        };
        let line = match self.totals {
            Some((files, bytes)) => format!(
                "{verb} {} of {} ({}), {} of {files} files, {speed}, ETA {}",
                human_bytes(self.bytes),
                human_bytes(bytes),
                percent(self.bytes, bytes),
                self.files,
                eta(self.bytes, bytes, rate).map_or_else(|| "unknown".into(), human_duration)
            ),
            None if self.counting.0 > 0 => format!(
                "{verb} {} files, {} ({speed}); counting: {} files, {} so far",
                self.files,
                human_bytes(self.bytes),
                self.counting.0,
                human_bytes(self.counting.1)
            ),
            None => format!("{verb} {} files, {} ({speed})", self.files, human_bytes(self.bytes)),
        };
        line + &stored
    }
}

/// `done` of `total` in whole percent, never past 100% (files that grew since the count).
fn percent(done: u64, total: u64) -> String {
    if total == 0 {
        return "100%".into();
    }
    format!("{}%", (done.min(total) as u128 * 100 / total as u128))
}

/// The time left at `rate` bytes a second; `None` before anything has moved.
fn eta(done: u64, total: u64, rate: f64) -> Option<Duration> {
    let left = total.saturating_sub(done);
    if left == 0 {
        return Some(Duration::ZERO);
    }
    (rate >= 1.0).then(|| Duration::from_secs_f64(left as f64 / rate).min(Duration::from_secs(100 * 3600 - 1)))
}

/// `45s`, `13m 20s`, `2h 05m`.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

pub(super) use arka_proto::status::human_bytes;

/// A snapshot time for machines: RFC 3339 in UTC with nanoseconds.
pub(super) fn rfc3339(time_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(time_ns as i128).map(|t| t.to_string()).unwrap_or_else(|_| time_ns.to_string())
}

/// A snapshot time for people: local time to the second.
pub(super) fn local_time(time_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(time_ns as i128)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| time_ns.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_whole_and_never_past_a_hundred() {
        assert_eq!(percent(0, 1000), "0%");
        assert_eq!(percent(333, 1000), "33%");
        assert_eq!(percent(999, 1000), "99%");
        assert_eq!(percent(1000, 1000), "100%");
        assert_eq!(percent(1500, 1000), "100%", "files grew after the count");
        assert_eq!(percent(0, 0), "100%", "nothing to do is done");
        assert_eq!(percent(u64::MAX / 2, u64::MAX), "49%", "no overflow");
    }

    #[test]
    fn the_eta_is_what_is_left_at_the_rate_so_far() {
        assert_eq!(eta(25, 100, 5.0), Some(Duration::from_secs(15)));
        assert_eq!(eta(100, 100, 5.0), Some(Duration::ZERO));
        assert_eq!(eta(120, 100, 5.0), Some(Duration::ZERO));
        assert_eq!(eta(0, 100, 0.0), None, "nothing moved yet");
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(800)), "13m 20s");
        assert_eq!(human_duration(Duration::from_secs(2 * 3600 + 5 * 60 + 9)), "2h 05m");
    }

    #[test]
    fn the_line_shows_totals_once_known_and_the_count_while_it_runs() {
        let ten_s = Duration::from_secs(10);
        let mib = 1 << 20;
        let plain = Counts { files: 3, bytes: 50 * mib, ..Counts::default() };
        assert_eq!(plain.line("backed up", ten_s), "backed up 3 files, 50.0 MiB (5.0 MiB/s)");

        let counting = Counts { counting: (40, 300 * mib), ..plain };
        assert_eq!(
            counting.line("backed up", ten_s),
            "backed up 3 files, 50.0 MiB (5.0 MiB/s); counting: 40 files, 300.0 MiB so far"
        );

        let known = Counts { totals: Some((40, 200 * mib)), ..counting };
        assert_eq!(
            known.line("restored", ten_s),
            "restored 50.0 MiB of 200.0 MiB (25%), 3 of 40 files, 5.0 MiB/s, ETA 30s"
        );
        let stalled = Counts { bytes: 0, ..known };
        assert!(stalled.line("restored", ten_s).ends_with("ETA unknown"));
        let uploading = Counts { uploaded: 16 * mib, ..known };
        assert!(uploading.line("backed up", ten_s).ends_with("ETA 30s; 16.0 MiB stored"));
    }
}
