//! Keyed content-defined chunking: FastCDC v2020 cut points with a gear table derived
//! from the repository's chunk key, run over the pipeline's own large read buffers.

use std::io::{ErrorKind, Read};

use fastcdc::v2020::{cut_gear, select_masks, Normalization};

use arka_proto::{AgentKey, ChunkerParams};

/// Least size of the read buffer, which also holds twice the largest chunk so every cut is
/// found in one pass and a refill moves at most half of it: 16 MiB for files (8 MiB
/// chunks), 4 MiB for streams, whose reads from a pipe bring 64 KiB at a time anyway.
const READ_BUFFER: usize = 4 << 20;

pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    masks: [u64; 4],
}

impl Chunker {
    pub fn new(key: &AgentKey, params: ChunkerParams) -> Self {
        let gear = key.gear_table();
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        let (mask_s, mask_l) = select_masks(params.avg as usize, Normalization::Level1);
        Self { params, gear, gear_ls, masks: [mask_s, mask_l, mask_s << 1, mask_l << 1] }
    }

    /// Length of the chunk that starts at `data[0]`. `data` must hold at least `max`
    /// bytes unless it is the end of the stream.
    pub fn cut(&self, data: &[u8]) -> usize {
        let [s, l, s_ls, l_ls] = self.masks;
        let p = &self.params;
        let (_, len) = cut_gear(
            data,
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            s,
            l,
            s_ls,
            l_ls,
            &self.gear[..],
            &self.gear_ls[..],
        );
        len.max(1).min(data.len())
    }

    /// Reads `reader` to its end and calls `on_chunk` for each chunk in order. Returns the
    /// number of bytes read. `buf` is reused across calls so steady state allocates nothing.
    pub fn chunk_reader<R: Read, E: From<std::io::Error>>(
        &self,
        mut reader: R,
        buf: &mut Vec<u8>,
        mut on_chunk: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let max = self.params.max as usize;
        let cap = READ_BUFFER.max(2 * max);
        buf.resize(cap, 0);
        let (mut start, mut end, mut total, mut eof) = (0usize, 0usize, 0u64, false);
        loop {
            if !eof && end - start < max {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while end < cap {
                    match reader.read(&mut buf[end..cap]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => {
                            end += n;
                            total += n as u64;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if start == end {
                return Ok(total);
            }
            let len = self.cut(&buf[start..end]);
            on_chunk(&buf[start..start + len])?;
            start += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::test_data::pseudo_random;
    use proptest::prelude::*;

    fn chunks(c: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        c.chunk_reader::<_, std::io::Error>(data, &mut buf, |ch| {
            out.push(ch.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    fn small() -> ChunkerParams {
        ChunkerParams { min: 2048, avg: 8192, max: 32768 }
    }

    proptest! {
        #[test]
        fn chunks_reassemble_the_input(data in proptest::collection::vec(any::<u8>(), 0..200_000)) {
            let c = Chunker::new(&AgentKey::generate(), small());
            let cs = chunks(&c, &data);
            prop_assert_eq!(cs.concat(), data);
            for ch in &cs[..cs.len().saturating_sub(1)] {
                prop_assert!(ch.len() >= 2048 && ch.len() <= 32768);
            }
        }
    }

    #[test]
    fn an_insertion_only_changes_nearby_chunks() {
        let key = AgentKey::generate();
        let c = Chunker::new(&key, small());
        // Real entropy (a seeded xorshift), not an arithmetic sequence: a structured
        // sequence can leave a random gear table with no natural cut points, and then
        // every cut is a max-size cut that an insertion shifts (CI saw 3 of 13 shared).
        let data = pseudo_random(400_000, 0x9e37_79b9_7f4a_7c15);
        let mut edited = data.clone();
        edited.splice(100_000..100_000, b"new visit row".iter().copied());
        let a = chunks(&c, &data);
        let b = chunks(&c, &edited);
        let shared = b.iter().filter(|ch| a.contains(ch)).count();
        assert!(shared + 3 >= b.len(), "{shared} of {} chunks shared", b.len());
    }

    #[test]
    fn cut_points_depend_on_the_key() {
        let data = pseudo_random(400_000, 7);
        let a = chunks(&Chunker::new(&AgentKey::generate(), small()), &data);
        let b = chunks(&Chunker::new(&AgentKey::generate(), small()), &data);
        assert_ne!(a.iter().map(Vec::len).collect::<Vec<_>>(), b.iter().map(Vec::len).collect::<Vec<_>>());
    }
}
