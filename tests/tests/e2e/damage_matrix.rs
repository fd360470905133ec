//! The damage matrix (#14): each kind of object the repository is made of, damaged in each
//! way storage damages things (a flipped byte, a truncation, a deletion, a junk object
//! beside it), on a local repository and on Garage. For every cell it asserts that:
//! - listing works, and no restored file ever differs from its source;
//! - what holds no file data (snapshots of other backups, audit records, prune plans, junk)
//!   costs no file of the newest snapshot;
//! - `verify --read-data` names what is damaged and exits non-zero;
//! - after that verify and one more backup, the newest snapshot restores byte for byte.
//!
//! The table is printed (`cargo test -p arka-tests --test e2e -- damage_matrix --nocapture`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arka_agent::repo::blob::BlobReader;
use arka_agent::repo::Repository;
use arka_agent::store::Store;
use arka_proto::{BlobId, TreeRefs};
use arka_tests::garage::Garage;
use arka_tests::{pseudo_random, walk_files, write_file, Fixture, Run};

/// About 125 MB of SQL text: some 1,900 chunks of 64 KiB (the cut points depend on the
/// repository key, so it must be well over 1,024), so the dump's listing is stored
/// in content lists.
const DUMP: &str = r#"seq 1 2500000 | awk '{ printf "INSERT INTO visits VALUES (%d, %d, \"kontrola %d\");\n", $1, ($1 * 7919) % 100003, $1 * 31 }'"#;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Config,
    Pack,
    Index,
    Snapshot,
    Tree,
    ContentList,
    Audit,
    Plan,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Flip,
    Truncate,
    Delete,
    Junk,
}

impl Kind {
    const ALL: [Kind; 8] =
        [Kind::Config, Kind::Pack, Kind::Index, Kind::Snapshot, Kind::Tree, Kind::ContentList, Kind::Audit, Kind::Plan];

    /// Blobs live inside packs: truncating or deleting one is the pack row.
    fn faults(self) -> &'static [Fault] {
        match self {
            Kind::Tree | Kind::ContentList => &[Fault::Flip],
            _ => &[Fault::Flip, Fault::Truncate, Fault::Delete, Fault::Junk],
        }
    }

    /// Whether damage to it may cost files of the newest snapshot before healing.
    fn holds_file_data(self) -> bool {
        matches!(self, Kind::Pack | Kind::Index | Kind::Tree | Kind::ContentList)
    }
}

/// The pristine repository and what the cells need to know of it.
struct Pristine {
    fx: Fixture,
    src: PathBuf,
    /// The older snapshot of `src` (the newest stays intact when this one is damaged).
    older: String,
}

fn pristine() -> Pristine {
    let fx = Fixture::with_pack_size_mib(1);
    let src = fx.path("src");
    write_file(&src.join("imaging").join("scan-a.dcm"), &pseudo_random(81, 700_000));
    write_file(&src.join("imaging").join("scan-b.dcm"), &pseudo_random(82, 700_000));
    for i in 0..5u64 {
        write_file(&src.join("notes").join(format!("visit-{i}.txt")), format!("visit {i}\n").repeat(400).as_bytes());
    }
    write_file(&src.join("top.txt"), b"top\n");
    fx.backup_ok(&[&src], &[]);
    // A snapshot to forget, so that prune leaves a plan pending.
    write_file(&src.join("imaging").join("scan-a.dcm"), &pseudo_random(83, 700_000));
    fx.backup_ok(&[&src], &[]);
    let mut forget: Vec<OsString> = vec!["forget".into(), "--keep-last".into(), "1".into(), "--prune".into()];
    forget.extend(fx.agent_args());
    fx.arka(forget).ok();
    assert_eq!(walk_files(&fx.repo.join("prune")).len(), 1, "prune left no plan pending");
    let older = fx.snapshots()[0]["id"].as_str().unwrap().to_string();
    fx.backup_ok(&[&src], &[]);
    fx.backup_ok::<&str>(&[], &["--stdin-from-command", DUMP, "--name", "clinic.sql"]);
    Pristine { fx, src, older }
}

