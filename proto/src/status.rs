//! What a running agent reports about itself: per source, per target and for maintenance.
//!
//! The agent serves these types as `GET /status` JSON and will send them to arka-server, so
//! they are shared here. Compatibility: fields are only ever added, each new one with
//! `#[serde(default)]`, and unknown fields are ignored, so an older server reads a newer
//! agent's report and the other way round.
//!
//! Privacy contract: a report never carries a file name or a path (they are personal data
//! in a clinic). It carries source and target names from the configuration, snapshot IDs,
//! counts, sizes, times and error texts. Error texts are the one free-form field: whoever
//! fills them (the agent's runner) must scrub them of paths first; these types cannot tell.

use serde::{Deserialize, Serialize};

mod history;
pub use history::{CatchUp, DayRecord, SourceCopy, HISTORY_DAYS};

const NS_PER_SEC: i64 = 1_000_000_000;

/// The whole report of one agent at one moment (`now_ns`). Times are Unix nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub version: String,
    pub hostname: String,
    /// When this agent process started.
    pub started_ns: i64,
    /// When this report was taken; every "ago" is relative to it.
    pub now_ns: i64,
    #[serde(default)]
    pub sources: Vec<SourceStatus>,
    #[serde(default)]
    pub targets: Vec<TargetStatus>,
    #[serde(default)]
    pub maintenance: MaintenanceStatus,
}

/// One configured source (`[[source]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The source's name from the configuration (never a path).
    pub name: String,
    pub kind: SourceKind,
    /// The schedule as configured, e.g. `every 1h` or `daily 02:00`.
    pub schedule: String,
    /// The recovery point objective: a successful backup must never be older than this.
    pub rpo_secs: u64,
    pub state: SourceState,
    #[serde(default)]
    pub last_success_ns: Option<i64>,
    /// When the last run (successful or not) started.
    #[serde(default)]
    pub last_attempt_ns: Option<i64>,
    #[serde(default)]
    pub next_run_ns: Option<i64>,
    /// Short ID of the last snapshot written (as `arka snapshots` prints it).
    #[serde(default)]
    pub last_snapshot: Option<String>,
    /// Why the last run failed, already scrubbed of paths by the runner; `None` after a
    /// success.
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_duration_ms: Option<u64>,
    /// Size of the data the last successful backup covered.
    #[serde(default)]
    pub last_bytes: Option<u64>,
    /// Bytes the last successful backup added to the repository after deduplication.
    #[serde(default)]
    pub last_bytes_new: Option<u64>,
    /// Files in the last successful backup (1 for a `command` source).
    #[serde(default)]
    pub files: Option<u64>,
    /// Files the last successful backup could not read (left out of its snapshot).
    #[serde(default)]
    pub last_unreadable: u64,
    /// Files that changed while the last successful backup read them: stored as last read,
    /// which may be inconsistent.
    #[serde(default)]
    pub last_changed_while_read: u64,
    /// When the agent began to look after this source (kept across restarts): before a
    /// first success the RPO counts from here, so an agent that keeps crashing still turns
    /// late.
    #[serde(default)]
    pub monitored_since_ns: Option<i64>,
    /// Failed runs in a row since the last success (the retry backoff grows with it).
    #[serde(default)]
    pub failures_in_row: u32,
    /// The newest snapshot of this source on each target that has one: "protected up to
    /// T, on targets X, Y".
    #[serde(default)]
    pub copies: Vec<SourceCopy>,
    /// The last [`HISTORY_DAYS`] days, oldest first: runs and data added per day.
    #[serde(default)]
    pub days: Vec<DayRecord>,
}

/// `files` (paths on disk) or `command` (a dump streamed from a program).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Files,
    Command,
}

/// Where a source stands. `Late` is derived from the clock by [`AgentStatus::reassess`];
/// the runner sets the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// The last run succeeded and it is within its RPO.
    Ok,
    /// A run is in progress.
    Running,
    /// The last run succeeded but longer ago than the RPO allows.
    Late,
    /// The last run failed.
    Failed,
    /// No run has succeeded yet.
    Never,
}

