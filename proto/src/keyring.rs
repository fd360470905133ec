//! The keyring (`keys/<id>`): who can read a repository, and the reader keys that open
//! its packs.
//!
//! Pack data keys are sealed to the current *reader key* (an age X25519 identity the
//! repository made), not to each recipient. The keyring holds the secret of every reader
//! key the repository has had, sealed to the recipients as one age file. So adding a
//! recipient writes one new keyring and re-uploads nothing; removing one makes a new reader
//! key (a new *epoch*) that the removed recipient never sees. Packs written before keyrings
//! existed have their data keys sealed to the recipients directly; the keyring carries
//! those keys too (`escrow`), sealed with the rest, so a recipient added later reads them.
//!
//! ```text
//! keys/<id> = age file to the recipients of  "ARKK" version:u8 CBOR(Keyring)
//! ```

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::codec;
use crate::crypto::{Recipients, RecoveryIdentities};
use crate::error::{Error, Result};
use crate::id::RepoId;

pub const MAGIC: &[u8; 4] = b"ARKK";
/// A keyring is read whole; a clinic's repository of 10 TB escrows ~650 000 pack keys
/// (48 bytes each, ~31 MiB). Anything beyond this is refused before it is decrypted.
pub const MAX_KEYRING_LEN: usize = 256 << 20;

/// A recipient who can read the repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// age X25519 recipient, `age1…`.
    pub recipient: String,
    /// Who holds it, as given to `arka key add --label` ("owner's paper key").
    pub label: String,
    /// Unix seconds.
    pub added: i64,
}

/// A recipient removed by `arka key remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedHolder {
    pub holder: Holder,
    /// Unix seconds.
    pub removed: i64,
    /// The last reader epoch the holder could open: data sealed in epochs up to this one
    /// stays readable by them until `arka key rewrap` re-encrypts it. 0 once rewrapped.
    pub readable_through_epoch: u32,
}

/// One epoch's reader key: an age X25519 identity made by the repository.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct ReaderKey {
    pub epoch: u32,
    /// Unix seconds: when writers started sealing to it.
    pub since: i64,
    /// The identity's 32-byte X25519 secret.
    #[serde(with = "codec::bytes_array")]
    pub secret: [u8; 32],
}

impl std::fmt::Debug for ReaderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReaderKey(epoch {}, ***)", self.epoch)
    }
}

impl ReaderKey {
    pub fn generate(epoch: u32, since: i64) -> Self {
        let id = RecoveryIdentities::generate();
        Self { epoch, since, secret: *id.secrets()[0] }
    }

    pub fn identity(&self) -> RecoveryIdentities {
        RecoveryIdentities::from_secret(&self.secret).expect("a stored reader secret is an X25519 scalar")
    }

    /// The recipient (age1…) writers seal to.
    pub fn recipient(&self) -> String {
        self.identity().recipients().remove(0)
    }
}

/// A data key of a pack sealed to the recipients before the repository had reader keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct EscrowedKey {
    /// [`sealed_key_fingerprint`] of the sealed key as the pack header holds it.
    #[serde(with = "codec::bytes_array")]
    pub sealed: [u8; 16],
    #[serde(with = "codec::bytes_array")]
    pub data_key: [u8; 32],
}

impl std::fmt::Debug for EscrowedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EscrowedKey(***)")
    }
}

/// Names a sealed data key by its bytes. Prune copies sealed keys byte for byte, so one
/// fingerprint finds the key in every pack that carries it.
pub fn sealed_key_fingerprint(sealed: &[u8]) -> [u8; 16] {
    let hash = blake3::derive_key("arka 2026 escrowed data key", sealed);
    hash[..16].try_into().expect("16 of 32 bytes")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    pub repo_id: RepoId,
    /// The config generation written with this keyring.
    pub generation: u32,
    /// Unix seconds.
    pub created: i64,
    pub holders: Vec<Holder>,
    pub removed: Vec<RemovedHolder>,
    /// Every reader key still needed, oldest first; the last is the current one.
    pub readers: Vec<ReaderKey>,
    pub escrow: Vec<EscrowedKey>,
}

impl Keyring {
    pub fn current_reader(&self) -> Option<&ReaderKey> {
        self.readers.last()
    }

    pub fn recipients(&self) -> Vec<String> {
        self.holders.iter().map(|h| h.recipient.clone()).collect()
    }

    /// The keyring object: an age file sealed to every holder.
    pub fn seal(&self) -> Result<Vec<u8>> {
        let mut plain = zeroize::Zeroizing::new(Vec::new());
        codec::write_frame(&mut plain, MAGIC, codec::FORMAT_VERSION);
        plain.extend_from_slice(&codec::to_cbor(self));
        Ok(Recipients::parse(&self.recipients())?.seal(&plain))
    }

    /// Opens a keyring object with a recovery identity and checks it belongs to `repo_id`.
    pub fn open(sealed: &[u8], identities: &RecoveryIdentities, repo_id: RepoId) -> Result<Self> {
        if sealed.len() > MAX_KEYRING_LEN {
            return Err(Error::Malformed { what: "keyring", reason: format!("{} bytes", sealed.len()) });
        }
        let plain = zeroize::Zeroizing::new(identities.open(sealed)?);
        let (_, body) = codec::read_frame(&plain, MAGIC, "keyring")?;
        let ring: Keyring = codec::from_cbor(body, "keyring")?;
        if ring.repo_id != repo_id {
            return Err(Error::Malformed {
                what: "keyring",
                reason: format!("it belongs to repository {}", ring.repo_id.short()),
            });
        }
        if ring.holders.is_empty() {
            return Err(Error::Malformed { what: "keyring", reason: "no holders".into() });
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(holder: &RecoveryIdentities) -> Keyring {
        Keyring {
            repo_id: RepoId([7; 32]),
            generation: 1,
            created: 10,
            holders: vec![Holder { recipient: holder.recipients().remove(0), label: "owner".into(), added: 10 }],
            removed: vec![],
            readers: vec![ReaderKey::generate(1, 10)],
            escrow: vec![EscrowedKey { sealed: [1; 16], data_key: [2; 32] }],
        }
    }

    #[test]
    fn a_keyring_opens_only_for_its_holders_and_its_repository() {
        let owner = RecoveryIdentities::generate();
        let ring = ring(&owner);
        let sealed = ring.seal().unwrap();
        assert_eq!(Keyring::open(&sealed, &owner, RepoId([7; 32])).unwrap(), ring);
        assert!(Keyring::open(&sealed, &RecoveryIdentities::generate(), RepoId([7; 32])).is_err());
        let e = Keyring::open(&sealed, &owner, RepoId([8; 32])).unwrap_err().to_string();
        assert!(e.contains("belongs to repository"), "{e}");
        for cut in [0, 10, sealed.len() / 2, sealed.len() - 1] {
            assert!(Keyring::open(&sealed[..cut], &owner, RepoId([7; 32])).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_reader_key_opens_what_is_sealed_to_its_recipient() {
        let reader = ReaderKey::generate(1, 0);
        let sealed = Recipients::parse(&[reader.recipient()]).unwrap().seal(b"data key");
        assert_eq!(reader.identity().open(&sealed).unwrap(), b"data key");
        assert!(format!("{reader:?}").contains("***"));
    }
}
