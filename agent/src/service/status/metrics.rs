//! `GET /metrics`: the report in the Prometheus text exposition format (version 0.0.4).
//!
//! Each family has its `# HELP` and `# TYPE` lines once, then its samples; label values are
//! escaped (`\`, `"`, newline). Times are Unix seconds, sizes bytes. A value the agent does
//! not know yet (no successful backup) has no sample rather than a misleading 0.

use std::fmt::Write;

use arka_proto::{AgentStatus, SourceState, TargetRole};

const STATES: [(SourceState, &str); 5] = [
    (SourceState::Ok, "ok"),
    (SourceState::Running, "running"),
    (SourceState::Late, "late"),
    (SourceState::Failed, "failed"),
    (SourceState::Never, "never"),
];

/// Content type of [`render`]'s output.
pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Reads one optional per-source value.
type SourceValue = fn(&arka_proto::SourceStatus) -> Option<f64>;

pub(super) fn render(st: &AgentStatus) -> String {
    let mut m = Metrics(String::with_capacity(4096));
    m.family("arka_up", "gauge", "1 while the arka agent answers.");
    m.sample("arka_up", &[], 1.0);
    m.family("arka_healthy", "gauge", "1 when every source is within its RPO, none failed and verify found no damage.");
    m.sample("arka_healthy", &[], bool_value(st.healthy()));
    m.family("arka_start_time_seconds", "gauge", "When the agent started (Unix seconds).");
    m.sample("arka_start_time_seconds", &[], seconds(st.started_ns));

    m.family(
        "arka_source_state",
        "gauge",
        "1 for the state the source is in (ok, running, late, failed, never), else 0.",
    );
    for s in &st.sources {
        for (state, name) in STATES {
            m.sample("arka_source_state", &[("source", &s.name), ("state", name)], bool_value(s.state == state));
        }
    }
    m.family("arka_source_rpo_seconds", "gauge", "The source's recovery point objective.");
    for s in &st.sources {
        m.sample("arka_source_rpo_seconds", &[("source", &s.name)], s.rpo_secs as f64);
    }
    let optional: [(&str, &str, SourceValue); 5] = [
        ("arka_source_last_success_timestamp_seconds", "When the last successful backup ended (Unix seconds).", |s| {
            s.last_success_ns.map(seconds)
        }),
        ("arka_source_next_run_timestamp_seconds", "When the next backup is due (Unix seconds).", |s| {
            s.next_run_ns.map(seconds)
        }),
        ("arka_source_last_duration_seconds", "How long the last run took.", |s| {
            s.last_duration_ms.map(|ms| ms as f64 / 1000.0)
        }),
        ("arka_source_last_bytes", "Bytes covered by the last successful backup.", |s| s.last_bytes.map(|b| b as f64)),
        ("arka_source_last_bytes_new", "Bytes the last successful backup added after deduplication.", |s| {
            s.last_bytes_new.map(|b| b as f64)
        }),
    ];
    for (name, help, value) in optional {
        m.family(name, "gauge", help);
        for s in &st.sources {
            if let Some(v) = value(s) {
                m.sample(name, &[("source", &s.name)], v);
            }
        }
    }

    m.family("arka_target_reachable", "gauge", "1 when the target answered the last attempt to reach it.");
    for t in &st.targets {
        let role = match t.role {
            TargetRole::Primary => "primary",
            TargetRole::Replica => "replica",
        };
        m.sample("arka_target_reachable", &[("target", &t.name), ("role", role)], bool_value(t.reachable));
    }
    m.family("arka_target_backlog_snapshots", "gauge", "Snapshots waiting to be copied to the target.");
    for t in &st.targets {
        m.sample("arka_target_backlog_snapshots", &[("target", &t.name)], t.backlog_snapshots as f64);
    }
    m.family("arka_target_backlog_bytes", "gauge", "Bytes waiting to be copied to the target.");
    for t in &st.targets {
        m.sample("arka_target_backlog_bytes", &[("target", &t.name)], t.backlog_bytes as f64);
    }
    m.family("arka_target_last_sync_timestamp_seconds", "gauge", "When the last copy to the target ended.");
    for t in &st.targets {
        if let Some(ns) = t.last_sync_ns {
            m.sample("arka_target_last_sync_timestamp_seconds", &[("target", &t.name)], seconds(ns));
        }
    }
    maintenance(&mut m, &st.maintenance);
    m.0
}

/// What the last forget and verify found.
fn maintenance(m: &mut Metrics, maint: &arka_proto::MaintenanceStatus) {
    m.family("arka_verify_damage", "gauge", "Damaged objects the last verify found.");
    m.sample("arka_verify_damage", &[], maint.verify_damage as f64);
    m.family("arka_snapshots_flagged", "gauge", "Suspicious snapshots the last forget or verify flagged.");
    m.sample("arka_snapshots_flagged", &[], maint.flagged_snapshots.len() as f64);
    m.family("arka_snapshots_vanished", "gauge", "Snapshots the last verify found deleted outside arka.");
    m.sample("arka_snapshots_vanished", &[], maint.vanished_snapshots as f64);
    m.family("arka_verify_last_timestamp_seconds", "gauge", "When the last verify ended (Unix seconds).");
    if let Some(ns) = maint.last_verify_ns {
        m.sample("arka_verify_last_timestamp_seconds", &[], seconds(ns));
    }
}

struct Metrics(String);

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', r#"\""#).replace('\n', r"\n")
}

fn seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
    }

    #[test]
    fn whole_seconds_print_without_a_fraction() {
        let mut m = Metrics(String::new());
        m.sample("x", &[("source", "db")], seconds(1_700_000_000_000_000_000));
        m.sample("y", &[], seconds(1_700_000_000_500_000_000));
        assert_eq!(m.0, "x{source=\"db\"} 1700000000\ny 1700000000.5\n");
    }
}
