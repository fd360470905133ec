//! The agent's config file (`/etc/arka/agent.toml`): parsed into serde structs that keep
//! the byte spans of what they validate, then resolved into a checked [`Config`]. Every
//! error names the file, the line, the section and the key, and says how to fix it:
//! `agent.toml:14: source "imaging": unknown key "shedule"; did you mean "schedule"?`.
//!
//! Checked here: syntax, unknown and missing keys, schedules, durations, retention rules,
//! the status bind address, repository URLs (their form only: an unreachable target is
//! reported by the runner at start, not refused here), and that every key, token and
//! password file exists, is readable, and (on Unix) is readable by its owner only; an
//! arka-server target's pin and CA file are checked too.
//! Relative file paths are taken from the config file's folder.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::schedule::{parse_interval, Schedule};
use crate::engine::retention::{parse_duration as parse_retention, Keep, RetentionPolicy};
use crate::store::server::{check_ca_pem, parse_pin, Token};
use crate::store::{Location, ServerOptions};

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
}

#[derive(Clone, Debug)]
pub struct Target {
    /// `name`, or the URL when none is given.
    pub name: String,
    pub url: String,
    pub location: Location,
    /// An arka-server target's token file, pin and CA (empty for other targets).
    pub server: ServerOptions,
}

#[derive(Clone, Debug)]
pub struct Source {
    /// Unique, made of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    pub kind: SourceKind,
    pub schedule: Schedule,
    /// The recovery point objective: a source whose last success is older is late.
    pub rpo: Duration,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum SourceKind {
    Files {
        paths: Vec<PathBuf>,
        exclude: Vec<String>,
        /// `Some(quiet period)` when the paths are watched: a backup starts once no file
        /// has changed for the quiet period.
        watch: Option<Duration>,
    },
    Command {
        /// Run by the runner; its standard output is the backup.
        command: String,
        /// The dump's name in the snapshot (`dump_name`, default the source's name).
        dump_name: String,
        /// The command is killed after this long, and the run fails.
        timeout: Duration,
    },
}

#[derive(Clone, Debug)]
pub struct Status {
    pub bind: SocketAddr,
    /// Required unless `bind` is a loopback address.
    pub token: Option<Secret>,
}

#[derive(Clone, Debug)]
pub struct Maintenance {
    /// Each job runs only when it has a schedule.
    pub forget: Option<Schedule>,
    pub retention: RetentionPolicy,
    pub prune: Option<Schedule>,
    pub prune_grace: Duration,
    pub verify: Option<Schedule>,
    /// Percent of the packs each verify reads, rotating through the repository.
    pub verify_percent: u8,
}

#[derive(Clone, Debug, Default)]
pub struct Notify {
    pub webhook: Option<Webhook>,
    pub email: Option<Email>,
}

#[derive(Clone)]
pub struct Webhook {
    /// Often carries a token in its path (Slack, Teams): `Debug` shows only the origin.
    pub url: String,
    /// Signs the body when set.
    pub secret: Option<Secret>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = reqwest::Url::parse(&self.url).map(|u| u.origin().ascii_serialization());
        f.debug_struct("Webhook").field("url", &origin.unwrap_or_default()).field("secret", &self.secret).finish()
    }
}

#[derive(Clone, Debug)]
pub struct Email {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub starttls: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

/// A secret read from a file (trailing newline removed); `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<String>);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

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
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
    status: Option<RawStatus>,
    maintenance: Option<RawMaintenance>,
    notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: Spanned<String>,
    name: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    cert_sha256: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Files,
    Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    kind: RawKind,
    schedule: Spanned<String>,
    rpo: Option<Spanned<String>>,
    tags: Option<Spanned<Vec<String>>>,
    paths: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    watch: Option<Spanned<bool>>,
    quiet_period: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    dump_name: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    bind: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    forget: Option<Spanned<String>>,
    keep_last: Option<Spanned<toml::Value>>,
    keep_within: Option<Spanned<toml::Value>>,
    keep_hourly: Option<Spanned<toml::Value>>,
    keep_daily: Option<Spanned<toml::Value>>,
    keep_weekly: Option<Spanned<toml::Value>>,
    keep_monthly: Option<Spanned<toml::Value>>,
    keep_yearly: Option<Spanned<toml::Value>>,
    prune: Option<Spanned<String>>,
    prune_grace: Option<Spanned<String>>,
    verify: Option<Spanned<String>>,
    verify_percent: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook: Option<RawWebhook>,
    email: Option<RawEmail>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    secret_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    smtp_host: Spanned<String>,
    smtp_port: Option<u16>,
    starttls: Option<bool>,
    username: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    from: Spanned<String>,
    to: Spanned<Vec<String>>,
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
        let agent_key = self.secret_path(&raw.agent_key, "agent_key");
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
        Some(Config {
            path: path.into(),
            hostname: hostname?,
            agent_key: agent_key?,
            state_dir,
            targets: targets?,
            sources: sources?,
            status: status?,
            maintenance: maintenance?,
            notify: notify?,
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

    fn secret(&mut self, v: &Spanned<String>, key: &str) -> Option<Secret> {
        let path = self.secret_path(v, key)?;
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()));
        let secret = text.map(|t| t.trim_end_matches(['\r', '\n']).to_string());
        let secret = secret.and_then(|s| {
            if s.trim().is_empty() {
                Err(format!("{key}: {} is empty: put the secret in it", path.display()))
            } else {
                Ok(Secret(s.into()))
            }
        });
        self.check(v, |_| secret)
    }

