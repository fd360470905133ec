//! Unreadable files and directories do not sink a backup: the snapshot is written and
//! marked partial, the exit code is 3, stderr names what was left out, and everything
//! else restores.

use std::ffi::OsString;

use arka_tests::{is_root, run, same_contents, set_mode, write_file, Fixture, NOBODY};

#[test]
fn unreadable_files_give_a_partial_snapshot_and_exit_code_3() {
    let fx = Fixture::new();
    let src = fx.path("src");
    write_file(&src.join("ok.txt"), b"readable\n");
    write_file(&src.join("scans").join("Nowak_Anna_pano.dcm"), &arka_tests::pseudo_random(7, 200_000));
    let locked = src.join("scans").join("locked.dcm");
    write_file(&locked, b"nobody may read this\n");
    set_mode(&locked, 0o000);
    let locked_dir = src.join("locked_dir");
    write_file(&locked_dir.join("hidden.txt"), b"inside a locked directory\n");
    set_mode(&locked_dir, 0o000);

    // Root reads mode-000 files anyway: run the backup as `nobody` instead.
    let uid = is_root().then_some(NOBODY);
    if uid.is_some() {
        fx.hand_over_to(NOBODY);
    }
    let mut cmd = fx.command_as(uid);
    cmd.args(fx.backup_args(&[&src], &[]));
    let out = run(cmd).expect_code(3);
    let out = out.expect_stderr(&locked.display().to_string()).expect_stderr(&locked_dir.display().to_string());
    let summary = out.json();
    assert_eq!(summary["partial"].as_bool(), Some(true), "{summary}");
    assert_eq!(summary["stats"]["unreadable"].as_u64(), Some(2), "{summary}");

    let snaps = fx.snapshots();
    assert_eq!(snaps.len(), 1, "the partial snapshot must be written: {snaps:?}");
    assert_eq!(snaps[0]["partial"].as_bool(), Some(true), "{}", snaps[0]);
    assert_eq!(snaps[0]["id"].as_str(), summary["snapshot_id"].as_str());

    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    let restored = target.join("src");
    assert!(same_contents(&src.join("ok.txt"), &restored.join("ok.txt")));
    let pano = OsString::from("scans/Nowak_Anna_pano.dcm");
    assert!(same_contents(&src.join(&pano), &restored.join(&pano)));
    assert!(!restored.join("scans").join("locked.dcm").exists(), "the unreadable file was restored");
    assert!(!restored.join("locked_dir").exists(), "the unreadable directory was restored");
}
