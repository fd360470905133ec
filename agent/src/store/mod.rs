//! The repository's objects in any `object_store` backend, with arka's key layout.
//!
//! Contracts every method keeps, whatever the backend:
//! - `put_new` never overwrites: an existing key is reported as `Ok(false)`, since equal
//!   keys mean equal content (every key is a content hash or the write-once config);
//! - a put that returns `Ok` is durable (the local backend fsyncs file and directory);
//! - a listing error is an error, never an empty listing.

pub mod limit;
mod open;
mod paced;
mod paced_s3;
pub mod server;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use arka_proto::ObjectId;

use crate::error::{Error, Result};
pub use limit::Limits;
use open::open_backend;
pub use open::{advice, Location};
pub use server::{ServerOptions, ServerStore};

pub use arka_proto::layout::{ObjectKind, CONFIG_KEY};

// Defined here rather than in `error` so that the error layer stays below storage.
impl Error {
    /// A backend error on `key`, with advice where we recognise the cause.
    pub fn store(op: &'static str, key: impl Into<String>, source: object_store::Error) -> Self {
        let advice = advice(&source);
        Self::Store { op, key: key.into(), source: Box::new(source), advice }
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// How the user named the repository, for messages.
    pub display: String,
    /// The directory of a local repository: its backend hides the temporary files of
    /// interrupted writes from listings, so prune finds those here.
    local_root: Option<std::path::PathBuf>,
}

impl Store {
    pub fn new(inner: Arc<dyn ObjectStore>, display: String) -> Self {
        Self { inner, display, local_root: None }
    }

    /// Opens a repository URL: a path, `file:///path`, `s3://bucket/prefix` or
    /// `arka+https://host/repo`. `create` makes a missing local directory (for `init`);
    /// otherwise a missing one means the URL is wrong. An arka-server's token and trust come
    /// from the `ARKA_SERVER_*` variables (see [`Store::open_with`]).
    pub fn open(url: &str, create: bool) -> Result<Self> {
        Self::open_with(url, create, &ServerOptions::default(), &Limits::default())
    }

    /// Like [`Store::open`], with an arka-server target's settings from the agent config
    /// (the `ARKA_SERVER_*` variables still win) and the target's bandwidth `limits`, which
    /// pace what this store sends and receives (shared with every store opened with a
    /// clone of them).
    pub fn open_with(url: &str, create: bool, server: &ServerOptions, limits: &Limits) -> Result<Self> {
        let location = Location::parse(url)?;
        let mut store = Self::new(open_backend(&location, create, server, limits)?, url.to_string());
        if let Location::Local(root) = location {
            store.local_root = Some(root);
        }
        Ok(store)
    }

    /// Writes an object unless it exists. Returns whether it was written.
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.inner.put_opts(&Path::from(key), PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(Error::store("write", key, e)),
        }
    }

    /// Reads a whole object; `Ok(None)` if it does not exist.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>> {
        let result = async { self.inner.get(&Path::from(key)).await?.bytes().await }.await;
        match result {
            Ok(b) => Ok(Some(b)),
            // S3 answers 404 for a missing bucket too: that is a wrong URL, not a missing object.
            Err(e @ object_store::Error::NotFound { .. }) if format!("{e:?}").contains("NoSuchBucket") => {
                Err(Error::store("read", key, e))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store("read", key, e)),
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
            e if is_range_past_end(&e) => Error::Corrupt {
                key: key.into(),
                reason: "the object ends before the part read (it was truncated)".into(),
            },
            e => Error::store("read", key, e),
        })?;
        if b.len() as u64 != want {
            return Err(Error::Corrupt {
                key: key.into(),
                reason: format!("short read: wanted {want} bytes, got {}", b.len()),
            });
        }
        Ok(b)
    }

    /// Lists the IDs and sizes of all objects of a kind. Names that are not IDs are ignored
    /// (a backend's temporary files), but a listing failure is an error.
    pub async fn list(&self, kind: ObjectKind) -> Result<Vec<(ObjectId, u64)>> {
        Ok(self.list_detailed(kind).await?.into_iter().map(|o| (o.id, o.size)).collect())
    }

    /// Like `list`, with the time the store says each object was written.
    pub async fn list_detailed(&self, kind: ObjectKind) -> Result<Vec<Listed>> {
        let prefix = Path::from(kind.dir());
        let metas: Vec<_> =
            self.inner.list(Some(&prefix)).try_collect().await.map_err(|e| Error::store("list", kind.dir(), e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let id = ObjectId::from_hex(m.location.filename()?).ok()?;
                // Only arka's own spelling of the key: a stray `PACKS/…`, upper-case hex or a
                // pack outside its shard folder is not the object it seems to name.
                if m.location.as_ref() != kind.key(&id) {
                    return None;
                }
                let stored_at_ns = m.last_modified.timestamp_nanos_opt().unwrap_or(i64::MAX);
                Some(Listed { id, size: m.size, stored_at_ns })
            })
            .collect())
    }

    /// Temporary files that interrupted writes left in a local repository, with their size
    /// and modification time. (On S3 an interrupted PUT leaves nothing visible.)
    pub fn list_strays(&self) -> Result<Vec<(std::path::PathBuf, u64, i64)>> {
        let Some(root) = &self.local_root else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut dirs: Vec<std::path::PathBuf> = ObjectKind::ALL.iter().map(|k| root.join(k.dir())).collect();
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, e))?;
                let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
                if meta.is_dir() {
                    dirs.push(entry.path());
                } else if entry.file_name().to_string_lossy().contains('#') {
                    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                    out.push((entry.path(), meta.len(), mtime.map_or(i64::MAX, |d| d.as_nanos() as i64)));
                }
            }
        }
        Ok(out)
    }

    /// Deletes an object; deleting one that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", key, e)),
        }
    }
}

