//! The agent side is write-only: nothing in the repository or the agent's files cache
//! reveals file contents or names, and the agent key cannot be used to read backups.

use std::ffi::OsString;

use arka_tests::{contains, pseudo_random, walk_files, write_file, Fixture};

const MARKER: &str = "PATIENT-MARKER-Kowalski-85010112345";
const PESEL: &str = "85010112345";

#[test]
fn repository_and_cache_hold_no_plaintext_contents_or_names() {
    let fx = Fixture::new();
    let src = fx.path("clinic_data");
    // Compressible: the marker repeated (zstd would keep it visible if unencrypted).
    let notes = format!("{MARKER}\n").repeat(20_000);
    // Incompressible around the marker, so a blob is stored as is before sealing.
    let mut scan = pseudo_random(3, 1 << 20);
    for at in [0, 4096, 700_000] {
        scan[at..at + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    }
    let names = [
        "Kowalski_Jan",
        "Kowalski_Jan_CBCT.dcm",
        "Nowak_Anna_pano.jpg",
        "Wiśniewska_Zofia_RVG.dcm",
        "notatki_Kowalski.txt",
        "Dąbrowski_Piotr",
    ];
    write_file(&src.join("Kowalski_Jan").join("Kowalski_Jan_CBCT.dcm"), &scan);
    write_file(&src.join("Kowalski_Jan").join("notatki_Kowalski.txt"), notes.as_bytes());
    write_file(&src.join("Nowak_Anna_pano.jpg"), &pseudo_random(4, 50_000));
    write_file(&src.join("Wiśniewska_Zofia_RVG.dcm"), format!("small {MARKER}").as_bytes());
    std::fs::create_dir_all(src.join("Dąbrowski_Piotr")).unwrap();
    std::os::unix::fs::symlink("../Nowak_Anna_pano.jpg", src.join("Dąbrowski_Piotr").join("link")).unwrap();
    // Files changed in the last 2 s are not cached; wait so the cache gets real entries.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    fx.backup_ok(&[&src], &[]);
    let second = fx.backup_ok(&[&src], &[]);
    assert_eq!(second["stats"]["bytes_read"].as_u64(), Some(0), "the files cache was not used: {second}");

    let mut needles: Vec<&[u8]> = vec![MARKER.as_bytes(), PESEL.as_bytes()];
    needles.extend(names.iter().map(|n| n.as_bytes()));
    let objects = walk_files(&fx.repo);
    assert!(objects.len() >= 4, "expected config, packs, index and snapshots, found {objects:?}");
    let mut total = 0;
    for object in &objects {
        let bytes = std::fs::read(object).unwrap();
        total += bytes.len();
        for n in &needles {
            assert!(
                !contains(&bytes, n),
                "{} contains {:?} in plain text",
                object.display(),
                String::from_utf8_lossy(n)
            );
        }
    }
    assert!(total > 1 << 20, "the repository holds only {total} bytes; the data cannot be in it");

    let cache_files = walk_files(&fx.cache);
    assert!(!cache_files.is_empty(), "no files cache was written under {}", fx.cache.display());
    for f in &cache_files {
        let rel = f.strip_prefix(&fx.cache).unwrap().as_os_str().as_encoded_bytes().to_vec();
        let bytes = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(!contains(&rel, n), "cache file name {} contains a name", f.display());
            assert!(!contains(&bytes, n), "cache file {} contains {:?}", f.display(), String::from_utf8_lossy(n));
        }
    }

    // What the agent key can list names the configured source only.
    let mut args: Vec<OsString> = vec!["snapshots".into()];
    args.extend(fx.agent_args());
    let listing = fx.arka(args).ok().stdout;
    for n in &needles {
        assert!(!contains(&listing, n), "snapshots with the agent key shows {:?}", String::from_utf8_lossy(n));
    }
}

#[test]
fn agent_key_is_refused_as_a_recovery_identity() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("Kowalski_Jan_CBCT.dcm"), b"scan");
    fx.backup_ok(&[&src], &[]);

    let base = |cmd: &str| -> Vec<OsString> {
        vec![cmd.into(), "--repo".into(), fx.repo.clone().into(), "--identity".into(), fx.agent_key.clone().into()]
    };
    let mut restore = base("restore");
    restore.extend(["latest".into(), "--target".into(), fx.path("restored").into()]);
    let mut ls = base("ls");
    ls.push("latest".into());
    let mut dump = base("dump");
    dump.extend(["latest".into(), "src/Kowalski_Jan_CBCT.dcm".into()]);
    for args in [restore, ls, dump] {
        let out = fx.arka(args).expect_code(12).expect_stderr("agent key, not a recovery identity");
        assert!(out.stdout.is_empty(), "{}: printed {:?}", out.what, out.stdout_text());
    }
    assert!(!fx.path("restored").join("src").exists(), "something was restored with the agent key");
}
