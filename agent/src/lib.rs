//! arka's agent: the backup engine, storage targets and the command-line interface.
//!
//! Layers, with dependencies flowing one way: `store` (objects in any backend) →
//! `repo` (keys, config, index, snapshots) → engine (`backup`, `restore`) → `cli`.

pub mod audit;
pub mod backup;
pub mod blob;
pub mod chunker;
pub mod cli;
pub mod content;
pub mod daemon;
pub mod erase;
pub mod error;
pub mod forget;
pub mod index;
pub mod keys;
pub mod local_state;
pub mod packer;
pub mod platform;
pub mod progress;
pub mod prune;
pub mod reach;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod snapshots;
pub mod store;
pub mod sync;
pub mod verify;

pub use error::{Error, Result};
pub use repo::Repository;
pub use store::Store;
