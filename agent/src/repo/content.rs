//! A file's content listing: inline in its tree entry when short, otherwise in
//! content-list blobs (FORMAT.md §7.3). Pieces keep a 50 GB database dump's listing out of
//! the writer's memory, out of one tree blob and out of one reference list; and because
//! their boundaries depend on the IDs they hold, an hourly dump that changed in a few
//! places stores a few new pieces, not a new listing of the whole dump.

use futures::{Stream, StreamExt, TryStreamExt};

use arka_proto::{BlobId, ContentList, Node};

use crate::error::{Error, Result};
use crate::repo::blob::BlobReader;

/// A file with at most this many content blobs lists them inline (32 KiB of IDs).
pub const INLINE_MAX: usize = 1024;
/// Piece sizes, in IDs: a piece ends after an ID whose first byte has its low six bits
/// clear (one in 64), once it holds at least `PIECE_MIN`; and at `PIECE_MAX` regardless.
const PIECE_MIN: usize = 16;
const PIECE_MAX: usize = 256;
const PIECE_MASK: u8 = 63;
const _: () = assert!(PIECE_MAX <= INLINE_MAX, "cutting an overlong listing must store a piece");
/// Content lists read ahead of the blobs they name.
const LISTS_AHEAD: usize = 2;

fn ends_piece(last: &BlobId, len: usize) -> bool {
    len >= PIECE_MAX || (len >= PIECE_MIN && last.0[0] & PIECE_MASK == 0)
}

/// Collects a file's content IDs as they are stored and cuts them into pieces once the file
/// proves too long to list inline. The pieces are exactly those that cutting the whole
/// listing from its start would give, so equal runs of content give equal pieces.
/// `store`, given to the calls that may complete a piece, stores it as a List blob and
/// returns its ID.
pub struct ContentBuilder {
    /// IDs not yet in a piece: the whole listing until it exceeds `INLINE_MAX`.
    pending: Vec<BlobId>,
    /// The pieces stored so far; none while the listing may still be inline (a listing
    /// past `INLINE_MAX` always completes a piece at once, since pieces are shorter).
    lists: Vec<BlobId>,
    /// Every ID, for callers that need the full listing (the files cache); `None` keeps
    /// the builder's memory bounded.
    all: Option<Vec<BlobId>>,
}

/// A finished listing. At most one of `content` and `lists` is non-empty.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    pub content: Vec<BlobId>,
    pub lists: Vec<BlobId>,
    /// Every content ID, if asked for.
    pub all: Option<Vec<BlobId>>,
}

/// Stores a content-list piece and returns its ID.
pub type StorePiece<'a> = dyn FnMut(&ContentList) -> Result<BlobId> + 'a;

impl ContentBuilder {
    /// `keep_all`: also keep every ID, for `Listing::all`.
    pub fn new(keep_all: bool) -> Self {
        Self { pending: Vec::new(), lists: Vec::new(), all: keep_all.then(Vec::new) }
    }

    pub fn push(&mut self, id: BlobId, store: &mut StorePiece) -> Result<()> {
        if let Some(all) = &mut self.all {
            all.push(id);
        }
        if self.in_pieces() {
            return self.add_to_piece(id, store);
        }
        self.pending.push(id);
        if self.pending.len() > INLINE_MAX {
            for id in std::mem::take(&mut self.pending) {
                self.add_to_piece(id, store)?;
            }
        }
        Ok(())
    }

    fn in_pieces(&self) -> bool {
        !self.lists.is_empty()
    }

    fn add_to_piece(&mut self, id: BlobId, store: &mut StorePiece) -> Result<()> {
        self.pending.push(id);
        if ends_piece(&id, self.pending.len()) {
            self.store_piece(store)?;
        }
        Ok(())
    }

    fn store_piece(&mut self, store: &mut StorePiece) -> Result<()> {
        let piece = ContentList { data: std::mem::take(&mut self.pending) };
        self.lists.push(store(&piece)?);
        Ok(())
    }

    pub fn finish(mut self, store: &mut StorePiece) -> Result<Listing> {
        if !self.in_pieces() {
            return Ok(Listing { content: self.pending, lists: Vec::new(), all: self.all });
        }
        if !self.pending.is_empty() {
            self.store_piece(store)?;
        }
        Ok(Listing { content: Vec::new(), lists: self.lists, all: self.all })
    }
}

/// Reads and decodes one content-list blob.
pub async fn read_list(reader: &BlobReader, id: &BlobId) -> Result<ContentList> {
    let plain = reader.read(id).await?;
    ContentList::decode(&plain)
        .map_err(|e| Error::Corrupt { key: format!("content list {}", id.short()), reason: e.to_string() })
}

/// A file's content blob IDs in order, inline or read from its content lists.
pub fn content_ids<'a>(reader: &'a BlobReader, node: &'a Node) -> impl Stream<Item = Result<BlobId>> + Send + 'a {
    let inline = futures::stream::iter(node.content.iter().copied().map(Ok));
    let listed = futures::stream::iter(node.lists.iter().copied())
        .map(move |id| async move { read_list(reader, &id).await })
        .buffered(LISTS_AHEAD)
        .map_ok(|list| futures::stream::iter(list.data.into_iter().map(Ok)))
        .try_flatten();
    inline.chain(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, seed: u64) -> Vec<BlobId> {
        (0..n)
            .map(|i| {
                let h = blake3::hash(&[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat());
                BlobId(*h.as_bytes())
            })
            .collect()
    }

    /// Builds a listing the way the walker does; returns (inline, pieces).
    fn build(listing: &[BlobId]) -> (Vec<BlobId>, Vec<ContentList>) {
        let mut pieces = Vec::new();
        let mut store = |piece: &ContentList| {
            pieces.push(piece.clone());
            Ok(BlobId([pieces.len() as u8; 32]))
        };
        let mut b = ContentBuilder::new(true);
        for id in listing {
            b.push(*id, &mut store).unwrap();
        }
        let done = b.finish(&mut store).unwrap();
        assert_eq!(done.all.as_deref(), Some(listing));
        assert_eq!(done.lists.len(), pieces.len());
        (done.content, pieces)
    }

    #[test]
    fn short_listings_stay_inline_and_long_ones_are_cut_into_bounded_pieces() {
        let short = ids(INLINE_MAX, 1);
        assert_eq!(build(&short), (short.clone(), vec![]));

        let long = ids(50_000, 2);
        let (inline, pieces) = build(&long);
        assert!(inline.is_empty());
        let rejoined: Vec<BlobId> = pieces.iter().flat_map(|p| p.data.iter().copied()).collect();
        assert_eq!(rejoined, long);
        assert!(pieces.iter().all(|p| p.data.len() <= PIECE_MAX));
        assert!(pieces[..pieces.len() - 1].iter().all(|p| p.data.len() >= PIECE_MIN));
        let mean = long.len() / pieces.len();
        assert!((40..=120).contains(&mean), "mean piece of {mean} IDs");
    }

    #[test]
    fn a_change_in_the_middle_gives_new_pieces_only_around_it() {
        let before = ids(20_000, 3);
        let mut after = before.clone();
        after[10_000] = ids(1, 4)[0];
        after.insert(15_000, ids(1, 5)[0]);
        let (_, old) = build(&before);
        let (_, new) = build(&after);
        let old: std::collections::HashSet<Vec<BlobId>> = old.into_iter().map(|p| p.data).collect();
        let fresh = new.iter().filter(|p| !old.contains(&p.data)).count();
        assert!(fresh <= 4, "{fresh} of {} pieces changed for two edits", new.len());
    }
}
