//! End-to-end suite of the foundation: the real `arka` binary, run as a process against
//! throwaway repositories. Exit codes (0 ok, 1 error, 2 usage, 3 partial) and stderr
//! messages are part of what is tested.
//!
//! Run with `cargo test -p arka-tests --release` (a 4.5 GiB sparse file is backed up).
#![cfg(unix)]

mod awkward;
mod dedup;
mod errors;
mod incremental;
mod roundtrip;
mod selection;
mod stream;
mod unreadable;
mod write_only;
