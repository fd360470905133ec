//! Crypto envelopes. No home-made ciphers: age (X25519 + ChaCha20-Poly1305) seals to the
//! recovery recipients, ChaCha20-Poly1305 seals blobs under a pack's random data key, and
//! XChaCha20-Poly1305 seals metadata under the agent's metadata key.

use std::io::{Read, Write};
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::codec;
use crate::error::{Error, Result};
use crate::id::{BlobId, BlobKind};
use crate::keys::AGENT_KEY_PREFIX;

/// Why `given` is not a recipient, without printing it unless it looks like one: a secret
/// key pasted where the public recipient belongs must not end up in a terminal's
/// scrollback, a log or a ticket.
fn not_a_recipient(given: &str, e: &dyn std::fmt::Display) -> String {
    if given.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return "a recovery identity's SECRET key was given where its public recipient belongs (it was not \
                printed): give the age1… line `arka keygen` printed (or `age-keygen -y FILE`), and keep the secret \
                key offline; if it was typed on a shared machine, consider it exposed"
            .into();
    }
    if given.starts_with("age1") {
        return format!("{given:?} is not an age X25519 recipient: {e}");
    }
    "a recipient must be an age X25519 public key (age1…); what was given is not one (not printed, in case \
     it is a secret)"
        .into()
}

/// The public halves of the recovery identities: what agents encrypt to.
#[derive(Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl Recipients {
    pub fn parse<S: AsRef<str>>(recipients: &[S]) -> Result<Self> {
        if recipients.is_empty() {
            return Err(Error::InvalidKey("at least one recipient (age1…) is required".into()));
        }
        recipients
            .iter()
            .map(|r| {
                let r = r.as_ref().trim();
                age::x25519::Recipient::from_str(r).map_err(|e| Error::InvalidKey(not_a_recipient(r, &e)))
            })
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|r| r.to_string()).collect()
    }

    /// Encrypts `plaintext` as one age file readable by any of the recipients.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let encryptor = age::Encryptor::with_recipients(self.0.iter().map(|r| r as &dyn age::Recipient))
            .expect("X25519 recipients can always be combined");
        let mut out = Vec::with_capacity(plaintext.len() + 256 * self.0.len());
        let mut w = encryptor.wrap_output(&mut out).expect("writing to a Vec cannot fail");
        w.write_all(plaintext).expect("writing to a Vec cannot fail");
        w.finish().expect("writing to a Vec cannot fail");
        out
    }
}

/// Recovery identities (age X25519 secret keys): the only keys that can read contents and names.
#[derive(Clone)]
pub struct RecoveryIdentities(Vec<age::x25519::Identity>);

impl RecoveryIdentities {
    pub fn generate() -> Self {
        Self(vec![age::x25519::Identity::generate()])
    }

    /// Parses the text of an unencrypted age identity file (comments and blank lines allowed).
    pub fn parse(text: &str) -> Result<Self> {
        let mut ids = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            if line.starts_with(AGENT_KEY_PREFIX) {
                return Err(Error::InvalidKey(
                    "this is an agent key, not a recovery identity: agent keys can add backups but \
                     cannot read them; pass the clinic owner's recovery key (AGE-SECRET-KEY-1…)"
                        .into(),
                ));
            }
            let id = age::x25519::Identity::from_str(line)
                .map_err(|_| Error::InvalidKey("not an age identity line (AGE-SECRET-KEY-1…)".into()))?;
            ids.push(id);
        }
        if ids.is_empty() {
            return Err(Error::InvalidKey("no AGE-SECRET-KEY-1… line found".into()));
        }
        Ok(Self(ids))
    }

    /// The identity file text, as `arka keygen` writes it.
    pub fn to_file_text(&self) -> String {
        use age::secrecy::ExposeSecret;
        let mut s = String::new();
        for id in &self.0 {
            s.push_str(&format!("# arka recovery identity; public recipient: {}\n", id.to_public()));
            s.push_str(id.to_string().expose_secret());
            s.push('\n');
        }
        s
    }

    pub fn recipients(&self) -> Vec<String> {
        self.0.iter().map(|id| id.to_public().to_string()).collect()
    }

    /// The identity whose 32-byte X25519 secret is `secret` (as read back from paper).
    /// age has no constructor from bytes, so the secret goes through its own Bech32 text.
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self> {
        use age::secrecy::ExposeSecret;
        let hrp = bech32::Hrp::parse("AGE-SECRET-KEY-").expect("a valid human-readable part");
        let text = age::secrecy::SecretString::from(
            bech32::encode_upper::<bech32::Bech32>(hrp, secret).expect("32 bytes fit in a Bech32 string"),
        );
        let id = age::x25519::Identity::from_str(text.expose_secret())
            .map_err(|e| Error::InvalidKey(format!("the secret does not make an age identity: {e}")))?;
        Ok(Self(vec![id]))
    }

    /// The 32-byte X25519 secret of each identity (for the paper form). age exposes it only
    /// as Bech32 text, which this decodes.
    pub fn secrets(&self) -> Vec<zeroize::Zeroizing<[u8; 32]>> {
        use age::secrecy::ExposeSecret;
        self.0
            .iter()
            .map(|id| {
                let text = id.to_string();
                let (_, mut bytes) = bech32::decode(text.expose_secret()).expect("age writes valid Bech32");
                let mut secret = zeroize::Zeroizing::new([0u8; 32]);
                secret.copy_from_slice(&bytes);
                bytes.zeroize();
                secret
            })
            .collect()
    }

    /// Adds `other`'s identities (a keyring's reader keys) to those tried by [`Self::open`].
    pub fn extend(&mut self, other: RecoveryIdentities) {
        self.0.extend(other.0);
    }

    /// Opens an age file sealed to one of the recipients.
    pub fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|e| Error::Age(e.to_string()))?;
        let mut reader = decryptor.decrypt(self.0.iter().map(|i| i as &dyn age::Identity)).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Error::NoMatchingIdentity,
            other => Error::Age(other.to_string()),
        })?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|e| Error::Age(e.to_string()))?;
        Ok(out)
    }
}

