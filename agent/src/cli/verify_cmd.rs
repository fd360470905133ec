//! `arka verify`: is every snapshot restorable?

use std::process::ExitCode;

use clap::Args;

use super::output::{human_bytes, rfc3339, Output};
use super::{session, FilterArgs, KeyedRepo, LimitArgs};
use crate::engine::verify::VerifyReport;
use crate::error::{Error, Result};

#[derive(Args)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    repo: KeyedRepo,
    /// Also download packs and check their contents: all of them, or the given percentage,
    /// least recently checked first (`--read-data=5` daily covers everything in 20 days).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "100", value_name = "PERCENT")]
    read_data: Option<f64>,
    /// Check only these snapshots: their trees, what they reference and, with
    /// `--read-data`, the packs holding their data. The repository-wide checks (config,
    /// index, the packs listed against the index, vanished snapshots) still run.
    #[command(flatten)]
    filter: FilterArgs,
    /// Only snapshots of this backed-up path (repeatable; all must be there).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

pub(super) async fn verify(a: VerifyArgs, out: &Output) -> Result<ExitCode> {
    if let Some(p) = a.read_data.filter(|p| !(0.0..=100.0).contains(p)) {
        return Err(Error::Usage(format!("--read-data={p}: give a percentage between 0 and 100")));
    }
    let session = session(&a.repo, &a.limits.limits()).await?;
    let filter = a.filter.filter(&a.paths);
    let report = session.verify(a.read_data, session.verify_state_file(), filter).await?;
    if report.selection.is_some() && report.snapshots == 0 {
        eprintln!(
            "arka: no snapshot has the --source, --host, --tag and --path given; `arka snapshots` shows each one's"
        );
    }
    if out.json {
        say!("{}", serde_json::to_string(&report).expect("report serializes"));
    } else {
        print_report(&report);
    }
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// What to do about a damaged object of the kind `object` names.
fn advice(object: &str) -> &'static str {
    match object.split('/').next() {
        Some("index") => " (run `arka repair index` to index its packs again from their own tables)",
        Some("snapshots") => " (the snapshot is lost; `arka forget ID` removes it from this list)",
        Some("config") => " (opened from its copy; `arka repair config` writes it back)",
        Some("packs") => " (recorded: the next backup stores the data again where the source still has it)",
        _ => "",
    }
}

fn print_report(report: &VerifyReport) {
    let snapshots = match &report.selection {
        Some(s) => format!("{} of {} snapshots ({})", report.snapshots, s.snapshots_in_repository, s.filter),
        None => format!("{} snapshots", report.snapshots),
    };
    say!(
        "checked {snapshots}, {} index segments, {} packs, {} blobs; read {} packs ({}), decrypted {} blobs",
        report.index_segments,
        report.packs,
        report.blobs,
        report.packs_read,
        human_bytes(report.bytes_read),
        report.blobs_decrypted
    );
    for d in report.unhealed() {
        say!("DAMAGED {}: {}{}", d.object, d.reason, advice(&d.object));
    }
    for d in report.damage.iter().filter(|d| d.healed) {
        say!(
            "healed {}: {} (every damaged blob a snapshot needs has a healthy copy elsewhere; prune deletes the pack)",
            d.object,
            d.reason
        );
    }
    if report.damage_recorded > 0 {
        say!(
            "recorded {} damaged copies in the repository: the next backup stores their data again \
             where the source still has it",
            report.damage_recorded
        );
    }
    if let Some(why) = &report.damage_record_failed {
        say!(
            "could not record the damage in the repository ({why}): backups cannot heal it until a \
             verify with write access records it"
        );
    }
    for s in &report.broken_snapshots {
        say!("BROKEN snapshot {} ({}): cannot be restored in full", &s.id[..8], s.source.join(" "));
        for f in &s.files {
            say!("    damaged file: {f}");
        }
    }
    for v in &report.vanished {
        say!(
            "VANISHED snapshot {}: made by the backup of audit record {} ({}), gone without a forget: \
             something deleted it outside arka (check the storage's access log and who holds delete rights; \
             `arka forget {}` records that you have looked)",
            &v.id[..8],
            v.made_by_record,
            rfc3339(v.made_unix_ns),
            &v.id[..8]
        );
    }
    for f in &report.flagged {
        say!(
            "FLAGGED snapshot {}: it {}. If this was not a planned change, the clinic server may be \
             compromised; `arka forget {}` removes it (retention never prefers it over an unflagged one)",
            &f.id[..8],
            f.description,
            &f.id[..8]
        );
    }
    let scope =
        if report.selection.is_some() { " in the selected snapshots and the repository-wide checks" } else { "" };
    match (report.is_clean(), report.flagged.len()) {
        (true, 0) => say!("no problems found{scope}"),
        (true, n) => say!("no damage found; {n} flagged snapshots (above) deserve a look"),
        _ => {}
    }
}
