//! `arka audit [verify]`: list the repository's audit records, or check their hash chain
//! (exit 0 intact, 1 with the problems named); and the records the other commands append
//! when they succeed (IDs and counts only: a path or file name is personal data).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use arka_proto::ObjectId;

use super::{open_any, rfc3339, AnyKeyArgs, Output, RepoArg};
use crate::engine::audit::{self, AuditLog, ChainReport, Entry, Operation};
use crate::engine::backup::BackupOutcome;
use crate::engine::forget::ForgetPlan;
use crate::engine::restore::RestoreSummary;
use crate::engine::retention::RetentionPolicy;
use crate::engine::verify::VerifyReport;
use crate::error::Result;
use crate::repo::Repository;

#[derive(Args)]
pub(super) struct AuditArgs {
    /// `list` (the default) shows the records; `verify` checks the chain.
    #[arg(value_enum, default_value_t = Action::List)]
    action: Action,
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    keys: AnyKeyArgs,
    /// Where this machine remembers the records it has seen, so that removing the newest
    /// ones is detected.
    #[arg(long, env = "ARKA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Action {
    List,
    Verify,
}

pub(super) async fn run(a: AuditArgs, out: &Output) -> Result<ExitCode> {
    let repo = open_any(&a.repo.repo, a.keys.agent_key.as_ref(), a.keys.identity.as_ref()).await?;
    match a.action {
        Action::List => {
            let log = audit::load_all(&repo).await?;
            list(&log, out);
            if !log.unreadable.is_empty() {
                eprintln!(
                    "arka: {} audit records are damaged or altered and not shown; run `arka audit verify`",
                    log.unreadable.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Verify => {
            let cache_dir = a.cache_dir.unwrap_or_else(crate::engine::backup::default_cache_dir);
            let (_, report) = audit::verify(&repo, &cache_dir).await?;
            show_report(&report, out);
            if report.is_intact() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("arka: the audit trail is NOT intact: {} problems", report.problems.len());
                Ok(ExitCode::from(1))
            }
        }
    }
}

fn list(log: &AuditLog, out: &Output) {
    if out.json {
        let records: Vec<_> = log
            .records
            .iter()
            .map(|(id, r)| {
                serde_json::json!({
                    "id": id.to_hex(),
                    "seq": r.seq,
                    "prev": r.prev.map(|p| p.to_hex()),
                    "time": rfc3339(r.time_ns),
                    "time_unix_ns": r.time_ns,
                    "host": r.host,
                    "user": r.user,
                    "operation": r.operation.as_str(),
                    "snapshots": r.snapshots.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
                    "counts": r.counts,
                    "detail": r.detail,
                    "program": r.program,
                })
            })
            .collect();
        say!("{}", serde_json::Value::Array(records));
        return;
    }
    say!(
        "{:>5}  {:<8}  {:<20}  {:<16}  {:<10}  {:<9}  snapshots / counts",
        "seq",
        "id",
        "time (UTC)",
        "host",
        "user",
        "operation"
    );
    for (id, r) in &log.records {
        let time = jiff::Timestamp::from_nanosecond(r.time_ns as i128)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|_| r.time_ns.to_string());
        let mut what: Vec<String> = r.snapshots.iter().take(4).map(|s| s.short()).collect();
        if r.snapshots.len() > 4 {
            what.push(format!("+{} more", r.snapshots.len() - 4));
        }
        what.extend(r.counts.iter().map(|(k, v)| format!("{k}={v}")));
        if let Some(d) = &r.detail {
            what.push(format!("({d})"));
        }
        say!(
            "{:>5}  {:<8}  {:<20}  {:<16}  {:<10}  {:<9}  {}",
            r.seq,
            id.short(),
            time,
            r.host,
            r.user,
            r.operation.as_str(),
            what.join(" ")
        );
    }
}

fn show_report(report: &ChainReport, out: &Output) {
    if out.json {
        let mut v = serde_json::to_value(report).expect("report serializes");
        v["intact"] = report.is_intact().into();
        say!("{v}");
        return;
    }
    match (&report.head_id, report.head_seq) {
        (Some(id), Some(seq)) => {
            say!("{} audit records; the newest is {} (seq {seq})", report.records, &id[..8])
        }
        _ => say!("no audit records"),
    }
    for p in &report.problems {
        say!("PROBLEM {p}");
    }
    for w in &report.warnings {
        say!("warning: {w}");
    }
    if report.is_intact() {
        say!("the audit trail is intact");
    }
}

/// `init` also created the agent key: one record stands for both.
pub(super) async fn initialised(repo: &Repository) {
    Entry::new(Operation::Init)
        .count("recipients", repo.config.recipients.len() as u64)
        .detail("repository created, agent key created")
        .record(repo)
        .await;
}

pub(super) async fn backed_up(repo: &Repository, outcome: &BackupOutcome, cache_dir: PathBuf) {
    let s = &outcome.snapshot.stats;
    let mut entry = Entry::new(Operation::Backup)
        .snapshots([outcome.id])
        .count("files", s.files)
        .count("bytes", s.bytes)
        .count("bytes_new", s.bytes_new)
        .count("bytes_stored", s.bytes_stored)
        .count("unreadable", s.unreadable)
        .cache_dir(cache_dir);
    if outcome.snapshot.partial {
        entry = entry.detail("partial: some files could not be read");
    }
    entry.record(repo).await;
}

/// `part`: only a path within the snapshot was restored (which one is not recorded).
pub(super) async fn restored(repo: &Repository, snapshot: ObjectId, summary: &RestoreSummary, part: bool) {
    let mut entry = Entry::new(Operation::Restore)
        .snapshots([snapshot])
        .count("files", summary.files)
        .count("dirs", summary.dirs)
        .count("bytes", summary.bytes)
        .count("damaged", summary.damaged.len() as u64);
    if part {
        entry = entry.detail("part of the snapshot");
    }
    entry.record(repo).await;
}

pub(super) async fn dumped(repo: &Repository, snapshot: ObjectId, bytes: u64) {
    Entry::new(Operation::Dump).snapshots([snapshot]).count("files", 1).count("bytes", bytes).record(repo).await;
}

pub(super) async fn verified(repo: &Repository, report: &VerifyReport, read_data: Option<f64>, cache_dir: PathBuf) {
    let mut entry = Entry::new(Operation::Verify)
        .count("snapshots", report.snapshots as u64)
        .count("index_segments", report.index_segments as u64)
        .count("packs", report.packs as u64)
        .count("packs_read", report.packs_read as u64)
        .count("blobs_decrypted", report.blobs_decrypted)
        .count("damaged", report.damage.len() as u64)
        .count("broken_snapshots", report.broken_snapshots.len() as u64)
        .cache_dir(cache_dir);
    if let Some(p) = read_data {
        entry = entry.detail(format!("read-data {p}%"));
    }
    entry.record(repo).await;
}

pub(super) async fn forgot(repo: &Repository, plan: &ForgetPlan, deleted: usize, policy: &RetentionPolicy) {
    let kept = plan.decisions.len() - plan.forgotten().count() + plan.unreadable.len();
    Entry::new(Operation::Forget)
        .snapshots(plan.forgotten().map(|(d, _)| d.id))
        .count("forgotten", deleted as u64)
        .count("kept", kept as u64)
        .detail(format!("policy {}", serde_json::to_string(policy).expect("a policy serializes")))
        .record(repo)
        .await;
}
