//! Low-level codecs shared by every object: a bounds-checked reader, magic/version
//! framing and CBOR helpers.

use crate::error::{Error, Result};

/// Reads little-endian fields from untrusted bytes; every read is bounds-checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(Error::Truncated {
            what: self.what,
            needed: self.pos.saturating_add(n),
            have: self.buf.len(),
        })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed: trailing garbage is a sign of tampering.
    pub fn finish(self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(Error::Malformed { what: self.what, reason: format!("{} trailing bytes", self.buf.len() - self.pos) })
        }
    }

    /// A count read from storage, checked against the bytes that remain so that a forged
    /// count cannot make us allocate more than the object could possibly hold.
    pub fn count(&mut self, min_item_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item_size.max(1)) > self.remaining() {
            return Err(Error::Malformed {
                what: self.what,
                reason: format!("claims {n} items but only {} bytes remain", self.remaining()),
            });
        }
        Ok(n)
    }
}

/// The repository format version this build writes (in every frame). Readers accept every
/// version listed in `docs/FORMAT.md` up to this one.
pub const FORMAT_VERSION: u8 = 1;

/// Every framed object starts with 4 magic bytes and a version byte.
pub const FRAME_LEN: usize = 5;

pub fn write_frame(out: &mut Vec<u8>, magic: &[u8; 4], version: u8) {
    out.extend_from_slice(magic);
    out.push(version);
}

/// Checks magic and version; returns the version and the bytes after the frame.
pub fn read_frame<'a>(bytes: &'a [u8], magic: &[u8; 4], what: &'static str) -> Result<(u8, &'a [u8])> {
    let mut r = Reader::new(bytes, what);
    if r.take(4)? != magic {
        return Err(Error::BadMagic { what });
    }
    let version = r.u8()?;
    if version == 0 || version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { what, found: version, supported: FORMAT_VERSION });
    }
    Ok((version, r.rest()))
}

pub fn to_cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR encoding into a Vec cannot fail");
    out
}

pub fn from_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    // ciborium bounds its recursion depth, so hostile nesting is an error, not a stack overflow.
    ciborium::from_reader(bytes).map_err(|e| Error::Malformed { what, reason: e.to_string() })
}

/// The same for `[u8; N]`: a byte string of exactly N bytes; any other length is refused.
pub mod bytes_array {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let mut bytes = super::bytes::deserialize(d)?;
        let out = <[u8; N]>::try_from(bytes.as_slice())
            .map_err(|_| de::Error::invalid_length(bytes.len(), &"a fixed length"));
        zeroize::Zeroize::zeroize(&mut bytes);
        out
    }
}

/// Serde helpers that encode `Vec<u8>` as a CBOR byte string rather than an array of ints.
pub mod bytes {
    use serde::{de, Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        // byte_buf, not bytes: ciborium serves borrowed bytes only up to its scratch size.
        d.deserialize_byte_buf(V)
    }

    /// The same for `Option<Vec<u8>>`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => s.serialize_some(&Wrap(b.clone())),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }

        struct Wrap(Vec<u8>);
        impl serde::Serialize for Wrap {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for Wrap {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::deserialize(d).map(Wrap)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_reads_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3], "test");
        assert!(r.u32().is_err());
        let mut r = Reader::new(&[1, 0, 0, 0], "test");
        assert_eq!(r.u32().unwrap(), 1);
        assert!(r.u8().is_err());
    }

    #[test]
    fn forged_counts_are_refused_before_allocating() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0], "test");
        assert!(matches!(r.count(10), Err(Error::Malformed { .. })));
    }

    #[test]
    fn frames_check_magic_and_version() {
        let mut v = Vec::new();
        write_frame(&mut v, b"ARKX", 1);
        v.push(9);
        assert_eq!(read_frame(&v, b"ARKX", "x").unwrap(), (1, &[9u8][..]));
        assert!(matches!(read_frame(&v, b"ARKY", "x"), Err(Error::BadMagic { .. })));
        v[4] = 200;
        assert!(matches!(read_frame(&v, b"ARKX", "x"), Err(Error::UnsupportedVersion { .. })));
    }
}
