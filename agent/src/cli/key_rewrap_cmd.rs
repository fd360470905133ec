//! `arka key rewrap`: re-encrypt what removed holders could still read, then drop the old
//! reader keys (docs/OPERATIONS.md, "Removing a holder for good").

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::output::{human_bytes, rfc3339, Output};
use super::prune_cmd::parse_grace;
use super::{reading_session, CacheArg, IdentityArg, LimitArgs, RepoArg};
use crate::engine::keys::rewrap::{rewrap, RewrapOptions, RewrapReport};
use crate::error::Result;

#[derive(Args)]
pub(super) struct RewrapArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// How long the old packs stay for restores running now before `arka prune` deletes
    /// them (90s, 30min, 2h, 1d). `0` deletes them in this run.
    #[arg(long, default_value = "1d", value_parser = parse_grace)]
    grace: Duration,
    /// Report what would be re-encrypted; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cache: CacheArg,
    #[command(flatten)]
    limits: LimitArgs,
}

pub(super) async fn run(a: RewrapArgs, out: &Output) -> Result<ExitCode> {
    let session = reading_session(&a.repo, &a.identity, &a.cache, &a.limits.limits()).await?;
    crate::platform::shutdown::cancel_on_shutdown(session.cancel_token().clone());
    let opts = RewrapOptions { grace: a.grace, dry_run: a.dry_run };
    let progress = out.progress_bar(session.progress(), "rewrapping packs");
    let report = rewrap(session.repo().clone(), &opts, session.progress()).await;
    drop(progress);
    let report = report?;
    if !a.dry_run {
        session.key_changed(audit_detail(&report)).await;
    }
    if out.json {
        say!("{}", serde_json::to_string(&report).expect("report serializes"));
    } else {
        print_report(&report);
    }
    Ok(if report.partly_done() { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

/// Counts only: the audit trail never names files or packs.
fn audit_detail(r: &RewrapReport) -> String {
    let mut detail = format!(
        "rewrap: {} packs re-encrypted, {} left, {} waiting for prune",
        r.packs_rewrapped,
        r.packs_left.len(),
        r.packs_waiting
    );
    if r.old_keys_retired {
        detail.push_str("; older reader keys retired");
    }
    detail
}

fn print_report(r: &RewrapReport) {
    if r.first_keyring {
        say!("The repository had no keyring: it has one now, with a reader key new packs are sealed to.");
    }
    if r.dry_run {
        say!(
            "{} packs ({}) would be re-encrypted; {} wait for prune to delete them; {} cannot be read.",
            r.packs_found,
            human_bytes(r.bytes_found),
            r.packs_waiting,
            r.packs_left.len()
        );
        return;
    }
    say!(
        "Re-encrypted {} of {} packs ({}) into {} new packs ({}).",
        r.packs_rewrapped,
        r.packs_found,
        human_bytes(r.bytes_rewrapped),
        r.packs_written,
        human_bytes(r.bytes_written)
    );
    if r.packs_deleted > 0 {
        say!("Deleted {} old packs.", r.packs_deleted);
    }
    for (key, why) in &r.packs_left {
        say!("LEFT {key}: {why}");
    }
    if r.blobs_damaged > 0 {
        say!("{} damaged blobs were recorded; `arka verify` and `arka repair packs` deal with them.", r.blobs_damaged);
    }
    for key in &r.delete_refused {
        say!("NOT DELETED {key}: the storage refused; run with credentials that may delete (a maintain token)");
    }
    print_next_step(r);
}

fn print_next_step(r: &RewrapReport) {
    if r.complete() {
        say!(
            "Done: every pack is sealed to the current reader key, and the older reader keys are gone. Removed \
             holders cannot read any backup stored here (`arka key list` shows it)."
        );
    } else if !r.packs_left.is_empty() {
        say!(
            "The older reader keys are kept, since the packs above still need them. Deal with them, then run \
             `arka key rewrap` again."
        );
    } else if r.packs_waiting > 0 {
        let when = r.delete_after_ns.map(rfc3339).unwrap_or_else(|| "its grace period".into());
        say!(
            "{} old packs wait for prune: run `arka prune` after {when}, then `arka key rewrap` again to drop the \
             older reader keys. Until then removed holders can still read them.",
            r.packs_waiting
        );
    }
}
