//! Index segments: raw bytes, and the input as a plaintext sealed with the right key.
#![no_main]

use arka_fuzz::{sealed_object, INDEX_LABEL, KEY};
use arka_proto::{crypto, index, Error, IndexSegment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(seg) = IndexSegment::decode(&KEY, data) {
        round_trip(&seg);
    }

    let sealed = sealed_object(index::MAGIC, INDEX_LABEL, data);
    match IndexSegment::decode(&KEY, &sealed) {
        Ok(seg) => {
            let plain = round_trip(&seg);
            // The plaintext layout is canonical: anything accepted re-encodes to itself.
            assert_eq!(plain, data, "accepted a non-canonical index segment");
        }
        Err(Error::Authentication { .. }) => panic!("a segment sealed with the right key failed authentication"),
        Err(_) => {}
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
