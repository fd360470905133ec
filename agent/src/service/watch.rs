//! Watched sources: a file watcher with a quiet period, so a new CBCT study (hundreds of
//! files written over minutes) is backed up minutes after its last file lands, not once per
//! file. [`Debouncer`] holds the timing (pure); [`SourceWatcher`] feeds it from the OS.
//!
//! File names never leave this module: events are reduced to "something changed at t".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::notify::event::{AccessKind, AccessMode, EventKind, MetadataKind, ModifyKind};
use ::notify::{ErrorKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::engine::backup::exclude::{ExcludeRules, Excluder};

/// When a burst of changes counts as settled.
///
/// Contract: after the first change it fires once, at the earlier of `quiet_period` after
/// the latest change and `max_wait` after the first, then starts over. Changes that arrive
/// while the runner is busy with the backup arm it again, so what landed during a backup
/// is picked up by the next one.
#[derive(Clone, Debug)]
pub struct Debouncer {
    quiet_period: Duration,
    max_wait: Duration,
    /// First and latest change since the last firing.
    pending: Option<(Instant, Instant)>,
}

impl Debouncer {
    pub fn new(quiet_period: Duration, max_wait: Duration) -> Self {
        Debouncer { quiet_period, max_wait, pending: None }
    }

    /// A change happened at `at`.
    pub fn record(&mut self, at: Instant) {
        self.pending = Some(match self.pending {
            None => (at, at),
            Some((first, last)) => (first.min(at), last.max(at)),
        });
    }

    /// When to fire, if any change is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(first, last)| (last + self.quiet_period).min(first + self.max_wait))
    }

    /// `true` (once) if a change is pending and its deadline has come by `now`.
    pub fn fire_if_due(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(deadline) if now >= deadline => {
                self.pending = None;
                true
            }
            _ => false,
        }
    }

    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// `watch` options of one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSettings {
    /// How long the folder must stay unchanged before a backup starts (default 2 min, as
    /// the config's `quiet_period`).
    pub quiet_period: Duration,
    /// The longest a change waits for quiet, so a folder that is never quiet still gets
    /// backed up.
    pub max_wait: Duration,
    /// Folders whose changes do not count: the agent's state directory, a local repository
    /// inside a watched tree. Without them a backup would trigger the next one. Compared by
    /// prefix with the paths the OS reports, which start with the watched paths as given:
    /// write both the same way (both absolute, same spelling).
    pub ignore: Vec<PathBuf>,
    /// The source's excludes: a change in what the backup leaves out does not count.
    pub excludes: ExcludeRules,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            quiet_period: Duration::from_secs(120),
            max_wait: Duration::from_secs(30 * 60),
            ignore: Vec::new(),
            excludes: ExcludeRules::default(),
        }
    }
}

/// What [`SourceWatcher::next`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchSignal {
    /// Something changed and has been quiet for the quiet period (or waited `max_wait`):
    /// back the source up.
    Settled,
    /// Changes may be missed from now on (reported once per watcher); the schedule must
    /// carry the source. The watcher keeps reporting what it still sees.
    Degraded(WatchError),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error(
        "watching source {source_name} needs more inotify watches than this system allows (one per folder); \
         it is backed up on its schedule only. Raise the limit, e.g. `sysctl fs.inotify.max_user_watches=1048576` \
         (and in /etc/sysctl.d/ to keep it), then restart the agent"
    )]
    TooManyWatches { source_name: String },
    #[error("cannot watch source {source_name}: a folder of it is missing or unreadable ({reason}); it is backed up on its schedule only")]
    Unavailable { source_name: String, reason: String },
    #[error("watching source {source_name} failed ({reason}); it is backed up on its schedule only")]
    Failed { source_name: String, reason: String },
}

/// What the OS watcher's thread hands over: no paths, only times and error kinds.
#[derive(Debug)]
enum Report {
    Changed(Instant),
    TooManyWatches(Instant),
    Error(Instant, String),
}

/// Watches the paths of one source, recursively, and says when a burst of changes settled.
/// Dropping it stops the watching.
pub struct SourceWatcher {
    source_name: String,
    debouncer: Debouncer,
    reports: mpsc::UnboundedReceiver<Report>,
    degraded_reported: bool,
    degraded: Option<WatchError>,
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for SourceWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceWatcher").field("source_name", &self.source_name).finish_non_exhaustive()
    }
}

