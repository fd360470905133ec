//! 32-byte identifiers: blob IDs (keyed hashes of plaintext), object IDs (hashes of the
//! stored bytes) and repository IDs (random).

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
