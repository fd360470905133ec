//! `arka erase --path PATTERN`: remove matching paths from every snapshot (recovery identity).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::prune_cmd::{parse_grace, print_report};
use super::{open_for_reading, AuditEntry, IdentityArg, Operation, Output, RepoArg};
use crate::engine::erase::PathPattern;
use crate::engine::prune::PruneOptions;
use crate::error::Result;

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
    #[arg(long, env = "ARKA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

pub(super) async fn erase(a: EraseArgs, out: &Output) -> Result<ExitCode> {
    let patterns = a.paths.iter().map(|p| PathPattern::parse(p)).collect::<Result<Vec<_>>>()?;
    let repo = open_for_reading(&a.repo.repo, &a.identity).await?;
    let prune = PruneOptions { grace: a.grace, max_unused_percent: 0.0, dry_run: false };
    let report = crate::engine::erase::erase(repo.clone(), &patterns, a.dry_run, Some(prune)).await?;
    if !a.dry_run {
        // What was erased is recorded as a count and a keyed hash of the patterns: the
        // names are exactly what must not stay behind.
        let mut hashed = Vec::new();
        for p in &patterns {
            hashed.extend_from_slice(p.as_bytes());
            hashed.push(0);
        }
        let tag = repo.key.mac("arka erase pattern v1", &hashed);
        let ids = report.rewritten.iter().filter_map(|(old, _)| arka_proto::ObjectId::from_hex(old).ok());
        AuditEntry::new(Operation::Erase)
            .snapshots(ids)
            .count("snapshots_rewritten", report.rewritten.len() as u64)
            .count("files_erased", report.files_erased)
            .count("packs_deleted", report.prune.as_ref().map_or(0, |p| p.packs_deleted as u64))
            .detail(format!("pattern hash {}", tag[..16].iter().map(|b| format!("{b:02x}")).collect::<String>()))
            .cache_dir(a.cache_dir.unwrap_or_else(crate::engine::backup::default_cache_dir))
            .record(&repo)
            .await;
    }
    let prune_refused = report.prune.as_ref().map_or(0, |p| p.delete_refused.len());
    if out.json {
        say!("{}", serde_json::to_string(&report).expect("report serializes"));
    } else {
        let verb = if a.dry_run { "would erase" } else { "erased" };
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
                say!("the erased data stays in the repository until the pending deletion above; run `arka prune` after then");
            }
        }
    }
    Ok(if report.delete_refused.is_empty() && prune_refused == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
