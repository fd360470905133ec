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

use crate::layout::ObjectKey;

pub const API_PREFIX: &str = "/v1";
/// When the server stored the object, in nanoseconds since the Unix epoch.
pub const STORED_AT_HEADER: &str = "x-arka-stored-at-ns";
pub const LIST_PAGE_MAX: usize = 20_000;
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

/// Where an object request points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectTarget {
    List { repo: String },
    Object { repo: String, key: String },
}

/// Parses `/v1/repos/{repo}/objects[/{key}]` from the raw request path, before any
/// percent-decoding: arka never needs an escape, so any `%` is refused, and so a
/// `%2F` or `%2e%2e` can never become a separator or a parent folder further down.
pub fn parse_object_path(path: &str) -> Result<ObjectTarget, &'static str> {
    if path.contains('%') {
        return Err("percent-escapes are not part of any repository name or key");
    }
    let rest = path.strip_prefix("/v1/repos/").ok_or("not an object path")?;
    let (repo, rest) = rest.split_once('/').ok_or("no /objects after the repository name")?;
    if !valid_repo_name(repo) {
        return Err("not a repository name (a-z, 0-9, '-', '_', '.', at most 64)");
    }
    if rest == "objects" {
        return Ok(ObjectTarget::List { repo: repo.into() });
    }
    let key = rest.strip_prefix("objects/").ok_or("no /objects after the repository name")?;
    if ObjectKey::parse(key).is_none() {
        return Err("the key is not one arka writes");
    }
    Ok(ObjectTarget::Object { repo: repo.into(), key: key.into() })
}

/// A `Range` header: `bytes=a-b` (inclusive) or `bytes=a-`, one range only. Returns the
/// start and, if given, the exclusive end.
pub fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start = a.parse().ok()?;
    let end = if b.is_empty() { None } else { Some(b.parse::<u64>().ok()?.checked_add(1)?) };
    end.is_none_or(|e| e > start).then_some((start, end))
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

    #[test]
    fn object_paths_parse_from_the_raw_path() {
        let key = crate::layout::ObjectKind::Pack.key(&crate::id::ObjectId::of(b"x"));
        assert_eq!(
            parse_object_path(&format!("/v1/repos/clinic-a/objects/{key}")),
            Ok(ObjectTarget::Object { repo: "clinic-a".into(), key: key.clone() })
        );
        assert_eq!(parse_object_path("/v1/repos/clinic-a/objects"), Ok(ObjectTarget::List { repo: "clinic-a".into() }));
        for bad in [
            "/v1/repos/clinic-a/objects/".to_string(),
            "/v1/repos/../objects/config".into(),
            "/v1/repos/clinic-a/objects/../../etc/passwd".into(),
            format!("/v1/repos/clinic-a/objects/{}", key.replace('/', "%2F")),
            "/v1/repos/clinic-a%2F..%2Fclinic-b/objects/config".into(),
            "/v1/repos/clinic-a/other/config".into(),
            "/v1/repos/clinic-a".into(),
        ] {
            assert!(parse_object_path(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some((0, Some(10))));
        assert_eq!(parse_range("bytes=5-"), Some((5, None)));
        for bad in ["bytes=9-0", "bytes=-5", "bytes=0-1,3-4", "items=0-1", "bytes=a-b", "bytes=0-18446744073709551615"]
        {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }
}
