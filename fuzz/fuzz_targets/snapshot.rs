//! Snapshots: raw bytes, and the input as a CBOR plaintext sealed with the right key.
#![no_main]

use arka_fuzz::{raw_and_sealed, KEY, SNAPSHOT_LABEL};
use arka_proto::{snapshot, Snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    raw_and_sealed(data, snapshot::MAGIC, SNAPSHOT_LABEL, |b| Snapshot::decode(&KEY, b), round_trip);
});

fn round_trip(s: &Snapshot) {
    assert_eq!(&Snapshot::decode(&KEY, &s.encode(&KEY)).unwrap(), s);
}
