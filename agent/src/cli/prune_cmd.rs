//! `arka prune`: free the space of unreferenced data (agent key, delete rights on storage).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::output::{human_bytes, rfc3339, Output};
use super::{agent_session, CacheArg, RepoArg};
use crate::engine::prune::{PruneOptions, PruneReport, DEFAULT_MAX_UNUSED_PERCENT, SAFE_GRACE};
use crate::error::Result;
use crate::store::Limits;

#[derive(Args)]
pub(super) struct PruneArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long, env = "ARKA_AGENT_KEY")]
    agent_key: PathBuf,
    /// How long unreferenced data waits before it is deleted, so that backups running now
    /// can finish (90s, 30min, 2h, 1d). `0` deletes at once: only when no backup can run.
    #[arg(long, default_value = "1d", value_parser = parse_grace)]
    grace: Duration,
    /// Repack a pack when more than this percentage of it is unreferenced.
    #[arg(long, default_value_t = DEFAULT_MAX_UNUSED_PERCENT)]
    max_unused: f64,
    /// Report what would be deleted and repacked; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cache: CacheArg,
}

pub(super) async fn prune(a: PruneArgs, out: &Output) -> Result<ExitCode> {
    if a.grace < SAFE_GRACE {
        eprintln!(
            "arka: warning: a grace period under {}h is safe only while no backup writes to this repository",
            SAFE_GRACE.as_secs() / 3600
        );
    }
    let session = agent_session(&a.repo, &a.agent_key, &a.cache, &Limits::default()).await?;
    let opts = PruneOptions { grace: a.grace, max_unused_percent: a.max_unused, dry_run: a.dry_run };
    let report = session.prune(&opts).await?;
    if out.json {
        say!("{}", serde_json::to_string(&report).expect("report serializes"));
    } else {
        print_report(&report, a.dry_run);
    }
    Ok(if report.delete_refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub(super) fn print_report(r: &PruneReport, dry_run: bool) {
    let would = if dry_run { "would be " } else { "" };
    say!("{} snapshots reference {} blobs", r.snapshots, r.blobs_reachable);
    for id in &r.snapshots_skipped {
        say!(
            "skipped snapshot {}: no backup wrote it (its reference list is in no index); it may be planted: \
             `arka forget {}` removes it",
            &id[..8],
            &id[..8]
        );
    }
    if r.plans_swept > 0 || r.packs_deleted > 0 {
        say!(
            "{}deleted {} packs and {} index segments, freeing {}",
            would,
            r.packs_deleted,
            r.index_deleted,
            human_bytes(r.bytes_freed)
        );
    }
    if r.packs_spared > 0 {
        say!("kept {} packs that snapshots written since the last prune need", r.packs_spared);
    }
    if r.packs_condemned > 0 {
        say!(
            "{}scheduled for deletion: {} packs ({} repacked, copying {}; {} left by interrupted backups), {} to free",
            would,
            r.packs_condemned,
            r.packs_repacked,
            human_bytes(r.bytes_repacked),
            r.packs_orphaned,
            human_bytes(r.bytes_to_free)
        );
    } else if r.packs_deleted == 0 {
        say!("nothing to prune");
    }
    if r.strays_deleted > 0 {
        say!(
            "{}removed {} temporary files of interrupted writes ({})",
            would,
            r.strays_deleted,
            human_bytes(r.stray_bytes)
        );
    }
    for (id, after) in &r.plans_pending {
        say!("pending deletion {} from {} (run prune again after then)", &id[..8], rfc3339(*after));
    }
    for key in &r.delete_refused {
        say!("NOT DELETED {key}: the storage refused (append-only or object lock); a prune with delete rights will remove it");
    }
}

/// `0`, or a span in the one syntax of `platform::units` (`90s`, `30m`, `2h`, `1d`).
pub(super) fn parse_grace(s: &str) -> std::result::Result<Duration, String> {
    match s.trim() {
        "0" => Ok(Duration::ZERO),
        span => crate::platform::units::parse_span(span),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_parse() {
        assert_eq!(parse_grace("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_grace("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_grace("30min").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_grace("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_grace("2m").unwrap(), Duration::from_secs(120), "m is minutes everywhere");
        assert!(parse_grace("5").is_err());
    }
}
