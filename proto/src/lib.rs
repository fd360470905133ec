//! arka's repository format: object kinds, IDs, codecs and crypto envelopes.
//!
//! This crate is pure: it turns bytes into typed values and back and never touches a
//! filesystem, a network or an async runtime. Everything read from storage is untrusted,
//! so every decoder checks lengths and offsets and returns an [`Error`], never panics.
//! The byte layouts are documented in `docs/FORMAT.md`.

pub mod audit;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod error;
pub mod html;
pub mod id;
pub mod index;
pub mod keys;
pub mod layout;
pub mod pack;
pub mod plan;
pub mod server;
pub mod snapshot;
pub mod status;
pub mod tree;

pub use audit::{AuditRecord, Operation};
pub use config::{ChunkerParams, RepoConfig};
pub use crypto::{DataKey, Recipients, RecoveryIdentities};
pub use error::Error;
pub use id::{BlobId, ObjectId, RepoId};
pub use index::{IndexSegment, PackIndex};
pub use keys::AgentKey;
pub use pack::{BlobKind, Compression, PackBlobEntry};
pub use plan::PrunePlan;
pub use snapshot::{Snapshot, SnapshotStats};
pub use status::{
    AgentStatus, MaintenanceStatus, RunOutcome, SourceKind, SourceState, SourceStatus, TargetRole, TargetStatus,
};
pub use tree::{ContentList, Node, NodeKind, Tree, TreeRefs};

/// The repository format version this build writes. Readers accept every version listed
/// in `docs/FORMAT.md` up to this one.
pub const FORMAT_VERSION: u8 = 1;
