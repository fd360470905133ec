//! The repository layer: a repository opened with a key and the objects it is made of.
//! It reads and writes through `store` and knows nothing of operations (those are `engine`).

pub mod blob;
pub mod config;
pub mod content;
pub mod damage;
pub mod index;
mod key_input;
pub mod keyring;
pub mod keys;
pub mod local_state;
pub mod packer;
mod repository;
pub(crate) mod retired;
pub mod snapshots;
pub mod timeline;

pub use repository::*;
