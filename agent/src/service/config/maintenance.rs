//! `[maintenance]`: when forget, prune and verify run, and the retention rules.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Validator, DEFAULT_PRUNE_GRACE, DEFAULT_VERIFY_PERCENT};
use crate::engine::prune::SAFE_GRACE;
use crate::engine::retention::{parse_duration as parse_retention, Keep, RetentionPolicy};
use crate::platform::units::parse_span;
use crate::service::schedule::Schedule;

#[derive(Clone, Debug)]
pub struct Maintenance {
    /// Each job runs only when it has a schedule.
    pub forget: Option<Schedule>,
    pub retention: RetentionPolicy,
    pub prune: Option<Schedule>,
    pub prune_grace: Duration,
    pub verify: Option<Schedule>,
    /// Percent of the packs each verify reads, rotating through the repository.
    pub verify_percent: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaintenance {
    forget: Option<Spanned<String>>,
    keep_last: Option<Spanned<toml::Value>>,
    keep_within: Option<Spanned<toml::Value>>,
    keep_hourly: Option<Spanned<toml::Value>>,
    keep_daily: Option<Spanned<toml::Value>>,
    keep_weekly: Option<Spanned<toml::Value>>,
    keep_monthly: Option<Spanned<toml::Value>>,
    keep_yearly: Option<Spanned<toml::Value>>,
    prune: Option<Spanned<String>>,
    prune_grace: Option<Spanned<String>>,
    verify: Option<Spanned<String>>,
    verify_percent: Option<Spanned<i64>>,
}

impl Validator<'_> {
    pub(super) fn maintenance(&mut self, raw: Option<&RawMaintenance>) -> Option<Maintenance> {
        let Some(r) = raw else {
            return Some(Maintenance {
                forget: None,
                retention: RetentionPolicy::clinic_default(),
                prune: None,
                prune_grace: DEFAULT_PRUNE_GRACE,
                verify: None,
                verify_percent: DEFAULT_VERIFY_PERCENT,
            });
        };
        let mut schedule = |key: &str, s: &Option<Spanned<String>>| match s {
            Some(s) => self.check(s, |s| s.parse::<Schedule>().map_err(|e| format!("{key}: {e}"))).map(Some),
            None => Some(None),
        };
        let forget = schedule("forget", &r.forget);
        let prune = schedule("prune", &r.prune);
        let verify = schedule("verify", &r.verify);
        let retention = self.retention(r);
        let prune_grace = match &r.prune_grace {
            Some(g) => self.check(g, |g| parse_span(g).map_err(|e| format!("prune_grace: {e}")).and_then(grace)),
            None => Some(DEFAULT_PRUNE_GRACE),
        };
        let verify_percent = match &r.verify_percent {
            Some(p) => self.check(p, |&p| {
                u8::try_from(p).ok().filter(|p| (1..=100).contains(p)).ok_or_else(|| {
                    format!("verify_percent = {p}: use 1 to 100 (the share of the data each verify reads)")
                })
            }),
            None => Some(DEFAULT_VERIFY_PERCENT),
        };
        Some(Maintenance {
            forget: forget?,
            retention: retention?,
            prune: prune?,
            prune_grace: prune_grace?,
            verify: verify?,
            verify_percent: verify_percent?,
        })
    }

    /// The `keep_*` keys, if any is set, are the whole policy; none set means the clinic
    /// default.
    fn retention(&mut self, r: &RawMaintenance) -> Option<RetentionPolicy> {
        let mut policy = RetentionPolicy::default();
        let mut ok = true;
        if let Some(v) = &r.keep_last {
            ok &= self.check(v, |v| count(v, "keep_last")).map(|n| policy.last = Some(n)).is_some();
        }
        if let Some(v) = &r.keep_within {
            let within = self.check(v, |v| match v {
                toml::Value::String(s) => parse_retention(s).map_err(|e| format!("keep_within: {e}")),
                _ => Err("keep_within takes a time, e.g. \"48h\" or \"7d\"".into()),
            });
            ok &= within.map(|w| policy.within = Some(w)).is_some();
        }
        let rules = [
            ("keep_hourly", &r.keep_hourly, &mut policy.hourly),
            ("keep_daily", &r.keep_daily, &mut policy.daily),
            ("keep_weekly", &r.keep_weekly, &mut policy.weekly),
            ("keep_monthly", &r.keep_monthly, &mut policy.monthly),
            ("keep_yearly", &r.keep_yearly, &mut policy.yearly),
        ];
        for (key, value, slot) in rules {
            if let Some(v) = value {
                let keep = self.check(v, |v| match v {
                    toml::Value::String(s) => s.parse::<Keep>().map_err(|e| format!("{key}: {e}")),
                    _ => count(v, key).map(Keep::Count),
                });
                ok &= keep.map(|k| *slot = Some(k)).is_some();
            }
        }
        if policy.is_empty() && ok {
            policy = RetentionPolicy::clinic_default();
        }
        ok.then_some(policy)
    }
}

/// The longest prune grace period: longer only delays freeing space for nothing.
pub const MAX_PRUNE_GRACE: Duration = Duration::from_secs(90 * 86_400);

/// A prune grace period the agent may use. Below [`SAFE_GRACE`] a backup running while
/// prune runs (this agent's, or another machine's writing to the same repository) can
/// lose packs it uploaded but has not indexed yet, which look like an interrupted
/// backup's leftovers; the agent always has backups that may run.
fn grace(g: Duration) -> Result<Duration, String> {
    if g < SAFE_GRACE {
        return Err(format!(
            "prune_grace = {}: at least {} while backups can run: packs a running backup (this agent's or \
             another machine's) has uploaded but not yet indexed look like an interrupted backup's leftovers, \
             and a shorter grace deletes them; keep the default 1d (use `arka prune --grace 0` by hand only with \
             every backup stopped)",
            super::human(g),
            super::human(SAFE_GRACE)
        ));
    }
    if g > MAX_PRUNE_GRACE {
        return Err(format!("prune_grace = {}: at most {}", super::human(g), super::human(MAX_PRUNE_GRACE)));
    }
    Ok(g)
}

fn count(v: &toml::Value, key: &str) -> Result<u32, String> {
    match v {
        toml::Value::Integer(n) => u32::try_from(*n).map_err(|_| format!("{key} = {n}: use a count from 0")),
        _ => Err(format!("{key} takes a count (e.g. 24) or a time (e.g. \"7d\")")),
    }
}
