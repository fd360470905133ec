//! `arka restore`: one snapshot into a directory, or, without a snapshot argument, every
//! source as of a time, each into its own folder (the disaster restore: one command).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::output::{human_bytes, local_time, rfc3339, Output};
use super::read_cmd::{pick, warn_if_flagged, warn_passed_over};
use super::{reading_session, CacheArg, FilterArgs, IdentityArg, LimitArgs, RepoArg};
use crate::engine::restore::RestoreSummary;
use crate::engine::source_groups::{self, SourcePick};
use crate::engine::Session;
use crate::error::{Error, Result};
use crate::platform::Ownership;
use crate::repo::snapshots;

#[derive(Args)]
pub(super) struct RestoreArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// `latest`, or a snapshot ID (prefix). Without it, every source is restored, each
    /// into `--target/<source name>/`: its newest snapshot at or before `--at` (default now).
    snapshot: Option<String>,
    /// With `latest`, or without a snapshot: the newest snapshot at or before this time
    /// ("2026-05-01 14:00").
    #[arg(long)]
    at: Option<String>,
    /// `latest` is the newest of these; without a snapshot, only these are restored.
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    cache: CacheArg,
    /// Restore only this path within the snapshot (needs a snapshot argument).
    #[arg(long)]
    path: Option<String>,
    /// Directory to restore into.
    #[arg(long)]
    target: PathBuf,
    /// Give files their recorded owner and group (as root) and keep setuid, setgid and
    /// sticky bits. Without it, restored files belong to whoever restores and get only
    /// their read/write/execute bits: what the agent recorded is not trusted.
    #[arg(long)]
    same_owner: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

impl RestoreArgs {
    fn ownership(&self) -> Ownership {
        if self.same_owner {
            Ownership::Same
        } else {
            Ownership::Safe
        }
    }
}

pub(super) async fn restore(a: RestoreArgs, out: &Output) -> Result<ExitCode> {
    if a.snapshot.is_none() && a.path.is_some() {
        return Err(Error::Usage(
            "--path needs a snapshot: a path only makes sense within one snapshot \
             (e.g. `arka restore --source imaging latest --path imaging/2026 --target DIR`)"
                .into(),
        ));
    }
    let session = reading_session(&a.repo, &a.identity, &a.cache, &a.limits.limits()).await?;
    let code = match &a.snapshot {
        Some(spec) => restore_one(&a, &session, spec, out).await?,
        None => restore_every_source(&a, &session, out).await?,
    };
    Ok(ExitCode::from(code))
}

async fn restore_one(a: &RestoreArgs, session: &Session, spec: &str, out: &Output) -> Result<u8> {
    let (id, snap) = pick(session, spec, a.at.as_deref(), &a.filter).await?;
    let started = std::time::Instant::now();
    let guard = out.progress_bar(session.progress(), "restored");
    let summary = session.restore((id, &snap), a.path.as_deref(), &a.target, a.ownership()).await?;
    drop(guard);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    if out.json {
        say!("{}", serde_json::json!({ "snapshot_id": id.to_hex(), "summary": summary, "seconds": secs }));
    } else {
        say!(
            "restored snapshot {} to {}: {} in {:.1} s ({:.0} MB/s)",
            id.short(),
            a.target.display(),
            counts(&summary),
            secs,
            summary.bytes as f64 / 1e6 / secs
        );
    }
    Ok(report_damage(&summary))
}

fn counts(summary: &RestoreSummary) -> String {
    format!(
        "{} files, {} dirs, {} symlinks, {}",
        summary.files,
        summary.dirs,
        summary.symlinks,
        human_bytes(summary.bytes)
    )
}

/// Each source's newest snapshot at or before `--at` into `--target/<source name>/`. A
/// source that fails does not stop the others; the exit code is the worst of them.
async fn restore_every_source(a: &RestoreArgs, session: &Session, out: &Output) -> Result<u8> {
    let at = a.at.as_deref().map(snapshots::parse_time).transpose()?;
    let snaps = a.filter.filter(&[]).apply(session.repo().timeline().await?.objects);
    let picks = source_groups::newest_per_source(&snaps, at);
    if picks.is_empty() {
        let what = match &a.at {
            Some(t) => format!("any source at or before {t}"),
            None => "any source".into(),
        };
        return Err(Error::NoSuchSnapshot(what));
    }
    let started = std::time::Instant::now();
    let guard = out.progress_bar(session.progress(), "restored");
    let mut results = Vec::new();
    for p in &picks {
        warn_about(p);
        let target = a.target.join(&p.name);
        let restored = session.restore((p.chosen.id, &p.chosen.snapshot), None, &target, a.ownership()).await;
        let code = match &restored {
            Ok(summary) => report_damage(summary),
            Err(e) => {
                eprintln!("arka: source {}: not restored: {e}", p.name);
                e.exit_code()
            }
        };
        if !out.json {
            say!("{}", source_line(p, &target, &restored));
        }
        results.push((p, target, restored, code));
    }
    drop(guard);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let worst = worst_code(results.iter().map(|r| r.3));
    if out.json {
        let sources: Vec<_> = results.iter().map(|(p, target, r, code)| source_json(p, target, r, *code)).collect();
        say!(
            "{}",
            serde_json::json!({ "at": at.map(rfc3339), "sources": sources, "seconds": secs, "exit_code": worst })
        );
    } else {
        say!("{}", summary_line(a, &results, secs));
    }
    Ok(worst)
}

