//! What every request handler shares: the loaded config, the tokens, storage, the agents'
//! reports and the counters. Its own module so the handlers (`api`) and what assembles
//! the views (`view`) both depend on it without depending on each other.

use crate::agents::AgentReports;
use crate::auth::Tokens;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::storage::Storage;
use crate::uploads::UploadSlots;

pub struct AppState {
    pub config: Config,
    pub tokens: Tokens,
    pub storage: Storage,
    pub agents: AgentReports,
    pub metrics: Metrics,
    /// Bounds the uploads buffered in memory at once, in all and per token.
    pub uploads: UploadSlots,
}

/// The peer's address, put on each request by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Remote(pub std::net::SocketAddr);
