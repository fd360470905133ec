//! Prune plans: raw bytes, and the input as a CBOR plaintext sealed with the right key.
//! A plan names what prune deletes, so a decoder that accepted garbage would be costly.
#![no_main]

use arka_fuzz::{raw_and_sealed, KEY, PLAN_LABEL};
use arka_proto::{plan, PrunePlan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    raw_and_sealed(data, plan::MAGIC, PLAN_LABEL, |b| PrunePlan::decode(&KEY, b), round_trip);
});

fn round_trip(p: &PrunePlan) {
    assert!(p.packs.len() + p.index.len() <= plan::MAX_PLAN_OBJECTS);
    assert_eq!(&PrunePlan::decode(&KEY, &p.encode(&KEY)).unwrap(), p);
}
