//! arka's agent: the backup engine, storage targets, the agent service and the CLI.
//!
//! Layers, each a folder; a layer imports only the layers listed before it:
//! - `error`, `platform`: error types and OS facts (host, user, file metadata), and sizes
//!   as people write them.
//! - `store`: objects in any backend (local disk, S3, arka-server).
//! - `repo`: a repository opened with a key and its objects (index, packs, blobs, keys,
//!   local state, snapshot selection).
//! - `engine`: the operations (backup, restore, verify, forget, prune, sync, erase) and
//!   the audit trail.
//! - `service`: the agent service (config, schedules, watcher, runner, status page,
//!   notifications, Windows service).
//! - `cli`: the `arka` command, one file per command group.

pub mod cli;
pub mod engine;
pub mod error;
pub mod platform;
pub mod repo;
pub mod service;
pub mod store;

pub use error::{Error, Result};
pub use repo::Repository;
pub use store::Store;
