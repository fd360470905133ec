//! End-to-end suite of the foundation: the real `arka` binary, run as a process against
//! throwaway repositories. Exit codes (0 ok, 1 error, 2 usage, 3 partial) and stderr
//! messages are part of what is tested.
//!
//! Run with `cargo test -p arka-tests --release` (a 4.5 GiB sparse file is backed up).
//! The S3 modules (`conformance`, `s3`, `cluster`) start Garage on loopback themselves; the
//! `garage` binary must be installed (`scripts/install-test-deps.sh` does it).
#![cfg(unix)]

mod agent;
mod audit;
mod awkward;
mod changing;
mod cluster;
mod conformance;
mod damage_matrix;
mod dedup;
mod disaster;
mod doc_examples;
mod dumps;
mod erase;
mod errors;
mod excludes;
mod failover;
mod forget;
mod healing;
mod incremental;
mod key_holders;
mod key_rewrap;
mod key_rotation;
mod limits;
mod paper_key;
mod plants;
mod prune;
mod repair;
mod repair_config;
mod roundtrip;
mod s3;
mod selection;
mod server;
mod server_client;
mod slow_clients;
mod stream;
mod unreadable;
mod verify;
mod write_only;
