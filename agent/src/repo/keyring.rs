//! Reading keyrings (`keys/<id>`, FORMAT.md §3.6) with a recovery identity: the reader
//! keys and escrowed data keys that open packs, and the newest keyring, which says who
//! holds the repository.

use std::collections::HashMap;

use arka_proto::keyring::{sealed_key_fingerprint, Keyring};
use arka_proto::{DataKey, ObjectId, RecoveryIdentities, RepoId};

use crate::error::{Error, Result};
use crate::repo::check_object_id;
use crate::store::{ObjectKind, Store};

/// Everything a recovery identity opens pack data keys with: the identity itself (packs
/// sealed before keyrings existed), the reader keys of every keyring it opens, and the
/// data keys those keyrings escrow.
pub struct PackKeys {
    identities: RecoveryIdentities,
    escrow: HashMap<[u8; 16], zeroize::Zeroizing<[u8; 32]>>,
}

impl PackKeys {
    /// Only the identities: a repository without keyrings.
    pub fn of(identities: &RecoveryIdentities) -> Self {
        Self { identities: identities.clone(), escrow: HashMap::new() }
    }

    fn add(&mut self, ring: &Keyring) {
        for reader in &ring.readers {
            self.identities.extend(reader.identity());
        }
        for e in &ring.escrow {
            self.escrow.insert(e.sealed, zeroize::Zeroizing::new(e.data_key));
        }
    }

    /// Opens one sealed data key of a pack header.
    pub fn open(&self, sealed: &[u8]) -> arka_proto::error::Result<DataKey> {
        if let Some(key) = self.escrow.get(&sealed_key_fingerprint(sealed)) {
            return DataKey::from_bytes(&key[..]);
        }
        let raw = zeroize::Zeroizing::new(self.identities.open(sealed)?);
        DataKey::from_bytes(&raw)
    }
}

/// A keyring the identity opened, with its object ID.
pub struct OpenedKeyring {
    pub id: ObjectId,
    pub ring: Keyring,
}

/// Opens every keyring under `keys/` that the identity can, newest generation last. Rings
/// sealed to others are skipped silently (a removed holder's old ones, say); a damaged one
/// with a warning that names it.
pub async fn open_all(store: &Store, identities: &RecoveryIdentities, repo_id: RepoId) -> Result<Vec<OpenedKeyring>> {
    let mut out = Vec::new();
    for (id, _) in store.list(ObjectKind::Keyring).await? {
        let key = ObjectKind::Keyring.key(&id);
        let Some(bytes) = store.get_opt(&key).await? else { continue };
        if let Err(e) = check_object_id(&key, &id, &bytes) {
            tracing::warn!("skipping {e}");
            continue;
        }
        match Keyring::open(&bytes, identities, repo_id) {
            Ok(ring) => out.push(OpenedKeyring { id, ring }),
            Err(arka_proto::Error::NoMatchingIdentity) => {}
            Err(e) => tracing::warn!("skipping keyring {key}: {e}"),
        }
    }
    out.sort_by_key(|o| o.ring.generation);
    Ok(out)
}

/// The pack keys of every keyring the identity opens.
pub fn pack_keys(identities: &RecoveryIdentities, rings: &[OpenedKeyring]) -> PackKeys {
    let mut keys = PackKeys::of(identities);
    for r in rings {
        keys.add(&r.ring);
    }
    keys
}

/// The keyring the config names, which the identity must open: `arka key` changes start
/// from it.
pub fn current<'a>(rings: &'a [OpenedKeyring], named: Option<&ObjectId>) -> Result<Option<&'a OpenedKeyring>> {
    let Some(named) = named else { return Ok(None) };
    rings.iter().find(|r| r.id == *named).map(Some).ok_or_else(|| {
        Error::Key(format!(
            "the repository's keyring ({}) does not open with this identity: it is not one of the \
             repository's current holders (`arka key list` with a holder's identity shows them)",
            ObjectKind::Keyring.key(named)
        ))
    })
}
