//! 32-byte identifiers: blob IDs (keyed hashes of plaintext), object IDs (hashes of the
//! stored bytes) and repository IDs (random); and blob kinds, which key a blob's ID
//! (`keys`), bind its seal (`crypto`) and are stored in a pack's blob table (`pack`).

use std::fmt;

use crate::error::{Error, Result};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }

            pub fn from_hex(s: &str) -> Result<Self> {
                from_hex(s).map(Self).ok_or_else(|| Error::Malformed {
                    what: stringify!($name),
                    reason: format!("expected 64 hex digits, got {:?}", s),
                })
            }

            /// The first 4 bytes (8 hex digits), as shown to people.
            pub fn short(&self) -> String {
                to_hex(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let bytes = crate::codec::bytes::deserialize(d)?;
                let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    serde::de::Error::invalid_length(bytes.len(), &"32 bytes")
                })?;
                Ok(Self(arr))
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a blob's plaintext under the repository's chunk key. Equal content
    /// gives equal IDs (deduplication) but the ID reveals nothing without the key.
    BlobId
);
id_type!(
    /// Unkeyed BLAKE3 of an object's stored bytes: anyone can check a stored object
    /// against its name.
    ObjectId
);
id_type!(
    /// Random identifier of a repository, bound into its agent key.
    RepoId
);

impl ObjectId {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

/// What a blob holds; the kind keys the blob's ID and is bound into its seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum BlobKind {
    /// File or stream content; sealed under the pack data key.
    Data = 1,
    /// A directory listing (names, metadata); sealed under the pack data key.
    Tree = 2,
    /// The blob IDs a tree references; sealed under the metadata key so that prune and
    /// verify can walk reachability without a recovery identity.
    Refs = 3,
    /// A run of one file's content blob IDs (`tree::ContentList`), for files too long to
    /// list inline; sealed under the metadata key, like Refs, so reachability can follow it.
    List = 4,
}

impl BlobKind {
    pub fn from_u8(b: u8) -> Result<Self> {
        match b {
            1 => Ok(Self::Data),
            2 => Ok(Self::Tree),
            3 => Ok(Self::Refs),
            4 => Ok(Self::List),
            _ => Err(Error::Malformed { what: "blob entry", reason: format!("unknown blob kind {b}") }),
        }
    }

    /// The associated data of a kind sealed under the metadata key (readable with the
    /// agent key), or `None` for kinds sealed under a pack data key (a recovery identity's).
    pub fn meta_seal_label(self) -> Option<&'static str> {
        match self {
            Self::Data | Self::Tree => None,
            Self::Refs => Some(REFS_SEAL_LABEL),
            Self::List => Some(LIST_SEAL_LABEL),
        }
    }
}

/// Associated data of reference-list blobs, which are sealed under the metadata key
/// (`crypto::seal_meta`) rather than a pack's data key.
pub const REFS_SEAL_LABEL: &str = "arka refs v1";

/// Associated data of content-list blobs, sealed under the metadata key like reference lists.
pub const LIST_SEAL_LABEL: &str = "arka content list v1";

pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(s[2 * i])? << 4 | nibble(s[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let id = BlobId(bytes);
            prop_assert_eq!(BlobId::from_hex(&id.to_hex()).unwrap(), id);
        }
    }

    #[test]
    fn bad_hex_is_an_error_not_a_panic() {
        assert!(BlobId::from_hex("zz").is_err());
        assert!(BlobId::from_hex(&"g".repeat(64)).is_err());
    }
}
