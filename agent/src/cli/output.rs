//! What every command shares for its output: human text on a terminal, `--json` for
//! scripts, a progress line while it works, and times in one format.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::progress::Progress;

pub(super) struct Output {
    pub json: bool,
    pub progress: bool,
}

impl Output {
    /// Shows a progress line on the terminal until the returned guard is dropped.
    pub fn progress_bar(&self, progress: &Arc<Progress>, verb: &'static str) -> Option<ProgressGuard> {
        if !self.progress {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        let (p, b) = (progress.clone(), bar.clone());
        let started = std::time::Instant::now();
        let task = tokio::spawn(async move {
            loop {
                let bytes = p.bytes.load(Ordering::Relaxed);
                let files = p.files.load(Ordering::Relaxed);
                let rate = bytes as f64 / started.elapsed().as_secs_f64().max(0.001);
                b.set_message(format!("{verb} {files} files, {} ({}/s)", human_bytes(bytes), human_bytes(rate as u64)));
                b.tick();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Some(ProgressGuard { bar, task })
    }
}

pub(super) struct ProgressGuard {
    bar: indicatif::ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
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
