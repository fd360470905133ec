//! `arka repair …`: put back what damage took. For now `repair config`: writes `config`
//! back from its copy, or the copy from `config` (FORMAT.md §5.1).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::output::Output;
use super::{session, KeyedRepo};
use crate::engine::repair::{ConfigRepair, ConfigState};
use crate::error::Result;

#[derive(Args)]
pub(super) struct RepairArgs {
    #[command(subcommand)]
    command: RepairCommand,
}

#[derive(Subcommand)]
pub(super) enum RepairCommand {
    /// Write `config` back from its copy when it is missing or damaged, and the copy from
    /// `config` when the copy is missing (recovery identity or agent key). Replacing a
    /// damaged `config` deletes it first: on arka-server that needs a maintain token.
    Config(RepairConfigArgs),
}

#[derive(Args)]
pub(super) struct RepairConfigArgs {
    #[command(flatten)]
    repo: KeyedRepo,
    /// Say what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(super) async fn run(a: RepairArgs, out: &Output) -> Result<ExitCode> {
    match a.command {
        RepairCommand::Config(a) => config(a, out).await,
    }
}

async fn config(a: RepairConfigArgs, out: &Output) -> Result<ExitCode> {
    let session = session(&a.repo).await?;
    let report = session.repair_config(a.dry_run).await?;
    print_report(&report, out);
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &ConfigRepair, out: &Output) {
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
        say!("ignored {other}: not the copy of this repository's config (junk, or planted); left in place");
    }
    let what = report.describe();
    say!("{}", what.strip_prefix("config: ").unwrap_or(&what));
    if report.dry_run && report.needed() {
        say!("dry run: nothing was written");
    }
}
