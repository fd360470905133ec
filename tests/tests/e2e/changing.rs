//! A file that is rewritten while the backup reads it: read again once, and if it still
//! changes, stored as last read, counted in the snapshot, named on stderr, and exit code 3
//! (issue #14, point 6: before, such files were stored torn with exit 0 and no warning).

use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arka_tests::{run, same_contents, write_file, Fixture};

const SIZE: usize = 24 << 20;

/// Rewrites `path` in place, block after block, until `stop` is set: its size stays, its
/// modification time keeps moving.
fn keep_rewriting(path: std::path::PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).expect("open for rewriting");
        let mut block = vec![0u8; 64 << 10];
        let mut writes = 0u64;
        while !stop.load(Ordering::Relaxed) {
            block.fill(writes as u8);
            let offset = (writes * block.len() as u64) % SIZE as u64;
            file.seek(SeekFrom::Start(offset)).expect("seek");
            file.write_all(&block).expect("rewrite");
            writes += 1;
        }
        writes
    })
}

#[test]
fn a_file_rewritten_during_the_backup_is_stored_counted_and_gives_exit_code_3() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("steady.txt"), b"nobody writes here\n");
    let busy = src.join("practice.db");
    write_file(&busy, &arka_tests::pseudo_random(3, SIZE));

    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_rewriting(busy.clone(), stop.clone());
    let mut cmd = fx.command();
    cmd.args(fx.backup_args(&[&src], &[]));
    let out = run(cmd);
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().expect("the writer thread") > 0, "the writer never wrote");

    let out = out
        .expect_code(3)
        .expect_stderr(&format!("changed while it was read: {}", busy.display()))
        .expect_stderr("1 file changed while it was read; it was stored as last read, which may be inconsistent")
        .expect_stderr("back it up again when it is not in use");
    let summary = out.json();
    assert_eq!(summary["stats"]["changed_while_read"].as_u64(), Some(1), "{summary}");
    assert_eq!(summary["stats"]["files"].as_u64(), Some(2), "{summary}");
    assert_eq!(summary["partial"].as_bool(), Some(false), "nothing was left out: {summary}");

    let snaps = fx.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["stats"]["changed_while_read"].as_u64(), Some(1), "{}", snaps[0]);
    let mut args: Vec<std::ffi::OsString> = vec!["snapshots".into()];
    args.extend(fx.agent_args());
    let listing = fx.arka(args).ok().stdout_text();
    assert!(listing.contains("(1 changed while read)"), "{listing}");

    // What was stored is one whole read of the file: its full length (the writer keeps
    // the size), and the steady file byte for byte.
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    let restored = target.join("src");
    assert_eq!(std::fs::metadata(restored.join("practice.db")).unwrap().len(), SIZE as u64);
    assert!(same_contents(&src.join("steady.txt"), &restored.join("steady.txt")));

    // Once nobody writes, the next backup reads it again and is clean.
    let again = fx.backup_ok(&[&src], &[]);
    assert_eq!(again["stats"]["changed_while_read"].as_u64(), Some(0), "{again}");
    assert!(again["stats"]["bytes_read"].as_u64().unwrap() >= SIZE as u64, "{again}");
    let target = fx.path("restored-again");
    fx.restore("latest", &target, &[]).ok();
    assert!(same_contents(&busy, &target.join("src").join("practice.db")));
}
