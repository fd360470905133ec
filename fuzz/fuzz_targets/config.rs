//! The repository config: the one object parsed before any key is known.
#![no_main]

use arka_proto::{AgentKey, Recipients, RepoConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((cfg, body, mac)) = RepoConfig::decode_unauthenticated(data) else { return };
    assert!(cfg.chunker_files.validate().is_ok() && cfg.chunker_stream.validate().is_ok());
    // The agent parses the recipients it will seal packs to from this (untrusted) config.
    let _ = Recipients::parse(&cfg.recipients);

    // Round trip under a key of this repository: encode, authenticate, decode.
    let mut raw = [7u8; 96];
    raw[..32].copy_from_slice(&cfg.repo_id.0);
    let key = AgentKey::from_raw(&raw).unwrap();
    let bytes = cfg.encode(&key);
    assert_eq!(RepoConfig::decode(&bytes, &key).unwrap(), cfg);
    // The original input authenticates exactly when its MAC is this key's MAC of its body.
    assert_eq!(RepoConfig::decode(data, &key).is_ok(), key.mac("arka config v1", body) == mac);
});
