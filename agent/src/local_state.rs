//! Small state files the agent keeps on its own disk (files cache, verify rotation):
//! CBOR, replaced atomically, and treated as hints: a missing or unreadable file reads as
//! the empty state, never as an error.

use std::path::Path;

use arka_proto::codec::{from_cbor, to_cbor};

pub fn load<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    std::fs::read(path).ok().and_then(|b| from_cbor(&b, "local state").ok()).unwrap_or_default()
}

/// Writes `value` to a temporary file beside `path`, then renames it into place.
pub fn save<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, to_cbor(value))?;
    std::fs::rename(&tmp, path)
}
