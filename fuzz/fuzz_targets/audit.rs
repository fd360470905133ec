//! Audit records: raw bytes, and the input as a CBOR plaintext sealed with the right key.
#![no_main]

use arka_fuzz::{sealed_object, AUDIT_LABEL, KEY};
use arka_proto::{audit, AuditRecord, Error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = AuditRecord::decode(&KEY, data) {
        round_trip(&r);
    }

    let sealed = sealed_object(audit::MAGIC, AUDIT_LABEL, data);
    match AuditRecord::decode(&KEY, &sealed) {
        Ok(r) => round_trip(&r),
        Err(Error::Authentication { .. }) => panic!("an audit record sealed with the right key failed authentication"),
        Err(_) => {}
    }
});

/// Whatever a reader accepts is within the limits, and a writer can write it again.
fn round_trip(r: &AuditRecord) {
    r.validate().expect("decode returned a record that breaks the limits");
    let bytes = r.encode(&KEY).expect("a record that decoded encodes again");
    assert_eq!(&AuditRecord::decode(&KEY, &bytes).unwrap(), r);
}
