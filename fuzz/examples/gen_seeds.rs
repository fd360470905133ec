//! Writes small, valid, deterministic seed inputs for every fuzz target into
//! `fuzz/seeds/<target>/`. Run after a format change:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//! ```
//!
//! Sealed objects use a fixed nonce (not `seal_meta`'s random one) so re-running gives
//! byte-identical files; every seed is checked with the real decoder before it is written.

use std::path::{Path, PathBuf};

use arka_fuzz::{
    table_plaintext, PackLayout, AUDIT_LABEL, DAMAGE_LABEL, INDEX_LABEL, KEY, PACK_TABLE_LABEL, PLAN_LABEL,
    SNAPSHOT_LABEL,
};
use arka_proto::{
    audit, codec, index, pack, plan, snapshot, AgentKey, BlobId, BlobKind, ChunkerParams, Compression, ContentList,
    IndexSegment, Node, NodeKind, ObjectId, PackBlobEntry, PackIndex, PrunePlan, RecoveryIdentities, RepoConfig,
    RepoId, Snapshot, SnapshotStats, Tree, TreeRefs,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;

/// `crypto::seal_meta` with a fixed nonce.
fn seal_fixed(label: &str, plain: &[u8]) -> Vec<u8> {
    let nonce = [0x5e; 24];
    let ct = XChaCha20Poly1305::new(&KEY.into()).encrypt(&nonce.into(), Payload { msg: plain, aad: label.as_bytes() });
    let mut out = nonce.to_vec();
    out.extend(ct.expect("encrypting a small buffer"));
    out
}

fn framed(magic: &[u8; 4], label: &str, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    codec::write_frame(&mut out, magic, 1);
    out.extend(seal_fixed(label, plain));
    out
}

fn entry(i: u8, kind: BlobKind, offset: u32, stored_len: u32) -> PackBlobEntry {
    let compression = if i % 2 == 0 { Compression::Zstd } else { Compression::None };
    PackBlobEntry { id: BlobId([i; 32]), kind, compression, key: 0, offset, stored_len, raw_len: stored_len * 2 }
}

/// Raw pack bytes (header, blob area, fixed-nonce table) and the structured input for the
/// same layout and entries.
fn pack_seeds(layout: PackLayout, entries: &[PackBlobEntry]) -> (Vec<u8>, Vec<u8>) {
    let plain = table_plaintext(entries);
    let mut table = seal_fixed(PACK_TABLE_LABEL, &plain);
    table.extend((table.len() as u32).to_le_bytes());
    table.extend(pack::TRAILER_MAGIC);
    let raw = layout.pack_with_table(&table);
    assert_eq!(pack::decode_table(&KEY, &raw).unwrap(), entries);
    let mut structured = layout.prefix().to_vec();
    structured.extend(plain);
    (raw, structured)
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        mode: Some(0o100644),
        mtime_ns: 1_767_225_600_123_456_789,
        uid: Some(1000),
        gid: Some(1000),
        ..Node::new(name, kind)
    }
}

/// A recovery identity from fixed secret bytes (age's Bech32 `AGE-SECRET-KEY-1…` form).
fn identity_text() -> String {
    let hrp = bech32::Hrp::parse("age-secret-key-").unwrap();
    let line = bech32::encode::<bech32::Bech32>(hrp, &[0x42; 32]).unwrap().to_uppercase();
    format!("# created: fuzz seed (not a real key)\n{line}\n")
}

