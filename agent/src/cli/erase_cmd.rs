//! `arka erase --path PATTERN`: remove matching paths from every snapshot (recovery identity).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::output::Output;
use super::prune_cmd::{parse_grace, print_report};
use super::{reading_session, CacheArg, IdentityArg, RepoArg};
use crate::engine::erase::{EraseReport, PathPattern};
use crate::engine::prune::PruneOptions;
use crate::error::Result;
use crate::store::Limits;

#[derive(Args)]
pub(super) struct EraseArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// Snapshot path to erase, as `arka ls` shows it (`src/patients/1234`); `*` matches within
    /// a name, `**` across directories. Repeat for several.
    #[arg(long = "path", required = true)]
    paths: Vec<String>,
    /// Count what would be erased; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Grace period of the prune that deletes the erased data (see `arka prune`). `0`
    /// deletes at once: only when no backup can be running.
    #[arg(long, default_value = "2h", value_parser = parse_grace)]
    grace: Duration,
    #[command(flatten)]
    cache: CacheArg,
}

pub(super) async fn erase(a: EraseArgs, out: &Output) -> Result<ExitCode> {
    let patterns = a.paths.iter().map(|p| PathPattern::parse(p)).collect::<Result<Vec<_>>>()?;
    let session = reading_session(&a.repo, &a.identity, &a.cache, &Limits::default()).await?;
    let prune = PruneOptions { grace: a.grace, max_unused_percent: 0.0, dry_run: false };
    let report = session.erase(&patterns, a.dry_run, prune).await?;
    let prune_refused = report.prune.as_ref().map_or(0, |p| p.delete_refused.len());
    if out.json {
        say!("{}", serde_json::to_string(&report).expect("report serializes"));
    } else {
        print_erase(&report, a.dry_run);
    }
    Ok(if report.delete_refused.is_empty() && prune_refused == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_erase(report: &EraseReport, dry_run: bool) {
    let verb = if dry_run { "would erase" } else { "erased" };
    say!("{verb} {} files from {} snapshots", report.files_erased, report.rewritten.len());
    for (old, new) in &report.rewritten {
        if new.is_empty() {
            say!("  snapshot {}", &old[..8]);
        } else {
            say!("  snapshot {} is now {}", &old[..8], &new[..8]);
        }
    }
    for key in &report.delete_refused {
        say!("NOT DELETED {key}: the storage refused (append-only or object lock); a prune with delete rights must remove it");
    }
    if let Some(p) = &report.prune {
        print_report(p, false);
        if !p.plans_pending.is_empty() {
            say!(
                "the erased data stays in the repository until the pending deletion above; run `arka prune` after then"
            );
        }
    }
}
