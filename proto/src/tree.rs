//! Directory trees and their reference lists.
//!
//! A tree blob (kind Tree, sealed to the recipients through its pack's data key) lists a
//! directory's entries with names and metadata: names are personal data, so only a
//! recovery identity can read them. Its reference list (kind Refs, sealed under the
//! metadata key) holds only the blob IDs the tree reaches, so prune and structural verify
//! can walk reachability with the agent key alone.

use serde::{Deserialize, Serialize};

use crate::codec::{self, Reader};
use crate::error::{Error, Result};
use crate::id::BlobId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// One directory entry. Platform fields are optional so Linux and Windows trees share a format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Raw name bytes: UTF-8 where the platform gave UTF-8, arbitrary bytes on Unix,
    /// WTF-8 on Windows.
    #[serde(with = "codec::bytes")]
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Unix permission bits (including setuid/setgid/sticky).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Windows file attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<u32>,
    /// File size in bytes (files only).
    #[serde(default)]
    pub size: u64,
    /// Content blobs in order (files only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// The subdirectory's tree blob (directories only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// Symlink target bytes (symlinks only).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "codec::bytes::option")]
    pub target: Option<Vec<u8>>,
}

/// A directory listing, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        codec::to_cbor(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let tree: Tree = codec::from_cbor(bytes, "tree")?;
        for n in &tree.nodes {
            let bad_name = n.name.is_empty()
                || n.name == b"."
                || n.name == b".."
                || n.name.contains(&b'/')
                || n.name.contains(&0)
                || (cfg!(windows) && n.name.contains(&b'\\'));
            if bad_name {
                return Err(Error::Malformed {
                    what: "tree",
                    reason: "an entry name is empty, `.`, `..` or contains a separator".into(),
                });
            }
        }
        Ok(tree)
    }
}

/// Associated data of reference-list blobs, which are sealed under the metadata key
/// (`crypto::seal_meta`) rather than a pack's data key.
pub const REFS_SEAL_LABEL: &str = "arka refs v1";

/// The blob IDs one tree reaches directly: its files' content blobs and, for each
/// subdirectory, the subtree's ID and the subtree's own reference list.
///
/// ```text
/// data_count:u32 data_id[32]*  subtree_count:u32 { tree_id[32] refs_id[32] }*
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeRefs {
    pub data: Vec<BlobId>,
    pub subtrees: Vec<(BlobId, BlobId)>,
}

impl TreeRefs {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.data.len() + 64 * self.subtrees.len());
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        for id in &self.data {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&(self.subtrees.len() as u32).to_le_bytes());
        for (t, r) in &self.subtrees {
            out.extend_from_slice(&t.0);
            out.extend_from_slice(&r.0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "reference list");
        let n = r.count(32)?;
        let data = (0..n).map(|_| r.array().map(BlobId)).collect::<Result<_>>()?;
        let m = r.count(64)?;
        let subtrees = (0..m).map(|_| Ok((BlobId(r.array()?), BlobId(r.array()?)))).collect::<Result<_>>()?;
        r.finish()?;
        Ok(Self { data, subtrees })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node_strategy() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(1u8..=255, 1..40)
                .prop_filter("valid name", |n| !n.contains(&b'/') && n != b"." && n != b".."),
            0u8..3,
            any::<Option<u32>>(),
            any::<i64>(),
            any::<u64>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
        )
            .prop_map(|(name, k, mode, mtime_ns, size, content, target)| Node {
                name,
                kind: [NodeKind::File, NodeKind::Dir, NodeKind::Symlink][k as usize],
                mode,
                mtime_ns,
                uid: mode,
                gid: None,
                attributes: None,
                size,
                content: content.into_iter().map(BlobId).collect(),
                subtree: (k == 1).then_some(BlobId([3; 32])),
                target,
            })
    }

    proptest! {
        #[test]
        fn tree_round_trips(nodes in proptest::collection::vec(node_strategy(), 0..10)) {
            let t = Tree { nodes };
            prop_assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
        }

        #[test]
        fn refs_round_trip(data in proptest::collection::vec(any::<[u8; 32]>(), 0..10), subs in proptest::collection::vec((any::<[u8; 32]>(), any::<[u8; 32]>()), 0..5)) {
            let r = TreeRefs { data: data.into_iter().map(BlobId).collect(), subtrees: subs.into_iter().map(|(a, b)| (BlobId(a), BlobId(b))).collect() };
            let bytes = r.encode();
            prop_assert_eq!(TreeRefs::decode(&bytes).unwrap(), r);
            prop_assert!(TreeRefs::decode(&bytes[..bytes.len() - 1]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Tree::decode(&bytes);
            let _ = TreeRefs::decode(&bytes);
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [&b".."[..], b"a/b", b"", b"."] {
            let t = Tree {
                nodes: vec![Node {
                    name: name.to_vec(),
                    kind: NodeKind::File,
                    mode: None,
                    mtime_ns: 0,
                    uid: None,
                    gid: None,
                    attributes: None,
                    size: 0,
                    content: vec![],
                    subtree: None,
                    target: None,
                }],
            };
            assert!(Tree::decode(&t.encode()).is_err(), "{name:?}");
        }
    }
}
