//! The local files cache: for each file of the last successful backup of a source, the
//! metadata it had and the blobs it became. An unchanged file is not read again.
//!
//! The cache holds no file names (entries are keyed by a keyed hash of the path) and is
//! only a hint: an entry is used only when every blob it names is in the repository index,
//! so a lost, stale or foreign cache costs re-reading, never correctness.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use arka_proto::BlobId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    /// Every content blob of the file, also when its listing is in pieces.
    pub content: Vec<BlobId>,
    /// The file's content lists, if its listing is in pieces.
    #[serde(default)]
    pub lists: Vec<BlobId>,
}

#[derive(Default, Serialize, Deserialize)]
pub struct FilesCache {
    entries: HashMap<[u8; 16], CacheEntry>,
}

impl FilesCache {
    /// Loads a cache file; a missing or unreadable one is an empty cache.
    pub fn load(path: &Path) -> Self {
        crate::repo::local_state::load(path)
    }

    /// Writes the cache atomically (temp file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::repo::local_state::save(path, self)
    }

    pub fn get(&self, key: &[u8; 16]) -> Option<&CacheEntry> {
        self.entries.get(key)
    }

    pub fn insert(&mut self, key: [u8; 16], entry: CacheEntry) {
        self.entries.insert(key, entry);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Where a source's cache lives: one file per repository and source.
pub fn cache_path(cache_dir: &Path, repo_id: &arka_proto::RepoId, source_key: &str) -> PathBuf {
    let h = blake3::hash(source_key.as_bytes());
    cache_dir.join(repo_id.to_hex()).join(format!("files-{}.cbor", &h.to_hex()[..16]))
}

/// The default cache directory: `$ARKA_CACHE_DIR`, else the platform cache directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ARKA_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if cfg!(windows) {
        if let Some(d) = std::env::var_os("LOCALAPPDATA") {
            return PathBuf::from(d).join("arka");
        }
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("arka");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("arka");
    }
    std::env::temp_dir().join("arka-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trips_and_garbage_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.cbor");
        let mut c = FilesCache::default();
        let e =
            CacheEntry { size: 1, mtime_ns: 2, ctime_ns: 3, inode: 4, content: vec![BlobId([1; 32])], lists: vec![] };
        c.insert([7; 16], e.clone());
        c.save(&p).unwrap();
        assert_eq!(FilesCache::load(&p).get(&[7; 16]), Some(&e));
        std::fs::write(&p, b"garbage").unwrap();
        assert!(FilesCache::load(&p).is_empty());
    }
}
