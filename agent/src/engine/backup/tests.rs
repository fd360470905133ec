//! A file long enough to list its content in pieces, backed up through the files cache and
//! restored: in-crate, because with the default chunk sizes such a file has over 512 MiB.

use std::sync::Arc;

use arka_proto::config::ChunkerParams;
use arka_proto::{NodeKind, RecoveryIdentities};

use super::{run, BackupOptions, Source};
use crate::repo::Repository;
use crate::store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_file_is_listed_in_pieces_cached_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let identities = RecoveryIdentities::generate();
    let repo_dir = dir.path().join("repo");
    let store = || Store::open(repo_dir.to_str().unwrap(), true).unwrap();
    let (mut repo, _) = Repository::init(store(), &identities.recipients(), None).await.unwrap();
    // Small chunks, so that 6 MiB make ~3,000 blobs, well over what is listed inline. Only
    // writers use the sizes; readers follow whatever the listing says.
    repo.config.chunker_files = ChunkerParams { min: 1024, avg: 2048, max: 8192 };
    let repo = Arc::new(repo);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let bytes = crate::platform::test_data::pseudo_random(6 << 20, 7);
    std::fs::write(src.join("volume.dcm"), &bytes).unwrap();
    std::fs::write(src.join("note.txt"), b"short").unwrap();
    // Files changed in the last two seconds are not cached (they may change again unseen).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let backup = || {
        let opts = BackupOptions {
            hostname: "test".into(),
            tags: vec![],
            cache_dir: Some(dir.path().join("cache")),
            progress: Default::default(),
            check_packs: true,
            excludes: Default::default(),
            source_name: None,
        };
        run(repo.clone(), Source::Paths(vec![src.clone()]), opts)
    };
    let first = backup().await.unwrap();
    let second = backup().await.unwrap();
    assert!(first.snapshot.stats.bytes_read >= bytes.len() as u64);
    assert_eq!(second.snapshot.stats.bytes_read, 0, "the unchanged file was read again");
    assert_eq!(second.snapshot.tree, first.snapshot.tree, "the cached listing differs from the read one");

    let reader_repo = Arc::new(Repository::open_with_identity(store(), identities).await.unwrap());
    let index = Arc::new(reader_repo.load_index_for_reading().await.unwrap());
    let reader = Arc::new(crate::repo::blob::BlobReader::new(reader_repo.clone(), index));
    let entries = crate::engine::restore::walk(&reader, &second.snapshot, None).await.unwrap();
    let volume = entries.iter().find(|e| e.node.name == b"volume.dcm").unwrap();
    assert_eq!(volume.node.kind, NodeKind::File);
    assert!(volume.node.content.is_empty() && volume.node.lists.len() > 10, "{} lists", volume.node.lists.len());
    let note = entries.iter().find(|e| e.node.name == b"note.txt").unwrap();
    assert!(note.node.lists.is_empty() && note.node.content.len() == 1);

    let target = dir.path().join("restored");
    let summary = crate::engine::restore::restore(
        reader.clone(),
        &second.snapshot,
        None,
        &target,
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    assert!(summary.damaged.is_empty(), "{:?}", summary.damaged);
    assert!(std::fs::read(target.join("src/volume.dcm")).unwrap() == bytes, "restored content differs");

    // Reachability (what prune keeps) includes every content list and every blob they name.
    let reached = crate::engine::reach::reachable_from(&reader, vec![(second.snapshot.tree, second.snapshot.refs)])
        .await
        .unwrap();
    assert!(volume.node.lists.iter().all(|id| reached.contains(id)));
    let data = crate::repo::content::content_ids(&reader, &volume.node);
    let ids: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(data).await.unwrap();
    assert!(ids.len() > crate::repo::content::INLINE_MAX);
    assert!(ids.iter().all(|id| reached.contains(id)));
}

/// A blob stored twice (here: the second backup could not see the first one's index) reads
/// from its other copy when the preferred one is gone, as after healing on a synced copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_falls_back_to_another_copy_of_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let identities = RecoveryIdentities::generate();
    let repo_dir = dir.path().join("repo");
    let store = || Store::open(repo_dir.to_str().unwrap(), true).unwrap();
    let (repo, _) = Repository::init(store(), &identities.recipients(), None).await.unwrap();
    let repo = Arc::new(repo);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let bytes = crate::platform::test_data::pseudo_random(3 << 20, 11);
    std::fs::write(src.join("scan.dcm"), &bytes).unwrap();
    let backup = || {
        let opts = BackupOptions {
            hostname: "test".into(),
            tags: vec![],
            cache_dir: None,
            progress: Default::default(),
            check_packs: false,
            excludes: Default::default(),
            source_name: None,
        };
        run(repo.clone(), Source::Paths(vec![src.clone()]), opts)
    };
    backup().await.unwrap();
    let hidden = dir.path().join("index-of-the-first-backup");
    std::fs::rename(repo_dir.join("index"), &hidden).unwrap();
    let second = backup().await.unwrap();
    for segment in walk(&hidden) {
        let to = repo_dir.join("index").join(segment.strip_prefix(&hidden).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(&segment, to).unwrap();
    }

    let reader_repo = Arc::new(Repository::open_with_identity(store(), identities).await.unwrap());
    let index = Arc::new(reader_repo.load_index_for_reading().await.unwrap());
    let entries = crate::engine::restore::walk(
        &crate::repo::blob::BlobReader::new(reader_repo.clone(), index.clone()),
        &second.snapshot,
        None,
    )
    .await
    .unwrap();
    let scan = entries.iter().find(|e| e.node.name == b"scan.dcm").unwrap();
    let blob = scan.node.content[0];
    assert!(!index.other_copies(&blob).is_empty(), "the blob was stored only once");
    let (preferred, _) = index.pack_of(index.get(&blob).unwrap());
    let pack_key = crate::store::ObjectKind::Pack.key(&preferred);
    std::fs::remove_file(repo_dir.join(pack_key)).unwrap();

    let reader = crate::repo::blob::BlobReader::new(reader_repo, index);
    let data = reader.read(&blob).await.unwrap();
    assert_eq!(data, bytes[..data.len()], "the other copy read back different data");
    assert!(reader.damage_found().blobs.iter().any(|(pack, id)| *pack == preferred && *id == blob));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
