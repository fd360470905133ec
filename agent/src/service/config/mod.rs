//! The agent's config file (`/etc/arka/agent.toml`): parsed into serde structs that keep
//! the byte spans of what they validate, then resolved into a checked [`Config`]. Every
//! error names the file, the line, the section and the key, and says how to fix it:
//! `agent.toml:14: source "imaging": unknown key "shedule"; did you mean "schedule"?`.
//!
//! Checked here: syntax, unknown and missing keys, schedules, durations and their limits
//! (no value that overflows, or that turns monitoring off in effect), `prune_grace` no
//! shorter than a running backup needs, retention rules, source and dump names (one plain
//! file name), the status bind address, repository URLs (their form only: an unreachable
//! target is reported by the runner at start, not refused here), that every key, token and
//! password file exists, is readable, and (on Unix) is readable by its owner only, and that
//! `agent_key` holds an agent key and not the owner's recovery identity; an arka-server
//! target's pin and CA file are checked too. What only a target can say (whether its token
//! may delete) is asked by [`crate::service::preflight`].
//! Relative file paths are taken from the config file's folder.

//!
//! One module per section: each holds the section's validated type, its serde form as
//! written and the validation between them. `lines` finds where an error is.

mod lines;
mod maintenance;
mod notify;
mod sources;
mod status;
mod targets;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// A secret read from a file (trailing newline removed); `Debug` prints `***`.
pub use crate::platform::Secret;
pub use maintenance::Maintenance;
pub use notify::Notify;
pub use sources::{Source, SourceKind};
pub use status::Status;
pub use targets::Target;

use lines::{from_toml_error, line_of, Sections};
use maintenance::RawMaintenance;
use notify::RawNotify;
use sources::RawSource;
use status::RawStatus;
use targets::RawTarget;

/// The config's validated form, which the runner uses.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Recorded in snapshots; the machine's name unless `hostname` is set.
    pub hostname: String,
    pub agent_key: PathBuf,
    /// Where the agent keeps its state (schedule state, caches).
    pub state_dir: PathBuf,
    /// At least one; the first is the primary that backups write to, the others are
    /// replicated to in order.
    pub targets: Vec<Target>,
    /// At least one, with unique names.
    pub sources: Vec<Source>,
    pub status: Status,
    pub maintenance: Maintenance,
    pub notify: Notify,
    /// The recipients the repository must name (`recipients`); `None` when not pinned.
    pub recipients: Option<Vec<String>>,
    /// `dump_debug_log = true`: a command source's full stderr is appended to
    /// `<state_dir>/dump-debug.log` (mode 600); everything else sees only its scrubbed last
    /// line. `None` (the default): the full text is not kept.
    pub dump_debug_log: Option<PathBuf>,
}

/// The dump debug log's file name in the state directory.
pub const DUMP_DEBUG_LOG: &str = "dump-debug.log";

/// `/etc/arka/agent.toml`, or `C:\ProgramData\arka\agent.toml` on Windows.
pub fn default_config_path() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\ProgramData\arka\agent.toml")
    } else {
        PathBuf::from("/etc/arka/agent.toml")
    }
}

/// `/var/lib/arka`, or `C:\ProgramData\arka\state` on Windows.
pub fn default_state_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\ProgramData\arka\state")
    } else {
        PathBuf::from("/var/lib/arka")
    }
}

pub const DEFAULT_BIND: &str = "127.0.0.1:8765";
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::from_secs(120);
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
pub const DEFAULT_PRUNE_GRACE: Duration = Duration::from_secs(86_400);
pub const DEFAULT_VERIFY_PERCENT: u8 = 5;
pub const DEFAULT_SMTP_PORT: u16 = 587;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Every problem found, in file order (a syntax or unknown-key error stops at the first).
    #[error("{}", problems.iter().map(|p| format!("{}:{p}", path.display())).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

/// One thing wrong in the config, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based.
    pub line: usize,
    /// The section: `source "imaging"`, `status`, `notify.email`; `None` at the top level.
    pub section: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.section {
            Some(s) => write!(f, "{}: {s}: {}", self.line, self.message),
            None => write!(f, "{}: {}", self.line, self.message),
        }
    }
}

/// Reads and validates the config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    parse(&text, path)
}

/// Validates config text as if read from `path` (relative file paths in it are taken
/// from `path`'s folder, and the files they name are checked).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid { path: path.into(), problems };
    let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(vec![from_toml_error(text, &e)]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut v = Validator { text, sections: Sections::of(text), base, problems: Vec::new() };
    let config = v.config(raw, path);
    match config {
        Some(c) if v.problems.is_empty() => Ok(c),
        _ => {
            v.problems.sort_by_key(|p| p.line);
            Err(invalid(v.problems))
        }
    }
}

// ---- The file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    agent_key: Spanned<String>,
    state_dir: Option<Spanned<String>>,
    hostname: Option<Spanned<String>>,
    dump_debug_log: Option<bool>,
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
    status: Option<RawStatus>,
    maintenance: Option<RawMaintenance>,
    notify: Option<RawNotify>,
    recipients: Option<Spanned<Vec<String>>>,
}

// ---- Validation ----

