//! The first key change on a repository made before keyrings: its packs' data keys are
//! sealed to the recipients directly, so a recipient added now could not open them. They
//! are opened once with the identity and carried in the keyring (`escrow`), sealed to the
//! holders with the rest: nothing is re-uploaded.

use futures::{StreamExt, TryStreamExt};

use arka_proto::keyring::{sealed_key_fingerprint, EscrowedKey, Holder, Keyring, ReaderKey};

use crate::engine::progress::Progress;
use crate::error::{Error, Result};
use crate::repo::blob::sealed_data_keys;
use crate::repo::{Repository, LOAD_CONCURRENCY};
use crate::store::ObjectKind;

/// The keyring a repository without one would have had: its recipients as holders (added
/// when it was made, without labels), a first reader key, and every pack's data key.
pub async fn first_keyring(repo: &Repository, progress: &Progress) -> Result<Keyring> {
    let now = jiff::Timestamp::now().as_second();
    let holders = repo
        .config
        .recipients
        .iter()
        .map(|r| Holder { recipient: r.clone(), label: String::new(), added: repo.config.created })
        .collect();
    Ok(Keyring {
        repo_id: repo.config.repo_id,
        generation: 0,
        created: now,
        holders,
        removed: Vec::new(),
        readers: vec![ReaderKey::generate(1, now)],
        escrow: escrow_all(repo, progress).await?,
    })
}

/// Opens every pack's data keys with the identity. A key that does not open is an error:
/// the migration would otherwise leave data that a recipient added later cannot read.
async fn escrow_all(repo: &Repository, progress: &Progress) -> Result<Vec<EscrowedKey>> {
    let packs = repo.store.list(ObjectKind::Pack).await?;
    progress.set_totals(packs.len() as u64, 0);
    let headers: Vec<(arka_proto::ObjectId, Vec<Vec<u8>>)> = futures::stream::iter(packs)
        .map(|(id, len)| async move {
            let keys = sealed_data_keys(&repo.store, &id, len).await?;
            progress.files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, Error>((id, keys))
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect()
        .await?;
    let mut escrow = std::collections::BTreeMap::new();
    for (pack, sealed_keys) in &headers {
        for sealed in sealed_keys {
            let fingerprint = sealed_key_fingerprint(sealed);
            if escrow.contains_key(&fingerprint) {
                continue; // prune copied it into another pack
            }
            let key = repo.open_data_key(sealed).map_err(|e| {
                Error::Refused(format!(
                    "a data key of {} does not open with this identity ({e}); nothing was changed. \
                     Run `arka verify --identity` to see whether the pack is damaged",
                    ObjectKind::Pack.key(pack)
                ))
            })?;
            escrow.insert(fingerprint, *key.as_bytes());
        }
    }
    Ok(escrow.into_iter().map(|(sealed, data_key)| EscrowedKey { sealed, data_key }).collect())
}
