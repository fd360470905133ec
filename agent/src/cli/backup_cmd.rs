//! `arka backup`: paths, or a command's output, with the agent key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::output::{human_bytes, rfc3339, Output};
use super::{agent_session, CacheArg, LimitArgs, RepoArg};
use crate::engine::backup::exclude::ExcludeRules;
use crate::engine::backup::{BackupOutcome, Problem, Source};
use crate::engine::BackupRequest;
use crate::error::{Error, Result};

#[derive(Args)]
pub(super) struct BackupArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long, env = "ARKA_AGENT_KEY")]
    agent_key: PathBuf,
    /// Files and directories to back up.
    #[arg(required_unless_present = "stdin_from_command", conflicts_with = "stdin_from_command")]
    paths: Vec<PathBuf>,
    /// Back up this command's standard output (e.g. "pg_dump clinic").
    #[arg(long, requires = "name")]
    stdin_from_command: Option<String>,
    /// Name of the command source (the file name it restores as): letters, digits, . _ -
    /// (at most 64, not "." or "..").
    #[arg(long, value_parser = source_name)]
    name: Option<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Host name recorded in the snapshot.
    #[arg(long)]
    host: Option<String>,
    #[command(flatten)]
    cache: CacheArg,
    #[command(flatten)]
    limits: LimitArgs,
    /// Read every file even if the files cache says it is unchanged.
    #[arg(long)]
    no_cache: bool,
    /// Leave out what matches this gitignore-style pattern, matched against paths as
    /// `arka ls` shows them: `*.tmp`, `/imaging/cache/`, `!keep.tmp` (repeatable).
    #[arg(long = "exclude", value_name = "PATTERN", conflicts_with = "stdin_from_command")]
    excludes: Vec<String>,
    /// Read more patterns from a file, one per line (`#` comments).
    #[arg(long, value_name = "FILE", conflicts_with = "stdin_from_command")]
    exclude_file: Vec<PathBuf>,
    /// Leave out every folder that holds a file of this name, e.g. .nobackup (repeatable).
    #[arg(long, value_name = "NAME", conflicts_with = "stdin_from_command")]
    exclude_if_present: Vec<String>,
    /// Leave out files larger than this, e.g. "2 GiB".
    #[arg(long, value_name = "SIZE", value_parser = crate::platform::units::parse_size, conflicts_with = "stdin_from_command")]
    exclude_larger_than: Option<u64>,
}

impl BackupArgs {
    /// The exclude rules the flags give, checked.
    fn excludes(&self) -> Result<ExcludeRules> {
        let mut patterns = self.excludes.clone();
        for file in &self.exclude_file {
            patterns.extend(crate::engine::backup::exclude::patterns_from_file(file)?);
        }
        let rules = ExcludeRules {
            patterns,
            if_present: self.exclude_if_present.clone(),
            larger_than: self.exclude_larger_than,
        };
        rules.check().map_err(Error::Usage)?;
        Ok(rules)
    }
}

pub(super) async fn backup(a: BackupArgs, out: &Output) -> Result<ExitCode> {
    let excludes = a.excludes()?;
    let session = agent_session(&a.repo, &a.agent_key, &a.cache, &a.limits.limits()).await?;
    let source = match a.stdin_from_command {
        Some(command) => Source::Command { command, name: a.name.expect("clap requires --name"), debug_log: None },
        None => Source::Paths(
            a.paths.iter().map(|p| std::path::absolute(p).map_err(|e| Error::io(p, e))).collect::<Result<_>>()?,
        ),
    };
    // Ctrl-C or SIGTERM stops the backup at the next safe point: what was uploaded is
    // indexed for the next run, and no snapshot is written.
    crate::platform::shutdown::cancel_on_shutdown(session.cancel_token().clone());
    let request = BackupRequest {
        source,
        hostname: a.host.unwrap_or_else(crate::platform::hostname),
        tags: a.tags,
        no_cache: a.no_cache,
        label: None,
        check_packs: true,
        excludes,
    };
    // A command's output has no size to count ahead: its line shows bytes and rate only.
    let scan = match &request.source {
        Source::Paths(paths) => Some((paths.clone(), request.excludes.clone())),
        Source::Command { .. } => None,
    };
    let guard = out.backup_progress(session.progress(), scan);
    let outcome = session.backup(request).await?;
    drop(guard);
    // File names go to the operator's own terminal only, never to logs.
    for p in &outcome.problems {
        match p {
            Problem::Unreadable { path, error } => {
                eprintln!("arka: unreadable, not backed up: {}: {error}", path.display())
            }
            Problem::Skipped { path } => eprintln!("arka: special file skipped: {}", path.display()),
            Problem::Changed { path } => eprintln!("arka: changed while it was read: {}", path.display()),
        }
    }
    report(&outcome, out);
    let changed = outcome.snapshot.stats.changed_while_read;
    if changed > 0 {
        eprintln!("arka: {}", crate::engine::backup::changed_advice(changed));
    }
    Ok(if outcome.snapshot.partial || changed > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

fn report(outcome: &BackupOutcome, out: &Output) {
    let s = &outcome.snapshot.stats;
    let secs = (s.duration_ms as f64 / 1000.0).max(0.001);
    let mb_s = s.bytes as f64 / 1e6 / secs;
    if out.json {
        let v = serde_json::json!({
            "snapshot_id": outcome.id.to_hex(),
            "time": rfc3339(outcome.snapshot.time_ns),
            "partial": outcome.snapshot.partial,
            "stats": s,
            "healing": outcome.healing,
            "throughput_mb_s": mb_s,
        });
        say!("{v}");
        return;
    }
    say!(
        "snapshot {} saved{}: {} files, {} dirs, {} processed ({} read), {} new, {} stored, in {:.1} s ({:.0} MB/s)",
        outcome.id.short(),
        match (outcome.snapshot.partial, s.changed_while_read > 0) {
            (true, _) => " (PARTIAL: some files were unreadable)",
            (false, true) => " (some files changed while read)",
            (false, false) => "",
        },
        s.files,
        s.dirs,
        human_bytes(s.bytes),
        human_bytes(s.bytes_read),
        human_bytes(s.bytes_new),
        human_bytes(s.bytes_stored),
        secs,
        mb_s
    );
    if s.excluded > 0 {
        say!("{} files or folders left out by the exclude rules", s.excluded);
    }
    if let Some(note) = crate::engine::backup::healing_note(&outcome.healing, &outcome.id.short()) {
        say!("{note}");
    }
}

fn source_name(name: &str) -> std::result::Result<String, String> {
    crate::engine::backup::check_source_name(name).map(|_| name.to_string())
}
