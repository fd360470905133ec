//! `arka forget`: remove the snapshots a retention policy does not keep, or the snapshots
//! named by ID; optionally prune.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::output::{rfc3339, Output};
use super::{agent_session, prune_cmd, CacheArg, FilterArgs, RepoArg};
use crate::engine::forget::ForgetPlan;
use crate::engine::prune::{PruneOptions, PruneReport};
use crate::engine::retention::{Keep, RetentionPolicy};
use crate::error::{Error, Result};
use crate::store::Limits;

#[derive(Args)]
pub(super) struct ForgetArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long, env = "ARKA_AGENT_KEY")]
    agent_key: PathBuf,
    /// Forget exactly these snapshots (IDs or unique ID prefixes, as `arka snapshots`
    /// shows them) instead of applying a retention policy.
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Keep the N newest snapshots of each source.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep every snapshot within this time of now (48h, 7d, 6mo, 2y; m is minutes).
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
    /// The policy applies only to these snapshots.
    #[command(flatten)]
    filter: FilterArgs,
    /// Only snapshots of this backed-up path (repeatable; all must be there).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
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
    if !a.ids.is_empty() && given.is_some() {
        return Err(Error::Usage("give snapshot IDs or --keep-* rules, not both".into()));
    }
    let policy = given.clone().unwrap_or_else(RetentionPolicy::clinic_default);
    let session = agent_session(&a.repo, &a.agent_key, &a.cache, &Limits::default()).await?;
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let (plan, deleted) = match a.ids.is_empty() {
        true => session.forget(&policy, &a.filter.filter(&a.paths), now, a.dry_run).await?,
        false => session.forget_named(&a.ids, a.dry_run).await?,
    };
    let pruned = match a.prune && !a.dry_run {
        true => Some(session.prune(&PruneOptions::default()).await?),
        false => None,
    };
    let policy = a.ids.is_empty().then_some(&policy);
    if out.json {
        print_json(&plan, policy, deleted, a.dry_run, &pruned);
        return Ok(ExitCode::SUCCESS);
    }
    if given.is_none() && a.ids.is_empty() {
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
    policy: Option<&RetentionPolicy>,
    deleted: usize,
    dry_run: bool,
    pruned: &Option<PruneReport>,
) {
    let decisions: Vec<_> = plan
        .decisions
        .iter()
        .map(|(d, t)| {
            serde_json::json!({
                "id": d.id.to_hex(), "time": rfc3339(t.snapshot.time_ns), "effective_time": rfc3339(d.time_ns),
                "group": d.group, "keep": d.keep(), "reasons": d.reasons, "suspicion": t.suspicion,
            })
        })
        .collect();
    let unreadable: Vec<_> =
        plan.unreadable.iter().map(|(key, e)| serde_json::json!({"object": key, "error": e})).collect();
    let damaged: Vec<_> = plan.damaged_named.iter().map(|id| id.to_hex()).collect();
    let gone: Vec<_> = plan.gone_named.iter().map(|id| id.to_hex()).collect();
    say!(
        "{}",
        serde_json::json!({
            "policy": policy, "dry_run": dry_run, "deleted": deleted, "decisions": decisions,
            "unreadable": unreadable, "damaged_named": damaged, "gone_named": gone, "prune": pruned,
        })
    );
}

fn print_plan(plan: &ForgetPlan, deleted: usize, dry_run: bool) {
    let mut group = None;
    for (d, t) in &plan.decisions {
        if group != Some(&d.group) {
            say!("{}:", d.group);
            group = Some(&d.group);
        }
        let verdict = if d.keep() { format!("keep    ({})", d.reasons.join(", ")) } else { "forget".to_string() };
        let flag = t.suspicion.as_ref().map(|s| format!("  FLAGGED: {}", s.describe())).unwrap_or_default();
        say!("  {}  {}  {verdict}{flag}", d.id.short(), rfc3339(t.effective_ns));
    }
    for id in &plan.damaged_named {
        say!("  {}  forget  (the object does not open)", id.short());
    }
    for id in &plan.gone_named {
        say!("  {}  already gone from the storage: recorded as forgotten", id.short());
    }
    for (key, e) in &plan.unreadable {
        say!("  {key}  kept: cannot be read ({e})");
    }
    let forgotten = plan.deleted_ids().len();
    let total = plan.decisions.len() + plan.damaged_named.len() + plan.gone_named.len();
    if dry_run {
        say!("dry run: would forget {forgotten} of {total} snapshots");
    } else {
        say!("forgot {deleted} of {total} snapshots; the data only they used is freed by prune");
    }
}
