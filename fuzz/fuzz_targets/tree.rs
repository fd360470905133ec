//! Tree blobs (CBOR), reference lists and content lists (fixed layouts): all are plaintexts
//! after their blob is opened, so the input is fed to the decoders directly.
#![no_main]

use arka_proto::{ContentList, Tree, TreeRefs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(data) {
        for n in &tree.nodes {
            assert!(!n.name.is_empty() && n.name != b"." && n.name != b"..");
            assert!(!n.name.contains(&b'/') && !n.name.contains(&0));
        }
        let again = Tree::decode(&tree.encode()).expect("a re-encoded tree must decode");
        assert_eq!(again, tree);
    }

    if let Ok(refs) = TreeRefs::decode(data) {
        let bytes = refs.encode();
        // The layout is canonical: anything accepted re-encodes to itself.
        assert_eq!(bytes, data, "accepted a non-canonical reference list");
        assert_eq!(TreeRefs::decode(&bytes).unwrap(), refs);
    }

    if let Ok(list) = ContentList::decode(data) {
        assert_eq!(list.encode(), data, "accepted a non-canonical content list");
    }
});
