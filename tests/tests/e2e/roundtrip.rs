//! Property: whatever tree is backed up is restored identically — contents byte for byte,
//! file types, symlink targets (dangling ones too), modes and mtimes.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use arka_tests::{assert_same_tree, pseudo_random, set_mode, set_mtime, write_file, Fixture};

const MIB: usize = 1 << 20;

#[derive(Debug, Clone)]
enum Content {
    Empty,
    Random {
        len: usize,
        seed: u64,
    },
    /// One byte repeated: compressible, and all-zero blobs take restore's hole path.
    Repeated {
        len: usize,
        byte: u8,
    },
    /// The same bytes as an earlier file (by index, modulo the files before it).
    CopyOf(usize),
}

#[derive(Debug, Clone)]
struct DirSpec {
    /// Index into the directories made before this one; 0 is the source root.
    parent: usize,
    name: String,
    mode: u32,
    mtime: (i64, u32),
}

#[derive(Debug, Clone)]
struct FileSpec {
    dir: usize,
    name: String,
    content: Content,
    mode: u32,
    mtime: (i64, u32),
}

#[derive(Debug, Clone)]
struct LinkSpec {
    dir: usize,
    name: String,
    /// `Some(i)`: points (relatively) at file i; `None`: dangling.
    to_file: Option<usize>,
}

#[derive(Debug, Clone)]
struct TreeSpec {
    dirs: Vec<DirSpec>,
    files: Vec<FileSpec>,
    links: Vec<LinkSpec>,
    root_mtime: (i64, u32),
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9ąęłńóśźżŁŚÓ _.,()-]{1,12}"
}

fn mtime() -> impl Strategy<Value = (i64, u32)> {
    (946_684_800i64..1_780_000_000, 0u32..1_000_000_000)
}

fn content() -> impl Strategy<Value = Content> {
    let len = prop_oneof![
        3 => 1usize..4096,
        3 => 4096usize..(256 << 10),
        2 => (256usize << 10)..(3 * MIB),
    ];
    prop_oneof![
        1 => Just(Content::Empty),
        4 => (len.clone(), any::<u64>()).prop_map(|(len, seed)| Content::Random { len, seed }),
        2 => (len, prop_oneof![Just(0u8), any::<u8>()]).prop_map(|(len, byte)| Content::Repeated { len, byte }),
        2 => any::<usize>().prop_map(Content::CopyOf),
    ]
}

fn tree() -> impl Strategy<Value = TreeSpec> {
    let dirs = prop::collection::vec(
        (any::<usize>(), name(), prop::sample::select(vec![0o755u32, 0o750, 0o700, 0o775]), mtime()),
        0..6,
    );
    let files = prop::collection::vec(
        (any::<usize>(), name(), content(), prop::sample::select(vec![0o644u32, 0o600, 0o640, 0o755, 0o400]), mtime()),
        1..10,
    );
    let links = prop::collection::vec((any::<usize>(), name(), prop::option::weighted(0.6, any::<usize>())), 0..4);
    (dirs, files, links, mtime()).prop_map(|(dirs, files, links, root_mtime)| {
        let dirs: Vec<DirSpec> = dirs
            .into_iter()
            .enumerate()
            .map(|(i, (parent, name, mode, mtime))| DirSpec {
                // Directory i+1 hangs under one of the directories 0..=i.
                parent: parent % (i + 1),
                name: format!("{name}~d{i}"),
                mode,
                mtime,
            })
            .collect();
        let ndirs = dirs.len() + 1;
        let files: Vec<FileSpec> = files
            .into_iter()
            .enumerate()
            .map(|(i, (dir, name, content, mode, mtime))| FileSpec {
                dir: dir % ndirs,
                name: format!("{name}~f{i}"),
                content: match content {
                    Content::CopyOf(_) if i == 0 => Content::Empty,
                    Content::CopyOf(j) => Content::CopyOf(j % i),
                    c => c,
                },
                mode,
                mtime,
            })
            .collect();
        let nfiles = files.len();
        let links = links
            .into_iter()
            .enumerate()
            .map(|(i, (dir, name, to))| LinkSpec {
                dir: dir % ndirs,
                name: format!("{name}~l{i}"),
                to_file: to.map(|f| f % nfiles),
            })
            .collect();
        TreeSpec { dirs, files, links, root_mtime }
    })
}

/// Relative path of directory `d` (0 = root) and its depth.
fn dir_path(spec: &TreeSpec, d: usize) -> (PathBuf, usize) {
    if d == 0 {
        return (PathBuf::new(), 0);
    }
    let dir = &spec.dirs[d - 1];
    let (parent, depth) = dir_path(spec, dir.parent);
    (parent.join(&dir.name), depth + 1)
}

fn file_bytes(spec: &TreeSpec, i: usize) -> Vec<u8> {
    match &spec.files[i].content {
        Content::Empty => Vec::new(),
        Content::Random { len, seed } => pseudo_random(*seed, *len),
        Content::Repeated { len, byte } => vec![*byte; *len],
        Content::CopyOf(j) => file_bytes(spec, *j),
    }
}

fn build(spec: &TreeSpec, root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    for d in 1..=spec.dirs.len() {
        std::fs::create_dir(root.join(dir_path(spec, d).0)).unwrap();
    }
    let file_rel = |i: usize| dir_path(spec, spec.files[i].dir).0.join(&spec.files[i].name);
    for (i, f) in spec.files.iter().enumerate() {
        let p = root.join(file_rel(i));
        write_file(&p, &file_bytes(spec, i));
        set_mtime(&p, f.mtime.0, f.mtime.1);
        set_mode(&p, f.mode);
    }
    for l in &spec.links {
        let (dir, depth) = dir_path(spec, l.dir);
        let target = match l.to_file {
            Some(f) => Path::new(&"../".repeat(depth)).join(file_rel(f)),
            None => PathBuf::from(format!("no/such/{}", l.name)),
        };
        std::os::unix::fs::symlink(target, root.join(dir).join(&l.name)).unwrap();
    }
    // Deepest first: later directories are never ancestors of earlier ones.
    for (i, d) in spec.dirs.iter().enumerate().rev() {
        let p = root.join(dir_path(spec, i + 1).0);
        set_mtime(&p, d.mtime.0, d.mtime.1);
        set_mode(&p, d.mode);
    }
    set_mtime(root, spec.root_mtime.0, spec.root_mtime.1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(spec in tree()) {
        let fx = Fixture::new();
        let src = fx.path("src");
        build(&spec, &src);
        let backup = fx.backup_ok(&[&src], &[]);
        prop_assert_eq!(backup["partial"].as_bool(), Some(false));
        prop_assert_eq!(backup["stats"]["files"].as_u64(), Some(spec.files.len() as u64));
        let target = fx.path("restored");
        fx.restore("latest", &target, &[]).ok();
        assert_same_tree(&src, &target.join("src"));
    }
}
