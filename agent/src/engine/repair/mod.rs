//! Repairs: putting back what damage took, from what the repository still holds. Each one
//! has a dry run that writes nothing, and `Session` records each in the audit trail as a
//! `repair` whose detail says what was repaired.

pub mod config;

pub use config::{ConfigRepair, ConfigState};

#[cfg(test)]
mod tests;
