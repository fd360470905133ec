//! `arka repair index|snapshots|packs`: a lost or damaged index is rebuilt from the packs'
//! own tables; snapshots that reference lost data are rewritten keeping every intact file;
//! the intact blobs of a damaged pack are salvaged before prune deletes it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use arka_tests::{assert_same_tree, flip_byte, pseudo_random, same_contents, walk_files, write_file, Fixture, Run};

fn packs(fx: &Fixture) -> Vec<PathBuf> {
    let mut packs = walk_files(&fx.repo.join("packs"));
    packs.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    packs
}

/// `arka [--json] SUBCOMMAND… ARGS…` with the given key arguments.
fn arka(fx: &Fixture, json: bool, words: &[&str], keys: Vec<OsString>) -> Run {
    let mut args: Vec<OsString> = if json { vec!["--json".into()] } else { Vec::new() };
    args.extend(words.iter().map(OsString::from));
    args.extend(keys);
    fx.arka(args)
}

fn tree_listing(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walk_files(root).into_iter().map(|p| p.strip_prefix(root).unwrap().into()).collect();
    files.sort();
    files
}

/// Several incompressible files, in 1 MiB packs.
fn backed_up_source(fx: &Fixture, files: u64, len: usize) -> PathBuf {
    let src = fx.path("src");
    for i in 0..files {
        write_file(&src.join(format!("scan-{i:02}.dcm")), &pseudo_random(90 + i, len));
    }
    write_file(&src.join("notes/visit.txt"), b"visit notes\n");
    fx.backup_ok(&[&src], &[]);
    src
}

#[test]
fn a_deleted_index_is_rebuilt_from_the_packs() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = backed_up_source(&fx, 4, 700_000);
    let segments = walk_files(&fx.repo.join("index"));
    assert!(!segments.is_empty());
    for s in &segments {
        std::fs::remove_file(s).unwrap();
    }

    let dry = arka(&fx, true, &["repair", "index", "--dry-run"], fx.agent_args()).ok().json();
    assert_eq!(dry["packs_indexed"], packs(&fx).len(), "{dry}");
    assert!(walk_files(&fx.repo.join("index")).is_empty(), "--dry-run wrote an index segment");

    let done = arka(&fx, true, &["repair", "index"], fx.agent_args()).ok().json();
    assert_eq!(done["packs_indexed"], packs(&fx).len(), "{done}");
    assert_eq!(done["segments_written"], 1, "{done}");
    arka(&fx, false, &["verify"], fx.agent_args()).ok();
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
    // A second run finds nothing to do.
    let again = arka(&fx, true, &["repair", "index"], fx.agent_args()).ok().json();
    assert_eq!(again["packs_indexed"], 0, "{again}");
    let audit = arka(&fx, false, &["audit"], fx.agent_args()).ok().stdout_text();
    assert!(audit.contains("repair"), "no audit record of the repair:\n{audit}");
}

#[test]
fn a_damaged_index_segment_is_replaced_and_deleted() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = backed_up_source(&fx, 2, 700_000);
    write_file(&src.join("later.dcm"), &pseudo_random(7, 900_000));
    fx.backup_ok(&[&src], &[]);
    let segments = walk_files(&fx.repo.join("index"));
    assert!(segments.len() >= 2, "two backups, two segments");
    flip_byte(&segments[0], 40);
    arka(&fx, false, &["verify"], fx.agent_args()).expect_code(1);

    let dry = arka(&fx, false, &["repair", "index", "--dry-run"], fx.agent_args()).ok().stdout_text();
    assert!(dry.contains("would delete the damaged index segment"), "{dry}");
    assert!(segments[0].exists(), "--dry-run deleted the damaged segment");

    let done = arka(&fx, true, &["repair", "index"], fx.agent_args()).ok().json();
    assert!(done["packs_indexed"].as_u64().unwrap() > 0, "{done}");
    assert_eq!(done["damaged_segments_deleted"], 1, "{done}");
    assert!(!segments[0].exists(), "the damaged segment is still there");
    arka(&fx, false, &["verify", "--read-data"], fx.agent_args()).ok();
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
}

/// The paths `repair snapshots` printed as lost.
fn lost_paths(output: &str) -> Vec<String> {
    output.lines().filter_map(|l| l.trim().strip_prefix("lost: ")).map(str::to_string).collect()
}

