//! How chunk sizes for `command` (stream) sources trade a dump's hourly changes against
//! its chunk list: chunks a sequence of dumps (say `tests/perf/clinicdb.py`'s) with several
//! FastCDC sizes and prints, per size, what each later dump would store.
//!
//!   cargo run --release -p arka-agent --example stream_chunk_sizes -- DUMP0 DUMP1 ... [--keys N]
//!       [--sizes MIN/AVG/MAX,...]          (KiB; default 8 KiB to 1 MiB averages)
//!
//! Per hour: new chunks (count, zstd -3 bytes), the chunk list the snapshot's tree and
//! reference list repeat (34 bytes an ID in each), and their sum. Cut points depend on the
//! repository's chunk key, so figures are means over N random keys (default 3).

use std::collections::HashSet;

use arka_agent::engine::chunker::Chunker;
use arka_proto::pack::BlobKind;
use arka_proto::{AgentKey, ChunkerParams};

/// Bytes per chunk ID in a stream's tree node and again in its reference list (CBOR).
const LIST_BYTES_PER_CHUNK: u64 = 2 * 34;
/// Rough pack and index bytes per stored blob (seal overhead, pack entry, index entry).
const PER_BLOB: u64 = 100;

fn main() {
    let mut files = Vec::new();
    let mut keys = 3;
    let mut sizes: Vec<ChunkerParams> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--keys" {
            keys = args.next().and_then(|n| n.parse().ok()).expect("--keys N");
        } else if a == "--sizes" {
            let list = args.next().expect("--sizes MIN/AVG/MAX,...");
            for s in list.split(',') {
                let v: Vec<u32> = s.split('/').map(|x| x.parse::<u32>().expect("KiB") << 10).collect();
                let p = ChunkerParams { min: v[0], avg: v[1], max: v[2] };
                p.validate().expect("valid chunker sizes");
                sizes.push(p);
            }
        } else {
            files.push(a);
        }
    }
    assert!(files.len() >= 2, "give at least two dumps, oldest first");
    let dumps: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("read a dump")).collect();
    let defaults = [
        ChunkerParams { min: 2 << 10, avg: 8 << 10, max: 32 << 10 },
        ChunkerParams { min: 4 << 10, avg: 16 << 10, max: 64 << 10 },
        ChunkerParams { min: 8 << 10, avg: 32 << 10, max: 128 << 10 },
        ChunkerParams { min: 16 << 10, avg: 64 << 10, max: 256 << 10 },
        ChunkerParams { min: 32 << 10, avg: 128 << 10, max: 512 << 10 },
        ChunkerParams { min: 64 << 10, avg: 256 << 10, max: 1 << 20 },
        ChunkerParams { min: 512 << 10, avg: 1 << 20, max: 8 << 20 },
    ];
    if sizes.is_empty() {
        sizes = defaults.to_vec();
    }
    println!("dump 0: {} bytes; {} later dumps; {keys} keys", dumps[0].len(), dumps.len() - 1);
    println!("| min/avg/max KiB | chunks in dump 0 | new chunks/hour | new data KiB/hour (zstd) | chunk list KiB | + per-blob | total KiB/hour |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for p in sizes {
        let (mut first, mut new, mut new_z, mut list) = (0u64, 0u64, 0u64, 0u64);
        for _ in 0..keys {
            let key = AgentKey::generate();
            let chunker = Chunker::new(&key, p);
            let mut seen = HashSet::new();
            for (k, dump) in dumps.iter().enumerate() {
                let mut buf = Vec::new();
                let mut count = 0u64;
                chunker
                    .chunk_reader::<_, std::io::Error>(&dump[..], &mut buf, |c| {
                        count += 1;
                        if seen.insert(key.blob_id(BlobKind::Data, c)) && k > 0 {
                            new += 1;
                            new_z += zstd::bulk::compress(c, 3).expect("zstd").len() as u64;
                        }
                        Ok(())
                    })
                    .expect("chunk");
                if k == 0 {
                    first += count;
                } else {
                    list += count * LIST_BYTES_PER_CHUNK;
                }
            }
        }
        let per_hour = |x: u64| x as f64 / (keys * (dumps.len() as u64 - 1)) as f64;
        let total = per_hour(new_z + list + new * PER_BLOB);
        println!(
            "| {}/{}/{} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | **{:.0}** |",
            p.min >> 10,
            p.avg >> 10,
            p.max >> 10,
            first as f64 / keys as f64,
            per_hour(new),
            per_hour(new_z) / 1024.0,
            per_hour(list) / 1024.0,
            per_hour(new * PER_BLOB) / 1024.0,
            total / 1024.0
        );
    }
}
