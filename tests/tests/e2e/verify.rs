//! `arka verify`: a clean repository passes; bit rot, truncation and lost packs are found,
//! named, and traced to the snapshots (and, with a recovery identity, the files) they
//! break; partial `--read-data` runs rotate through every pack.

use std::ffi::OsString;
use std::path::PathBuf;

use arka_tests::{flip_byte, pseudo_random, same_contents, walk_files, write_file, Fixture};

fn verify(fx: &Fixture, extra: &[&str], with_identity: bool) -> arka_tests::Run {
    let mut args: Vec<OsString> = vec!["--json".into(), "verify".into()];
    args.extend(if with_identity { fx.reader_args() } else { fx.agent_args() });
    args.extend(extra.iter().map(OsString::from));
    fx.arka(args)
}

/// A repository with small packs so damage hits only part of it.
fn small_pack_fixture() -> (Fixture, PathBuf) {
    let fx = Fixture::with_pack_size_mib(1);
    let src = fx.path("src");
    for i in 0..8u64 {
        write_file(&src.join(format!("scan_{i}.dcm")), &pseudo_random(100 + i, 700_000));
    }
    write_file(&src.join("notes.txt"), b"small note\n");
    fx.backup_ok(&[&src], &[]);
    (fx, src)
}

fn packs(fx: &Fixture) -> Vec<PathBuf> {
    let mut p = walk_files(&fx.repo.join("packs"));
    p.sort();
    p
}

#[test]
fn a_clean_repository_verifies_at_every_depth() {
    let (fx, _) = small_pack_fixture();
    let structure = verify(&fx, &[], false).ok().json();
    assert!(structure["damage"].as_array().unwrap().is_empty(), "{structure}");
    assert_eq!(structure["packs_read"], 0);
    let data = verify(&fx, &["--read-data"], false).ok().json();
    assert_eq!(data["packs_read"].as_u64(), Some(packs(&fx).len() as u64));
    let decrypted = verify(&fx, &["--read-data"], true).ok().json();
    assert!(decrypted["blobs_decrypted"].as_u64().unwrap() >= 9, "{decrypted}");
}

#[test]
fn bit_rot_is_found_and_traced_to_files_and_unaffected_files_still_restore() {
    let (fx, src) = small_pack_fixture();
    let victim = packs(&fx).into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let len = std::fs::metadata(&victim).unwrap().len();
    // A quarter in, not half: the workers fill one pack together, so the small tree and
    // reference blobs written last can sit between two scans, at the middle of the pack;
    // a quarter in is inside the first scan's blob.
    flip_byte(&victim, len / 4);

    let report = verify(&fx, &["--read-data"], false).expect_code(1).json();
    let key = victim.strip_prefix(&fx.repo).unwrap().to_string_lossy().into_owned();
    let damage = report["damage"].as_array().unwrap();
    assert!(damage.iter().any(|d| d["object"] == key.as_str()), "the flipped pack {key} is not named: {report}");
    assert_eq!(report["broken_snapshots"].as_array().unwrap().len(), 1, "{report}");

    // With the recovery identity: the damaged blob is found and its file named; only it.
    let report = verify(&fx, &["--read-data"], true).expect_code(1).json();
    let files: Vec<String> = report["broken_snapshots"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 1, "one flipped byte damages one blob of one file: {files:?}");

    // A full restore skips the damaged file, names it, restores the rest and exits 1.
    let whole = fx.path("whole");
    fx.restore(fx.snapshots()[0]["id"].as_str().unwrap(), &whole, &[]).expect_code(1).expect_stderr(&files[0]);
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let path = format!("src/{name}");
        assert_eq!(
            whole.join(&path).exists(),
            !files.contains(&path),
            "{path}: a damaged file must be left out, every other one restored"
        );
        if !files.contains(&path) {
            assert!(same_contents(&src.join(&name), &whole.join(&path)), "{path} did not restore intact");
        }
    }

    // Every other file still restores, byte for byte.
    let snapshot = fx.snapshots()[0]["id"].as_str().unwrap().to_string();
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let path = format!("src/{name}");
        if files.contains(&path) {
            continue;
        }
        let target = fx.path(format!("r_{name}"));
        fx.restore(&snapshot, &target, &["--path", &path]).ok();
        assert!(same_contents(&src.join(&name), &target.join(&path)), "{path} did not restore intact");
    }
}

