//! Key files and other text parsers: agent keys, recovery identity files, recipient lists
//! and hex object IDs (object names come from storage listings).
#![no_main]

use arka_proto::{AgentKey, ObjectId, Recipients, RecoveryIdentities};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(key) = AgentKey::parse(&text) {
        let again = AgentKey::parse(&key.to_file_text()).expect("a written agent key must parse");
        assert_eq!(again.to_raw(), key.to_raw());
    }

    if let Ok(ids) = RecoveryIdentities::parse(&text) {
        let again = RecoveryIdentities::parse(&ids.to_file_text()).expect("a written identity file must parse");
        assert_eq!(again.recipients(), ids.recipients());
        assert!(Recipients::parse(&ids.recipients()).is_ok());
    }

    let lines: Vec<&str> = text.lines().collect();
    if let Ok(r) = Recipients::parse(&lines) {
        assert_eq!(Recipients::parse(&r.to_strings()).unwrap().to_strings(), r.to_strings());
    }

    if let Ok(id) = ObjectId::from_hex(&text) {
        assert_eq!(id.to_hex(), text.to_ascii_lowercase());
    }
});