/// One configured target (`[[target]]`): the primary receives backups, replicas copies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub name: String,
    /// The target's URL without credentials or query (see [`display_url`]).
    pub url_display: String,
    pub role: TargetRole,
    pub reachable: bool,
    /// When the last copy to this target completed (for the primary: the last backup).
    #[serde(default)]
    pub last_sync_ns: Option<i64>,
    /// Snapshots the primary has that this target does not yet.
    #[serde(default)]
    pub backlog_snapshots: u64,
    #[serde(default)]
    pub backlog_bytes: u64,
    /// Scrubbed by the runner, like [`SourceStatus::last_error`].
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub stored_bytes: Option<u64>,
    /// Only on the primary: targets that took backups while it could not be reached, and
    /// since when; each is copied back to the primary once it is reachable again.
    #[serde(default)]
    pub catch_up: Vec<CatchUp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetRole {
    Primary,
    Replica,
}

/// Retention and checks on their own schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MaintenanceStatus {
    pub last_forget_ns: Option<i64>,
    pub last_prune_ns: Option<i64>,
    pub last_verify_ns: Option<i64>,
    /// Damaged objects the last verify found (0 when it found none or has not run).
    pub verify_damage: u64,
    /// What the last backup that met damage did about it, in words: "healed by snapshot
    /// X", or how many blobs no source has any more.
    pub damage_note: Option<String>,
    pub next_forget_ns: Option<i64>,
    pub next_prune_ns: Option<i64>,
    pub next_verify_ns: Option<i64>,
    /// Why the last maintenance task failed, scrubbed by the runner.
    pub last_error: Option<String>,
    /// Snapshots the last forget or verify flagged (a time the storage contradicts, a
    /// rollback, a shrink): short ID and why, in words, never a path.
    pub flagged_snapshots: Vec<String>,
    /// Snapshots a backup made that the last verify found gone without a forget.
    pub vanished_snapshots: u64,
    /// Why forget and prune do not run at all (the primary's token may not delete), as long
    /// as that holds: kept apart from `last_error`, which the next job's outcome replaces.
    pub deletion_refused: Option<String>,
    /// The newest restore or dump of the audit trail (a restore drill, or a real restore),
    /// as the last verify found it.
    pub last_restore_ns: Option<i64>,
}

impl MaintenanceStatus {
    /// Whether the stored backups are known to be damaged or tampered with.
    pub fn damage_found(&self) -> bool {
        self.verify_damage > 0 || self.vanished_snapshots > 0
    }
}

impl AgentStatus {
    /// A report with no sources or targets yet, taken when the agent started.
    pub fn new(version: impl Into<String>, hostname: impl Into<String>, started_ns: i64) -> Self {
        Self { version: version.into(), hostname: hostname.into(), started_ns, now_ns: started_ns, ..Self::default() }
    }

    pub fn source_mut(&mut self, name: &str) -> Option<&mut SourceStatus> {
        self.sources.iter_mut().find(|s| s.name == name)
    }

    pub fn target_mut(&mut self, name: &str) -> Option<&mut TargetStatus> {
        self.targets.iter_mut().find(|t| t.name == name)
    }

    /// Moves the report to `now_ns`: an `Ok` source whose last success is older than its
    /// RPO becomes `Late`, and a `Late` one that is no longer past it becomes `Ok` again.
    pub fn reassess(&mut self, now_ns: i64) {
        self.now_ns = now_ns;
        let started_ns = self.started_ns;
        for s in &mut self.sources {
            let past = s.past_rpo(now_ns, started_ns);
            s.state = match s.state {
                SourceState::Ok if past => SourceState::Late,
                SourceState::Late if !past => SourceState::Ok,
                other => other,
            };
        }
    }

    /// Whether nothing needs a person's attention: every source within its RPO and its last
    /// run successful, and the last verify found no damage. The same as `problems()` being
    /// empty.
    pub fn healthy(&self) -> bool {
        self.problems().is_empty()
    }

