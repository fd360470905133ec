//! The repository's objects in any `object_store` backend, with arka's key layout.
//!
//! Contracts every method keeps, whatever the backend:
//! - `put_new` never overwrites: an existing key is reported as `Ok(false)`, since equal
//!   keys mean equal content (every key is a content hash or the write-once config);
//! - a put that returns `Ok` is durable (the local backend fsyncs file and directory);
//! - a listing error is an error, never an empty listing.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use arka_proto::ObjectId;

use crate::error::{Error, Result};

/// Kinds of objects and where they live under the repository root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Pack,
    Index,
    Snapshot,
}

impl ObjectKind {
    fn dir(self) -> &'static str {
        match self {
            Self::Pack => "packs",
            Self::Index => "index",
            Self::Snapshot => "snapshots",
        }
    }

    pub fn key(self, id: &ObjectId) -> String {
        let hex = id.to_hex();
        match self {
            Self::Pack => format!("packs/{}/{hex}", &hex[..2]),
            _ => format!("{}/{hex}", self.dir()),
        }
    }
}

pub const CONFIG_KEY: &str = "config";

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// How the user named the repository, for messages.
    pub display: String,
}

impl Store {
    pub fn new(inner: Arc<dyn ObjectStore>, display: String) -> Self {
        Self { inner, display }
    }

    /// Opens a repository URL: a path or `file:///…` for now. `create` makes a missing
    /// directory (for `init`); otherwise a missing one means the URL is wrong.
    pub fn open(url: &str, create: bool) -> Result<Self> {
        let path = url.strip_prefix("file://").unwrap_or(url);
        if url.contains("://") && !url.starts_with("file://") {
            return Err(Error::Usage(format!("unsupported repository URL {url:?}: use a local path or file:///path")));
        }
        if create {
            std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        } else if !std::path::Path::new(path).is_dir() {
            return Err(Error::NotARepository(path.into()));
        }
        let fs = object_store::local::LocalFileSystem::new_with_prefix(path)
            .map_err(|e| Error::Store { op: "open", key: path.into(), source: e })?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Self::new(Arc::new(fs), path.to_string()))
    }

    /// Writes an object unless it exists. Returns whether it was written.
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.inner.put_opts(&Path::from(key), PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(Error::Store { op: "write", key: key.into(), source: e }),
        }
    }

    /// Reads a whole object; `Ok(None)` if it does not exist.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>> {
        let result = async { self.inner.get(&Path::from(key)).await?.bytes().await }.await;
        match result {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::Store { op: "read", key: key.into(), source: e }),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        self.get_opt(key)
            .await?
            .ok_or_else(|| Error::Corrupt { key: key.into(), reason: "the object is missing".into() })
    }

    /// Reads `range` of an object and checks the store returned exactly that many bytes.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let want = range.end - range.start;
        let b = self.inner.get_range(&Path::from(key), range).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                Error::Corrupt { key: key.into(), reason: "the object is missing".into() }
            }
            e => Error::Store { op: "read", key: key.into(), source: e },
        })?;
        if b.len() as u64 != want {
            return Err(Error::Corrupt {
                key: key.into(),
                reason: format!("short read: wanted {want} bytes, got {}", b.len()),
            });
        }
        Ok(b)
    }

    /// Lists the IDs of all objects of a kind. Names that are not IDs are ignored (a
    /// backend's temporary files), but a listing failure is an error.
    pub async fn list(&self, kind: ObjectKind) -> Result<Vec<(ObjectId, u64)>> {
        let prefix = Path::from(kind.dir());
        let metas: Vec<_> = self.inner.list(Some(&prefix)).try_collect().await.map_err(|e| Error::Store {
            op: "list",
            key: kind.dir().into(),
            source: e,
        })?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?;
                ObjectId::from_hex(name).ok().map(|id| (id, m.size))
            })
            .collect())
    }
}
