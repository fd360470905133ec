//! `arka repair config|index|snapshots|packs`: put a damaged repository back in order
//! (docs/OPERATIONS.md §9a, "Runbook: the repository is damaged").

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::output::{human_bytes, Output};
use super::{agent_session, reading_session, session, CacheArg, IdentityArg, KeyedRepo, RepoArg};
use crate::engine::repair::index::RepairIndexReport;
use crate::engine::repair::packs::RepairPacksReport;
use crate::engine::repair::snapshots::RepairSnapshotsReport;
use crate::engine::repair::{ConfigRepair, ConfigState};
use crate::error::Result;
use crate::store::Limits;

#[derive(Args)]
pub(super) struct RepairArgs {
    #[command(subcommand)]
    what: RepairCommand,
}

#[derive(Subcommand)]
enum RepairCommand {
    /// Write `config` back from its copy when it is missing or damaged, and the copy from
    /// `config` when the copy is missing (recovery identity or agent key). Replacing a
    /// damaged `config` deletes it first: on arka-server that needs a maintain token.
    Config(ConfigArgs),
    /// Index again, from their own blob tables, the packs no intact index segment names;
    /// then delete the index segments that cannot be opened (agent key).
    Index(IndexArgs),
    /// Write a new snapshot, tagged `repaired`, for each snapshot that references lost
    /// data: every intact file is kept and what was lost is marked (recovery identity).
    Snapshots(SnapshotsArgs),
    /// Copy the intact blobs of packs recorded damaged into new packs, so prune can delete
    /// the damaged ones without losing them (agent key; a recovery identity checks more).
    Packs(PacksArgs),
}

#[derive(Args)]
struct ConfigArgs {
    #[command(flatten)]
    repo: KeyedRepo,
    /// Say what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct IndexArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long, env = "ARKA_AGENT_KEY")]
    agent_key: std::path::PathBuf,
    /// Report what would be indexed and deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cache: CacheArg,
}

#[derive(Args)]
struct SnapshotsArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// Report what would be rewritten; write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cache: CacheArg,
}

#[derive(Args)]
struct PacksArgs {
    #[command(flatten)]
    repo: KeyedRepo,
    /// Report what would be salvaged; write nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(super) async fn repair(a: RepairArgs, out: &Output) -> Result<ExitCode> {
    match a.what {
        RepairCommand::Config(a) => {
            let report = session(&a.repo, &Limits::default()).await?.repair_config(a.dry_run).await?;
            print_config(&report, out);
            Ok(ExitCode::SUCCESS)
        }
        RepairCommand::Index(a) => {
            let report = agent_session(&a.repo, &a.agent_key, &a.cache, &Limits::default())
                .await?
                .repair_index(a.dry_run)
                .await?;
            print(out, &report, |r| print_index(r, a.dry_run));
            Ok(exit_code(report.unreadable_packs.is_empty() && report.delete_refused.is_empty()))
        }
        RepairCommand::Snapshots(a) => {
            let session = reading_session(&a.repo, &a.identity, &a.cache, &Limits::default()).await?;
            let report = session.repair_snapshots(a.dry_run).await?;
            print(out, &report, |r| print_snapshots(r, a.dry_run));
            Ok(ExitCode::SUCCESS)
        }
        RepairCommand::Packs(a) => {
            let report = session(&a.repo, &Limits::default()).await?.repair_packs(a.dry_run).await?;
            print(out, &report, |r| print_packs(r, a.dry_run));
            Ok(exit_code(report.skipped.is_empty()))
        }
    }
}

fn print<T: serde::Serialize>(out: &Output, report: &T, human: impl FnOnce(&T)) {
    if out.json {
        say!("{}", serde_json::to_string(report).expect("report serializes"));
    } else {
        human(report);
    }
}

fn exit_code(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_index(r: &RepairIndexReport, dry_run: bool) {
    let would = if dry_run { "would be " } else { "" };
    say!(
        "{} packs in storage; read the blob tables of {} that no intact index segment names",
        r.packs_listed,
        r.packs_scanned
    );
    say!(
        "{}indexed anew: {} packs, {} blobs, in {} new index segments",
        would,
        r.packs_indexed,
        r.blobs,
        r.segments_written
    );
    for (key, why) in &r.unreadable_packs {
        say!("DAMAGED {key}: its blob table does not open ({why}); left out of the index and recorded as damaged");
    }
    if dry_run {
        for key in &r.damaged_segments {
            say!("would delete the damaged index segment {key}");
        }
    } else if r.damaged_segments_deleted > 0 {
        say!("deleted {} damaged index segments (their packs are indexed again)", r.damaged_segments_deleted);
    }
    for key in &r.delete_refused {
        say!(
            "NOT DELETED {key}: the storage refused (append-only token or object lock); the new index is written, \
             and a run with delete rights (a maintain token on arka-server) removes it"
        );
    }
}

/// Lost files by name: this goes to the operator's own terminal only (never to logs or
/// the audit trail).
fn print_snapshots(r: &RepairSnapshotsReport, dry_run: bool) {
    if r.packs_missing > 0 {
        say!("{} indexed packs are missing from storage; their data counts as lost", r.packs_missing);
    }
    for s in &r.repaired {
        match (dry_run, s.repaired.is_empty()) {
            (true, _) | (_, true) => {
                say!("snapshot {} would be repaired: {} files lost", &s.original[..8], s.lost_files)
            }
            _ => say!(
                "snapshot {} repaired as {} (tagged `repaired`): {} files lost",
                &s.original[..8],
                &s.repaired[..8],
                s.lost_files
            ),
        }
        for path in &s.lost_paths {
            say!("    lost: {path}");
        }
    }
    for (original, earlier) in &r.already_repaired {
        say!("snapshot {} was already repaired as {}", &original[..8], &earlier[..8]);
    }
    if r.repaired.is_empty() {
        say!("checked {} snapshots: none references lost data", r.snapshots);
    } else if !dry_run {
        say!(
            "the original snapshots stay until you forget them; restore the repaired ones \
             (`arka snapshots` lists them with the tag `repaired`)"
        );
    }
}

fn print_packs(r: &RepairPacksReport, dry_run: bool) {
    let would = if dry_run { "would be " } else { "" };
    say!("{} packs are recorded damaged", r.packs_damaged);
    say!(
        "{}salvaged: {} blobs ({}) from {} packs into {} new packs; {} left behind as damaged, {} already had a \
         healthy copy",
        would,
        r.blobs_salvaged,
        human_bytes(r.bytes_salvaged),
        r.packs_salvaged,
        r.packs_written,
        r.blobs_left_out,
        r.blobs_elsewhere
    );
    for (key, why) in &r.skipped {
        say!("NOT SALVAGED {key}: {why}");
    }
    if r.blobs_salvaged > 0 && !dry_run {
        say!("prune can now delete the damaged packs without losing the salvaged data");
    }
}

fn print_config(report: &ConfigRepair, out: &Output) {
    if out.json {
        say!("{}", serde_json::json!(report));
        return;
    }
    match &report.config {
        ConfigState::Intact => say!("config: intact"),
        ConfigState::Missing => say!("config: missing"),
        ConfigState::Damaged(why) => say!("config: damaged ({why})"),
    }
    say!("copy {}: {}", report.copy, if report.copy_present { "present" } else { "missing" });
    for other in &report.other_copies {
        say!("ignored {other}: not the copy of this config (an older key generation, junk, or planted); left in place");
    }
    let what = report.describe();
    say!("{}", what.strip_prefix("config: ").unwrap_or(&what));
    if report.dry_run && report.needed() {
        say!("dry run: nothing was written");
    }
}
