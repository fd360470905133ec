//! `arka repair …`: put a damaged repository back into a state every command can use,
//! without a person editing objects by hand. Each repair has a dry run that writes nothing,
//! writes only new objects (config, index segments, packs, snapshots) before it deletes
//! anything, and deletes only what the new objects make redundant, so a repair killed
//! half-way leaves the repository as it found it or better. `Session` records each in the
//! audit trail as a `repair` whose detail says what was repaired.

pub mod config;
pub mod index;
pub mod packs;
pub mod snapshots;

pub use config::{ConfigRepair, ConfigState};

#[cfg(test)]
mod tests;
