//! Where each object lives under a repository's root. The layout is part of the format:
//! the agent writes exactly these keys, and arka-server accepts nothing else.

use crate::id::ObjectId;

/// The write-once repository config.
pub const CONFIG_KEY: &str = "config";

/// Kinds of content-addressed objects: each is named by the BLAKE3 hash of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Pack,
    Index,
    Snapshot,
    /// Hash-chained audit records.
    Audit,
    /// Prune's deletion plans: what a finished prune may delete once its grace period ends.
    PrunePlan,
    /// What verify, restore or a backup found damaged: the next backup stores it again.
    Damage,
    /// A second copy of the config, byte for byte, so that losing `config` loses nothing
    /// (FORMAT.md §5.1). Named by its hash like every other kind; never rewritten.
    ConfigCopy,
    /// Keyrings: the reader keys and recipients, sealed to the recipients (FORMAT.md §3.6).
    /// Written by `arka key` with a recovery identity; deleted only by `arka key rewrap`.
    Keyring,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 8] = [
        Self::Pack,
        Self::Index,
        Self::Snapshot,
        Self::Audit,
        Self::PrunePlan,
        Self::Damage,
        Self::ConfigCopy,
        Self::Keyring,
    ];

    /// The top-level folder of the kind.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Pack => "packs",
            Self::Index => "index",
            Self::Snapshot => "snapshots",
            Self::Audit => "audit",
            Self::PrunePlan => "prune",
            Self::Damage => "damage",
            Self::ConfigCopy => "configs",
            Self::Keyring => "keys",
        }
    }

    /// The object's key. Packs are sharded by their first hex byte so no folder of a
    /// local repository grows past a few thousand entries.
    pub fn key(self, id: &ObjectId) -> String {
        let hex = id.to_hex();
        match self {
            Self::Pack => format!("packs/{}/{hex}", &hex[..2]),
            _ => format!("{}/{hex}", self.dir()),
        }
    }

    fn from_dir(dir: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.dir() == dir)
    }
}

/// A key parsed against the layout. Parsing is the whole validation: a key is accepted
/// only if it is spelled exactly as [`ObjectKind::key`] or [`CONFIG_KEY`] spell it, so
/// `..`, absolute paths, backslashes, NUL, percent-escapes, upper-case hex and stray
/// folders are all refused by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKey {
    Config,
    Content { kind: ObjectKind, id: ObjectId },
}

impl ObjectKey {
    pub fn parse(key: &str) -> Option<Self> {
        if key == CONFIG_KEY {
            return Some(Self::Config);
        }
        let (dir, rest) = key.split_once('/')?;
        let kind = ObjectKind::from_dir(dir)?;
        let hex = rest.rsplit('/').next()?;
        let id = ObjectId::from_hex(hex).ok()?;
        (kind.key(&id) == key).then_some(Self::Content { kind, id })
    }

    /// The hash the object's bytes must have, for content-addressed objects.
    pub fn expected_id(&self) -> Option<ObjectId> {
        match self {
            Self::Config => None,
            Self::Content { id, .. } => Some(*id),
        }
    }
}

/// A listing prefix the layout allows: empty (everything), a kind's folder, or a pack
/// shard (`packs/3f`). A trailing `/` is accepted.
pub fn valid_list_prefix(prefix: &str) -> bool {
    if prefix.starts_with('/') {
        return false;
    }
    let p = prefix.strip_suffix('/').unwrap_or(prefix);
    if p.is_empty() || ObjectKind::from_dir(p).is_some() {
        return true;
    }
    match p.strip_prefix("packs/") {
        Some(shard) => shard.len() == 2 && shard.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_layout_writes_parses_back() {
        let id = ObjectId::of(b"x");
        for kind in ObjectKind::ALL {
            assert_eq!(ObjectKey::parse(&kind.key(&id)), Some(ObjectKey::Content { kind, id }));
        }
        assert_eq!(ObjectKey::parse("config"), Some(ObjectKey::Config));
    }

    #[test]
    fn anything_else_is_refused() {
        let hex = ObjectId::of(b"x").to_hex();
        let shard = &hex[..2];
        for bad in [
            String::new(),
            "/config".into(),
            "config/".into(),
            "../config".into(),
            format!("packs/{hex}"),
            format!("packs/00/{hex}"),
            format!("packs/{shard}/../{hex}"),
            format!("packs%2F{shard}%2F{hex}"),
            format!("index/{}", hex.to_uppercase()),
            format!("index/{}", &hex[..63]),
            format!("index\\{hex}"),
            format!("index/{hex}\0"),
            format!("/index/{hex}"),
            format!("index/{hex}/"),
            format!("index/x/{hex}"),
            format!("tmp/{hex}"),
            format!("snapshots/{hex}.tmp"),
        ] {
            assert_eq!(ObjectKey::parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn list_prefixes() {
        for ok in ["", "packs", "packs/", "packs/3f", "index", "snapshots/", "audit", "prune", "configs"] {
            assert!(valid_list_prefix(ok), "{ok:?}");
        }
        for bad in ["/", "..", "packs/3F", "packs/3", "packs/3f/x", "config", "tmp", "index/..", "packs/%2F"] {
            assert!(!valid_list_prefix(bad), "{bad:?}");
        }
    }
}
