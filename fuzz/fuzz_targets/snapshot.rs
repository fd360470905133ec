//! Snapshots: raw bytes, and the input as a CBOR plaintext sealed with the right key.
#![no_main]

use arka_fuzz::{sealed_object, KEY, SNAPSHOT_LABEL};
use arka_proto::{snapshot, Error, Snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Snapshot::decode(&KEY, data) {
        round_trip(&s);
    }

    let sealed = sealed_object(snapshot::MAGIC, SNAPSHOT_LABEL, data);
    match Snapshot::decode(&KEY, &sealed) {
        Ok(s) => round_trip(&s),
        Err(Error::Authentication { .. }) => panic!("a snapshot sealed with the right key failed authentication"),
        Err(_) => {}
    }
});

fn round_trip(s: &Snapshot) {
    assert_eq!(&Snapshot::decode(&KEY, &s.encode(&KEY)).unwrap(), s);
}
