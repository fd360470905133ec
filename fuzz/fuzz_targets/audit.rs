//! Audit records: raw bytes, and the input as a CBOR plaintext sealed with the right key.
#![no_main]

use arka_fuzz::{raw_and_sealed, AUDIT_LABEL, KEY};
use arka_proto::{audit, AuditRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    raw_and_sealed(data, audit::MAGIC, AUDIT_LABEL, |b| AuditRecord::decode(&KEY, b), round_trip);
});

/// Whatever a reader accepts is within the limits, and a writer can write it again.
fn round_trip(r: &AuditRecord) {
    r.validate().expect("decode returned a record that breaks the limits");
    let bytes = r.encode(&KEY).expect("a record that decoded encodes again");
    assert_eq!(&AuditRecord::decode(&KEY, &bytes).unwrap(), r);
}