    fn targets(&mut self, raw: &[Spanned<RawTarget>]) -> Option<Vec<Target>> {
        let mut out = Vec::new();
        let mut ok = true;
        for t in raw {
            let location = self.check(&t.get_ref().url, |u| Location::parse(u).map_err(|e| format!("url: {e}")));
            let name = match &t.get_ref().name {
                Some(n) => self.check(n, |n| nonempty(n, "name").map(|_| n.clone())),
                None => Some(t.get_ref().url.get_ref().clone()),
            };
            let server = self.server_options(t.get_ref(), location.as_ref());
            match (location, name, server) {
                (Some(location), Some(name), Some(server)) => {
                    if out.iter().any(|o: &Target| o.name == name) {
                        self.fail(t.span(), format!("a second target named {name:?}: give each target its own name"));
                        ok = false;
                    }
                    out.push(Target { name, url: t.get_ref().url.get_ref().clone(), location, server });
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `token_file`, `cert_sha256` and `ca_file`: only for an arka-server URL; the token
    /// file private and holding a token, the pin 64 hex digits, the CA file PEM.
    fn server_options(&mut self, t: &RawTarget, location: Option<&Location>) -> Option<ServerOptions> {
        let keys = [("token_file", &t.token_file), ("cert_sha256", &t.cert_sha256), ("ca_file", &t.ca_file)];
        if !matches!(location, Some(Location::Server { .. })) {
            let mut ok = true;
            for (key, value) in keys {
                if let (Some(v), Some(_)) = (value, location) {
                    self.fail(
                        v.span(),
                        format!("{key} applies only to an arka-server target (url = \"arka+https://…\")"),
                    );
                    ok = false;
                }
            }
            return ok.then(ServerOptions::default);
        }
        let token_file = match &t.token_file {
            Some(f) => {
                let path = self.secret_path(f, "token_file")?;
                let text = std::fs::read_to_string(&path);
                let check = text.map_err(|e| e.to_string()).and_then(|t| Token::new(&t).map(|_| ()));
                self.check(f, |_| check.map_err(|e| format!("token_file: {}: {e}", path.display())))?;
                Some(path)
            }
            None => None,
        };
        let cert_sha256 = match &t.cert_sha256 {
            Some(p) => {
                Some(self.check(p, |p| parse_pin(p).map(|_| p.clone()).map_err(|e| format!("cert_sha256: {e}")))?)
            }
            None => None,
        };
        let ca_file = match &t.ca_file {
            Some(f) => {
                let path = self.resolve(f.get_ref());
                let pem = std::fs::read(&path).map_err(|e| format!("ca_file: cannot read {}: {e}", path.display()));
                self.check(f, |_| {
                    pem.and_then(|p| check_ca_pem(&p).map_err(|e| format!("ca_file: {}: {e}", path.display())))
                })?;
                Some(path)
            }
            None => None,
        };
        Some(ServerOptions { token_file, cert_sha256, ca_file })
    }

    fn sources(&mut self, raw: &[Spanned<RawSource>]) -> Option<Vec<Source>> {
        let mut out: Vec<Source> = Vec::new();
        let mut ok = true;
        for s in raw {
            match self.source(s) {
                Some(src) => {
                    if out.iter().any(|o| o.name == src.name) {
                        let at = s.get_ref().name.span();
                        self.fail(at, format!("a second source named {:?}: source names must be unique", src.name));
                        ok = false;
                    }
                    out.push(src);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn source(&mut self, s: &Spanned<RawSource>) -> Option<Source> {
        let header = s.span();
        let r = s.get_ref();
        let name = self.check(&r.name, |n| source_name(n).map(|_| n.clone()));
        let schedule = self.check(&r.schedule, |s| s.parse::<Schedule>());
        let rpo = match (&r.rpo, &schedule) {
            (Some(rpo), Some(schedule)) => self.check(rpo, |t| {
                let rpo = parse_interval(t).map_err(|e| format!("rpo: {e}"))?;
                if rpo <= schedule.nominal_interval() {
                    return Err(format!(
                        "rpo {t:?} is not longer than the schedule's interval ({}): every backup would be late",
                        human(schedule.nominal_interval())
                    ));
                }
                Ok(rpo)
            }),
            (None, Some(schedule)) => Some(schedule.default_rpo()),
            _ => None,
        };
        let tags = match &r.tags {
            Some(t) => self.check(t, |t| t.iter().try_for_each(|x| nonempty(x, "a tag")).map(|_| t.clone())),
            None => Some(Vec::new()),
        };
        let kind = match r.kind {
            RawKind::Files => self.files(r, header),
            RawKind::Command => self.command(r, header),
        };
        Some(Source { name: name?, kind: kind?, schedule: schedule?, rpo: rpo?, tags: tags? })
    }

    /// Refuses keys of the other kind, naming the kind.
    fn not_for(&mut self, kind: &str, keys: &[(&str, Option<Range<usize>>)]) -> bool {
        let mut ok = true;
        for (key, span) in keys {
            if let Some(span) = span {
                self.fail(span.clone(), format!("key {key:?} does not apply to kind = {kind:?}"));
                ok = false;
            }
        }
        ok
    }

    fn files(&mut self, r: &RawSource, header: Range<usize>) -> Option<SourceKind> {
        let span = |o: &Option<Spanned<String>>| o.as_ref().map(Spanned::span);
        let others = [("command", span(&r.command)), ("dump_name", span(&r.dump_name)), ("timeout", span(&r.timeout))];
        let ok = self.not_for("files", &others);
        let paths = match &r.paths {
            None => {
                self.fail(header, "kind = \"files\" needs paths = [\"/srv/imaging\", …]".into());
                None
            }
            Some(p) => self.check(p, |p| {
                if p.is_empty() {
                    return Err("paths is empty: name the folders to back up".into());
                }
                p.iter().try_for_each(|x| nonempty(x, "a path")).map(|_| p.iter().map(PathBuf::from).collect())
            }),
        };
        let exclude = match &r.exclude {
            Some(e) => {
                self.check(e, |e| e.iter().try_for_each(|x| nonempty(x, "an exclude pattern")).map(|_| e.clone()))
            }
            None => Some(Vec::new()),
        };
        let watching = r.watch.as_ref().is_some_and(|w| *w.get_ref());
        let watch = match (&r.quiet_period, watching) {
            (Some(q), false) => {
                self.fail(q.span(), "quiet_period applies only with watch = true".into());
                None
            }
            (Some(q), true) => self.check(q, |q| parse_interval(q).map(Some).map_err(|e| format!("quiet_period: {e}"))),
            (None, true) => Some(Some(DEFAULT_QUIET_PERIOD)),
            (None, false) => Some(None),
        };
        let (paths, exclude, watch) = (paths?, exclude?, watch?);
        ok.then_some(SourceKind::Files { paths, exclude, watch })
    }

    fn command(&mut self, r: &RawSource, header: Range<usize>) -> Option<SourceKind> {
        let others = [
            ("paths", r.paths.as_ref().map(Spanned::span)),
            ("exclude", r.exclude.as_ref().map(Spanned::span)),
            ("watch", r.watch.as_ref().map(Spanned::span)),
            ("quiet_period", r.quiet_period.as_ref().map(Spanned::span)),
        ];
        let ok = self.not_for("command", &others);
        let command = match &r.command {
            None => {
                self.fail(
                    header,
                    "kind = \"command\" needs command = \"pg_dump --no-owner clinic\" (or similar)".into(),
                );
                None
            }
            Some(c) => self.check(c, |c| nonempty(c, "command").map(|_| c.trim().to_string())),
        };
        let dump_name = match &r.dump_name {
            Some(d) => {
                self.check(d, |d| source_name(d).map_err(|e| e.replace("source name", "dump_name")).map(|_| d.clone()))
            }
            None => Some(r.name.get_ref().clone()),
        };
        let timeout = match &r.timeout {
            Some(t) => self.check(t, |t| parse_interval(t).map_err(|e| format!("timeout: {e}"))),
            None => Some(DEFAULT_COMMAND_TIMEOUT),
        };
        let (command, dump_name, timeout) = (command?, dump_name?, timeout?);
        ok.then_some(SourceKind::Command { command, dump_name, timeout })
    }

    fn status(&mut self, raw: Option<&RawStatus>) -> Option<Status> {
        let bind = match raw.and_then(|r| r.bind.as_ref()) {
            Some(b) => self.check(b, |b| {
                b.trim().parse::<SocketAddr>().map_err(|_| {
                    format!("bind {b:?} is not an address and port: use e.g. \"127.0.0.1:8765\" or \"0.0.0.0:8765\"")
                })
            })?,
            None => DEFAULT_BIND.parse().expect("the default bind address parses"),
        };
        let token = match raw.and_then(|r| r.token_file.as_ref()) {
            Some(t) => Some(self.secret(t, "token_file")?),
            None => None,
        };
        if token.is_none() && !bind.ip().is_loopback() {
            let at = raw.and_then(|r| r.bind.as_ref()).map_or(0..0, Spanned::span);
            self.fail(
                at,
                format!(
                    "bind {bind} is reachable from other machines, so the status page needs a token: set \
                     token_file = \"/etc/arka/status.token\" (a file holding a long random secret, chmod 600), \
                     or bind to 127.0.0.1"
                ),
            );
            return None;
        }
        Some(Status { bind, token })
    }

    fn maintenance(&mut self, raw: Option<&RawMaintenance>) -> Option<Maintenance> {
        let Some(r) = raw else {
            return Some(Maintenance {
                forget: None,
                retention: RetentionPolicy::clinic_default(),
                prune: None,
                prune_grace: DEFAULT_PRUNE_GRACE,
                verify: None,
                verify_percent: DEFAULT_VERIFY_PERCENT,
            });
        };
        let mut schedule = |key: &str, s: &Option<Spanned<String>>| match s {
            Some(s) => self.check(s, |s| s.parse::<Schedule>().map_err(|e| format!("{key}: {e}"))).map(Some),
            None => Some(None),
        };
        let forget = schedule("forget", &r.forget);
        let prune = schedule("prune", &r.prune);
        let verify = schedule("verify", &r.verify);
        let retention = self.retention(r);
        let prune_grace = match &r.prune_grace {
            Some(g) => self.check(g, |g| parse_interval(g).map_err(|e| format!("prune_grace: {e}"))),
            None => Some(DEFAULT_PRUNE_GRACE),
        };
        let verify_percent = match &r.verify_percent {
            Some(p) => self.check(p, |&p| {
                u8::try_from(p).ok().filter(|p| (1..=100).contains(p)).ok_or_else(|| {
                    format!("verify_percent = {p}: use 1 to 100 (the share of the data each verify reads)")
                })
            }),
            None => Some(DEFAULT_VERIFY_PERCENT),
        };
        Some(Maintenance {
            forget: forget?,
            retention: retention?,
            prune: prune?,
            prune_grace: prune_grace?,
            verify: verify?,
            verify_percent: verify_percent?,
        })
    }

    /// The `keep_*` keys, if any is set, are the whole policy; none set means the clinic
    /// default.
    fn retention(&mut self, r: &RawMaintenance) -> Option<RetentionPolicy> {
        let mut policy = RetentionPolicy::default();
        let mut ok = true;
        if let Some(v) = &r.keep_last {
            ok &= self.check(v, |v| count(v, "keep_last")).map(|n| policy.last = Some(n)).is_some();
        }
        if let Some(v) = &r.keep_within {
            let within = self.check(v, |v| match v {
                toml::Value::String(s) => parse_retention(s).map_err(|e| format!("keep_within: {e}")),
                _ => Err("keep_within takes a time, e.g. \"48h\" or \"7d\"".into()),
            });
            ok &= within.map(|w| policy.within = Some(w)).is_some();
        }
        let rules = [
            ("keep_hourly", &r.keep_hourly, &mut policy.hourly),
            ("keep_daily", &r.keep_daily, &mut policy.daily),
            ("keep_weekly", &r.keep_weekly, &mut policy.weekly),
            ("keep_monthly", &r.keep_monthly, &mut policy.monthly),
            ("keep_yearly", &r.keep_yearly, &mut policy.yearly),
        ];
        for (key, value, slot) in rules {
            if let Some(v) = value {
                let keep = self.check(v, |v| match v {
                    toml::Value::String(s) => s.parse::<Keep>().map_err(|e| format!("{key}: {e}")),
                    _ => count(v, key).map(Keep::Count),
                });
                ok &= keep.map(|k| *slot = Some(k)).is_some();
            }
        }
        if policy.is_empty() && ok {
            policy = RetentionPolicy::clinic_default();
        }
        ok.then_some(policy)
    }

    fn notify(&mut self, raw: Option<&RawNotify>) -> Option<Notify> {
        let Some(r) = raw else { return Some(Notify::default()) };
        let webhook = match &r.webhook {
            Some(w) => {
                let url = self.check(&w.url, |u| http_url(u));
                let secret = match &w.secret_file {
                    Some(s) => self.secret(s, "secret_file").map(Some),
                    None => Some(None),
                };
                Some(Webhook { url: url?, secret: secret? })
            }
            None => None,
        };
        let email = match &r.email {
            Some(e) => Some(self.email(e)?),
            None => None,
        };
        Some(Notify { webhook, email })
    }

    fn email(&mut self, e: &RawEmail) -> Option<Email> {
        let smtp_host = self.check(&e.smtp_host, |h| nonempty(h, "smtp_host").map(|_| h.trim().to_string()));
        let from = self.check(&e.from, |f| mailbox(f, "from").map(|_| f.clone()));
        let to = self.check(&e.to, |to| {
            if to.is_empty() {
                return Err("to is empty: list who is told, e.g. to = [\"it@clinic.example\"]".into());
            }
            to.iter().try_for_each(|t| mailbox(t, "to")).map(|_| to.clone())
        });
        let username = e.username.as_ref().map(|u| u.get_ref().clone());
        let password = match (&e.username, &e.password_file) {
            (Some(_), Some(p)) => self.secret(p, "password_file").map(Some),
            (None, None) => Some(None),
            (Some(u), None) => {
                self.fail(u.span(), "username is set but password_file is not: set both or neither".into());
                None
            }
            (None, Some(p)) => {
                self.fail(p.span(), "password_file is set but username is not: set both or neither".into());
                None
            }
        };
        Some(Email {
            smtp_host: smtp_host?,
            smtp_port: e.smtp_port.unwrap_or(DEFAULT_SMTP_PORT),
            starttls: e.starttls.unwrap_or(true),
            username,
            password: password?,
            from: from?,
            to: to?,
        })
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

fn nonempty(s: &str, what: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err(format!("{what} is empty"))
    } else {
        Ok(())
    }
}

fn source_name(n: &str) -> Result<(), String> {
    let valid = !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "source name {n:?} may hold only letters A-Z a-z, digits and . _ - (at most 64), e.g. \"clinic-db\""
        ))
    }
}

fn count(v: &toml::Value, key: &str) -> Result<u32, String> {
    match v {
        toml::Value::Integer(n) => u32::try_from(*n).map_err(|_| format!("{key} = {n}: use a count from 0")),
        _ => Err(format!("{key} takes a count (e.g. 24) or a time (e.g. \"7d\")")),
    }
}

fn http_url(u: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(u).map_err(|e| format!("url {u:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(u.to_string()),
        _ => Err(format!("url {u:?}: use an http:// or https:// URL")),
    }
}

fn mailbox(addr: &str, key: &str) -> Result<(), String> {
    let addr = addr.trim();
    let bare = addr.rsplit_once('<').map_or(addr, |(_, a)| a.trim_end_matches('>'));
    match bare.split_once('@') {
        Some((user, host)) if !user.is_empty() && (host.contains('.') || host == "localhost") => Ok(()),
        _ => Err(format!("{key}: {addr:?} is not an e-mail address")),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

// ---- Where an error is ----

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The tables of the document with their spans, to say which section a byte offset is in.
struct Sections {
    /// `[header]` and `[[header]]` tables: a key belongs to the last one before it.
    headers: Vec<(usize, usize, String)>,
    /// Inline tables (`webhook = { … }`): a key belongs to the innermost one around it.
    inline: Vec<(Range<usize>, String)>,
    /// Every key's value span and name, for errors that point at a value.
    values: Vec<(Range<usize>, String)>,
}

impl Sections {
    fn of(text: &str) -> Self {
        let mut s = Sections { headers: Vec::new(), inline: Vec::new(), values: Vec::new() };
        if let Ok(doc) = DeTable::parse(text) {
            s.walk(text, doc.get_ref(), "", 0);
        }
        s
    }

    fn walk(&mut self, text: &str, table: &DeTable<'_>, prefix: &str, depth: usize) {
        for (key, value) in table.iter() {
            let key: &str = key.get_ref();
            let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
            self.values.push((value.span(), key.to_string()));
            match value.get_ref() {
                DeValue::Table(t) => self.table(text, t, value.span(), path, depth),
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let DeValue::Table(t) = item.get_ref() {
                            let label = match t.iter().find(|(k, _)| **k.get_ref() == *"name") {
                                Some((_, v)) => match v.get_ref() {
                                    DeValue::String(n) => format!("{path} {n:?}"),
                                    _ => format!("{path} #{}", i + 1),
                                },
                                None => format!("{path} #{}", i + 1),
                            };
                            self.table(text, t, item.span(), label, depth);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn table(&mut self, text: &str, t: &DeTable<'_>, span: Range<usize>, label: String, depth: usize) {
        if text.get(span.clone()).is_some_and(|s| s.starts_with('[')) {
            self.headers.push((span.start, depth, label.clone()));
        } else if text.get(span.clone()).is_some_and(|s| s.starts_with('{')) {
            self.inline.push((span, label.clone()));
        }
        self.walk(text, t, &label, depth + 1);
    }

    fn at(&self, offset: usize) -> Option<String> {
        if let Some((_, label)) =
            self.inline.iter().filter(|(r, _)| r.contains(&offset)).min_by_key(|(r, _)| r.end - r.start)
        {
            return Some(label.clone());
        }
        self.headers
            .iter()
            .filter(|(start, ..)| *start <= offset)
            .max_by_key(|(start, depth, _)| (*start, *depth))
            .map(|(.., label)| label.clone())
    }

    /// The key whose value holds `offset`, innermost first.
    fn key_at(&self, offset: usize) -> Option<&str> {
        self.values
            .iter()
            .filter(|(r, _)| r.contains(&offset))
            .min_by_key(|(r, _)| r.end - r.start)
            .map(|(_, k)| k.as_str())
    }
}

/// Turns a toml/serde error into a problem at a line, in words for a person.
fn from_toml_error(text: &str, e: &toml::de::Error) -> Problem {
    let span = e.span().unwrap_or(0..0);
    let sections = Sections::of(text);
    let msg = e.message().trim();
    let message = if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let mut m = format!("unknown key {key:?}");
        let near = |v: &&&str| edit_distance(key, v) <= 2 || (key.len() >= 3 && v.starts_with(key));
        if let Some(near) = valid.iter().filter(near).min_by_key(|v| edit_distance(key, v)) {
            m += &format!("; did you mean {near:?}?");
        }
        if !valid.is_empty() {
            m += &format!(" (keys here: {})", valid.join(", "));
        }
        m
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        format!("missing key {:?}", rest.trim_end_matches('`'))
    } else if msg.starts_with("unknown variant") || msg.starts_with("invalid type") || msg.starts_with("invalid value")
    {
        let m = msg.replace('`', "\"").replace("variant", "value");
        match sections.key_at(span.start) {
            Some(key) => format!("{key}: {m}"),
            None => m,
        }
    } else {
        format!("not valid TOML: {msg}")
    };
    Problem { line: line_of(text, span.start), section: sections.at(span.start), message }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = if ca == b[j] { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The minimal config of the agent-service issue, exactly as written there.
    const MINIMAL: &str = r#"agent_key = "/etc/arka/agent.key"
state_dir = "/var/lib/arka"
[[target]]
url = "/mnt/nas/arka"
[[target]]
url = "s3://clinic-offsite/arka"
[[source]]
name = "imaging"
kind = "files"
paths = ["/srv/imaging"]
schedule = "every 1h"
watch = true
[[source]]
name = "clinic-db"
kind = "command"
command = "pg_dump --no-owner clinic"
schedule = "every 1h"
[status]
bind = "127.0.0.1:8765"
"#;

    const EXAMPLE: &str = include_str!("../../../packaging/arka-agent.example.toml");

    /// A temporary folder standing in for /etc/arka, with a private agent key in it.
    struct Etc {
        dir: tempfile::TempDir,
    }

    impl Etc {
        fn new() -> Self {
            let etc = Self { dir: tempfile::tempdir().unwrap() };
            etc.private_file("agent.key", "AGE-SECRET-KEY-TEST\n");
            etc
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn private_file(&self, name: &str, content: &str) -> PathBuf {
            let path = self.path(name);
            std::fs::write(&path, content).unwrap();
            set_mode(&path, 0o600);
            path
        }

        /// Writes `text` as config.toml, with /etc/arka/ pointing here, and loads it.
        fn load(&self, text: &str) -> Result<Config, ConfigError> {
            let text = text.replace("/etc/arka/", &format!("{}/", self.dir.path().display()));
            let path = self.path("config.toml");
            std::fs::write(&path, text).unwrap();
            load(&path)
        }

        fn error(&self, text: &str) -> String {
            self.load(text).map(|_| ()).unwrap_err().to_string()
        }
    }

    fn set_mode(path: &Path, mode: u32) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let _ = (path, mode);
    }

    /// MINIMAL with its 1-based line `n` replaced by `with` (which may span lines or be empty).
    fn edit(n: usize, with: &str) -> String {
        let mut lines: Vec<&str> = MINIMAL.lines().collect();
        lines[n - 1] = with;
        lines.join("\n") + "\n"
    }

    #[test]
    fn a_maintenance_only_agent_needs_no_source_but_an_idle_one_is_refused() {
        let etc = Etc::new();
        let nas = "agent_key = \"/etc/arka/agent.key\"\n[[target]]\nurl = \"/srv/arka/clinic-a\"\n";
        let c = etc.load(&format!("{nas}[maintenance]\nforget = \"daily 03:00\"\nprune = \"sun 04:00\"\n")).unwrap();
        assert!(c.sources.is_empty() && c.maintenance.forget.is_some() && c.maintenance.prune.is_some());
        assert!(etc.error(nas).contains("no [[source]]"));
    }

    #[test]
    fn the_minimal_config_loads_with_defaults() {
        let etc = Etc::new();
        let c = etc.load(MINIMAL).unwrap();
        assert_eq!(c.agent_key, etc.path("agent.key"));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/arka"));
        assert_eq!(c.hostname, crate::platform::hostname());
        let targets: Vec<(&str, &Location)> = c.targets.iter().map(|t| (t.name.as_str(), &t.location)).collect();
        assert_eq!(
            targets,
            [
                ("/mnt/nas/arka", &Location::Local("/mnt/nas/arka".into())),
                ("s3://clinic-offsite/arka", &Location::S3 { bucket: "clinic-offsite".into(), prefix: "arka".into() }),
            ]
        );
        let [imaging, db] = &c.sources[..] else { panic!("two sources") };
        assert_eq!(imaging.name, "imaging");
        assert_eq!(imaging.schedule, Schedule::Every(Duration::from_secs(3600)));
        assert_eq!(imaging.rpo, Duration::from_secs(7200));
        assert!(imaging.tags.is_empty());
        match &imaging.kind {
            SourceKind::Files { paths, exclude, watch } => {
                assert_eq!(paths, &[PathBuf::from("/srv/imaging")]);
                assert!(exclude.is_empty());
                assert_eq!(*watch, Some(DEFAULT_QUIET_PERIOD));
            }
            other => panic!("{other:?}"),
        }
        match &db.kind {
            SourceKind::Command { command, dump_name, timeout } => {
                assert_eq!(command, "pg_dump --no-owner clinic");
                assert_eq!(dump_name, "clinic-db");
                assert_eq!(*timeout, DEFAULT_COMMAND_TIMEOUT);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.status.bind, "127.0.0.1:8765".parse().unwrap());
        assert!(c.status.token.is_none());
        let m = &c.maintenance;
        assert_eq!((&m.forget, &m.prune, &m.verify), (&None, &None, &None));
        assert_eq!(m.retention, RetentionPolicy::clinic_default());
        assert_eq!((m.prune_grace, m.verify_percent), (DEFAULT_PRUNE_GRACE, DEFAULT_VERIFY_PERCENT));
        assert!(c.notify.webhook.is_none() && c.notify.email.is_none());
    }

    #[test]
    fn sections_and_state_dir_have_defaults() {
        let etc = Etc::new();
        let text =
            MINIMAL.replace("state_dir = \"/var/lib/arka\"\n", "").replace("[status]\nbind = \"127.0.0.1:8765\"\n", "");
        let c = etc.load(&text).unwrap();
        assert_eq!(c.state_dir, default_state_dir());
        assert_eq!(c.status.bind.to_string(), DEFAULT_BIND);
    }

    #[test]
    fn the_packaged_example_loads() {
        let etc = Etc::new();
        for name in ["status.token", "webhook.secret", "smtp.password", "nas.token"] {
            etc.private_file(name, &format!("secret-of-{name}\n"));
        }
        let c = etc.load(EXAMPLE).unwrap();
        assert_eq!(c.hostname, "reception-server");
        assert_eq!(c.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["nas", "offsite"]);
        assert_eq!(
            c.targets[0].location,
            Location::Server { base: "https://nas.clinic.lan:8443".into(), repo: "reception".into() }
        );
        let server = &c.targets[0].server;
        assert_eq!(server.token_file.as_deref(), Some(etc.path("nas.token").as_path()));
        assert!(server.cert_sha256.as_deref().is_some_and(|p| parse_pin(p).is_ok()));
        assert_eq!(c.targets[1].server, ServerOptions::default());
        let [imaging, db] = &c.sources[..] else { panic!("two sources") };
        assert!(matches!(&imaging.kind, SourceKind::Files { watch: Some(q), exclude, .. }
            if *q == Duration::from_secs(120) && exclude.len() == 2));
        assert!(matches!(&db.kind, SourceKind::Command { dump_name, timeout, .. }
            if dump_name == "clinic.sql" && *timeout == Duration::from_secs(3600)));
        assert_eq!(db.tags, ["database"]);
        assert_eq!(c.status.token.as_ref().unwrap().expose(), "secret-of-status.token");
        let m = &c.maintenance;
        assert_eq!(m.forget.as_ref().unwrap().to_string(), "daily 03:30");
        assert_eq!(m.prune.as_ref().unwrap().to_string(), "sun 04:00");
        assert_eq!(m.verify_percent, 5);
        assert_eq!(m.retention.within, Some(48 * 3600));
        assert_eq!(m.retention.daily, Some(Keep::Within(180 * 86_400)), "6m is six 30-day months");
        let webhook = c.notify.webhook.as_ref().unwrap();
        assert_eq!(webhook.secret.as_ref().unwrap().expose(), "secret-of-webhook.secret");
        let email = c.notify.email.as_ref().unwrap();
        assert_eq!((email.smtp_port, email.starttls, email.to.len()), (587, true, 2));
        assert_eq!(email.password.as_ref().unwrap().expose(), "secret-of-smtp.password");
        // Secrets never reach logs through Debug, nor does a webhook URL's path.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("secret-of") && !debug.contains("clinic-42") && debug.contains("hooks.example.com"),
            "{debug}"
        );
    }

    /// Every kind of mistake, with the line it must be reported at.
    #[test]
    fn errors_name_the_line_the_section_and_the_key() {
        let etc = Etc::new();
        let maint = |body: &str| format!("{MINIMAL}[maintenance]\n{body}\n");
        let notify = |body: &str| format!("{MINIMAL}[notify]\n{body}\n");
        let cases: Vec<(String, usize, &str)> = vec![
            (edit(11, "shedule = \"every 1h\""), 11, "source \"imaging\": unknown key \"shedule\"; did you mean \"schedule\"?"),
            (edit(17, "schedule = \"evry 1h\""), 17, "source \"clinic-db\": schedule \"evry 1h\": unknown form; use one of"),
            (edit(17, "schedule = \"every 5s\""), 17, "at least 10s"),
            (edit(15, "kind = \"file\""), 15, "kind: unknown value \"file\", expected \"files\" or \"command\""),
            (edit(12, "watch = \"yes\""), 12, "source \"imaging\": watch: invalid type: string \"yes\", expected a boolean"),
            (edit(9, "kind = \"files"), 9, "not valid TOML"),
            (edit(1, ""), 1, "missing key \"agent_key\""),
            (edit(1, "agent_key = \"/etc/arka/missing.key\""), 1, "agent_key: ") ,
            (edit(14, "name = \"imaging\""), 14, "source \"imaging\": a second source named \"imaging\""),
            (edit(8, "name = \"imaging scans\""), 8, "may hold only letters"),
            (edit(10, ""), 7, "source \"imaging\": kind = \"files\" needs paths"),
            (edit(16, ""), 13, "source \"clinic-db\": kind = \"command\" needs command"),
            (edit(16, "command = \"pg_dump\"\npaths = [\"/srv\"]"), 17, "key \"paths\" does not apply to kind = \"command\""),
            (edit(12, "quiet_period = \"2m\""), 12, "quiet_period applies only with watch = true"),
            (edit(11, "schedule = \"every 1h\"\nrpo = \"30m\""), 12, "rpo \"30m\" is not longer than the schedule's interval (1h)"),
            (edit(11, "schedule = \"every 1h\"\nrpo = \"2 fortnights\""), 12, "rpo: \"2 fortnights\": unknown unit"),
            (edit(6, "url = \"ftp://nas/arka\""), 6, "target #2: url: unsupported repository URL"),
            (edit(6, "url = \"s3:///arka\""), 6, "names no bucket"),
            (edit(19, "bind = \"localhost\""), 19, "status: bind \"localhost\" is not an address and port"),
            (edit(19, "bind = \"0.0.0.0:8765\""), 19, "status: bind 0.0.0.0:8765 is reachable from other machines, so the status page needs a token"),
            (edit(19, "bind = 8765"), 19, "status: bind: invalid type: integer \"8765\", expected a string"),
            (edit(3, "").replace("url = \"/mnt/nas/arka\"\n[[target]]\nurl = \"s3://clinic-offsite/arka\"\n", ""), 1, "no [[target]]"),
            (maint("keep_daily = \"7x\""), 21, "maintenance: keep_daily: \"7x\": unknown unit"),
            (maint("keep_hourly = -3"), 21, "keep_hourly = -3: use a count"),
            (maint("forget = \"daily\""), 21, "maintenance: forget: schedule \"daily\": a time of day is missing"),
            (maint("verify_percent = 0"), 21, "verify_percent = 0: use 1 to 100"),
            (maint("prune_grace = \"soon\""), 21, "prune_grace: \"soon\""),
            (notify("webhook = { url = \"https://h.example/x\", secret = \"s\" }"), 21, "notify.webhook: unknown key \"secret\"; did you mean \"secret_file\"?"),
            (notify("webhook = { url = \"hooks.example\" }"), 21, "notify.webhook: url \"hooks.example\" is not a URL"),
            (notify("[notify.email]\nsmtp_host = \"smtp.example\"\nusername = \"u\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\"]"), 23, "notify.email: username is set but password_file is not"),
            (notify("[notify.email]\nsmtp_host = \"smtp.example\"\nfrom = \"a@b.example\"\nto = [\"nobody\"]"), 24, "notify.email: to: \"nobody\" is not an e-mail address"),
        ];
        for (text, line, want) in &cases {
            let e = etc.error(text);
            let path = etc.path("config.toml");
            let prefix = format!("{}:{line}: ", path.display());
            assert!(
                e.lines().any(|l| l.starts_with(&prefix) && l.contains(want)),
                "want {prefix}…{want}\ngot {e}\nin\n{text}"
            );
        }
    }

    #[test]
    fn all_semantic_problems_are_reported_at_once() {
        let etc = Etc::new();
        let text = edit(17, "schedule = \"evry 1h\"").replace("bind = \"127.0.0.1:8765\"", "bind = \"0.0.0.0:1\"");
        let Err(ConfigError::Invalid { problems, .. }) = etc.load(&text) else { panic!("invalid") };
        assert_eq!(problems.iter().map(|p| p.line).collect::<Vec<_>>(), [17, 19], "{problems:?}");
        assert_eq!(problems[1].section.as_deref(), Some("status"));
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_readable_by_others_are_refused_with_the_fix() {
        let etc = Etc::new();
        set_mode(&etc.path("agent.key"), 0o644);
        let e = etc.error(MINIMAL);
        let key = etc.path("agent.key");
        assert!(
            e.contains(&format!(
                ":1: agent_key: {} can be read by other users (mode 644): run `chmod 600 {}`",
                key.display(),
                key.display()
            )),
            "{e}"
        );
        set_mode(&etc.path("agent.key"), 0o640);
        assert!(etc.error(MINIMAL).contains("(mode 640)"));
        set_mode(&etc.path("agent.key"), 0o600);
        etc.private_file("status.token", "t0ken\n");
        set_mode(&etc.path("status.token"), 0o604);
        let text = MINIMAL
            .replace("bind = \"127.0.0.1:8765\"", "bind = \"0.0.0.0:8765\"\ntoken_file = \"/etc/arka/status.token\"");
        let e = etc.error(&text);
        assert!(e.contains(":20: status: token_file: ") && e.contains("chmod 600"), "{e}");
        set_mode(&etc.path("status.token"), 0o600);
        let c = etc.load(&text).unwrap();
        assert_eq!(c.status.token.unwrap().expose(), "t0ken");
        etc.private_file("status.token", "\n");
        assert!(etc.error(&text).contains("is empty"));
    }

    #[test]
    fn server_targets_take_a_token_file_a_pin_and_a_ca() {
        let etc = Etc::new();
        etc.private_file("nas.token", "append-token-of-the-agent\n");
        std::fs::write(etc.path("ca.pem"), CA_PEM).unwrap();
        let target = |keys: &str| {
            MINIMAL.replace("url = \"/mnt/nas/arka\"", &format!("url = \"arka+https://nas:8443/clinic\"\n{keys}"))
        };
        let pin = "b5172fbd0518ffceaae8c1943783d94cfd856bf5bc87871f35ad5faa22d258f9";
        let c = etc
            .load(&target(&format!(
                "token_file = \"nas.token\"\ncert_sha256 = \"{pin}\"\nca_file = \"/etc/arka/ca.pem\""
            )))
            .unwrap();
        let want = ServerOptions {
            token_file: Some(etc.path("nas.token")),
            cert_sha256: Some(pin.into()),
            ca_file: Some(etc.path("ca.pem")),
        };
        assert_eq!(c.targets[0].server, want);
        // No token file is not an error here: ARKA_SERVER_TOKEN may come from the service's
        // environment; the runner reports a missing token.
        assert_eq!(etc.load(&target("")).unwrap().targets[0].server, ServerOptions::default());
        // The token never reaches Debug.
        assert!(!format!("{c:?}").contains("append-token"));

        std::fs::write(etc.path("empty.pem"), "nothing here").unwrap();
        etc.private_file("blank.token", "\n");
        etc.private_file("spaced.token", "two words\n");
        let cases: Vec<(String, usize, &str)> = vec![
            (target("token_file = \"/etc/arka/missing.token\""), 5, "token_file: "),
            (target("token_file = \"blank.token\""), 5, "the token is empty"),
            (target("token_file = \"spaced.token\""), 5, "spaces"),
            (target("cert_sha256 = \"12:34\""), 5, "cert_sha256: \"12:34\" is not a SHA-256 fingerprint"),
            (target("ca_file = \"/etc/arka/empty.pem\""), 5, "ca_file: "),
            (target("ca_file = \"/etc/arka/none.pem\""), 5, "ca_file: cannot read"),
            (target("tokn_file = \"nas.token\""), 5, "unknown key \"tokn_file\"; did you mean \"token_file\"?"),
            (
                edit(4, "url = \"/mnt/nas/arka\"\ntoken_file = \"nas.token\""),
                5,
                "token_file applies only to an arka-server target",
            ),
            (
                edit(6, "url = \"s3://b/p\"\ncert_sha256 = \"00\""),
                7,
                "cert_sha256 applies only to an arka-server target",
            ),
            (edit(4, "url = \"arka+http://nas:8080/clinic\""), 4, "use arka+https://nas/"),
            (edit(4, "url = \"arka+https://nas/Clinic\""), 4, "is not a repository name"),
        ];
        for (text, line, want) in &cases {
            let e = etc.error(text);
            let prefix = format!("{}:{line}: ", etc.path("config.toml").display());
            assert!(
                e.lines().any(|l| l.starts_with(&prefix) && l.contains(want)),
                "want {prefix}…{want}\ngot {e}\nin\n{text}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_readable_by_others_is_refused() {
        let etc = Etc::new();
        etc.private_file("nas.token", "append-token-of-the-agent\n");
        set_mode(&etc.path("nas.token"), 0o644);
        let text = MINIMAL.replace(
            "url = \"/mnt/nas/arka\"",
            "url = \"arka+https://nas/clinic\"\ntoken_file = \"/etc/arka/nas.token\"",
        );
        let e = etc.error(&text);
        assert!(e.contains(":5: target #1: token_file: ") && e.contains("chmod 600"), "{e}");
    }

    /// Any PEM certificate does for a CA file's form.
    use crate::store::server::options::tests::CERT as CA_PEM;

    #[test]
    fn a_token_opens_the_status_page_to_the_network() {
        let etc = Etc::new();
        etc.private_file("status.token", "t0ken");
        let text = MINIMAL.replace("bind = \"127.0.0.1:8765\"", "bind = \"[::]:8765\"\ntoken_file = \"status.token\"");
        let c = etc.load(&text).unwrap();
        assert_eq!(c.status.bind, "[::]:8765".parse().unwrap());
        assert!(etc.load(&MINIMAL.replace("127.0.0.1:8765", "[::1]:8765")).is_ok(), "IPv6 loopback needs no token");
    }

    /// Windows spellings reach the paths unchanged: drive letters and UNC shares as
    /// targets and sources, and (on Unix, where it is a relative name in the config's
    /// folder) a drive-letter agent key.
    #[test]
    fn windows_paths_are_accepted_as_written() {
        let etc = Etc::new();
        let key_name = r"C:\ProgramData\arka\agent.key";
        if cfg!(unix) {
            etc.private_file(key_name, "key");
        }
        let text = r#"agent_key = 'C:\ProgramData\arka\agent.key'
state_dir = "C:\\ProgramData\\arka\\state"
[[target]]
url = '\\nas\share\arka'
[[target]]
url = "D:\\arka"
[[source]]
name = "imaging"
kind = "files"
paths = ['D:\Imaging', '\\xray-pc\RVG']
schedule = "daily 19:00"
[[source]]
name = "mssql"
kind = "command"
command = '''sqlcmd -S .\SQLEXPRESS -Q "BACKUP DATABASE clinic TO DISK = N'C:\dump.bak' WITH COPY_ONLY"'''
schedule = "mon-fri 20:00"
"#;
        let c = etc.load(text);
        if !cfg!(unix) {
            return;
        }
        let c = c.unwrap();
        assert_eq!(c.agent_key, etc.path(key_name));
        assert_eq!(c.targets[0].location, Location::Local(PathBuf::from(r"\\nas\share\arka")));
        assert_eq!(c.targets[1].location, Location::Local(PathBuf::from(r"D:\arka")));
        let SourceKind::Files { paths, .. } = &c.sources[0].kind else { panic!() };
        assert_eq!(paths, &[PathBuf::from(r"D:\Imaging"), PathBuf::from(r"\\xray-pc\RVG")]);
        assert_eq!(c.sources[0].rpo, Duration::from_secs(26 * 3600), "daily: a day and two hours");
        assert_eq!(c.sources[1].rpo, Duration::from_secs(74 * 3600), "mon-fri: the weekend and two hours");
    }

    #[test]
    fn keep_rules_replace_the_default_policy() {
        let etc = Etc::new();
        let c = etc
            .load(&format!("{MINIMAL}[maintenance]\nkeep_last = 10\nkeep_daily = 7\nkeep_weekly = \"8w\"\n"))
            .unwrap();
        let p = c.maintenance.retention;
        assert_eq!((p.last, p.daily, p.weekly), (Some(10), Some(Keep::Count(7)), Some(Keep::Within(8 * 7 * 86_400))));
        assert_eq!((p.within, p.hourly, p.monthly, p.yearly), (None, None, None, None));
    }

    #[test]
    fn an_unreadable_config_file_is_named() {
        let e = load(Path::new("/nonexistent/arka/agent.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().starts_with("cannot read the config file /nonexistent/arka/agent.toml: "), "{e}");
    }

    #[test]
    fn default_paths_follow_the_platform() {
        if cfg!(windows) {
            assert_eq!(default_config_path(), PathBuf::from(r"C:\ProgramData\arka\agent.toml"));
        } else {
            assert_eq!(default_config_path(), PathBuf::from("/etc/arka/agent.toml"));
            assert_eq!(default_state_dir(), PathBuf::from("/var/lib/arka"));
        }
    }
}