struct Seeds {
    root: PathBuf,
    written: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes) {
            std::fs::write(&path, bytes).unwrap();
            self.written += 1;
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut s = Seeds { root, written: 0 };

    // pack: raw packs and structured `key_len pad table_plaintext` inputs.
    let small = PackLayout { key_len: 32, pad: 0 };
    let (raw, structured) = pack_seeds(small, &[]);
    s.put("pack", "raw-empty", &raw);
    s.put("pack", "table-empty", &structured);
    let layout = PackLayout { key_len: 100, pad: 300 };
    let b = layout.blobs_start() as u32;
    let entries = [
        entry(1, BlobKind::Data, b, 120),
        entry(2, BlobKind::Tree, b + 120, 100),
        entry(3, BlobKind::Refs, b + 220, 80),
    ];
    let (raw, structured) = pack_seeds(layout, &entries);
    s.put("pack", "raw-three-blobs", &raw);
    s.put("pack", "table-three-blobs", &structured);

    // index: a sealed segment and its plaintext (the target also seals its input).
    let seg = IndexSegment {
        packs: vec![
            PackIndex { pack_id: ObjectId([9; 32]), pack_len: 10_000, blobs: entries.to_vec() },
            PackIndex { pack_id: ObjectId([8; 32]), pack_len: 500, blobs: vec![] },
        ],
    };
    let bytes = seg.encode(&KEY);
    let plain = arka_proto::crypto::open_meta(&KEY, "arka index segment v1", &bytes[codec::FRAME_LEN..]).unwrap();
    let raw = framed(index::MAGIC, INDEX_LABEL, &plain);
    assert_eq!(IndexSegment::decode(&KEY, &raw).unwrap(), seg);
    s.put("index", "raw-segment", &raw);
    s.put("index", "plain-segment", &plain);
    s.put("index", "plain-empty", &0u32.to_le_bytes());

    // snapshot: sealed and plaintext CBOR.
    let snap = Snapshot {
        time_ns: 1_767_225_600_000_000_000,
        written_ns: 1_767_225_660_000_000_000,
        hostname: "clinic-pc".into(),
        source_kind: "files".into(),
        source: vec!["/srv/imaging".into(), "/home".into()],
        tags: vec!["hourly".into()],
        tree: BlobId([1; 32]),
        refs: BlobId([2; 32]),
        partial: true,
        stats: SnapshotStats { files: 3, dirs: 1, bytes: 12345, bytes_read: 100, ..Default::default() },
        program: "arka 0.1.0".into(),
        repaired_from: None,
        lost_files: 0,
        source_name: Some("imaging".into()),
    };
    let plain = codec::to_cbor(&snap);
    let raw = framed(snapshot::MAGIC, SNAPSHOT_LABEL, &plain);
    assert_eq!(Snapshot::decode(&KEY, &raw).unwrap(), snap);
    s.put("snapshot", "raw-snapshot", &raw);
    s.put("snapshot", "plain-snapshot", &plain);

    // plan: sealed and plaintext CBOR.
    let prune_plan = PrunePlan {
        created_ns: 1_767_225_600_000_000_000,
        delete_after_ns: 1_767_312_000_000_000_000,
        packs: vec![ObjectId([5; 32]), ObjectId([6; 32])],
        index: vec![ObjectId([7; 32])],
    };
    let plain = codec::to_cbor(&prune_plan);
    let raw = framed(plan::MAGIC, PLAN_LABEL, &plain);
    assert_eq!(PrunePlan::decode(&KEY, &raw).unwrap(), prune_plan);
    s.put("plan", "raw-plan", &raw);
    s.put("plan", "plain-plan", &plain);

    // damage: sealed and plaintext CBOR.
    let report = arka_proto::DamageReport {
        found_ns: 1_764_000_000_000_000_000,
        found_by: "verify".into(),
        packs: vec![ObjectId([3; 32])],
        blobs: vec![(ObjectId([4; 32]), BlobId([5; 32]))],
    };
    let plain = codec::to_cbor(&report);
    let raw = framed(arka_proto::damage::MAGIC, DAMAGE_LABEL, &plain);
    assert_eq!(arka_proto::DamageReport::decode(&KEY, &raw).unwrap(), report);
    s.put("damage", "raw-damage", &raw);
    s.put("damage", "plain-damage", &plain);

    // server: request paths, a range, a listing prefix and a listing page.
    let pack_key = arka_proto::layout::ObjectKind::Pack.key(&ObjectId([0x3f; 32]));
    s.put("server", "object-path", arka_proto::server::object_path("clinic-a", &pack_key).as_bytes());
    s.put("server", "list-path", arka_proto::server::list_path("clinic-a").as_bytes());
    s.put("server", "range", b"bytes=0-99");
    s.put("server", "prefix", b"packs/3f");
    s.put("server", "list-page", br#"{"objects":[{"key":"config","size":3,"stored_at_ns":1}],"next_after":"config"}"#);

    // tree: a tree with one node of each kind, and a reference list.
    let tree = Tree {
        nodes: vec![
            Node { size: 4096, content: vec![BlobId([3; 32]), BlobId([4; 32])], ..node(b"scan.dcm", NodeKind::File) },
            Node { size: 1 << 36, lists: vec![BlobId([10; 32])], ..node(b"clinic.sql", NodeKind::File) },
            Node { mode: Some(0o40755), subtree: Some(BlobId([5; 32])), ..node(b"sub", NodeKind::Dir) },
            Node {
                mode: None,
                uid: None,
                gid: None,
                attributes: Some(0x20),
                target: Some(b"../scan.dcm".to_vec()),
                ..node(b"link \xff", NodeKind::Symlink)
            },
        ],
    };
    assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree);
    s.put("tree", "tree", &tree.encode());
    s.put("tree", "tree-empty", &Tree::default().encode());
    let refs = TreeRefs {
        data: vec![BlobId([3; 32]), BlobId([4; 32])],
        subtrees: vec![(BlobId([5; 32]), BlobId([6; 32]))],
        lists: vec![BlobId([7; 32])],
    };
    assert_eq!(TreeRefs::decode(&refs.encode()).unwrap(), refs);
    s.put("tree", "refs", &refs.encode());
    let list = ContentList { data: vec![BlobId([8; 32]), BlobId([9; 32])] };
    assert_eq!(ContentList::decode(&list.encode()).unwrap(), list);
    s.put("tree", "content-list", &list.encode());

    // audit: a first record and a later one, sealed and plaintext CBOR.
    let first = arka_proto::AuditRecord {
        seq: 0,
        prev: None,
        time_ns: 1_767_225_600_000_000_000,
        host: "clinic-pc".into(),
        user: "arka".into(),
        operation: arka_proto::Operation::Init,
        snapshots: vec![],
        counts: [("recipients".to_string(), 2)].into(),
        detail: Some("repository created, agent key created".into()),
        program: "arka 0.1.0".into(),
    };
    let later = arka_proto::AuditRecord {
        seq: 41,
        prev: Some(ObjectId([7; 32])),
        operation: arka_proto::Operation::Forget,
        snapshots: vec![ObjectId([1; 32]), ObjectId([2; 32])],
        counts: [("forgotten".to_string(), 2), ("kept".to_string(), 30)].into(),
        detail: None,
        ..first.clone()
    };
    for (name, record) in [("first", &first), ("later", &later)] {
        let plain = codec::to_cbor(record);
        let raw = framed(audit::MAGIC, AUDIT_LABEL, &plain);
        assert_eq!(&arka_proto::AuditRecord::decode(&KEY, &raw).unwrap(), record);
        s.put("audit", &format!("raw-{name}"), &raw);
        s.put("audit", &format!("plain-{name}"), &plain);
    }

    // config, MAC'd under a fixed agent key.
    let ids = RecoveryIdentities::parse(&identity_text()).unwrap();
    let mut raw_key = [0x11u8; 96];
    raw_key[..32].copy_from_slice(&[0x22; 32]);
    let agent_key = AgentKey::from_raw(&raw_key).unwrap();
    let cfg = RepoConfig {
        repo_id: RepoId([0x22; 32]),
        created: 1_767_225_600,
        chunker_files: ChunkerParams::FILES,
        chunker_stream: ChunkerParams::STREAM,
        zstd_level: 3,
        pack_size: 16 << 20,
        recipients: ids.recipients(),
        sealed_agent_key: vec![0xa5; 64],
        generation: 0,
        reader: None,
        keyring: None,
    };
    let bytes = cfg.encode(&agent_key);
    assert_eq!(RepoConfig::decode(&bytes, &agent_key).unwrap(), cfg);
    s.put("config", "config", &bytes);

    // keys: text files.
    let text = agent_key.to_file_text();
    assert_eq!(AgentKey::parse(&text).unwrap().to_raw(), agent_key.to_raw());
    s.put("keys", "agent-key.txt", text.as_bytes());
    s.put("keys", "recovery-identity.txt", identity_text().as_bytes());
    s.put("keys", "recipients.txt", format!("{}\n", ids.recipients().join("\n")).as_bytes());
    s.put("keys", "object-id.txt", ObjectId::of(b"arka").to_hex().as_bytes());

    // paper: a paper key as printed, and as typed back by hand.
    let paper = arka_proto::paper::PaperKey::encode(&[0x42; 32]).to_text();
    s.put("paper", "printed.txt", paper.as_bytes());
    s.put("paper", "typed.txt", paper.to_lowercase().replace(' ', "-").replace('0', "o").as_bytes());

    println!("seeds: {} file(s) written under {}", s.written, s.root.display());
}
