//! `arka sync --to URL`: copy what another target lacks. Needs no key: objects are checked
//! by hash. With the agent key at hand it is also recorded in the audit trail.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::output::{human_bytes, Output};
use super::{agent_session, open_store, CacheArg, LimitArgs, RepoArg};
use crate::engine::progress::Progress;
use crate::engine::sync::SyncReport;
use crate::error::Result;

#[derive(Args)]
pub(super) struct SyncArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The target to bring up to date: a path, file:///path or s3://bucket/prefix.
    #[arg(long)]
    to: String,
    /// The agent key, to record the sync in the audit trail (copying needs no key; not
    /// taken from ARKA_AGENT_KEY, so that a sync never fails for a key it does not need).
    #[arg(long)]
    agent_key: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArg,
    /// --limit-upload paces the copies sent to --to, --limit-download what is read from --repo.
    #[command(flatten)]
    limits: LimitArgs,
}

pub(super) async fn sync(a: SyncArgs, out: &Output) -> Result<ExitCode> {
    let limits = a.limits.limits();
    let to = open_store(&a.to, true, &limits)?;
    let started = std::time::Instant::now();
    let (report, from) = match &a.agent_key {
        Some(key) => {
            let session = agent_session(&a.repo, key, &a.cache, &limits).await?;
            let guard = out.progress_bar(session.progress(), "copied");
            let report = session.sync(&to).await?;
            drop(guard);
            (report, session.repo().store.display.clone())
        }
        None => {
            let from = open_store(&a.repo.repo, false, &limits)?;
            let progress = std::sync::Arc::new(Progress::default());
            let guard = out.progress_bar(&progress, "copied");
            let report = crate::engine::sync::sync(&from, &to, &progress).await?;
            drop(guard);
            (report, from.display)
        }
    };
    print_report(&report, &from, &to.display, started.elapsed().as_secs_f64().max(0.001), out);
    Ok(if report.damaged.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

fn print_report(report: &SyncReport, from: &str, to: &str, secs: f64, out: &Output) {
    if out.json {
        say!("{}", serde_json::json!({ "report": report, "seconds": secs }));
        return;
    }
    say!(
        "synced {from} to {to}: {} packs, {} index segments, {} snapshots, {} audit records copied ({}, {:.0} MB/s); {} objects already there",
        report.packs_copied,
        report.index_copied,
        report.snapshots_copied,
        report.audit_copied,
        human_bytes(report.bytes_copied),
        report.bytes_copied as f64 / 1e6 / secs,
        report.already_present
    );
    for (key, why) in &report.damaged {
        say!(
            "NOT COPIED {key}: damaged at the source ({why}); `arka verify` there records it, and its next \
             backup stores the data again, which the next sync copies"
        );
    }
}