/// The key [`Store::may_delete`] deletes: the all-zero pack ID, which no pack can have
/// (a pack is named by the BLAKE3 hash of its bytes, and the server checks it).
pub const DELETE_PROBE_KEY: &str = "packs/00/0000000000000000000000000000000000000000000000000000000000000000";

impl Store {
    /// Whether the storage lets these credentials delete, asked by deleting an object that
    /// cannot exist ([`DELETE_PROBE_KEY`]): arka-server refuses an `append` token before
    /// it looks for the object (403), and answers a `maintain` or `admin` token as for any
    /// delete of a missing object. `Ok(false)` only for a refusal; a storage that cannot be
    /// reached is an error.
    pub async fn may_delete(&self) -> Result<bool> {
        match self.inner.delete(&Path::from(DELETE_PROBE_KEY)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(object_store::Error::PermissionDenied { .. }) => Ok(false),
            Err(e) => Err(Error::store("delete", DELETE_PROBE_KEY, e)),
        }
    }
}

/// One object in a listing.
#[derive(Clone, Copy, Debug)]
pub struct Listed {
    pub id: ObjectId,
    pub size: u64,
    /// When the store recorded the object (set by the storage, not by the writer).
    pub stored_at_ns: i64,
}

/// Whether a ranged read failed because the object is shorter than the range: the local
/// filesystem says "Requested range was invalid", S3 answers 416 (Range Not Satisfiable).
/// Objects are written once with the length the index records, so this is truncation.
fn is_range_past_end(e: &object_store::Error) -> bool {
    let text = format!("{e} {e:?}").to_ascii_lowercase();
    text.contains("range was invalid") || text.contains("invalidrange") || text.contains("not satisfiable")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No crate wording ("Generic LocalFileSystem error"), no temporary file name: the
    /// repository key, what went wrong and what to do.
    fn assert_plain(message: &str, key: &str, advice: &str) {
        assert!(message.contains(key), "{message}");
        assert!(!message.contains("Generic") && !message.contains("LocalFileSystem"), "{message}");
        assert!(!message.contains('#'), "a temporary file's name: {message}");
        assert!(message.contains(advice), "{message}");
    }

    #[tokio::test]
    async fn a_file_in_the_way_of_a_repository_folder_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap(), true).unwrap();
        std::fs::write(dir.path().join("packs"), b"not arka's").unwrap();
        let e = store.put_new("packs/ab/ab12", Bytes::from_static(b"x")).await.unwrap_err().to_string();
        assert_plain(&e, "write packs/ab/ab12", "move it out of the repository");
        assert!(e.contains("a file is in the way"), "{e}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_read_only_repository_folder_says_to_grant_write_access() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap(), true).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
        let root_writes_anyway = std::fs::write(dir.path().join("probe"), b"").is_ok();
        let result = store.put_new("snapshots/cd34", Bytes::from_static(b"x")).await;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        if root_writes_anyway {
            eprintln!("skipped: running as root, which writes in a read-only folder");
            return;
        }
        let e = result.unwrap_err().to_string();
        assert_plain(&e, "write snapshots/cd34", "give it write access");
        assert!(e.contains("permission denied"), "{e}");
    }
}
