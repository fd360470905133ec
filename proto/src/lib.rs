//! arka's repository format: object kinds, IDs, codecs and crypto envelopes.
//!
//! This crate is pure: it turns bytes into typed values and back and never touches a
//! filesystem, a network or an async runtime. Everything read from storage is untrusted,
//! so every decoder checks lengths and offsets and returns an [`Error`], never panics.
//! The byte layouts are documented in `docs/FORMAT.md`.
//!
//! Modules are layered: each uses only those in the layers before it, never one after
//! (`tests/tests/layout.rs` checks there is no import circle).
//!
//! 1. `error`: the one error type.
//! 2. `codec`: bounds-checked reader, magic/version frames ([`FORMAT_VERSION`]), CBOR.
//! 3. `id`: 32-byte IDs and [`BlobKind`] (a blob's ID key and seal depend on its kind).
//! 4. `keys`: the agent key and what it derives (blob IDs, MACs, the gear table).
//! 5. `crypto`: envelopes: age to the recipients, blobs under a pack's data key,
//!    metadata and sealed CBOR objects under the metadata key. Beside it, `paper`: a
//!    recovery identity's secret as lines to print and type back (uses nothing else here);
//!    `keyring`: the reader keys and recipients sealed to the recipients.
//! 6. Stored objects: `pack`, then `index` and `config` (which use pack limits); `tree`,
//!    `snapshot`, `plan`, `damage`, `audit`.
//! 7. Names and messages around the objects: `layout` (storage keys), then `server` (the
//!    HTTP API's paths and pages); `status` (an agent's status report).

pub mod audit;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod damage;
pub mod error;
pub mod html;
pub mod id;
pub mod index;
pub mod keyring;
pub mod keys;
pub mod layout;
pub mod pack;
pub mod paper;
pub mod plan;
pub mod server;
pub mod snapshot;
pub mod status;
pub mod tree;

pub use audit::{AuditRecord, Operation};
pub use codec::FORMAT_VERSION;
pub use config::{ChunkerParams, RepoConfig};
pub use crypto::{DataKey, Recipients, RecoveryIdentities};
pub use damage::DamageReport;
pub use error::Error;
pub use id::{BlobId, BlobKind, ObjectId, RepoId};
pub use index::{IndexSegment, PackIndex};
pub use keyring::Keyring;
pub use keys::{AgentKey, OpenedBy};
pub use pack::{Compression, PackBlobEntry};
pub use plan::PrunePlan;
pub use snapshot::{Snapshot, SnapshotStats};
pub use status::{
    AgentStatus, MaintenanceStatus, RunOutcome, SourceKind, SourceState, SourceStatus, TargetRole, TargetStatus,
};
pub use tree::{ContentList, Node, NodeKind, Tree, TreeRefs};
