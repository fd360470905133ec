//! `arka audit [verify]`: list the repository's audit records, or check their hash chain
//! (exit 0 intact, 1 with the problems named). What the records say is `engine::records`.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::output::{rfc3339, Output};
use super::{session, KeyedRepo};
use crate::engine::audit::{self, AuditLog, ChainReport};
use crate::error::Result;
use crate::store::Limits;

#[derive(Args)]
pub(super) struct AuditArgs {
    /// `list` (the default) shows the records; `verify` checks the chain.
    #[arg(value_enum, default_value_t = Action::List)]
    action: Action,
    #[command(flatten)]
    repo: KeyedRepo,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Action {
    List,
    Verify,
}

pub(super) async fn run(a: AuditArgs, out: &Output) -> Result<ExitCode> {
    let session = session(&a.repo, &Limits::default()).await?;
    let repo = session.repo();
    match a.action {
        Action::List => {
            let log = audit::load_all(repo).await?;
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
            let (_, report) = audit::verify(repo, session.cache_dir()).await?;
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
