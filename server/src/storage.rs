//! The objects, through `object_store`: a local directory (one folder per repository) or
//! an S3 bucket the server fronts. Every write is create-only and atomic whatever the
//! backend, and the server keeps a running count of each repository's storage use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use arka_proto::server::{ListPage, ListedObject};

use crate::config::{Backend, Config};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("the requested range is outside the object")]
    BadRange,
    #[error("storage failed: {0}")]
    Backend(#[from] object_store::Error),
}

pub enum PutOutcome {
    Created,
    Exists,
}

/// One object read, with its total size and when it was stored.
pub struct Fetched {
    pub bytes: Bytes,
    pub range: Range<u64>,
    pub size: u64,
    pub stored_at_ns: i64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub bytes: u64,
    pub objects: u64,
    pub last_write_ns: Option<i64>,
    pub scanned: bool,
}

pub struct Storage {
    root: Arc<dyn ObjectStore>,
    /// Whether the backend itself refuses a create-only put of an existing key. The local
    /// filesystem does (hard link); S3-compatible stores may not (Garage ignores
    /// `If-None-Match`), so for them the server checks first under a per-key lock. That is
    /// sound because the server is the only writer of its bucket prefix.
    backend_enforces_create: bool,
    writing: Mutex<HashSet<String>>,
    usage: Mutex<BTreeMap<String, Usage>>,
}

/// Whether the S3 builder has credentials of its own; without them object_store falls
/// back to the cloud metadata address, which arka-server asks only when told to.
fn s3_credentials_configured(b: &AmazonS3Builder) -> bool {
    use object_store::aws::AmazonS3ConfigKey as K;
    let set = |k: K| b.get_config_value(&k).is_some_and(|v| !v.trim().is_empty());
    set(K::AccessKeyId)
        || set(K::SecretAccessKey)
        || (set(K::WebIdentityTokenFile) && set(K::RoleArn))
        || set(K::ContainerCredentialsRelativeUri)
        || (set(K::ContainerCredentialsFullUri) && set(K::ContainerAuthorizationTokenFile))
        || b.get_config_value(&K::SkipSignature).is_some_and(|v| v == "true")
}

