//! Small state files the agent keeps on its own disk (files cache, verify rotation):
//! CBOR, replaced atomically, and treated as hints: a missing or unreadable file reads as
//! the empty state, never as an error.

use std::path::Path;

use arka_proto::codec::{from_cbor, to_cbor};

pub fn load<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    std::fs::read(path).ok().and_then(|b| from_cbor(&b, "local state").ok()).unwrap_or_default()
}

/// Writes `value` to a temporary file beside `path`, then renames it into place. The
/// temporary name is unique, so two processes saving at once never mix their bytes.
pub fn save<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("{}-{:08x}.tmp", std::process::id(), rand::random::<u32>()));
    std::fs::write(&tmp, to_cbor(value))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
