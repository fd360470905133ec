//! Writing a key change: the new keyring, then the config that names it, then `config`.
//!
//! Order: `keys/<id>` first (nothing names it yet), then the config's copy
//! (`configs/<id>`, generation one higher: readers that find `config` missing take the
//! newest copy), then `config` replaced. A crash at any point leaves a repository that
//! opens: with the old config, or with the new one from its copy.

use bytes::Bytes;

use arka_proto::keyring::Keyring;
use arka_proto::{AgentKey, ObjectId, Recipients, RepoConfig};

use crate::engine::repair::config::replace_config;
use crate::error::{Error, Result};
use crate::repo::config::copy_key;
use crate::repo::Repository;
use crate::store::ObjectKind;

/// What a committed change wrote.
#[derive(Debug)]
pub struct Committed {
    pub keyring: ObjectId,
    pub config: RepoConfig,
}

/// Seals `ring` to its holders and makes it the repository's keyring: the config names it,
/// its holders become the recipients, its newest reader key the one writers seal to, and
/// the agent key is sealed anew to the holders.
pub async fn commit(repo: &Repository, mut ring: Keyring) -> Result<Committed> {
    // Ask first: a change that could not replace `config` would leave half of it behind.
    if !repo.store.may_delete().await? {
        return Err(Error::Key(
            "changing keys replaces the repository's config, and this token may not delete: run `arka key` \
             with a maintain or admin token (on the NAS), not the clinic server's append token; nothing was \
             changed"
                .into(),
        ));
    }
    ring.generation = repo.config.generation + 1;
    ring.created = jiff::Timestamp::now().as_second();
    let keyring = repo.put_object(ObjectKind::Keyring, ring.seal()?).await?;
    let recipients = ring.recipients();
    let config = RepoConfig {
        generation: ring.generation,
        reader: ring.current_reader().map(|r| r.recipient()),
        keyring: Some(keyring),
        sealed_agent_key: Recipients::parse(&recipients)?.seal(&zeroize::Zeroizing::new(repo.key.to_raw())[..]),
        recipients,
        ..repo.config.clone()
    };
    write_config(repo, &config, &repo.key).await?;
    Ok(Committed { keyring, config })
}

/// Writes `config`, MAC'd under `key`: its copy first (readers that find `config` missing
/// take the newest), then `config` replaced. Returns the bytes written.
pub(crate) async fn write_config(repo: &Repository, config: &RepoConfig, key: &AgentKey) -> Result<Bytes> {
    let bytes = Bytes::from(config.encode(key));
    RepoConfig::decode(&bytes, key)?;
    repo.store.put_new(&copy_key(&bytes), bytes.clone()).await?;
    replace_config(repo, &bytes).await?;
    Ok(bytes)
}