    /// Everything that makes the agent unhealthy, one plain sentence each, for a person who
    /// is not an IT specialist (the status page, `/healthz`, notifications).
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.sources.iter().filter_map(|s| s.problem(self.now_ns, self.started_ns)).collect();
        let m = &self.maintenance;
        if m.verify_damage > 0 {
            let when = m.last_verify_ns.map(|t| format!(" {}", ago(self.now_ns, t))).unwrap_or_default();
            out.push(format!(
                "the check of the stored backups{when} found {} damaged: ask your IT contact to repair the repository",
                plural(m.verify_damage, "piece of data", "pieces of data")
            ));
        }
        if m.vanished_snapshots > 0 {
            out.push(format!(
                "{} made by this agent {} gone from the storage without being forgotten: someone deleted {} outside arka",
                plural(m.vanished_snapshots, "backup", "backups"),
                if m.vanished_snapshots == 1 { "is" } else { "are" },
                if m.vanished_snapshots == 1 { "it" } else { "them" },
            ));
        }
        out
    }

    /// Things worth a look that do not make the agent unhealthy: an unreachable replica,
    /// a failed maintenance task. Backups to the primary continue meanwhile.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.targets {
            if !t.reachable {
                let mut w = format!("{}: cannot be reached", t.name);
                if t.backlog_snapshots > 0 {
                    w.push_str(&format!(
                        "; {} ({}) waiting to be copied",
                        plural(t.backlog_snapshots, "backup", "backups"),
                        human_bytes(t.backlog_bytes)
                    ));
                }
                out.push(w);
            }
        }
        for s in &self.sources {
            out.extend(s.incomplete());
        }
        if let Some(e) = &self.maintenance.deletion_refused {
            out.push(format!("maintenance: {e}"));
        }
        if let Some(e) = &self.maintenance.last_error {
            out.push(format!("maintenance: {e}"));
        }
        for f in &self.maintenance.flagged_snapshots {
            out.push(format!("suspicious snapshot {f}"));
        }
        out
    }
}

impl SourceStatus {
    /// A source as configured, before any run (`Never`).
    pub fn new(name: impl Into<String>, kind: SourceKind, schedule: impl Into<String>, rpo_secs: u64) -> Self {
        Self {
            name: name.into(),
            kind,
            schedule: schedule.into(),
            rpo_secs,
            state: SourceState::Never,
            last_success_ns: None,
            last_attempt_ns: None,
            next_run_ns: None,
            last_snapshot: None,
            last_error: None,
            last_duration_ms: None,
            last_bytes: None,
            last_bytes_new: None,
            files: None,
            last_unreadable: 0,
            last_changed_while_read: 0,
            monitored_since_ns: None,
            failures_in_row: 0,
            copies: Vec::new(),
            days: Vec::new(),
        }
    }

    /// Records that a run started now.
    pub fn started(&mut self, now_ns: i64) {
        self.state = SourceState::Running;
        self.last_attempt_ns = Some(now_ns);
    }

    /// Records a successful run that ended at `now_ns` and wrote `outcome`.
    pub fn succeeded(&mut self, now_ns: i64, outcome: RunOutcome) {
        self.state = SourceState::Ok;
        self.failures_in_row = 0;
        self.last_success_ns = Some(now_ns);
        self.last_error = None;
        self.last_snapshot = Some(outcome.snapshot);
        self.last_duration_ms = Some(outcome.duration_ms);
        self.last_bytes = Some(outcome.bytes);
        self.last_bytes_new = Some(outcome.bytes_new);
        self.files = Some(outcome.files);
        self.last_unreadable = outcome.unreadable;
        self.last_changed_while_read = outcome.changed_while_read;
    }

    /// Records a run stopped by a shutdown: the source is as before it started.
    pub fn stopped(&mut self) {
        self.state = match (&self.last_error, self.last_success_ns) {
            (Some(_), _) => SourceState::Failed,
            (None, Some(_)) => SourceState::Ok,
            (None, None) => SourceState::Never,
        };
    }

    /// Records a failed run; `error` must already be scrubbed of paths.
    pub fn failed(&mut self, error: impl Into<String>, duration_ms: u64) {
        self.state = SourceState::Failed;
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        self.last_error = Some(error.into());
        self.last_duration_ms = Some(duration_ms);
    }

    /// Whether the newest successful backup is older than the RPO. A source that never
    /// succeeded counts from when the agent began to look after it (or, without that
    /// record, from the agent's start), so a fresh install is not late at once but a crash
    /// loop is, like any other failure.
    pub fn past_rpo(&self, now_ns: i64, agent_started_ns: i64) -> bool {
        let since = self.last_success_ns.or(self.monitored_since_ns).unwrap_or(agent_started_ns);
        let rpo_ns = i64::try_from(self.rpo_secs).unwrap_or(i64::MAX / NS_PER_SEC).saturating_mul(NS_PER_SEC);
        now_ns.saturating_sub(since) > rpo_ns
    }