/// Where a blob of `kind` lies: its pack file and the byte range, found with the agent key.
fn blob_place(p: &Pristine, kind: Kind) -> (PathBuf, u64, u64) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(p.fx.repo.to_str().unwrap(), false).unwrap();
        let key = arka_agent::repo::keys::load_agent_key(&p.fx.agent_key).unwrap();
        let repo = Arc::new(Repository::open_with_agent_key(store, key).await.unwrap());
        let index = Arc::new(repo.load_index().await.unwrap());
        let reader = BlobReader::new(repo.clone(), index.clone());
        let refs_of = |id: BlobId| {
            let reader = &reader;
            async move { TreeRefs::decode(&reader.read(&id).await.unwrap()).unwrap() }
        };
        let snapshots = repo.list_snapshots().await.unwrap();
        let (_, files) = snapshots.iter().rev().find(|(_, s)| s.source_kind == "files").unwrap();
        let blob = match kind {
            // A folder below the source (`imaging` or `notes`): the rest of the tree stays readable.
            Kind::Tree => {
                let top = refs_of(files.refs).await;
                let src = refs_of(top.subtrees[0].1).await;
                src.subtrees[0].0
            }
            // The newest snapshot's data: a pack it needs.
            Kind::Pack => {
                let top = refs_of(files.refs).await;
                let src = refs_of(top.subtrees[0].1).await;
                let mut data = Vec::new();
                for (_, refs) in src.subtrees {
                    data.extend(refs_of(refs).await.data);
                }
                // One with a single copy: prune's repacking leaves some blobs in two packs
                // for the grace period, and damage to one of two copies costs nothing.
                let mut copies = std::collections::HashMap::new();
                for (_, seg) in repo.load_segments().await.unwrap() {
                    for b in seg.packs.iter().flat_map(|p| &p.blobs) {
                        *copies.entry(b.id).or_insert(0) += 1;
                    }
                }
                let single = data.into_iter().filter(|id| copies.get(id) == Some(&1));
                single.max_by_key(|id| index.get(id).unwrap().stored_len).expect("a blob with one copy")
            }
            _ => {
                let (_, dump) = snapshots.iter().find(|(_, s)| s.source_kind != "files").unwrap();
                let lists = refs_of(dump.refs).await.lists;
                assert!(!lists.is_empty(), "the dump has no content lists");
                lists[0]
            }
        };
        let loc = index.get(&blob).unwrap();
        let (pack, _) = index.pack_of(loc);
        let hex = pack.to_hex();
        let file = p.fx.repo.join("packs").join(&hex[..2]).join(&hex);
        (file, loc.offset as u64, loc.stored_len as u64)
    })
}

/// The object a cell damages, in the copy at `repo`.
fn object_of(p: &Pristine, kind: Kind, repo: &Path) -> PathBuf {
    let newest = |dir: &str| {
        let mut files = walk_files(&repo.join(dir));
        files.sort_by_key(|f| std::fs::metadata(f).unwrap().modified().unwrap());
        files.pop().unwrap_or_else(|| panic!("no object under {dir}"))
    };
    match kind {
        Kind::Config => repo.join("config"),
        Kind::Index => newest("index"),
        Kind::Snapshot => repo.join("snapshots").join(&p.older),
        Kind::Audit => newest("audit"),
        Kind::Plan => newest("prune"),
        Kind::Pack | Kind::Tree | Kind::ContentList => {
            let (pack, _, _) = blob_place(p, kind);
            repo.join(pack.strip_prefix(&p.fx.repo).unwrap())
        }
    }
}

fn damage(p: &Pristine, kind: Kind, fault: Fault, repo: &Path) -> String {
    let object = object_of(p, kind, repo);
    let len = std::fs::metadata(&object).unwrap().len();
    let (at, cut) = match kind {
        Kind::Tree | Kind::ContentList => {
            let (_, offset, stored) = blob_place(p, kind);
            (offset + stored / 2, offset + stored / 2)
        }
        _ => (len / 2, len / 2),
    };
    match fault {
        Fault::Flip => arka_tests::flip_byte(&object, at),
        Fault::Truncate => std::fs::OpenOptions::new().write(true).open(&object).unwrap().set_len(cut).unwrap(),
        Fault::Delete => std::fs::remove_file(&object).unwrap(),
        Fault::Junk => {
            // Beside `config` means among its copies.
            let dir = if kind == Kind::Config { repo.join("configs") } else { object.parent().unwrap().to_path_buf() };
            write_file(&dir.join("ab".repeat(32)), &pseudo_random(99, 64));
        }
    }
    object.strip_prefix(repo).unwrap().to_string_lossy().into_owned()
}

/// Every file restored under `restored` equals its source; returns how many were restored.
fn no_wrong_file(src: &Path, restored: &Path) -> usize {
    let mut n = 0;
    for file in walk_files(restored) {
        let rel = file.strip_prefix(restored).unwrap();
        let original = src.join(rel);
        assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&original).unwrap(), "{} differs", rel.display());
        n += 1;
    }
    n
}

struct Cell<'a> {
    p: &'a Pristine,
    fx: Fixture,
}

