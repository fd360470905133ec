//! `arka erase --path`: the matching files leave every snapshot, and after the prune no
//! object in the repository holds their names or contents; the audit trail records the
//! erasure as counts and a keyed hash, never the names.

use std::collections::HashSet;
use std::ffi::OsString;
use std::sync::Arc;

use arka_agent::repo::blob::BlobReader;
use arka_agent::repo::Repository;
use arka_agent::store::{ObjectKind, Store};
use arka_tests::{contains, pseudo_random, walk_files, write_file, Fixture};
use serde_json::Value;

fn erase(fx: &Fixture, extra: &[&str]) -> Value {
    let mut args: Vec<OsString> = vec!["--json".into(), "erase".into()];
    args.extend(fx.reader_args());
    args.extend(extra.iter().map(OsString::from));
    fx.arka(args).ok().json()
}

const NAME: &str = "Annabel_Quist";
const NOTE: &[u8] = b"ANNABEL-QUIST-MEDICAL-HISTORY: allergic to penicillin\n";

/// Two patients' folders, backed up twice; returns the erased patient's X-ray bytes.
fn clinic(fx: &Fixture) -> Vec<u8> {
    let src = fx.path("src");
    let xray = pseudo_random(11, 900_000);
    write_file(&src.join("patients").join(NAME).join("notes.txt"), &NOTE.repeat(2000));
    write_file(&src.join("patients").join(NAME).join("xray_2026.dcm"), &xray);
    write_file(&src.join("patients/Bob_Stone/xray_2026.dcm"), &pseudo_random(12, 900_000));
    fx.backup_ok(&[&src], &[]);
    write_file(&src.join("patients/Bob_Stone/notes.txt"), b"follow-up in May\n");
    fx.backup_ok(&[&src], &[]);
    xray
}

#[test]
fn erase_leaves_no_trace_of_the_erased_files() {
    let fx = Fixture::with_pack_size_mib(1);
    let xray = clinic(&fx);
    let pattern = format!("src/patients/{NAME}");

    let dry = erase(&fx, &["--path", &pattern, "--dry-run"]);
    assert_eq!(dry["files_erased"], 4, "{dry}");
    assert_eq!(fx.ls("latest").iter().filter(|e| e["path"].to_string().contains(NAME)).count(), 3);

    let report = erase(&fx, &["--path", &pattern, "--grace", "0"]);
    assert_eq!(report["files_erased"], 4, "two files in each of two snapshots: {report}");
    assert_eq!(report["rewritten"].as_array().unwrap().len(), 2);
    assert!(report["prune"]["packs_deleted"].as_u64().unwrap() > 0, "{report}");

    // Every snapshot lists the other patient and not the erased one, and restores.
    let snaps = fx.snapshots();
    assert_eq!(snaps.len(), 2);
    for s in &snaps {
        let id = s["id"].as_str().unwrap();
        let paths: Vec<String> = fx.ls(id).iter().map(|e| e["path"].as_str().unwrap().to_string()).collect();
        assert!(paths.iter().all(|p| !p.contains(NAME)), "{paths:?}");
        assert!(paths.iter().any(|p| p.ends_with("Bob_Stone/xray_2026.dcm")), "{paths:?}");
        assert!(s["tags"].to_string().contains("erased"), "{s}");
    }
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_eq!(
        std::fs::read(target.join("src/patients/Bob_Stone/xray_2026.dcm")).unwrap(),
        std::fs::read(fx.path("src/patients/Bob_Stone/xray_2026.dcm")).unwrap()
    );
    assert!(!target.join("src/patients").join(NAME).exists());

    // No trace: every pack in storage is indexed, and no blob of any kind, opened with the
    // recovery identity, holds the name, the notes or any part of the X-ray.
    let samples: Vec<&[u8]> = [0usize, 200_000, 450_000, 899_000].iter().map(|&o| &xray[o..o + 64]).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opened = rt.block_on(async {
        let ids = arka_agent::repo::keys::load_identities(&fx.identity, || unreachable!("no passphrase")).unwrap();
        let store = Store::open(fx.repo.to_str().unwrap(), false).unwrap();
        let repo = Arc::new(Repository::open_with_identity(store, ids).await.unwrap());
        let index = Arc::new(repo.load_index().await.unwrap());
        let stored: HashSet<_> =
            repo.store.list(ObjectKind::Pack).await.unwrap().into_iter().map(|(id, _)| id).collect();
        let indexed: HashSet<_> = index.packs().map(|(id, _)| id).collect();
        assert_eq!(stored, indexed, "packs in storage that no index names could hold erased data");
        let segments = repo.load_segments().await.unwrap();
        let reader = BlobReader::new(repo.clone(), index.clone());
        let mut opened = 0;
        for (_, seg) in segments {
            for p in seg.packs {
                for e in p.blobs {
                    let plain = reader.read(&e.id).await.unwrap();
                    assert!(!contains(&plain, NAME.as_bytes()), "a {:?} blob still holds the name", e.kind);
                    assert!(!contains(&plain, &NOTE[..30]), "a blob still holds the notes");
                    for s in &samples {
                        assert!(!contains(&plain, s), "a blob still holds part of the X-ray");
                    }
                    opened += 1;
                }
            }
        }
        opened
    });
    assert!(opened > 4, "only {opened} blobs were checked");

    // The audit trail says an erase happened, how much, and nothing of what.
    let mut args: Vec<OsString> = vec!["--json".into(), "audit".into()];
    args.extend(fx.agent_args());
    let audit = fx.arka(args).ok().stdout_text();
    assert!(audit.contains("erase") && audit.contains("files_erased"), "{audit}");
    assert!(!audit.contains(NAME) && !audit.contains("patients"), "the audit listing names what was erased");
    for f in walk_files(&fx.repo) {
        assert!(!contains(&std::fs::read(&f).unwrap(), NAME.as_bytes()), "{} holds the name", f.display());
    }
}

#[test]
fn erase_with_a_grace_period_says_when_the_data_will_be_gone() {
    let fx = Fixture::with_pack_size_mib(1);
    clinic(&fx);
    let packs_before = walk_files(&fx.repo.join("packs"));
    let report = erase(&fx, &["--path", &format!("src/patients/{NAME}/*.dcm")]);
    assert_eq!(report["files_erased"], 2, "{report}");
    let prune = &report["prune"];
    assert_eq!(prune["packs_deleted"], 0, "deleted inside the default grace period: {report}");
    let pending = prune["plans_pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{report}");
    let after_ns = pending[0][1].as_i64().unwrap();
    let now_ns = jiff::Timestamp::now().as_nanosecond() as i64;
    let hours = (after_ns - now_ns) as f64 / 3.6e12;
    assert!((1.9..=2.0).contains(&hours), "deletion due in {hours:.2} h, expected the 2 h default");
    for p in &packs_before {
        assert!(p.exists(), "{} deleted before the grace period", p.display());
    }
    // The notes stay: only the X-ray matched.
    assert!(fx.ls("latest").iter().any(|e| e["path"].as_str().unwrap().ends_with(&format!("{NAME}/notes.txt"))));
}
