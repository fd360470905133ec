//! Packs: header and trailer parsing, and the blob table both as raw bytes (almost always
//! rejected by authentication) and as a fuzzer-chosen plaintext sealed with the right key,
//! so counts, entry fields and the blob-area bounds checks are reached.
#![no_main]

use arka_fuzz::{table_plaintext, PackLayout, KEY};
use arka_proto::{pack, Error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Raw bytes, as read from storage.
    let hlen = pack::header_len(data);
    if let Ok(keys) = pack::decode_header(data) {
        let table_len = 2 + keys.iter().map(|k| 4 + k.len()).sum::<usize>();
        assert_eq!(Some(table_len), hlen.as_ref().ok().copied());
        assert!(keys.len() <= pack::MAX_PACK_KEYS);
    }
    let _ = pack::table_len(data);
    if data.len() >= pack::TRAILER_LEN {
        let _ = pack::table_len(&data[data.len() - pack::TRAILER_LEN..]);
    }
    if let Ok(entries) = pack::decode_table(&KEY, data) {
        check_entries(data, &entries);
    }

    // Structured: the input is `key_len:u8 pad:u16le table_plaintext`.
    let Some((layout, plain)) = PackLayout::split(data) else { return };
    let packed = layout.pack_with_plaintext(plain);
    assert_eq!(pack::header_len(&packed).unwrap(), layout.key_table_len());
    let keys = pack::decode_header(&packed).unwrap();
    assert_eq!(keys.len(), layout.key_count());
    assert!(keys.iter().all(|k| k.len() == layout.key_len));
    match pack::decode_table(&KEY, &packed) {
        Ok(entries) => {
            check_entries(&packed, &entries);
            for e in &entries {
                assert!(e.offset as usize >= layout.blobs_start() && e.end() <= layout.table_start() as u64);
                assert!((e.key as usize) < layout.key_count());
            }
            // The plaintext layout is canonical: anything accepted re-encodes to itself.
            assert_eq!(table_plaintext(&entries), plain, "accepted a non-canonical table");
        }
        Err(Error::Authentication { .. }) => panic!("a table sealed with the right key failed authentication"),
        Err(_) => {}
    }
});

/// A decoded table must round-trip through `encode_table` in the same pack.
fn check_entries(packed: &[u8], entries: &[pack::PackBlobEntry]) {
    let tlen = pack::table_len(&packed[packed.len() - pack::TRAILER_LEN..]).unwrap();
    let table_start = packed.len() - pack::TRAILER_LEN - tlen;
    let mut again = packed[..table_start].to_vec();
    again.extend(pack::encode_table(&KEY, entries));
    assert_eq!(pack::decode_table(&KEY, &again).unwrap(), entries);
}