#[test]
fn truncated_and_deleted_packs_are_found_without_reading_data() {
    let (fx, _) = small_pack_fixture();
    let all = packs(&fx);
    let truncated = &all[0];
    let bytes = std::fs::read(truncated).unwrap();
    std::fs::write(truncated, &bytes[..bytes.len() - 100]).unwrap();
    std::fs::remove_file(&all[1]).unwrap();

    let report = verify(&fx, &[], false).expect_code(1).json();
    let text = report.to_string();
    for p in [&all[0], &all[1]] {
        let key = p.strip_prefix(&fx.repo).unwrap().to_string_lossy().into_owned();
        assert!(text.contains(&key), "{key} not named: {report}");
    }
    assert!(text.contains("missing"), "{report}");
    assert_eq!(report["broken_snapshots"].as_array().unwrap().len(), 1);
}

#[test]
fn partial_read_data_runs_rotate_through_every_pack() {
    let (fx, _) = small_pack_fixture();
    let all = packs(&fx);
    assert!(all.len() >= 4, "need several packs, have {}", all.len());
    // Damage the pack a first 25% run will not pick: find one by running once first.
    let first = verify(&fx, &["--read-data=25"], false).ok().json();
    let per_run = first["packs_read"].as_u64().unwrap();
    assert_eq!(per_run, (all.len() as u64).div_ceil(4));
    let len = std::fs::metadata(all.last().unwrap()).unwrap().len();
    flip_byte(all.last().unwrap(), len / 2);
    // Within the runs it takes to cover everything, the damage is found.
    let found = (0..4)
        .any(|_| verify(&fx, &["--read-data=25"], false).json()["damage"].as_array().is_some_and(|d| !d.is_empty()));
    assert!(found, "four 25% runs never read the damaged pack");
}

/// `verify --source/--host/--tag/--path` checks only what the selected snapshots need:
/// damage in another source's pack does not fail it, and `--read-data` reads only the
/// selection's packs; the report says which selection it covered.
#[test]
fn a_filtered_verify_checks_only_the_selected_snapshots() {
    let (fx, _) = small_pack_fixture();
    let imaging_packs = packs(&fx);
    let dump = fx.path("dump.sql");
    write_file(&dump, &pseudo_random(9, 200_000));
    let mut args: Vec<OsString> = vec!["backup".into()];
    args.extend(fx.agent_args());
    args.extend(["--stdin-from-command".into(), format!("cat {}", dump.display()).into()]);
    args.extend(["--name".into(), "clinic.sql".into(), "--tag".into(), "db".into()]);
    fx.arka(args).ok();
    let all_packs = packs(&fx).len() as u64;
    verify(&fx, &["--tag", "no-such-tag"], false).ok().expect_stderr("no snapshot has");
    let victim = imaging_packs.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    flip_byte(victim, std::fs::metadata(victim).unwrap().len() / 4);

    let db = verify(&fx, &["--read-data", "--source", "clinic.sql"], true).ok().json();
    assert_eq!(db["snapshots"], 1, "{db}");
    assert_eq!(db["selection"]["filter"], "source clinic.sql", "{db}");
    assert_eq!(db["selection"]["snapshots_in_repository"], 2, "{db}");
    let read = db["packs_read"].as_u64().unwrap();
    assert!(read >= 1 && read < all_packs, "read {read} of {all_packs} packs for one small dump: {db}");
    assert!(db["blobs_decrypted"].as_u64().unwrap() >= 1, "{db}");

    // The human report names the selection.
    let mut human: Vec<OsString> = vec!["verify".into()];
    human.extend(fx.agent_args());
    human.extend(["--tag".into(), "db".into()]);
    let text = fx.arka(human).ok().stdout_text();
    assert!(text.contains("checked 1 of 2 snapshots (tag db)"), "{text}");

    let imaging =
        verify(&fx, &["--read-data", "--path", fx.path("src").to_str().unwrap()], false).expect_code(1).json();
    assert_eq!(imaging["broken_snapshots"].as_array().unwrap().len(), 1, "{imaging}");
    verify(&fx, &["--read-data"], false).expect_code(1);
}