impl Storage {
    pub fn open(config: &Config) -> Result<Self, String> {
        let (root, backend_enforces_create): (Arc<dyn ObjectStore>, bool) = match &config.backend {
            Backend::Local => {
                std::fs::create_dir_all(&config.data_dir)
                    .map_err(|e| format!("data_dir {}: {e}", config.data_dir.display()))?;
                let fs = LocalFileSystem::new_with_prefix(&config.data_dir)
                    .map_err(|e| format!("data_dir {}: {e}", config.data_dir.display()))?
                    .with_fsync(true)
                    .with_automatic_cleanup(true);
                (Arc::new(fs), true)
            }
            Backend::S3 { bucket, prefix } => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1");
                let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket).with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(10))
                        .with_timeout(Duration::from_secs(120))
                        .with_allow_http(allow_http),
                );
                if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                    b = b.with_region("us-east-1");
                }
                let instance = std::env::var("ARKA_S3_CREDENTIALS").is_ok_and(|v| v.trim() == "instance");
                if !instance && !s3_credentials_configured(&b) {
                    return Err(format!(
                        "storage s3://{bucket}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                         in arka-server's environment, or ARKA_S3_CREDENTIALS=instance to use this cloud machine's \
                         instance role (the cloud metadata address 169.254.169.254 is never asked otherwise)"
                    ));
                }
                let s3 = b.build().map_err(|e| format!("storage s3://{bucket}: {e}"))?;
                let store: Arc<dyn ObjectStore> =
                    if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix.as_str())) };
                (store, false)
            }
        };
        Ok(Self { root, backend_enforces_create, writing: Mutex::default(), usage: Mutex::default() })
    }

    fn path(repo: &str, key: &str) -> Path {
        Path::from(format!("{repo}/{key}"))
    }

    /// Stores an object unless its key exists.
    pub async fn put_new(&self, repo: &str, key: &str, bytes: Bytes) -> Result<PutOutcome, StorageError> {
        let path = Self::path(repo, key);
        let _guard = self.lock_key(path.as_ref()).await;
        if !self.backend_enforces_create && self.head(repo, key).await?.is_some() {
            return Ok(PutOutcome::Exists);
        }
        let size = bytes.len() as u64;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.root.put_opts(&path, PutPayload::from(bytes), opts).await {
            Ok(_) => {
                let mut usage = self.usage.lock().unwrap();
                let u = usage.entry(repo.to_string()).or_default();
                u.bytes += size;
                u.objects += 1;
                u.last_write_ns = Some(now_ns());
                Ok(PutOutcome::Created)
            }
            Err(object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::Exists),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until no other request writes `key`, then holds it until the guard drops.
    async fn lock_key(&self, key: &str) -> KeyGuard<'_> {
        loop {
            if self.writing.lock().unwrap().insert(key.to_string()) {
                return KeyGuard { set: &self.writing, key: key.to_string() };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Size and store time, or `None` if the object does not exist.
    pub async fn head(&self, repo: &str, key: &str) -> Result<Option<(u64, i64)>, StorageError> {
        match self.root.head(&Self::path(repo, key)).await {
            Ok(m) => Ok(Some((m.size, stored_ns(&m)))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, repo: &str, key: &str, range: Option<Range<u64>>) -> Result<Fetched, StorageError> {
        let opts = GetOptions { range: range.clone().map(GetRange::Bounded), ..Default::default() };
        let result = match self.root.get_opts(&Self::path(repo, key), opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(StorageError::NotFound),
            // Backends word a range past the end differently; the object's size tells.
            Err(e) => {
                return Err(match (range, self.head(repo, key).await) {
                    (Some(r), Ok(Some((size, _)))) if r.end > size => StorageError::BadRange,
                    (_, Ok(None)) => StorageError::NotFound,
                    _ => StorageError::Backend(e),
                })
            }
        };
        let (size, stored_at_ns, range) = (result.meta.size, stored_ns(&result.meta), result.range.clone());
        let bytes = result.bytes().await?;
        Ok(Fetched { bytes, range, size, stored_at_ns })
    }

    pub async fn delete(&self, repo: &str, key: &str) -> Result<bool, StorageError> {
        let size = self.head(repo, key).await?.map(|(s, _)| s);
        match self.root.delete(&Self::path(repo, key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(size) = size {
            let mut usage = self.usage.lock().unwrap();
            let u = usage.entry(repo.to_string()).or_default();
            u.bytes = u.bytes.saturating_sub(size);
            u.objects = u.objects.saturating_sub(1);
        }
        Ok(size.is_some())
    }

    /// One page of a repository's objects under `prefix`, in key order, after `after`.
    /// Backends do not promise an order, so the page is cut from a sorted listing.
    pub async fn list_page(
        &self,
        repo: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StorageError> {
        let repo_root = format!("{repo}/");
        let list_prefix = Path::from(format!("{repo}/{}", prefix.trim_end_matches('/')));
        let metas: Vec<_> = self.root.list(Some(&list_prefix)).try_collect().await?;
        let mut objects: Vec<ListedObject> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(&repo_root)?.to_string();
                (key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a)).then(|| ListedObject {
                    stored_at_ns: stored_ns(&m),
                    size: m.size,
                    key,
                })
            })
            .collect();
        objects.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let next_after = (objects.len() > limit).then(|| objects[limit - 1].key.clone());
        objects.truncate(limit);
        Ok(ListPage { objects, next_after })
    }

    /// Counts a repository's objects and bytes by listing it, for the dashboard.
    pub async fn scan(&self, repo: &str) -> Result<(), StorageError> {
        let metas: Vec<_> = self.root.list(Some(&Path::from(repo))).try_collect().await?;
        let (bytes, objects) = metas.iter().fold((0, 0), |(b, n), m| (b + m.size, n + 1));
        let last = metas.iter().map(stored_ns).max();
        let mut usage = self.usage.lock().unwrap();
        let u = usage.entry(repo.to_string()).or_default();
        *u = Usage { bytes, objects, last_write_ns: u.last_write_ns.max(last), scanned: true };
        Ok(())
    }

    /// Repositories that exist in storage (top-level folders).
    pub async fn repos(&self) -> Result<Vec<String>, StorageError> {
        let listing = self.root.list_with_delimiter(None).await?;
        Ok(listing.common_prefixes.iter().map(|p| p.as_ref().to_string()).collect())
    }

    pub fn usage(&self) -> HashMap<String, Usage> {
        self.usage.lock().unwrap().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

struct KeyGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    key: String,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap().remove(&self.key);
    }
}

fn stored_ns(m: &object_store::ObjectMeta) -> i64 {
    m.last_modified.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Removes the temporary files that writes interrupted by a crash or kill -9 left in a
/// local data directory (object_store stages each upload as `NAME#N` beside its object).
/// Run at start only, when no write of this server can be in flight. Returns how many.
pub fn remove_stale_uploads(data_dir: &std::path::Path) -> std::io::Result<usize> {
    let mut removed = 0;
    let mut dirs = vec![data_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            let name = entry.file_name();
            if ty.is_dir() {
                // The server's own state is not object storage.
                if dir != data_dir || name != ".server" {
                    dirs.push(entry.path());
                }
            } else if ty.is_file() && name.to_string_lossy().contains('#') {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_storage_without_credentials_is_not_configured() {
        assert!(!s3_credentials_configured(&AmazonS3Builder::new().with_bucket_name("b")));
        let keyed = AmazonS3Builder::new().with_access_key_id("k").with_secret_access_key("s");
        assert!(s3_credentials_configured(&keyed));
    }
}
