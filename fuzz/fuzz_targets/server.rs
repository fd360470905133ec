//! What arka-server parses from a request before anything else: the raw object path, the
//! `Range` header and the listing query's keys and prefixes; and what the agent parses
//! from a server's answer: a listing page (JSON). A path accepted here must be one the
//! layout writes, never one that escapes its repository.
#![no_main]

use arka_proto::layout::{valid_list_prefix, ObjectKey, CONFIG_KEY};
use arka_proto::server::{parse_object_path, parse_range, valid_repo_name, ListPage, ObjectTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = serde_json::from_slice::<ListPage>(data);
        return;
    };
    match parse_object_path(text) {
        Ok(ObjectTarget::Object { repo, key }) => {
            assert!(valid_repo_name(&repo));
            let parsed = ObjectKey::parse(&key).expect("an accepted key parses");
            let respelled = match parsed {
                ObjectKey::Config => CONFIG_KEY.to_string(),
                ObjectKey::Content { kind, id } => kind.key(&id),
            };
            assert_eq!(respelled, key, "an accepted key is spelled exactly as the layout spells it");
            assert_eq!(text, format!("/v1/repos/{repo}/objects/{key}"));
            assert!(!text.contains("..") && !text.contains('%') && !text.contains('\\') && !text.contains('\0'));
        }
        Ok(ObjectTarget::List { repo }) => assert_eq!(text, format!("/v1/repos/{repo}/objects")),
        Err(_) => {}
    }
    if let Some((start, end)) = parse_range(text) {
        assert!(end.is_none_or(|e| e > start));
    }
    if valid_list_prefix(text) {
        assert!(!text.contains("..") && !text.starts_with('/') && text.len() <= 9);
    }
    if valid_repo_name(text) {
        assert!(!text.contains('/') && !text.contains("..") && text.len() <= 64);
    }
    let _ = serde_json::from_str::<ListPage>(text);
});