    /// The plain-words problem with this source, if it has one.
    /// What the last successful backup left out or may hold inconsistent, and what to do.
    /// Counts only: the runner never learns which files.
    fn incomplete(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.last_unreadable > 0 {
            out.push(format!(
                "{}: the last backup left out {} it could not read (the agent's log says more)",
                self.name,
                plural(self.last_unreadable, "file", "files")
            ));
        }
        let n = self.last_changed_while_read;
        if n > 0 {
            let (they, were) = if n == 1 { ("it", "was") } else { ("they", "were") };
            out.push(format!(
                "{}: {} changed while {they} {were} read by the last backup; {they} {were} stored as last read, \
                 which may be inconsistent: the next backup reads {} again, best when {} not in use",
                self.name,
                plural(n, "file", "files"),
                if n == 1 { "it" } else { "them" },
                if n == 1 { "it is" } else { "they are" },
            ));
        }
        out
    }

    fn problem(&self, now_ns: i64, started_ns: i64) -> Option<String> {
        let past = self.past_rpo(now_ns, started_ns);
        let should = every(self.rpo_secs);
        let late = match self.last_success_ns {
            Some(t) if past => Some(format!("last successful backup {} (should be {should})", ago(now_ns, t))),
            None if past || self.state == SourceState::Failed => {
                Some(format!("has never been backed up successfully (should be {should})"))
            }
            _ => None,
        };
        let failed = (self.state == SourceState::Failed).then(|| {
            let when = self.last_attempt_ns.map(|t| format!(" {}", ago(now_ns, t))).unwrap_or_default();
            match &self.last_error {
                Some(e) => format!("the last attempt{when} failed: {e}"),
                None => format!("the last attempt{when} failed"),
            }
        });
        match (late, failed) {
            (None, None) => None,
            (Some(l), None) => Some(format!("{}: {l}", self.name)),
            (None, Some(f)) => Some(format!("{}: {f}", self.name)),
            (Some(l), Some(f)) => Some(format!("{}: {l}; {f}", self.name)),
        }
    }
}

/// What a successful run wrote, for [`SourceStatus::succeeded`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOutcome {
    pub snapshot: String,
    pub duration_ms: u64,
    pub bytes: u64,
    pub bytes_new: u64,
    pub files: u64,
    /// Files left out because they could not be read.
    pub unreadable: u64,
    /// Files stored as last read after changing during two reads.
    pub changed_while_read: u64,
}

impl TargetStatus {
    /// A target as configured; `url` is reduced with [`display_url`].
    pub fn new(name: impl Into<String>, url: &str, role: TargetRole) -> Self {
        Self {
            name: name.into(),
            url_display: display_url(url),
            role,
            reachable: true,
            last_sync_ns: None,
            backlog_snapshots: 0,
            backlog_bytes: 0,
            last_error: None,
            stored_bytes: None,
            catch_up: Vec::new(),
        }
    }
}

/// A target URL fit to show: scheme, host and path, without `user:password@`, query or
/// fragment (which is where S3 and server URLs may carry keys and tokens).
pub fn display_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// "5 hours ago", "just now", "in 12 minutes": `then_ns` relative to `now_ns`.
pub fn ago(now_ns: i64, then_ns: i64) -> String {
    // Rounded to the nearest second, so a run due in 2 h 59 min 59.9 s reads "in 3 hours".
    let secs = now_ns.saturating_sub(then_ns).saturating_add(NS_PER_SEC / 2).div_euclid(NS_PER_SEC);
    if secs.abs() < 60 {
        "just now".into()
    } else if secs > 0 {
        format!("{} ago", human_duration(secs.unsigned_abs()))
    } else {
        format!("in {}", human_duration(secs.unsigned_abs()))
    }
}

/// A duration as people say it: in its largest unit, rounded to the nearest ("5 hours",
/// "3 days", so a run due in 2 h 59 min is "in 3 hours"), except that one of a unit also
/// names the next one down ("1 hour 29 minutes", where "1 hour" would undersell it).
pub fn human_duration(secs: u64) -> String {
    const UNITS: [(u64, &str, &str); 4] =
        [(86_400, "day", "days"), (3_600, "hour", "hours"), (60, "minute", "minutes"), (1, "second", "seconds")];
    let i = UNITS.iter().position(|(size, ..)| secs >= *size).unwrap_or(UNITS.len() - 1);
    let (size, one, many) = UNITS[i];
    if secs / size == 1 && i + 1 < UNITS.len() {
        let (next, next_one, next_many) = UNITS[i + 1];
        let rest = (secs - size) / next;
        if rest > 0 {
            return format!("1 {one} {}", plural(rest, next_one, next_many));
        }
        return format!("1 {one}");
    }
    plural((secs + size / 2) / size, one, many)
}