/// What a person should know before trusting a source's pick.
fn warn_about(p: &SourcePick) {
    warn_passed_over(p.passed_over.iter().copied());
    warn_if_flagged(p.chosen);
    if p.hosts.len() > 1 {
        eprintln!(
            "arka: source {} was backed up from several hosts ({}); restored the newest, from {}: give --host to \
             restore another's",
            p.name,
            p.hosts.join(", "),
            p.chosen.snapshot.hostname
        );
    }
}

fn source_line(p: &SourcePick, target: &Path, restored: &Result<RestoreSummary>) -> String {
    let head = format!(
        "{}: snapshot {} of {} from {}",
        p.name,
        p.chosen.id.short(),
        local_time(p.chosen.effective_ns),
        p.chosen.snapshot.hostname
    );
    match restored {
        Ok(summary) => format!("{head} -> {}: {}", target.display(), counts(summary)),
        Err(_) => format!("{head}: NOT restored (above)"),
    }
}

fn source_json(p: &SourcePick, target: &Path, restored: &Result<RestoreSummary>, code: u8) -> serde_json::Value {
    let (summary, error) = match restored {
        Ok(s) => (serde_json::to_value(s).ok(), None),
        Err(e) => (None, Some(e.to_string())),
    };
    serde_json::json!({
        "source": p.name,
        "snapshot_id": p.chosen.id.to_hex(),
        "time": rfc3339(p.chosen.effective_ns),
        "hostname": p.chosen.snapshot.hostname,
        "target": target.display().to_string(),
        "summary": summary,
        "error": error,
        "exit_code": code,
    })
}

type SourceResult<'a> = (&'a SourcePick<'a>, PathBuf, Result<RestoreSummary>, u8);

fn summary_line(a: &RestoreArgs, results: &[SourceResult], secs: f64) -> String {
    let ok: Vec<&RestoreSummary> = results.iter().filter_map(|r| r.2.as_ref().ok()).collect();
    let (files, bytes) = ok.iter().fold((0, 0), |(f, b), s| (f + s.files, b + s.bytes));
    let whole = results.iter().filter(|r| r.3 == 0).count();
    let mut line = format!(
        "restored {} of {} sources to {} ({files} files, {}) in {secs:.1} s",
        ok.len(),
        results.len(),
        a.target.display(),
        human_bytes(bytes)
    );
    if whole < results.len() {
        line += &format!("; {} sources not restored in full (named above)", results.len() - whole);
    }
    line
}

/// The worst exit code: any failure over a partial restore (3) over success (0); among
/// failures, the first.
fn worst_code(codes: impl Iterator<Item = u8>) -> u8 {
    let rank = |c: u8| match c {
        0 => 0,
        3 => 1,
        _ => 2,
    };
    codes.fold(0, |worst, c| if rank(c) > rank(worst) { c } else { worst })
}

/// Names what could not be restored: exit 1 if data was damaged, 3 if only some files
/// could not be written here.
fn report_damage(summary: &RestoreSummary) -> u8 {
    for (path, reason) in &summary.damaged {
        eprintln!("arka: not restored, its data is damaged: {path}: {reason}");
    }
    for (path, reason) in &summary.unwritable {
        eprintln!("arka: not restored, cannot be written here: {path}: {reason}");
    }
    for path in &summary.lost {
        eprintln!(
            "arka: not restored, its data was lost from the repository (`arka repair snapshots` marked it): {path}"
        );
    }
    if !summary.damaged.is_empty() {
        eprintln!(
            "arka: {} files could not be restored; everything else was. Run `arka verify --read-data` to see the damage",
            summary.damaged.len()
        );
        return 1;
    }
    if !summary.lost.is_empty() {
        eprintln!(
            "arka: {} files or folders of this repaired snapshot were lost (named above); everything else was restored",
            summary.lost.len()
        );
    }
    if !summary.unwritable.is_empty() {
        eprintln!(
            "arka: {} files, folders or links could not be written here (named above); everything else was restored",
            summary.unwritable.len()
        );
    }
    if !summary.unwritable.is_empty() || !summary.lost.is_empty() {
        return 3;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::worst_code;

    #[test]
    fn the_worst_code_wins() {
        assert_eq!(worst_code([0, 0].into_iter()), 0);
        assert_eq!(worst_code([0, 3, 0].into_iter()), 3);
        assert_eq!(worst_code([3, 1, 12].into_iter()), 1);
        assert_eq!(worst_code([12, 3].into_iter()), 12);
    }
}
