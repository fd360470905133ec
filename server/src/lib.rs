//! arka-server: the append-only repository server for the NAS (DESIGN §7). It stores
//! objects agents send, never overwrites them, deletes only for a `maintain` or `admin`
//! token, and shows the fleet's health. It never holds a key: everything it stores is
//! sealed by the agents.

pub mod agents;
pub mod api;
pub mod auth;
pub mod caller;
pub mod capability;
pub mod config;
pub mod dashboard;
pub mod fleet;
pub mod metrics;
pub mod serve;
pub mod state;
pub mod storage;
pub mod uploads;
pub mod view;
pub mod write_stall;

use std::sync::Arc;

use config::{Backend, Config};
use state::AppState;

/// Loads tokens, opens storage and the saved agent reports, and clears what a crash
/// left behind. Everything that can be wrong with the config fails here, before listening.
pub fn build_state(config: Config) -> Result<Arc<AppState>, String> {
    let tokens = auth::Tokens::load(&config.tokens)?;
    let storage = storage::Storage::open(&config)?;
    if config.backend == Backend::Local {
        let removed = storage::remove_stale_uploads(&config.data_dir)
            .map_err(|e| format!("data_dir {}: {e}", config.data_dir.display()))?;
        if removed > 0 {
            tracing::info!(removed, "removed the temporary files of interrupted uploads");
        }
    }
    let state_dir = config.data_dir.join(".server");
    let agents = agents::AgentReports::load(state_dir.join("agents"))
        .map_err(|e| format!("data_dir {}: {e}", state_dir.display()))?;
    let uploads = uploads::UploadSlots::new(&config.limits, config.tokens.iter().map(|t| t.name.as_str()));
    Ok(Arc::new(AppState { config, tokens, storage, agents, metrics: Default::default(), uploads }))
}

/// Counts every repository's storage use in the background, for the dashboard.
pub fn spawn_usage_scan(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut repos: Vec<String> = state.storage.repos().await.unwrap_or_default();
        for t in state.tokens.all() {
            repos.extend(t.repos.names().into_iter().filter(|r| r != "*"));
        }
        repos.retain(|r| arka_proto::server::valid_repo_name(r));
        repos.sort();
        repos.dedup();
        for repo in repos {
            if let Err(e) = state.storage.scan(&repo).await {
                tracing::warn!(repo, "cannot count the repository's storage: {e}");
            }
        }
    });
}
