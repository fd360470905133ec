//! Errors for decoding and opening repository objects.
//!
//! Policy: every variant says which object kind failed and why, in words an IT contractor
//! can act on; no variant carries secret material or plaintext.

/// What went wrong while decoding, authenticating or decrypting an object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} is truncated: needs {needed} bytes, has {have}")]
    Truncated { what: &'static str, needed: usize, have: usize },
    #[error("{what} does not start with the expected magic bytes: not an arka object")]
    BadMagic { what: &'static str },
    #[error("{what} has format version {found}, this build reads up to {supported}: upgrade arka")]
    UnsupportedVersion { what: &'static str, found: u8, supported: u8 },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} failed authentication: it was altered, damaged, or belongs to another repository")]
    Authentication { what: &'static str },
    #[error("the recovery identity given is not one of this repository's recipients")]
    NoMatchingIdentity,
    #[error("age decryption failed: {0}")]
    Age(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
