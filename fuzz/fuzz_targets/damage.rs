//! Damage reports: raw bytes, and the input as a CBOR plaintext sealed with the right key.
//! A report steers which copies readers trust, and an append-only token can write one.
#![no_main]

use arka_fuzz::{raw_and_sealed, DAMAGE_LABEL, KEY};
use arka_proto::{damage, DamageReport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    raw_and_sealed(data, damage::MAGIC, DAMAGE_LABEL, |b| DamageReport::decode(&KEY, b), round_trip);
});

fn round_trip(r: &DamageReport) {
    assert!(r.packs.len() + r.blobs.len() <= damage::MAX_REPORT_ENTRIES);
    assert_eq!(&DamageReport::decode(&KEY, &r.encode(&KEY)).unwrap(), r);
}
