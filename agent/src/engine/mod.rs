//! The engine layer: the operations on a repository (backup, restore, verify, retention,
//! prune, sync, erase, repair) and the audit trail that records them. It builds on `repo` and
//! `store`; the CLI and the service call it and nothing below it decides policy.

pub mod audit;
pub mod backup;
pub mod chunker;
pub mod erase;
pub mod forget;
pub mod history;
pub mod keys;
pub mod progress;
pub mod prune;
pub mod reach;
mod records;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod session;
pub mod source_groups;
pub mod sync;
pub mod verify;

pub use audit::Actor;
pub use session::{BackupRequest, Session};
