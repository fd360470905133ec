//! The arka-server HTTP API (DESIGN §7), shared by the server and the agent's client.
//!
//! - Objects: `PUT | GET | HEAD | DELETE /v1/repos/{repo}/objects/{key}`, where `key`
//!   is spelled exactly as [`crate::layout`] spells it (anything else is refused). `PUT`
//!   answers 201 when it wrote the object and 409 ([`Refusal::Exists`]) when the key
//!   exists: writes are create-only for every role. `GET` takes `Range: bytes=a-b`.
//!   `GET` and `HEAD` carry [`STORED_AT_HEADER`].
//! - Listing: `GET /v1/repos/{repo}/objects?prefix=P[&after=KEY]` answers a [`ListPage`]
//!   of at most [`LIST_PAGE_MAX`] objects in key order; the client repeats with
//!   `after = next_after` until it is absent.
//! - Status: `PUT /v1/agents/status` with an [`crate::AgentStatus`] JSON body. The
//!   agent is named by its token, never by the body.
//! - Authentication: `Authorization: Bearer SECRET`; browsers may send HTTP Basic with
//!   the secret as the password.
//! - Errors: an [`ApiError`] JSON body with the status code of its [`Refusal`].

use serde::{Deserialize, Serialize};

pub const API_PREFIX: &str = "/v1";
/// When the server stored the object, in nanoseconds since the Unix epoch.
pub const STORED_AT_HEADER: &str = "x-arka-stored-at-ns";
pub const LIST_PAGE_MAX: usize = 5000;
/// The largest status report the server accepts.
pub const STATUS_BODY_MAX: usize = 1 << 20;

/// The path of an object.
pub fn object_path(repo: &str, key: &str) -> String {
    format!("{API_PREFIX}/repos/{repo}/objects/{key}")
}

/// The path listings are asked on.
pub fn list_path(repo: &str) -> String {
    format!("{API_PREFIX}/repos/{repo}/objects")
}

pub fn status_path() -> String {
    format!("{API_PREFIX}/agents/status")
}

/// Repository names: 1 to 64 of `a-z 0-9 - _ .`, starting with a letter or digit (so
/// never `.`, `..` or a hidden folder of the server's data directory).
pub fn valid_repo_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
        && !name.contains("..")
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    /// Present when more objects follow: pass it as `after` to get the next page.
    #[serde(default)]
    pub next_after: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub stored_at_ns: i64,
}

/// Why the server refused a request. Every refusal is logged and counted in `/metrics`
/// under its [`Refusal::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No token, or one the server does not know (401).
    Unauthenticated,
    /// The token is not for this repository (403).
    WrongRepo,
    /// The token's role may not do this, e.g. delete with an append token (403).
    Role,
    /// The key exists; objects are never overwritten (409).
    Exists,
    /// A repository name or key outside the layout (400).
    BadKey,
    /// A body over the server's limit (413).
    TooLarge,
    /// The bytes do not hash to the object's name (422).
    HashMismatch,
    /// A request the API does not have, or a malformed header or body (400).
    BadRequest,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Self::Unauthenticated,
        Self::WrongRepo,
        Self::Role,
        Self::Exists,
        Self::BadKey,
        Self::TooLarge,
        Self::HashMismatch,
        Self::BadRequest,
    ];

    pub fn status(self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::WrongRepo | Self::Role => 403,
            Self::Exists => 409,
            Self::BadKey | Self::BadRequest => 400,
            Self::TooLarge => 413,
            Self::HashMismatch => 422,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::WrongRepo => "wrong_repo",
            Self::Role => "role",
            Self::Exists => "exists",
            Self::BadKey => "bad_key",
            Self::TooLarge => "too_large",
            Self::HashMismatch => "hash_mismatch",
            Self::BadRequest => "bad_request",
        }
    }
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Absent for errors that are not refusals (a missing object, a storage failure).
    #[serde(default)]
    pub refusal: Option<Refusal>,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        for ok in ["clinic-a", "a", "x.y_z-9", &"a".repeat(64)] {
            assert!(valid_repo_name(ok), "{ok:?}");
        }
        for bad in ["", ".", "..", ".server", "a..b", "A", "a/b", "a%2Fb", "a\\b", "a\0", "-a", &"a".repeat(65)] {
            assert!(!valid_repo_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn refusals_have_distinct_names_and_error_statuses() {
        let names: std::collections::HashSet<_> = Refusal::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), Refusal::ALL.len());
        assert!(Refusal::ALL.iter().all(|r| (400..500).contains(&r.status())));
    }
}