/// Encrypts an identity file with a passphrase (age scrypt), as `arka keygen --passphrase` does.
pub fn seal_with_passphrase(plaintext: &[u8], passphrase: &str) -> Vec<u8> {
    let encryptor = age::Encryptor::with_user_passphrase(passphrase.to_owned().into());
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).expect("writing to a Vec cannot fail");
    w.write_all(plaintext).expect("writing to a Vec cannot fail");
    w.finish().expect("writing to a Vec cannot fail");
    out
}

/// True if the bytes are an age file (binary header), e.g. a passphrase-protected identity.
pub fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/v1\n")
}

pub fn open_with_passphrase(ciphertext: &[u8], passphrase: &str) -> Result<Vec<u8>> {
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|e| Error::Age(e.to_string()))?;
    let id = age::scrypt::Identity::new(passphrase.to_owned().into());
    let mut reader = decryptor
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .map_err(|_| Error::InvalidKey("wrong passphrase for the recovery identity file".into()))?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| Error::Age(e.to_string()))?;
    Ok(out)
}

/// A pack's random 256-bit data key. Blobs in the pack are sealed with it; the pack header
/// carries it sealed to the recipients, so only a recovery identity can read the blobs.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// Authentication tag size of every AEAD used here.
pub const TAG_LEN: usize = 16;
/// XChaCha20 nonce size (metadata envelopes carry it in front of the ciphertext).
pub const XNONCE_LEN: usize = 24;

impl DataKey {
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let k: [u8; 32] = bytes.try_into().map_err(|_| Error::Malformed {
            what: "pack data key",
            reason: format!("expected 32 bytes, got {}", bytes.len()),
        })?;
        Ok(Self(k))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Seals a blob. The nonce is the first 12 bytes of the blob's ID: a data key is fresh
    /// per pack and a pack holds each ID once, so nonces do not repeat under a key (and if
    /// an ID did repeat, so would the plaintext: the same message under the same nonce
    /// reveals only that it is the same). Because the nonce does not depend on where the
    /// blob lies, prune can copy sealed blobs into a new pack without a recovery identity.
    pub fn seal_blob(&self, id: &BlobId, kind: BlobKind, plaintext: &[u8]) -> Vec<u8> {
        let mut sealed = Vec::with_capacity(plaintext.len() + 16);
        self.seal_blob_into(id, kind, plaintext, &mut sealed);
        sealed
    }

    /// `seal_blob`, appending to `out` (a pack being filled) instead of allocating.
    pub fn seal_blob_into(&self, id: &BlobId, kind: BlobKind, plaintext: &[u8], out: &mut Vec<u8>) {
        let cipher = ChaCha20Poly1305::new((&self.0).into());
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_in_place_detached(&blob_nonce(id).into(), &blob_aad(id, kind), &mut out[start..])
            .expect("ChaCha20Poly1305 encryption of a bounded buffer cannot fail");
        out.extend_from_slice(&tag);
    }