/// Deletes the largest pack that holds no directory listing (so that `ls` still works).
fn delete_a_data_pack(fx: &Fixture) -> PathBuf {
    let aside = fx.path("aside");
    for pack in packs(fx) {
        std::fs::rename(&pack, &aside).unwrap();
        let mut args: Vec<OsString> = vec!["ls".into()];
        args.extend(fx.reader_args());
        args.push("latest".into());
        if fx.arka(args).code == 0 {
            std::fs::remove_file(&aside).unwrap();
            return pack;
        }
        std::fs::rename(&aside, &pack).unwrap();
    }
    panic!("every pack holds a directory listing");
}

/// The files under `kept` (the source as backed up) that are not at or below a lost path.
fn all_but_lost(kept: &Path, lost: &[String]) -> Vec<PathBuf> {
    let lost: Vec<PathBuf> = lost.iter().map(|l| Path::new(l).strip_prefix("src").unwrap().to_path_buf()).collect();
    tree_listing(kept).into_iter().filter(|p| !lost.iter().any(|l| p.starts_with(l))).collect()
}

#[test]
fn snapshots_that_reference_a_lost_pack_are_rewritten_keeping_every_intact_file() {
    let fx = Fixture::with_pack_size_mib(1);
    let src = backed_up_source(&fx, 8, 700_000);
    let original = fx.snapshots()[0]["id"].as_str().unwrap().to_string();
    let kept = fx.path("kept");
    std::fs::rename(&src, &kept).unwrap(); // the source is gone: nothing can heal it
    delete_a_data_pack(&fx);

    let dry = arka(&fx, false, &["repair", "snapshots", "--dry-run"], fx.reader_args()).ok().stdout_text();
    assert!(dry.contains("would be repaired"), "{dry}");
    assert_eq!(fx.snapshots().len(), 1, "--dry-run wrote a snapshot");

    let run = arka(&fx, false, &["repair", "snapshots"], fx.reader_args()).ok();
    let text = run.stdout_text();
    let lost = lost_paths(&text);
    assert_eq!(lost, lost_paths(&dry), "{text}");
    assert!(!run.stderr.contains("scan-"), "a file name reached the log: {}", run.stderr);
    let snaps = fx.snapshots();
    assert_eq!(snaps.len(), 2, "the original stays beside the repaired snapshot");
    assert_eq!(snaps[0]["id"], original.as_str());
    let repaired = snaps[1]["id"].as_str().unwrap();
    assert_eq!(snaps[1]["repaired_from"], original.as_str());
    assert_eq!(snaps[1]["lost_files"], lost.len());
    assert!(snaps[1]["tags"].as_array().unwrap().iter().any(|t| t == "repaired"), "{}", snaps[1]);

    let listed = fx.ls(repaired);
    let marked: Vec<&str> = listed.iter().filter(|e| e["lost"] == true).map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(marked, lost);
    let target = fx.path("restored");
    fx.restore(repaired, &target, &[]).expect_code(3).expect_stderr("lost from the repository");
    let expected = all_but_lost(&kept, &lost);
    assert!(expected.len() < tree_listing(&kept).len());
    assert_eq!(tree_listing(&target.join("src")), expected);
    for rel in &expected {
        assert!(same_contents(&kept.join(rel), &target.join("src").join(rel)), "{} differs", rel.display());
    }
    // Running it again writes nothing new.
    let again = arka(&fx, false, &["repair", "snapshots"], fx.reader_args()).ok().stdout_text();
    assert!(again.contains("already repaired"), "{again}");
    assert_eq!(fx.snapshots().len(), 2);
}

