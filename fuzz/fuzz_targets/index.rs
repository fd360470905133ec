//! Index segments: raw bytes, and the input as a plaintext sealed with the right key.
#![no_main]

use arka_fuzz::{raw_and_sealed, INDEX_LABEL, KEY};
use arka_proto::{crypto, index, IndexSegment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sealed = raw_and_sealed(data, index::MAGIC, INDEX_LABEL, |b| IndexSegment::decode(&KEY, b), round_trip);
    if let Some(plain) = sealed {
        // The plaintext layout is canonical: anything accepted re-encodes to itself.
        assert_eq!(plain, data, "accepted a non-canonical index segment");
    }
});

/// Re-encodes, decodes again and returns the re-encoded plaintext.
fn round_trip(seg: &IndexSegment) -> Vec<u8> {
    for p in &seg.packs {
        assert!(p.pack_len <= arka_proto::pack::MAX_PACK_LEN);
        assert!(p.blobs.iter().all(|b| b.end() <= p.pack_len));
    }
    let bytes = seg.encode(&KEY);
    assert_eq!(&IndexSegment::decode(&KEY, &bytes).unwrap(), seg);
    crypto::open_meta(&KEY, "arka index segment v1", &bytes[arka_proto::codec::FRAME_LEN..]).unwrap()
}
