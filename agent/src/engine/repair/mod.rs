//! `arka repair …`: put a damaged repository back into a state every command can use,
//! without a person editing objects by hand. Each repair writes only new objects (index
//! segments, packs, snapshots) before it deletes anything, and only what the new objects
//! make redundant, so a repair killed half-way leaves the repository as it found it or
//! better.

pub mod index;
pub mod packs;
pub mod snapshots;