#[test]
fn intact_blobs_of_a_damaged_pack_are_salvaged_before_prune_deletes_it() {
    let fx = Fixture::with_pack_size_mib(1);
    // Small files, one blob each, many to a pack: a flipped byte damages one of them.
    let src = backed_up_source(&fx, 30, 60_000);
    let original = fx.snapshots()[0]["id"].as_str().unwrap().to_string();
    let damaged = packs(&fx).remove(0);
    flip_byte(&damaged, 5000);
    let found = arka(&fx, false, &["verify", "--read-data"], fx.reader_args()).expect_code(1).stdout_text();
    assert!(found.contains("recorded"), "{found}");

    let dry = arka(&fx, true, &["repair", "packs", "--dry-run"], fx.agent_args()).ok().json();
    let before = walk_files(&fx.repo.join("packs")).len();
    assert_eq!(walk_files(&fx.repo.join("packs")).len(), before, "--dry-run wrote a pack");
    let done = arka(&fx, true, &["repair", "packs"], fx.agent_args()).ok().json();
    assert_eq!(done["blobs_salvaged"], dry["blobs_salvaged"], "{done}");
    assert!(done["blobs_salvaged"].as_u64().unwrap() > 1, "{done}");
    assert_eq!(done["blobs_left_out"], 1, "{done}");

    // The damaged file is lost (its source is gone); the rest lives on in a repaired snapshot.
    let kept = fx.path("kept");
    std::fs::rename(&src, &kept).unwrap();
    let text = arka(&fx, false, &["repair", "snapshots"], fx.reader_args()).ok().stdout_text();
    let lost = lost_paths(&text);
    assert_eq!(lost.len(), 1, "{text}");
    arka(&fx, false, &["forget", &original], fx.agent_args()).ok();
    let pruned = arka(&fx, false, &["prune", "--grace", "0"], fx.agent_args()).ok();
    assert!(!damaged.exists(), "prune kept the damaged pack:\n{}\n{}\n{done}", pruned.stdout_text(), pruned.stderr);
    arka(&fx, false, &["verify", "--read-data"], fx.reader_args()).ok();

    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).expect_code(3);
    let expected = all_but_lost(&kept, &lost);
    assert_eq!(tree_listing(&target.join("src")), expected);
    for rel in &expected {
        assert!(same_contents(&kept.join(rel), &target.join("src").join(rel)), "{} differs", rel.display());
    }
}

/// On S3: a damaged index segment is found, re-indexed and deleted like on a local disk.
#[test]
fn a_damaged_index_segment_on_garage_is_replaced_and_deleted() {
    let garage = arka_tests::garage::Garage::single();
    let fx = Fixture::at(&garage.url("clinic/arka"), garage.env());
    let src = fx.path("src");
    crate::s3::small_tree(&src, 6);
    fx.backup_ok(&[&src], &[]);
    let segments = garage.list_keys("clinic/arka/index");
    assert_eq!(segments.len(), 1, "{segments:?}");
    let mut bytes = garage.get_object(&segments[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    garage.put_object(&segments[0], bytes);
    arka(&fx, false, &["verify"], fx.agent_args()).expect_code(1);

    let done = arka(&fx, true, &["repair", "index"], fx.agent_args()).ok().json();
    assert!(done["packs_indexed"].as_u64().unwrap() > 0, "{done}");
    assert!(!garage.list_keys("clinic/arka/index").contains(&segments[0]), "the damaged segment stayed");
    arka(&fx, false, &["verify", "--read-data"], fx.agent_args()).ok();
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
}

/// On arka-server: the clinic's append token re-indexes but may not delete the damaged
/// segment (it says so, exit 1, and everything restores meanwhile); the NAS's maintain
/// token finishes the job.
#[test]
fn repair_index_on_arka_server_deletes_only_with_a_maintain_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::server_client::clinic_and_nas(dir.path());
    let token_env = |t: &str| crate::server_client::token_env(&server, t);
    let mut fx = crate::server_client::fixture_on(&server, "clinic", "reception");
    let src = fx.path("src");
    crate::s3::small_tree(&src, 7);
    fx.backup_ok(&[&src], &[]);
    let segment = walk_files(&server.data_dir().join("clinic").join("index")).remove(0);
    flip_byte(&segment, 40);

    let refused = arka(&fx, false, &["repair", "index"], fx.agent_args()).expect_code(1);
    assert!(refused.stdout_text().contains("maintain") || refused.stderr.contains("maintain"), "{}", refused.stderr);
    assert!(segment.exists(), "an append token deleted a segment");
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));

    fx.env = token_env("nas");
    arka(&fx, false, &["repair", "index"], fx.agent_args()).ok();
    assert!(!segment.exists(), "the maintain token left the damaged segment");
    arka(&fx, false, &["verify"], fx.agent_args()).ok();
}