impl Cell<'_> {
    fn verify(&self) -> Run {
        let mut args: Vec<OsString> = vec!["verify".into(), "--read-data".into()];
        args.extend(self.fx.agent_args());
        self.fx.arka(args)
    }

    fn restore_latest(&self, name: &str) -> (Run, usize) {
        let target = self.fx.path(name);
        let newest = self.fx.snapshots().into_iter().rfind(|s| s["source"].to_string().contains("src"));
        let id = newest.expect("a snapshot of src is listed")["id"].as_str().unwrap().to_string();
        let run = self.fx.restore(&id, &target, &["--path", "src"]);
        let restored = if target.join("src").exists() { no_wrong_file(&self.p.src, &target.join("src")) } else { 0 };
        (run, restored)
    }
}

/// Where a cell's damaged copy is served from: its `--repo` and environment.
type Place<'a> = &'a dyn Fn(&Path, &str) -> (PathBuf, Vec<(String, String)>);

fn run_matrix(p: &Pristine, repo_for: Place<'_>) -> Vec<String> {
    let total = walk_files(&p.src).len();
    let mut table = vec![format!(
        "| object | fault | newest snapshot before healing | verify | after verify + backup | verify after |"
    )];
    table.push("|---|---|---|---|---|---|".into());
    let mut n = 0;
    for kind in Kind::ALL {
        // TODO config row after the config copy lands
        for &fault in kind.faults() {
            n += 1;
            let local = p.fx.path(format!("cell-{n}"));
            copy_dir(&p.fx.repo, &local);
            let object = damage(p, kind, fault, &local);
            let (repo, env) = repo_for(&local, &format!("cell-{n}"));
            let mut fx = Fixture::new();
            fx.repo = repo;
            fx.env = env;
            std::fs::copy(&p.fx.agent_key, &fx.agent_key).unwrap();
            std::fs::copy(&p.fx.identity, &fx.identity).unwrap();
            let cell = Cell { p, fx };
            let what = format!("{kind:?} {fault:?} ({object})");

            cell.fx.snapshots();
            let (before, restored) = cell.restore_latest("before");
            if !kind.holds_file_data() || fault == Fault::Junk {
                assert_eq!(before.code, 0, "{what}: restore failed: {}", before.stderr);
                assert_eq!(restored, total, "{what}: files lost");
            }
            let verify = cell.verify();
            let named = verify.stdout_text().contains(&object) || verify.stderr.contains(&object);
            // Damage that costs a file must be reported; a damaged object still there must be named.
            if before.code != 0 || restored < total {
                assert_ne!(
                    verify.code,
                    0,
                    "{what}: files are lost but verify found nothing:\n{}",
                    verify.stdout_text()
                );
            }
            if matches!(fault, Fault::Flip | Fault::Truncate) && kind != Kind::Audit {
                assert!(named, "{what}: verify does not name the object:\n{}", verify.stdout_text());
            }
            // The next scheduled run: every source is backed up again.
            cell.fx.backup_ok(&[&p.src], &[]);
            cell.fx.backup_ok::<&str>(&[], &["--stdin-from-command", DUMP, "--name", "clinic.sql"]);
            let (after, restored_after) = cell.restore_latest("after");
            assert_eq!((after.code, restored_after), (0, total), "{what}: not healed: {}", after.stderr);
            let verify_after = cell.verify();
            // A damaged index segment or snapshot is still there (`arka repair index`, or
            // forget, deal with it); damaged data is healed.
            if matches!(kind, Kind::Pack | Kind::Tree | Kind::ContentList) {
                assert_eq!(verify_after.code, 0, "{what}: verify after healing:\n{}", verify_after.stdout_text());
            }
            table.push(format!(
                "| {kind:?} | {fault:?} | {restored}/{total} files, exit {} | exit {}{} | {restored_after}/{total}, exit {} | exit {} |",
                before.code,
                verify.code,
                if named { ", names it" } else { "" },
                after.code,
                verify_after.code
            ));
        }
    }
    table
}

fn copy_dir(from: &Path, to: &Path) {
    for file in walk_files(from) {
        let dest = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, &dest).unwrap();
    }
    // Empty folders (the layout's own) matter to a local repository.
    for dir in ["packs", "index", "snapshots", "audit", "prune", "damage", "configs"] {
        std::fs::create_dir_all(to.join(dir)).unwrap();
    }
}

#[test]
fn damage_matrix_on_a_local_repository() {
    let p = pristine();
    let table = run_matrix(&p, &|local, _| (local.to_path_buf(), Vec::new()));
    println!("damage matrix, local repository:\n{}", table.join("\n"));
}

#[test]
fn damage_matrix_on_garage() {
    let garage = Garage::single();
    let p = pristine();
    let table = run_matrix(&p, &|local, prefix| {
        garage.upload_dir(local, prefix);
        (PathBuf::from(garage.url(prefix)), garage.env())
    });
    println!("damage matrix, Garage S3:\n{}", table.join("\n"));
}
