//! The agent service (`arka agent run --config FILE`): scheduled and watched sources,
//! replication to secondary targets, maintenance, the status endpoint and notifications.

pub mod config;
pub mod monitor;
pub mod notify;
pub mod preflight;
pub mod recipients_pin;
pub mod runner;
pub mod schedule;
pub mod status;
pub mod supervisor;
pub mod watch;
pub mod windows_service;