/// "every hour", "every 15 minutes", "every 2 days", "every 1 hour 30 minutes".
pub fn every(secs: u64) -> String {
    let d = human_duration(secs);
    match d.strip_prefix("1 ").filter(|unit| !unit.contains(' ')) {
        Some(unit) => format!("every {unit}"),
        None => format!("every {d}"),
    }
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 12482 → "12,482".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units with one decimal: "0 B", "812 B", "1.5 KiB", "2.3 GiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600 * NS_PER_SEC;
    const NOW: i64 = 1_700_000_000 * NS_PER_SEC;

    fn ok_source(name: &str, last_success_ns: i64) -> SourceStatus {
        let mut s = SourceStatus::new(name, SourceKind::Command, "every 1h", 3_600);
        s.started(last_success_ns - 60 * NS_PER_SEC);
        s.succeeded(
            last_success_ns,
            RunOutcome {
                snapshot: "1a2b3c4d".into(),
                duration_ms: 60_000,
                bytes: 10,
                bytes_new: 1,
                files: 1,
                ..Default::default()
            },
        );
        s
    }

    fn status(sources: Vec<SourceStatus>) -> AgentStatus {
        let mut st = AgentStatus::new("0.1.0", "reception-pc", NOW - 24 * H);
        st.sources = sources;
        st.reassess(NOW);
        st
    }

    #[test]
    fn a_recent_success_is_healthy() {
        let st = status(vec![ok_source("clinic-db", NOW - H / 2)]);
        assert_eq!(st.sources[0].state, SourceState::Ok);
        assert!(st.healthy(), "{:?}", st.problems());
    }

    #[test]
    fn a_backup_that_left_files_out_or_stored_changing_ones_is_a_warning_until_a_whole_one() {
        let mut s = ok_source("imaging", NOW - H / 2);
        let incomplete =
            RunOutcome { snapshot: "5e1f0c2a".into(), unreadable: 2, changed_while_read: 1, ..Default::default() };
        s.succeeded(NOW - H / 2, incomplete);
        let st = status(vec![s.clone()]);
        assert!(st.healthy(), "{:?}", st.problems());
        assert_eq!(
            st.warnings(),
            [
                "imaging: the last backup left out 2 files it could not read (the agent's log says more)",
                "imaging: 1 file changed while it was read by the last backup; it was stored as last read, \
                 which may be inconsistent: the next backup reads it again, best when it is not in use",
            ]
        );
        s.succeeded(NOW, RunOutcome { snapshot: "77b2e0f4".into(), ..Default::default() });
        assert!(status(vec![s]).warnings().is_empty());
    }

    #[test]
    fn a_success_older_than_the_rpo_is_late_and_says_so_in_plain_words() {
        let st = status(vec![ok_source("clinic-db", NOW - 5 * H)]);
        assert_eq!(st.sources[0].state, SourceState::Late);
        assert!(!st.healthy());
        assert_eq!(st.problems(), ["clinic-db: last successful backup 5 hours ago (should be every hour)"]);
    }

    #[test]
    fn late_goes_back_to_ok_once_a_backup_succeeds() {
        let mut st = status(vec![ok_source("clinic-db", NOW - 5 * H)]);
        st.source_mut("clinic-db").unwrap().last_success_ns = Some(NOW);
        st.reassess(NOW + 1);
        assert_eq!(st.sources[0].state, SourceState::Ok);
        assert!(st.healthy());
    }

    #[test]
    fn a_failed_run_is_a_problem_even_within_the_rpo() {
        let mut s = ok_source("imaging", NOW - H / 2);
        s.started(NOW - 10 * 60 * NS_PER_SEC);
        s.failed("the repository is not reachable", 1_000);
        let st = status(vec![s]);
        assert_eq!(st.problems(), ["imaging: the last attempt 10 minutes ago failed: the repository is not reachable"]);
    }

    #[test]
    fn never_is_a_problem_only_once_past_the_rpo_since_the_agent_started() {
        let s = SourceStatus::new("imaging", SourceKind::Files, "every 1h", 3_600);
        let mut st = AgentStatus::new("0.1.0", "pc", NOW - H / 2);
        st.sources = vec![s];
        st.reassess(NOW);
        assert!(st.healthy(), "a fresh install gets one RPO for its first backup");
        st.reassess(NOW + H);
        assert_eq!(st.sources[0].state, SourceState::Never);
        assert_eq!(st.problems(), ["imaging: has never been backed up successfully (should be every hour)"]);
    }

    #[test]
    fn a_running_source_past_its_rpo_is_a_problem() {
        let mut s = ok_source("imaging", NOW - 3 * H);
        s.started(NOW - 60 * NS_PER_SEC);
        let st = status(vec![s]);
        assert_eq!(st.sources[0].state, SourceState::Running);
        assert!(!st.healthy());
    }

    #[test]
    fn verify_damage_is_a_problem_and_an_unreachable_replica_a_warning() {
        let mut st = status(vec![ok_source("clinic-db", NOW)]);
        let mut t = TargetStatus::new("offsite", "s3://bucket/arka", TargetRole::Replica);
        t.reachable = false;
        t.backlog_snapshots = 3;
        t.backlog_bytes = 3 * 1024 * 1024;
        st.targets.push(t);
        assert!(st.healthy());
        assert_eq!(st.warnings(), ["offsite: cannot be reached; 3 backups (3.0 MiB) waiting to be copied"]);
        st.maintenance.verify_damage = 2;
        st.maintenance.last_verify_ns = Some(NOW - 48 * H);
        assert!(!st.healthy());
        assert!(st.problems()[0].contains("2 days ago found 2 pieces of data damaged"), "{:?}", st.problems());
    }

    #[test]
    fn display_url_drops_credentials_and_queries() {
        assert_eq!(display_url("s3://AKIA:secret@bucket/prefix?region=x"), "s3://bucket/prefix");
        assert_eq!(display_url("https://user:pw@nas.local:8443/repo?token=abc#f"), "https://nas.local:8443/repo");
        assert_eq!(display_url("https://nas.local"), "https://nas.local");
        assert_eq!(display_url("/mnt/nas/arka"), "/mnt/nas/arka");
    }

    #[test]
    fn words_for_times_and_sizes() {
        assert_eq!(ago(NOW, NOW - 12 * 60 * NS_PER_SEC), "12 minutes ago");
        assert_eq!(ago(NOW, NOW + 48 * 60 * NS_PER_SEC), "in 48 minutes");
        assert_eq!(ago(NOW, NOW - 5 * NS_PER_SEC), "just now");
        assert_eq!(ago(NOW, NOW + 3 * H - NS_PER_SEC / 10), "in 3 hours", "rounded to the second, not down");
        assert_eq!(human_duration(3_600), "1 hour");
        assert_eq!(human_duration(5_340), "1 hour 29 minutes");
        assert_eq!(human_duration(3 * 3_600 - 60), "3 hours");
        assert_eq!(human_duration(5 * 3_600 + 10 * 60), "5 hours");
        assert_eq!(human_duration(90_000), "1 day 1 hour");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(0), "0 seconds");
        assert_eq!(every(5_400), "every 1 hour 30 minutes");
        assert_eq!(every(3_600), "every hour");
        assert_eq!(every(900), "every 15 minutes");
        assert_eq!(every(2 * 86_400), "every 2 days");
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn json_spells_enums_in_lower_case_and_tolerates_missing_and_unknown_fields() {
        let st = status(vec![ok_source("clinic-db", NOW)]);
        let json = serde_json::to_string(&st).unwrap();
        assert!(json.contains(r#""state":"ok""#) && json.contains(r#""kind":"command""#), "{json}");
        assert_eq!(serde_json::from_str::<AgentStatus>(&json).unwrap(), st);
        let minimal = r#"{"version":"0.1.0","hostname":"pc","started_ns":1,"now_ns":2,"from_the_future":true,
            "sources":[{"name":"a","kind":"files","schedule":"every 1h","rpo_secs":3600,"state":"never"}]}"#;
        let back: AgentStatus = serde_json::from_str(minimal).unwrap();
        assert_eq!(back.sources[0].state, SourceState::Never);
        assert_eq!(back.sources[0].last_success_ns, None);
        assert_eq!(back.maintenance, MaintenanceStatus::default());
    }
}