    pub fn open_blob(&self, id: &BlobId, kind: BlobKind, sealed: &[u8]) -> Result<Vec<u8>> {
        let cipher = ChaCha20Poly1305::new((&self.0).into());
        let aad = blob_aad(id, kind);
        cipher
            .decrypt(&blob_nonce(id).into(), Payload { msg: sealed, aad: &aad })
            .map_err(|_| Error::Authentication { what: "blob" })
    }
}

fn blob_nonce(id: &BlobId) -> [u8; 12] {
    id.0[..12].try_into().expect("a blob ID is 32 bytes")
}

fn blob_aad(id: &BlobId, kind: BlobKind) -> [u8; 45] {
    let mut aad = [0u8; 45];
    aad[..12].copy_from_slice(b"arka-blob-v1");
    aad[12] = kind as u8;
    aad[13..45].copy_from_slice(&id.0);
    aad
}

/// Seals metadata (index segments, snapshots, blob tables, reference lists) under the
/// agent's metadata key. `label` names the object kind and is bound as associated data,
/// so a sealed index cannot be passed off as a snapshot.
pub fn seal_meta(meta_key: &[u8; 32], label: &str, plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(meta_key.into());
    let mut nonce = [0u8; XNONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(&nonce.into(), Payload { msg: plaintext, aad: label.as_bytes() })
        .expect("XChaCha20Poly1305 encryption of a bounded buffer cannot fail");
    let mut out = Vec::with_capacity(XNONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

pub fn open_meta(meta_key: &[u8; 32], label: &'static str, sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < XNONCE_LEN + TAG_LEN {
        return Err(Error::Truncated { what: label, needed: XNONCE_LEN + TAG_LEN, have: sealed.len() });
    }
    let (nonce, ct) = sealed.split_at(XNONCE_LEN);
    let cipher = XChaCha20Poly1305::new(meta_key.into());
    let nonce: [u8; XNONCE_LEN] = nonce.try_into().expect("split at XNONCE_LEN");
    cipher
        .decrypt(&nonce.into(), Payload { msg: ct, aad: label.as_bytes() })
        .map_err(|_| Error::Authentication { what: label })
}

/// A framed object whose body is CBOR sealed under the metadata key (snapshots, prune
/// plans, audit records): `magic version:u8 sealed(meta_key, label, CBOR(value))`.
pub fn seal_cbor<T: serde::Serialize>(meta_key: &[u8; 32], magic: &[u8; 4], label: &'static str, value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    codec::write_frame(&mut out, magic, codec::FORMAT_VERSION);
    out.extend(seal_meta(meta_key, label, &codec::to_cbor(value)));
    out
}

/// Opens what `seal_cbor` wrote: checks the frame, authenticates, decodes.
pub fn open_cbor<T: serde::de::DeserializeOwned>(
    meta_key: &[u8; 32],
    magic: &[u8; 4],
    label: &'static str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T> {
    let (_, sealed) = codec::read_frame(bytes, magic, what)?;
    codec::from_cbor(&open_meta(meta_key, label, sealed)?, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_rebuilt_from_its_secret_is_the_same_identity() {
        let id = RecoveryIdentities::generate();
        let secrets = id.secrets();
        assert_eq!(secrets.len(), 1);
        let again = RecoveryIdentities::from_secret(&secrets[0]).unwrap();
        assert_eq!(again.recipients(), id.recipients());
        assert_eq!(again.to_file_text(), id.to_file_text());
        // It opens what was sealed to the original.
        let sealed = Recipients::parse(&id.recipients()).unwrap().seal(b"x-ray");
        assert_eq!(again.open(&sealed).unwrap(), b"x-ray");
    }

    #[test]
    fn a_secret_key_given_as_a_recipient_is_refused_without_being_printed() {
        let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        for given in [secret, &secret.to_lowercase(), "hunter2-not-a-key"] {
            let e = Recipients::parse(&[given]).err().expect("refused").to_string();
            assert!(!e.contains(given), "printed back: {e}");
        }
        let e = Recipients::parse(&[secret]).err().unwrap().to_string();
        assert!(e.contains("SECRET key") && e.contains("age1"), "{e}");
        let e = Recipients::parse(&["age1notvalid"]).err().unwrap().to_string();
        assert!(e.contains("age1notvalid"), "a malformed public recipient is shown: {e}");
    }

    #[test]
    fn blob_seal_binds_id_and_kind() {
        let k = DataKey::random();
        let id = BlobId([7; 32]);
        let sealed = k.seal_blob(&id, BlobKind::Data, b"hello");
        assert_eq!(k.open_blob(&id, BlobKind::Data, &sealed).unwrap(), b"hello");
        let mut other = id;
        other.0[31] ^= 1; // same nonce, different AAD
        assert!(k.open_blob(&other, BlobKind::Data, &sealed).is_err());
        assert!(k.open_blob(&BlobId([8; 32]), BlobKind::Data, &sealed).is_err());
        assert!(k.open_blob(&id, BlobKind::Tree, &sealed).is_err());
        assert!(DataKey::random().open_blob(&id, BlobKind::Data, &sealed).is_err());
    }

    #[test]
    fn sealing_into_a_pack_is_the_standard_aead_output_appended() {
        let k = DataKey::random();
        let id = BlobId([9; 32]);
        let standard = ChaCha20Poly1305::new((&k.0).into())
            .encrypt(&blob_nonce(&id).into(), Payload { msg: b"a scan", aad: &blob_aad(&id, BlobKind::Tree) })
            .unwrap();
        let mut pack = b"earlier blobs".to_vec();
        k.seal_blob_into(&id, BlobKind::Tree, b"a scan", &mut pack);
        assert_eq!(&pack[..13], b"earlier blobs");
        assert_eq!(pack[13..], standard[..]);
        assert_eq!(k.seal_blob(&id, BlobKind::Tree, b"a scan"), standard);
    }

    #[test]
    fn meta_seal_binds_label() {
        let key = [3u8; 32];
        let sealed = seal_meta(&key, "index", b"abc");
        assert_eq!(open_meta(&key, "index", &sealed).unwrap(), b"abc");
        assert!(open_meta(&key, "snapshot", &sealed).is_err());
        assert!(open_meta(&[4u8; 32], "index", &sealed).is_err());
        assert!(open_meta(&key, "index", &sealed[..10]).is_err());
    }

    #[test]
    fn recipients_seal_and_only_their_identity_opens() {
        let id = RecoveryIdentities::generate();
        let other = RecoveryIdentities::generate();
        let r = Recipients::parse(&id.recipients()).unwrap();
        let sealed = r.seal(b"secret");
        assert_eq!(id.open(&sealed).unwrap(), b"secret");
        assert!(matches!(other.open(&sealed), Err(Error::NoMatchingIdentity)));
        let reparsed = RecoveryIdentities::parse(&id.to_file_text()).unwrap();
        assert_eq!(reparsed.open(&sealed).unwrap(), b"secret");
    }

    #[test]
    fn passphrase_protected_identity_round_trips() {
        let sealed = seal_with_passphrase(b"AGE-SECRET-KEY-1X", "correct horse");
        assert!(is_age_file(&sealed));
        assert_eq!(open_with_passphrase(&sealed, "correct horse").unwrap(), b"AGE-SECRET-KEY-1X");
        assert!(open_with_passphrase(&sealed, "wrong").is_err());
    }
}

/// Beside the sealing it exercises: `keys` comes before `crypto` in the layering.
#[cfg(test)]
mod retired_key_tests {
    use super::*;
    use crate::keys::{AgentKey, OpenedBy, MAX_RETIRED};

    #[test]
    fn retired_keys_open_old_metadata_and_never_seal() {
        let a = AgentKey::generate();
        let old = seal_meta(a.meta_key(), "snapshot", b"old");
        let b = a.rotated().unwrap().rotated().unwrap();
        let (plain, by) = b.open_meta_with(|k| open_meta(k, "snapshot", &old)).unwrap();
        assert_eq!((plain.as_slice(), by), (&b"old"[..], OpenedBy::Retired(a.id())));
        let new = seal_meta(b.meta_key(), "snapshot", b"new");
        assert_eq!(b.open_meta_with(|k| open_meta(k, "snapshot", &new)).unwrap().1, OpenedBy::Current);
        // The old key cannot read what the new one sealed.
        assert!(a.open_meta_with(|k| open_meta(k, "snapshot", &new)).is_err());
        // A label mismatch is still refused under every key.
        assert!(b.open_meta_with(|k| open_meta(k, "index", &old)).is_err());
        let mut k = a.clone();
        for _ in 0..MAX_RETIRED {
            k = k.rotated().unwrap();
        }
        assert!(k.rotated().is_err());
        assert_eq!(AgentKey::parse(&k.to_file_text()).unwrap().retired_ids().len(), MAX_RETIRED);
    }
}
