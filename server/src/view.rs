//! Assembles what one viewer may see: the fleet for the dashboard, the gauges for
//! `/metrics`. A token sees the agents and repositories that share a repository with it;
//! an admin sees everything and the admin views.

use std::collections::BTreeSet;

use crate::auth::Token;
use crate::capability::{allows, Action};
use crate::config::Role;
use crate::fleet::{AdminView, AgentRow, FleetView, RepoUsage, TokenRow};
use crate::metrics::Gauges;
use crate::state::AppState;
use crate::storage::now_ns;

fn agents_for(state: &AppState, viewer: &Token) -> Vec<AgentRow> {
    let mut rows: Vec<AgentRow> = state
        .tokens
        .all()
        .iter()
        // An agent is what an append token is for; maintain and admin tokens are people's.
        .filter(|t| t.role == Role::Append)
        .filter(|t| allows(viewer.role, Action::ViewAdmin) || t.repos.names().iter().any(|r| viewer.reaches(r)))
        .map(|t| {
            let report = state.agents.get(&t.name);
            AgentRow {
                token_name: t.name.clone(),
                repos: t.repos.names(),
                received_ns: report.as_ref().map(|r| r.received_ns),
                status: report.map(|r| r.status),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.token_name.cmp(&b.token_name));
    rows
}

fn repos_for(state: &AppState, viewer: &Token) -> Vec<RepoUsage> {
    let usage = state.storage.usage();
    let mut names: BTreeSet<String> = usage.keys().cloned().collect();
    for t in state.tokens.all() {
        names.extend(t.repos.names().into_iter().filter(|r| r != "*"));
    }
    names
        .into_iter()
        .filter(|r| viewer.reaches(r))
        .map(|name| {
            let u = usage.get(&name).copied().unwrap_or_default();
            RepoUsage { name, bytes: u.bytes, objects: u.objects, last_write_ns: u.last_write_ns, scanned: u.scanned }
        })
        .collect()
}

pub fn fleet_view(state: &AppState, viewer: &Token) -> FleetView {
    let admin = allows(viewer.role, Action::ViewAdmin).then(|| AdminView {
        tokens: state
            .tokens
            .all()
            .iter()
            .map(|t| TokenRow { name: t.name.clone(), role: t.role.name(), repos: t.repos.names() })
            .collect(),
        refusal_counts: state.metrics.refusal_counts(),
        recent_refusals: state.metrics.recent_refusals(),
    });
    FleetView {
        now_ns: now_ns(),
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        viewer: viewer.name.clone(),
        agents: agents_for(state, viewer),
        repos: repos_for(state, viewer),
        admin,
    }
}

pub fn gauges(state: &AppState, viewer: &Token) -> Gauges {
    let now = now_ns();
    Gauges {
        repos: repos_for(state, viewer).into_iter().map(|r| (r.name, r.bytes, r.objects)).collect(),
        agents: agents_for(state, viewer)
            .into_iter()
            .map(|a| {
                let age = a.received_ns.map(|t| (now - t).max(0) as f64 / 1e9);
                (a.token_name.clone(), age, crate::dashboard::assess(&a, now).state)
            })
            .collect(),
        uploads: (state.uploads.receiving(), state.uploads.waiting()),
    }
}