impl SourceWatcher {
    /// Starts watching. On Linux this walks every folder under `paths` to add its inotify
    /// watch, which can take a while for a large archive: call it from `spawn_blocking`.
    /// An error means the source is not watched at all; log it (it names no file) and rely
    /// on the schedule.
    pub fn new(source_name: &str, paths: &[PathBuf], settings: WatchSettings) -> Result<Self, WatchError> {
        let (tx, reports) = mpsc::unbounded_channel();
        let ignore = settings.ignore.clone();
        // Checked when the config was loaded; a rule that fails here only wakes more often.
        let left_out = Excluder::new(&settings.excludes, paths).unwrap_or_default();
        let handler = move |result: ::notify::Result<::notify::Event>| {
            let now = Instant::now();
            let report = match result {
                Ok(event) if counts(&event, &ignore) && !all_left_out(&event, &left_out) => Report::Changed(now),
                Ok(_) => return,
                Err(e) if matches!(e.kind, ErrorKind::MaxFilesWatch) => Report::TooManyWatches(now),
                Err(e) => Report::Error(now, describe(&e.kind)),
            };
            // The receiver is gone only when the SourceWatcher is being dropped.
            let _ = tx.send(report);
        };
        let failed = |kind: &ErrorKind| match kind {
            ErrorKind::MaxFilesWatch => WatchError::TooManyWatches { source_name: source_name.to_string() },
            ErrorKind::PathNotFound | ErrorKind::Io(_) => {
                WatchError::Unavailable { source_name: source_name.to_string(), reason: describe(kind) }
            }
            _ => WatchError::Failed { source_name: source_name.to_string(), reason: describe(kind) },
        };
        let mut watcher = RecommendedWatcher::new(handler, ::notify::Config::default()).map_err(|e| failed(&e.kind))?;
        for path in paths {
            watcher.watch(path, RecursiveMode::Recursive).map_err(|e| failed(&e.kind))?;
        }
        Ok(SourceWatcher {
            source_name: source_name.to_string(),
            debouncer: Debouncer::new(settings.quiet_period, settings.max_wait),
            reports,
            degraded_reported: false,
            degraded: None,
            _watcher: watcher,
        })
    }

    /// Waits for the next signal. Cancel-safe: dropping the future (e.g. in `select!`) loses
    /// nothing, pending changes stay pending.
    pub async fn next(&mut self) -> WatchSignal {
        loop {
            if let Some(degraded) = self.degraded.take() {
                return WatchSignal::Degraded(degraded);
            }
            if self.debouncer.fire_if_due(Instant::now()) {
                return WatchSignal::Settled;
            }
            let deadline = self.debouncer.deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                report = self.reports.recv() => match report {
                    Some(report) => self.absorb(report),
                    // Only if the OS watcher's thread ended: nothing more will come.
                    None => std::future::pending().await,
                },
                () = sleep => {}
            }
        }
    }

    fn absorb(&mut self, report: Report) {
        match report {
            Report::Changed(at) => self.debouncer.record(at),
            // A folder could not be added (so it did change), and from now on some changes
            // are missed.
            Report::TooManyWatches(at) => {
                self.debouncer.record(at);
                self.degrade(WatchError::TooManyWatches { source_name: self.source_name.clone() });
            }
            // E.g. the event queue overflowed: changes were lost, so back up to be safe.
            Report::Error(at, reason) => {
                self.debouncer.record(at);
                self.degrade(WatchError::Failed { source_name: self.source_name.clone(), reason });
            }
        }
    }

    fn degrade(&mut self, error: WatchError) {
        if !self.degraded_reported {
            self.degraded_reported = true;
            tracing::warn!("{error}");
            self.degraded = Some(error);
        }
    }
}

/// Whether an OS event is a change worth a backup. Reads are not: the backup itself opens
/// every file, and on Linux notify reports opens.
fn counts(event: &::notify::Event, ignore: &[PathBuf]) -> bool {
    let relevant = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    };
    // An event without paths (e.g. the queue overflowed and a rescan is needed) counts.
    relevant && (event.paths.is_empty() || event.paths.iter().any(|p| !is_ignored(p, ignore)))
}

