//! Prune plans: raw bytes, and the input as a CBOR plaintext sealed with the right key.
//! A plan names what prune deletes, so a decoder that accepted garbage would be costly.
#![no_main]

use arka_fuzz::{sealed_object, KEY, PLAN_LABEL};
use arka_proto::{plan, Error, PrunePlan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = PrunePlan::decode(&KEY, data) {
        round_trip(&p);
    }

    let sealed = sealed_object(plan::MAGIC, PLAN_LABEL, data);
    match PrunePlan::decode(&KEY, &sealed) {
        Ok(p) => round_trip(&p),
        Err(Error::Authentication { .. }) => panic!("a plan sealed with the right key failed authentication"),
        Err(_) => {}
    }
});

fn round_trip(p: &PrunePlan) {
    assert!(p.packs.len() + p.index.len() <= plan::MAX_PLAN_OBJECTS);
    assert_eq!(&PrunePlan::decode(&KEY, &p.encode(&KEY)).unwrap(), p);
}
