//! `arka forget`: remove the snapshots a retention policy does not keep, optionally prune.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::output::{rfc3339, Output};
use super::{agent_session, prune_cmd, CacheArg, RepoArg};
use crate::engine::forget::ForgetPlan;
use crate::engine::prune::{PruneOptions, PruneReport};
use crate::engine::retention::{Keep, RetentionPolicy};
use crate::error::Result;

#[derive(Args)]
pub(super) struct ForgetArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long, env = "ARKA_AGENT_KEY")]
    agent_key: PathBuf,
    /// Keep the N newest snapshots of each source.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep every snapshot within this time of now (48h, 7d, 6m, 2y).
    #[arg(long, value_parser = crate::engine::retention::parse_duration)]
    keep_within: Option<i64>,
    /// Newest snapshot of each hour: a count (24) or a time span (7d).
    #[arg(long)]
    keep_hourly: Option<Keep>,
    #[arg(long)]
    keep_daily: Option<Keep>,
    #[arg(long)]
    keep_weekly: Option<Keep>,
    #[arg(long)]
    keep_monthly: Option<Keep>,
    #[arg(long)]
    keep_yearly: Option<Keep>,
    /// Show what would be kept and why, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Then prune with its defaults (1 day grace period, repack above 10% unused).
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    cache: CacheArg,
}

impl ForgetArgs {
    /// The policy the flags give, or `None` when no `--keep-*` was given.
    fn policy(&self) -> Option<RetentionPolicy> {
        let policy = RetentionPolicy {
            last: self.keep_last,
            within: self.keep_within,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
        };
        (!policy.is_empty()).then_some(policy)
    }
}

pub(super) async fn forget(a: ForgetArgs, out: &Output) -> Result<ExitCode> {
    let given = a.policy();
    let policy = given.clone().unwrap_or_else(RetentionPolicy::clinic_default);
    let session = agent_session(&a.repo, &a.agent_key, &a.cache).await?;
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let (plan, deleted) = session.forget(&policy, now, a.dry_run).await?;
    let pruned = match a.prune && !a.dry_run {
        true => Some(session.prune(&PruneOptions::default()).await?),
        false => None,
    };
    if out.json {
        print_json(&plan, &policy, deleted, a.dry_run, &pruned);
        return Ok(ExitCode::SUCCESS);
    }
    if given.is_none() {
        say!("no --keep-* given: using the clinic default (all of 48 h, hourly 7 d, daily 6 months, monthly 2 years, yearly 10 years)");
    }
    print_plan(&plan, deleted, a.dry_run);
    if let Some(report) = &pruned {
        prune_cmd::print_report(report, false);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(
    plan: &ForgetPlan,
    policy: &RetentionPolicy,
    deleted: usize,
    dry_run: bool,
    pruned: &Option<PruneReport>,
) {
    let decisions: Vec<_> = plan
        .decisions
        .iter()
        .map(|(d, s)| {
            serde_json::json!({
                "id": d.id.to_hex(), "time": rfc3339(s.time_ns), "effective_time": rfc3339(d.time_ns),
                "group": d.group, "keep": d.keep(), "reasons": d.reasons,
            })
        })
        .collect();
    let unreadable: Vec<_> =
        plan.unreadable.iter().map(|(id, e)| serde_json::json!({"id": id.to_hex(), "error": e})).collect();
    say!(
        "{}",
        serde_json::json!({ "policy": policy, "dry_run": dry_run, "deleted": deleted, "decisions": decisions, "unreadable": unreadable, "prune": pruned })
    );
}

fn print_plan(plan: &ForgetPlan, deleted: usize, dry_run: bool) {
    let mut group = None;
    for (d, s) in &plan.decisions {
        if group != Some(&d.group) {
            say!("{}:", d.group);
            group = Some(&d.group);
        }
        let verdict = if d.keep() { format!("keep    ({})", d.reasons.join(", ")) } else { "forget".to_string() };
        say!("  {}  {}  {}", d.id.short(), rfc3339(s.time_ns), verdict);
    }
    for (id, e) in &plan.unreadable {
        say!("  {}  kept: cannot be read ({e})", id.short());
    }
    let forgotten = plan.forgotten().count();
    if dry_run {
        say!("dry run: would forget {forgotten} of {} snapshots", plan.decisions.len());
    } else {
        say!("forgot {deleted} of {} snapshots; the data only they used is freed by prune", plan.decisions.len());
    }
}
