//! Directory trees and their reference lists.
//!
//! A tree blob (kind Tree, sealed to the recipients through its pack's data key) lists a
//! directory's entries with names and metadata: names are personal data, so only a
//! recovery identity can read them. Its reference list (kind Refs, sealed under the
//! metadata key) holds only the blob IDs the tree reaches, so prune and structural verify
//! can walk reachability with the agent key alone. A file too long to list its content
//! inline lists it in pieces instead (kind List, also under the metadata key), so no tree,
//! reference list or writer's memory grows with one file's length.

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
    /// Content blobs in order (files only), when listed inline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// Otherwise: the `ContentList` blobs that list the content blobs, in order (files only;
    /// never together with `content`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<BlobId>,
    /// The subdirectory's tree blob (directories only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// Symlink target bytes (symlinks only).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "codec::bytes::option")]
    pub target: Option<Vec<u8>>,
    /// The entry's data was lost from the repository (`arka repair snapshots` wrote it so):
    /// a file keeps its name, size and metadata but lists no content; a directory lists
    /// nothing. Restore reports such entries instead of writing them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
}

impl Node {
    /// An entry with a name and a kind and nothing else: no metadata, no content. Callers
    /// fill in what they know (`Node { size, content, ..Node::new(name, NodeKind::File) }`).
    pub fn new(name: &[u8], kind: NodeKind) -> Self {
        Self {
            name: name.to_vec(),
            kind,
            mode: None,
            mtime_ns: 0,
            uid: None,
            gid: None,
            attributes: None,
            size: 0,
            content: Vec::new(),
            lists: Vec::new(),
            subtree: None,
            target: None,
            lost: false,
        }
    }
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
            if !n.content.is_empty() && !n.lists.is_empty() {
                return Err(Error::Malformed {
                    what: "tree",
                    reason: "an entry lists its content both inline and in pieces".into(),
                });
            }
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

/// The blob IDs one tree reaches directly: its files' inline content blobs; for each
/// subdirectory, the subtree's ID and the subtree's own reference list; and its files'
/// content-list blobs, whose entries are reached too.
///
/// ```text
/// data_count:u32 data_id[32]*  subtree_count:u32 { tree_id[32] refs_id[32] }*  list_count:u32 list_id[32]*
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeRefs {
    pub data: Vec<BlobId>,
    pub subtrees: Vec<(BlobId, BlobId)>,
    pub lists: Vec<BlobId>,
}

impl TreeRefs {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 32 * (self.data.len() + 2 * self.subtrees.len() + self.lists.len()));
        put_ids(&mut out, &self.data);
        out.extend_from_slice(&(self.subtrees.len() as u32).to_le_bytes());
        for (t, r) in &self.subtrees {
            out.extend_from_slice(&t.0);
            out.extend_from_slice(&r.0);
        }
        put_ids(&mut out, &self.lists);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "reference list");
        let data = take_ids(&mut r)?;
        let m = r.count(64)?;
        let subtrees = (0..m).map(|_| Ok((BlobId(r.array()?), BlobId(r.array()?)))).collect::<Result<_>>()?;
        let lists = take_ids(&mut r)?;
        r.finish()?;
        Ok(Self { data, subtrees, lists })
    }
}

/// A piece of one file's content listing: consecutive content blob IDs.
///
/// ```text
/// count:u32 data_id[32]*count
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentList {
    pub data: Vec<BlobId>,
}

impl ContentList {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 32 * self.data.len());
        put_ids(&mut out, &self.data);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "content list");
        let data = take_ids(&mut r)?;
        r.finish()?;
        Ok(Self { data })
    }
}

fn put_ids(out: &mut Vec<u8>, ids: &[BlobId]) {
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.0);
    }
}

fn take_ids(r: &mut Reader) -> Result<Vec<BlobId>> {
    let n = r.count(32)?;
    (0..n).map(|_| r.array().map(BlobId)).collect()
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
                content: if k == 0 && size % 2 == 1 {
                    Vec::new()
                } else {
                    content.iter().copied().map(BlobId).collect()
                },
                lists: if k == 0 && size % 2 == 1 { content.into_iter().map(BlobId).collect() } else { Vec::new() },
                subtree: (k == 1).then_some(BlobId([3; 32])),
                target,
                lost: size % 3 == 0,
            })
    }

    proptest! {
        #[test]
        fn tree_round_trips(nodes in proptest::collection::vec(node_strategy(), 0..10)) {
            let t = Tree { nodes };
            prop_assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
        }

        #[test]
        fn refs_round_trip(data in proptest::collection::vec(any::<[u8; 32]>(), 0..10), subs in proptest::collection::vec((any::<[u8; 32]>(), any::<[u8; 32]>()), 0..5), lists in proptest::collection::vec(any::<[u8; 32]>(), 0..5)) {
            let r = TreeRefs {
                data: data.into_iter().map(BlobId).collect(),
                subtrees: subs.into_iter().map(|(a, b)| (BlobId(a), BlobId(b))).collect(),
                lists: lists.into_iter().map(BlobId).collect(),
            };
            let bytes = r.encode();
            prop_assert_eq!(TreeRefs::decode(&bytes).unwrap(), r);
            prop_assert!(TreeRefs::decode(&bytes[..bytes.len() - 1]).is_err());
        }

        #[test]
        fn content_lists_round_trip(data in proptest::collection::vec(any::<[u8; 32]>(), 0..20)) {
            let l = ContentList { data: data.into_iter().map(BlobId).collect() };
            let bytes = l.encode();
            prop_assert_eq!(ContentList::decode(&bytes).unwrap(), l);
            prop_assert!(ContentList::decode(&bytes[..bytes.len() - 1]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(ContentList::decode(&longer).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Tree::decode(&bytes);
            let _ = TreeRefs::decode(&bytes);
            let _ = ContentList::decode(&bytes);
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [&b".."[..], b"a/b", b"", b"."] {
            let t = Tree { nodes: vec![Node::new(name, NodeKind::File)] };
            assert!(Tree::decode(&t.encode()).is_err(), "{name:?}");
        }
    }

    #[test]
    fn content_inline_and_in_pieces_at_once_is_refused() {
        let node = Node {
            size: 2,
            content: vec![BlobId([1; 32])],
            lists: vec![BlobId([2; 32])],
            ..Node::new(b"dump.sql", NodeKind::File)
        };
        assert!(Tree::decode(&Tree { nodes: vec![node.clone()] }.encode()).is_err());
        let pieces_only = Node { content: vec![], ..node };
        assert!(Tree::decode(&Tree { nodes: vec![pieces_only] }.encode()).is_ok());
    }
}