struct Validator<'a> {
    text: &'a str,
    sections: Sections,
    base: &'a Path,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn fail(&mut self, at: Range<usize>, message: String) {
        let section = self.sections.at(at.start);
        self.problems.push(Problem { line: line_of(self.text, at.start), section, message });
    }

    /// Runs `check` on a spanned value, recording its error at the value's line.
    fn check<T, U>(&mut self, v: &Spanned<T>, check: impl FnOnce(&T) -> Result<U, String>) -> Option<U> {
        check(v.get_ref()).map_err(|e| self.fail(v.span(), e)).ok()
    }

    fn config(&mut self, raw: RawConfig, path: &Path) -> Option<Config> {
        let agent_key = self.agent_key(&raw.agent_key);
        let state_dir = raw.state_dir.as_ref().map_or_else(default_state_dir, |s| self.resolve(s.get_ref()));
        let hostname = match &raw.hostname {
            Some(h) => self.check(h, |h| nonempty(h, "hostname").map(|_| h.trim().to_string())),
            None => Some(crate::platform::hostname()),
        };
        if raw.target.is_empty() {
            self.fail(0..0, "no [[target]]: add at least one, e.g. [[target]] url = \"/mnt/nas/arka\"".into());
        }
        let targets = self.targets(&raw.target);
        let sources = self.sources(&raw.source);
        let status = self.status(raw.status.as_ref());
        let maintenance = self.maintenance(raw.maintenance.as_ref());
        // A maintenance-only agent is how retention runs on the NAS for an append-only
        // arka-server repository (with a maintain token), so no source is needed there.
        let has_jobs =
            maintenance.as_ref().is_some_and(|m| m.forget.is_some() || m.prune.is_some() || m.verify.is_some());
        if raw.source.is_empty() && !has_jobs {
            self.fail(
                0..0,
                "no [[source]]: add at least one (kind = \"files\" or kind = \"command\"), or schedule \
                 [maintenance] jobs for a maintenance-only agent"
                    .into(),
            );
        }
        let notify = self.notify(raw.notify.as_ref());
        let recipients = raw.recipients.as_ref().map(|r| self.check(r, |r| pinned_recipients(r)));
        Some(Config {
            path: path.into(),
            hostname: hostname?,
            agent_key: agent_key?,
            state_dir: state_dir.clone(),
            targets: targets?,
            sources: sources?,
            status: status?,
            maintenance: maintenance?,
            notify: notify?,
            recipients: recipients.map(|r| r.ok_or(())).transpose().ok()?,
            dump_debug_log: raw.dump_debug_log.unwrap_or(false).then(|| state_dir.join(DUMP_DEBUG_LOG)),
        })
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.into()
        } else {
            self.base.join(p)
        }
    }

    /// A file that holds a secret: it must exist, be readable and (Unix) be private.
    fn secret_path(&mut self, v: &Spanned<String>, key: &str) -> Option<PathBuf> {
        let path = self.resolve(v.get_ref());
        self.check(v, |_| check_secret_file(&path, key))?;
        Some(path)
    }

    /// The agent key file: private, and holding an agent key, not a recovery identity.
    fn agent_key(&mut self, v: &Spanned<String>) -> Option<PathBuf> {
        let path = self.secret_path(v, "agent_key")?;
        self.check(v, |_| check_agent_key(&path))?;
        Some(path)
    }

    fn secret(&mut self, v: &Spanned<String>, key: &str) -> Option<Secret> {
        let path = self.secret_path(v, key)?;
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()));
        let secret = text.map(|t| t.trim_end_matches(['\r', '\n']).to_string());
        let secret = secret.and_then(|s| {
            if s.trim().is_empty() {
                Err(format!("{key}: {} is empty: put the secret in it", path.display()))
            } else {
                Ok(Secret::new(s))
            }
        });
        self.check(v, |_| secret)
    }
}

/// Checks that a key, token or password file exists, is readable, and (Unix) that only
/// its owner can read it.
fn check_secret_file(path: &Path, key: &str) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{key}: {shown} does not exist"),
        _ => format!("{key}: cannot read {shown}: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("{key}: {shown} is not a file"));
    }
    std::fs::File::open(path)
        .map_err(|e| format!("{key}: cannot read {shown}: {e} (the agent's account must own it)"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{key}: {shown} can be read by other users (mode {mode:03o}): run `chmod 600 {shown}`"
            ));
        }
    }
    Ok(())
}

/// Checks that `path` holds an agent key. A recovery identity there (plain, or the
/// passphrase-protected age file) is refused first, without printing it: it is the owner's
/// key to every backup, and must never be on the clinic server.
fn check_agent_key(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("agent_key: cannot read {shown}: {e}"))?;
    let bytes = zeroize::Zeroizing::new(bytes);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("agent_key: {shown} is not an arka agent key file (not text)"))?;
    let identity = arka_proto::crypto::is_age_file(&bytes)
        || text.lines().any(|l| l.trim().to_ascii_uppercase().starts_with("AGE-SECRET-KEY-"));
    if identity {
        return Err(format!(
            "agent_key: {shown} holds a recovery identity (not printed) — the clinic owner's recovery key, which \
             can read every backup and must never be on the clinic server: move it back offline (and delete this \
             copy), then point agent_key at the agent key file `arka init --agent-key-out` wrote (its line starts \
             {})",
            arka_proto::keys::AGENT_KEY_PREFIX
        ));
    }
    arka_proto::AgentKey::parse(text).map(|_| ()).map_err(|e| format!("agent_key: {shown}: {e}"))
}

fn nonempty(s: &str, what: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err(format!("{what} is empty"))
    } else {
        Ok(())
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_string(),
        _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// `recipients`: the age recipients (`age1…`) the repository must be sealed to, exactly.
fn pinned_recipients(given: &[String]) -> Result<Vec<String>, String> {
    arka_proto::Recipients::parse(given).map_err(|e| format!("recipients: {e}"))?;
    Ok(given.iter().map(|r| r.trim().to_string()).collect())
}
