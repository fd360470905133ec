//! `[[source]]`: what is backed up, a `files` or a `command` source, and when.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::engine::backup::exclude::ExcludeRules;
use crate::platform::units::parse_size;
use toml::Spanned;

use super::{human, nonempty, Validator, DEFAULT_COMMAND_TIMEOUT, DEFAULT_QUIET_PERIOD};
use crate::platform::units::parse_span;
use crate::service::schedule::Schedule;

/// The longest RPO: a source may go three months without a backup before anyone is told,
/// no longer (a larger RPO is monitoring switched off).
pub const MAX_RPO: Duration = Duration::from_secs(92 * 86_400);
/// The longest quiet period of a watched source: longer, and a busy folder is never saved.
pub const MAX_QUIET_PERIOD: Duration = Duration::from_secs(86_400);
/// The bounds of a command's timeout.
pub const MIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);

#[derive(Clone, Debug)]
pub struct Source {
    /// Unique; see [`crate::engine::backup::check_source_name`].
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
        /// `Some(quiet period)` when the paths are watched: a backup starts once no file
        /// has changed for the quiet period.
        watch: Option<Duration>,
        /// `exclude`, `exclude_if_present`, `exclude_larger_than`.
        excludes: ExcludeRules,
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

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawKind {
    Files,
    Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    name: Spanned<String>,
    kind: RawKind,
    schedule: Spanned<String>,
    rpo: Option<Spanned<String>>,
    tags: Option<Spanned<Vec<String>>>,
    paths: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    exclude_if_present: Option<Spanned<Vec<String>>>,
    exclude_larger_than: Option<Spanned<String>>,
    watch: Option<Spanned<bool>>,
    quiet_period: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    dump_name: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn sources(&mut self, raw: &[Spanned<RawSource>]) -> Option<Vec<Source>> {
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
                let rpo = parse_span(t).map_err(|e| format!("rpo: {e}"))?;
                if rpo > MAX_RPO {
                    return Err(format!(
                        "rpo {t:?} is longer than {}: no alert would come for months; use at most {0} (e.g. \"26h\" \
                         for a daily backup)",
                        human(MAX_RPO)
                    ));
                }
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
        let excludes = self.excludes(r);
        let watching = r.watch.as_ref().is_some_and(|w| *w.get_ref());
        let watch = match (&r.quiet_period, watching) {
            (Some(q), false) => {
                self.fail(q.span(), "quiet_period applies only with watch = true".into());
                None
            }
            (Some(q), true) => self.check(q, |q| {
                let quiet = parse_span(q).map_err(|e| format!("quiet_period: {e}"))?;
                within(quiet, Duration::ZERO, MAX_QUIET_PERIOD, "quiet_period").map(Some)
            }),
            (None, true) => Some(Some(DEFAULT_QUIET_PERIOD)),
            (None, false) => Some(None),
        };
        let (paths, watch, excludes) = (paths?, watch?, excludes?);
        ok.then_some(SourceKind::Files { paths, watch, excludes })
    }

    /// `exclude`, `exclude_if_present` and `exclude_larger_than`, each checked where written.
    fn excludes(&mut self, r: &RawSource) -> Option<ExcludeRules> {
        let mut rules = ExcludeRules::default();
        let mut ok = true;
        if let Some(e) = &r.exclude {
            rules.patterns = e.get_ref().clone();
            let only = ExcludeRules { patterns: rules.patterns.clone(), ..Default::default() };
            ok &= self.check(e, |_| only.check()).is_some();
        }
        if let Some(e) = &r.exclude_if_present {
            rules.if_present = e.get_ref().clone();
            let only = ExcludeRules { if_present: rules.if_present.clone(), ..Default::default() };
            ok &= self.check(e, |_| only.check()).is_some();
        }
        if let Some(e) = &r.exclude_larger_than {
            let size = self.check(e, |s| parse_size(s).map_err(|e| format!("exclude_larger_than: {e}")));
            ok &= size.is_some();
            rules.larger_than = size;
        }
        ok.then_some(rules)
    }

    fn command(&mut self, r: &RawSource, header: Range<usize>) -> Option<SourceKind> {
        let others = [
            ("paths", r.paths.as_ref().map(Spanned::span)),
            ("exclude", r.exclude.as_ref().map(Spanned::span)),
            ("exclude_if_present", r.exclude_if_present.as_ref().map(Spanned::span)),
            ("exclude_larger_than", r.exclude_larger_than.as_ref().map(Spanned::span)),
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
            Some(d) => self.check(d, |d| {
                crate::engine::backup::check_source_name(d).map_err(|e| format!("dump_{e}")).map(|_| d.clone())
            }),
            None => Some(r.name.get_ref().clone()),
        };
        let timeout = match &r.timeout {
            Some(t) => self.check(t, |t| {
                let timeout = parse_span(t).map_err(|e| format!("timeout: {e}"))?;
                within(timeout, MIN_COMMAND_TIMEOUT, MAX_COMMAND_TIMEOUT, "timeout")
            }),
            None => Some(DEFAULT_COMMAND_TIMEOUT),
        };
        let (command, dump_name, timeout) = (command?, dump_name?, timeout?);
        ok.then_some(SourceKind::Command { command, dump_name, timeout })
    }
}

/// `value` if it is within `min..=max`, else an error naming the limits.
pub(super) fn within(value: Duration, min: Duration, max: Duration, key: &str) -> Result<Duration, String> {
    if value < min || value > max {
        let min = if min.is_zero() { "0s".to_string() } else { human(min) };
        return Err(format!("{key} = {}: use {min} to {}", human(value), human(max)));
    }
    Ok(value)
}

fn source_name(n: &str) -> Result<(), String> {
    crate::engine::backup::check_source_name(n).map_err(|e| format!("source {e}"))
}
