//! Counters for `/metrics` and the refusal log the dashboard's admin view shows.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use arka_proto::server::Refusal;

use crate::dashboard::AgentState;
use crate::fleet::RefusalRow;

const RECENT_REFUSALS: usize = 50;

#[derive(Default)]
pub struct Metrics {
    refusals: [AtomicU64; Refusal::ALL.len()],
    recent: Mutex<VecDeque<RefusalRow>>,
    pub requests: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub objects_created: AtomicU64,
    pub objects_deleted: AtomicU64,
    pub status_reports: AtomicU64,
    pub storage_errors: AtomicU64,
    /// Clients cut for being slow, by [`SLOW_REASONS`].
    slow_cut: [AtomicU64; SLOW_REASONS.len()],
    /// Connections closed at once: their address already held `max_connections_per_address`.
    pub connections_refused: AtomicU64,
}

/// Why a client was cut: a request body that stopped, one slower than the minimum rate, a
/// connection that sent nothing (or not its whole headers) within the idle timeout, and a
/// client that stopped reading its answer.
pub const SLOW_REASONS: [&str; 4] = ["body_stalled", "body_too_slow", "idle", "answer_unread"];

impl Metrics {
    pub fn refused(&self, row: RefusalRow) {
        let i = Refusal::ALL.iter().position(|r| *r == row.reason).expect("every refusal is in ALL");
        self.refusals[i].fetch_add(1, Relaxed);
        let mut recent = self.recent.lock().unwrap();
        if recent.len() == RECENT_REFUSALS {
            recent.pop_back();
        }
        recent.push_front(row);
    }

    pub fn refusal_counts(&self) -> Vec<(Refusal, u64)> {
        Refusal::ALL.iter().zip(&self.refusals).map(|(r, c)| (*r, c.load(Relaxed))).collect()
    }

    pub fn recent_refusals(&self) -> Vec<RefusalRow> {
        self.recent.lock().unwrap().iter().cloned().collect()
    }

    pub fn slow_client_cut(&self, reason: &str) {
        let i = SLOW_REASONS.iter().position(|r| *r == reason).expect("every reason is in SLOW_REASONS");
        self.slow_cut[i].fetch_add(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// What `/metrics` shows beyond the counters.
pub struct Gauges {
    /// (repository, bytes, objects)
    pub repos: Vec<(String, u64, u64)>,
    /// (agent token, seconds since its last report, its state as the dashboard judges it)
    pub agents: Vec<(String, Option<f64>, AgentState)>,
    /// Uploads holding a slot, and waiting for one.
    pub uploads: (u64, u64),
}

/// Prometheus text exposition.
pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter(&mut out, "arka_server_requests_total", "HTTP requests received.", m.requests.load(Relaxed));
    counter(&mut out, "arka_server_received_bytes_total", "Object bytes stored.", m.bytes_received.load(Relaxed));
    counter(&mut out, "arka_server_sent_bytes_total", "Object bytes served.", m.bytes_sent.load(Relaxed));
    counter(&mut out, "arka_server_objects_created_total", "Objects created.", m.objects_created.load(Relaxed));
    counter(&mut out, "arka_server_objects_deleted_total", "Objects deleted.", m.objects_deleted.load(Relaxed));
    counter(&mut out, "arka_server_status_reports_total", "Agent status reports.", m.status_reports.load(Relaxed));
    counter(&mut out, "arka_server_storage_errors_total", "Failed storage operations.", m.storage_errors.load(Relaxed));
    out.push_str(
        "# HELP arka_server_refusals_total Requests refused, by reason.\n# TYPE arka_server_refusals_total counter\n",
    );
    for (r, n) in m.refusal_counts() {
        let _ = writeln!(out, "arka_server_refusals_total{{reason=\"{}\"}} {n}", r.name());
    }
    out.push_str(
        "# HELP arka_server_slow_clients_cut_total Clients cut for being too slow, by reason.\n\
         # TYPE arka_server_slow_clients_cut_total counter\n",
    );
    for (reason, n) in SLOW_REASONS.iter().zip(&m.slow_cut) {
        let _ = writeln!(out, "arka_server_slow_clients_cut_total{{reason=\"{reason}\"}} {}", n.load(Relaxed));
    }
    let refused = m.connections_refused.load(Relaxed);
    let help = "Connections closed at once: their address held max_connections_per_address.";
    counter(&mut out, "arka_server_connections_refused_total", help, refused);
    let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(&mut out, "arka_server_uploads_receiving", "Uploads holding an upload slot.", g.uploads.0);
    gauge(&mut out, "arka_server_uploads_waiting", "Uploads waiting for an upload slot.", g.uploads.1);
    out.push_str("# HELP arka_server_repo_bytes Bytes stored per repository.\n# TYPE arka_server_repo_bytes gauge\n");
    for (repo, bytes, _) in &g.repos {
        let _ = writeln!(out, "arka_server_repo_bytes{{repo=\"{repo}\"}} {bytes}");
    }
    out.push_str("# HELP arka_server_repo_objects Objects per repository.\n# TYPE arka_server_repo_objects gauge\n");
    for (repo, _, objects) in &g.repos {
        let _ = writeln!(out, "arka_server_repo_objects{{repo=\"{repo}\"}} {objects}");
    }
    out.push_str(
        "# HELP arka_server_agent_report_age_seconds Seconds since the agent's last status report.\n\
         # TYPE arka_server_agent_report_age_seconds gauge\n",
    );
    for (agent, age, _) in &g.agents {
        if let Some(age) = age {
            let _ = writeln!(out, "arka_server_agent_report_age_seconds{{agent=\"{agent}\"}} {age:.0}");
        }
    }
    out.push_str(
        "# HELP arka_server_agent_state 1 for the agent's state as the dashboard shows it, 0 for the others.\n\
         # TYPE arka_server_agent_state gauge\n",
    );
    for (agent, _, current) in &g.agents {
        for state in AgentState::ALL {
            let _ = writeln!(
                out,
                "arka_server_agent_state{{agent=\"{agent}\",state=\"{}\"}} {}",
                state.name(),
                u8::from(state == *current)
            );
        }
    }
    out
}
