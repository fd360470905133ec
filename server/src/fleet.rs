//! What the dashboard shows: every agent's last status report and every repository's
//! storage use. The server keeps the reports in memory and in `data_dir/.server/agents/`
//! so the fleet view survives a restart.

use arka_proto::server::Refusal;
use arka_proto::AgentStatus;

/// Everything `GET /` renders, assembled for one viewer.
#[derive(Clone, Debug)]
pub struct FleetView {
    pub now_ns: i64,
    pub server_version: String,
    /// The viewer's token name.
    pub viewer: String,
    /// One row per agent token the viewer may see, sorted by name.
    pub agents: Vec<AgentRow>,
    /// Repositories the viewer may see, sorted by name.
    pub repos: Vec<RepoUsage>,
    /// Only for admin tokens.
    pub admin: Option<AdminView>,
}

/// An agent is an `append` token; it may never have reported.
#[derive(Clone, Debug)]
pub struct AgentRow {
    pub token_name: String,
    pub repos: Vec<String>,
    /// When the server received the last report.
    pub received_ns: Option<i64>,
    pub status: Option<AgentStatus>,
}

#[derive(Clone, Debug)]
pub struct RepoUsage {
    pub name: String,
    pub bytes: u64,
    pub objects: u64,
    /// The last object written, if the server has seen one since it started.
    pub last_write_ns: Option<i64>,
    /// False until the first scan of the repository's storage has finished.
    pub scanned: bool,
}

#[derive(Clone, Debug)]
pub struct AdminView {
    pub tokens: Vec<TokenRow>,
    /// Refusals since the server started, by reason.
    pub refusal_counts: Vec<(Refusal, u64)>,
    /// The most recent refusals, newest first.
    pub recent_refusals: Vec<RefusalRow>,
}

#[derive(Clone, Debug)]
pub struct TokenRow {
    pub name: String,
    pub role: &'static str,
    pub repos: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct RefusalRow {
    pub at_ns: i64,
    pub reason: Refusal,
    /// The token's name when one was recognised; never the secret.
    pub token: Option<String>,
    pub remote: String,
    pub method: String,
    /// The request path, cut to 200 characters.
    pub path: String,
}