/// Whether every path of the event is in what the backup leaves out (then it changes
/// nothing the next backup would store).
fn all_left_out(event: &::notify::Event, left_out: &Excluder) -> bool {
    !event.paths.is_empty() && event.paths.iter().all(|p| left_out.leaves_out_change(p))
}

fn is_ignored(path: &Path, ignore: &[PathBuf]) -> bool {
    let own_temp = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".arka-"));
    own_temp || ignore.iter().any(|dir| path.starts_with(dir))
}

/// An error kind in words, without the paths `notify::Error`'s `Display` would append.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::Generic(text) => text.clone(),
        ErrorKind::Io(e) => e.to_string(),
        ErrorKind::PathNotFound => "no such folder".into(),
        ErrorKind::WatchNotFound => "watch not found".into(),
        ErrorKind::InvalidConfig(_) => "invalid watcher configuration".into(),
        ErrorKind::MaxFilesWatch => "too many watches".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + MS * ms as u32
    }

    #[test]
    fn idle_debouncer_never_fires() {
        let mut d = Debouncer::new(MS * 300, MS * 10_000);
        assert_eq!(d.deadline(), None);
        assert!(!d.fire_if_due(Instant::now() + Duration::from_secs(3600)));
    }

    #[test]
    fn burst_fires_once_quiet_period_after_the_last_change() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(MS * 300, MS * 10_000);
        for ms in [0, 100, 200, 450, 700] {
            d.record(at(t0, ms));
            assert!(!d.fire_if_due(at(t0, ms)));
        }
        assert_eq!(d.deadline(), Some(at(t0, 1000)));
        assert!(!d.fire_if_due(at(t0, 999)));
        assert!(d.fire_if_due(at(t0, 1000)));
        assert!(!d.fire_if_due(at(t0, 1001)), "fires once per burst");
        assert!(!d.is_pending());
    }

    #[test]
    fn never_quiet_folder_fires_at_max_wait() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(MS * 300, MS * 1000);
        let mut fired = Vec::new();
        for ms in (0..2500).step_by(100) {
            d.record(at(t0, ms));
            if d.fire_if_due(at(t0, ms)) {
                fired.push(ms);
            }
        }
        // The change at 1000 ms comes before the backup that starts then, so it is covered;
        // the next window opens with the change at 1100 ms.
        assert_eq!(fired, vec![1000, 2100]);
    }

    #[test]
    fn change_during_the_backup_arms_the_next_one() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(MS * 300, MS * 10_000);
        d.record(at(t0, 0));
        assert!(d.fire_if_due(at(t0, 300)));
        d.record(at(t0, 400)); // a file lands while the backup runs
        assert_eq!(d.deadline(), Some(at(t0, 700)));
        assert!(d.fire_if_due(at(t0, 700)));
    }

    #[test]
    fn out_of_order_reports_keep_the_latest_change() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(MS * 300, MS * 10_000);
        d.record(at(t0, 500));
        d.record(at(t0, 100));
        assert_eq!(d.deadline(), Some(at(t0, 800)));
    }

    #[test]
    fn reads_and_ignored_folders_do_not_count() {
        use ::notify::event::{CreateKind, DataChange};
        let ev = |kind, path: &str| ::notify::Event::new(kind).add_path(PathBuf::from(path));
        let ignore = vec![PathBuf::from("/srv/imaging/arka-repo")];
        assert!(!counts(&ev(EventKind::Access(AccessKind::Open(AccessMode::Any)), "/srv/imaging/a.dcm"), &ignore));
        assert!(!counts(&ev(EventKind::Access(AccessKind::Close(AccessMode::Read)), "/srv/imaging/a.dcm"), &ignore));
        assert!(counts(&ev(EventKind::Access(AccessKind::Close(AccessMode::Write)), "/srv/imaging/a.dcm"), &ignore));
        assert!(counts(&ev(EventKind::Create(CreateKind::File), "/srv/imaging/a.dcm"), &ignore));
        assert!(counts(&ev(EventKind::Modify(ModifyKind::Data(DataChange::Any)), "/srv/imaging/a.dcm"), &ignore));
        assert!(!counts(&ev(EventKind::Create(CreateKind::File), "/srv/imaging/arka-repo/data/x"), &ignore));
        assert!(!counts(&ev(EventKind::Create(CreateKind::File), "/srv/imaging/.arka-restore-0011"), &ignore));
        assert!(counts(&::notify::Event::new(EventKind::Other), &ignore), "a rescan counts");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_in_what_the_backup_leaves_out_do_not_wake_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cache")).unwrap();
        let excludes = ExcludeRules {
            patterns: vec!["*.tmp".into(), "cache/".into()],
            if_present: vec![],
            larger_than: Some(64 << 10),
        };
        let settings = WatchSettings { quiet_period: Duration::from_millis(200), excludes, ..WatchSettings::default() };
        let mut watcher = SourceWatcher::new("imaging", &[dir.path().to_path_buf()], settings).unwrap();
        std::fs::write(dir.path().join("viewer.tmp"), b"scratch").unwrap();
        std::fs::write(dir.path().join("cache").join("thumb.jpg"), b"thumbnail").unwrap();
        // Written elsewhere and moved in whole: its creation event must not see it empty.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("export.iso"), vec![0u8; 128 << 10]).unwrap();
        std::fs::rename(outside.path().join("export.iso"), dir.path().join("export.iso")).unwrap();
        let woken = tokio::time::timeout(Duration::from_millis(1200), watcher.next()).await;
        assert!(woken.is_err(), "woken by a change the backup leaves out: {woken:?}");
        std::fs::write(dir.path().join("a.dcm"), b"a new study").unwrap();
        let signal = tokio::time::timeout(Duration::from_secs(20), watcher.next()).await.expect("a signal");
        assert_eq!(signal, WatchSignal::Settled);
    }

    fn write_burst(dir: &Path, prefix: &str, files: usize, gap: Duration) {
        for i in 0..files {
            if i > 0 {
                std::thread::sleep(gap);
            }
            std::fs::write(dir.join(format!("{prefix}-{i:03}.dcm")), vec![i as u8; 4096]).unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bursts_of_files_settle_into_one_signal() {
        let dir = tempfile::tempdir().unwrap();
        let study = dir.path().join("study");
        std::fs::create_dir(&study).unwrap();
        let settings = WatchSettings {
            quiet_period: Duration::from_millis(300),
            max_wait: Duration::from_secs(60),
            ..WatchSettings::default()
        };
        let mut watcher = SourceWatcher::new("imaging", &[dir.path().to_path_buf()], settings).unwrap();

        // Three bursts with pauses shorter than the quiet period: one study, one signal.
        let root = study.clone();
        let started = Instant::now();
        let writer = tokio::task::spawn_blocking(move || {
            for burst in 0..3 {
                if burst > 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                write_burst(&root, &format!("b{burst}"), 40, Duration::from_millis(2));
            }
            Instant::now()
        });
        let signal = tokio::time::timeout(Duration::from_secs(20), watcher.next()).await.expect("a signal");
        let last_write = writer.await.unwrap();
        assert_eq!(signal, WatchSignal::Settled);
        // The OS reports the last close a moment before the writer's clock reads it.
        let fired = Instant::now();
        assert!(
            fired + Duration::from_millis(20) >= last_write + Duration::from_millis(300),
            "fired {:?} after the start, the last write ended at {:?}",
            fired - started,
            last_write - started
        );

        // Nothing more without changes; reading every file (as a backup does) is no change.
        for entry in std::fs::read_dir(&study).unwrap() {
            std::fs::read(entry.unwrap().path()).unwrap();
        }
        let more = tokio::time::timeout(Duration::from_millis(1200), watcher.next()).await;
        assert!(more.is_err(), "unexpected {more:?}");

        // A later study is a new signal.
        write_burst(&study, "late", 5, Duration::from_millis(1));
        let signal = tokio::time::timeout(Duration::from_secs(20), watcher.next()).await.expect("a second signal");
        assert_eq!(signal, WatchSignal::Settled);
    }

    #[test]
    fn missing_folder_is_an_error_that_names_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-mounted");
        let err = SourceWatcher::new("imaging", &[missing], WatchSettings::default()).unwrap_err();
        assert!(matches!(err, WatchError::Unavailable { .. }), "{err:?}");
        assert!(!err.to_string().contains("not-mounted"), "{err}");
    }
}
