//! `arka key rotate-agent` on a local repository, on Garage S3 and on arka-server: after a
//! rotation the old agent key can add nothing (exit 12, "retired"), the new one backs up
//! and deduplicates against what the old one stored, the recovery identity restores from
//! before and after, and `key list` shows both keys. On a local repository, a snapshot the
//! old key plants after the rotation is neither listed nor trusted, and `verify` names it.
//! On arka-server, the token that sat beside the old key is swapped and refused.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

use arka_agent::repo::keys::load_agent_key;
use arka_agent::repo::Repository;
use arka_agent::store::{ObjectKind, Store};
use arka_tests::garage::Garage;
use arka_tests::server::{server_bin, ServerProcess, TokenSpec};
use arka_tests::{assert_same_tree, now_secs, pseudo_random, run, set_mtime, write_file, Fixture, Run};

use crate::server_client::{fixture_on, token_env};

/// Random, so that storing it twice would show in the stored bytes.
const SIZE: usize = 3 << 20;

/// What happened before and during the rotation.
struct Rotated {
    src: PathBuf,
    first: String,
    old_key: PathBuf,
    old_id: String,
    new_id: String,
}

/// A backup with the fixture's key A, then `arka key rotate-agent` (with `env` added, e.g.
/// a token that may replace the config); the fixture then uses the new key B.
fn backup_and_rotate(fx: &mut Fixture, env: &[(String, String)]) -> Rotated {
    let src = fx.path("src");
    write_file(&src.join("scan.dcm"), &pseudo_random(7, SIZE));
    let first = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    let new_key = fx.path("agent-b.key");
    let mut cmd = fx.command();
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args(["--json", "key", "rotate-agent"]).args(fx.reader_args());
    cmd.arg("--agent-key-out").arg(&new_key);
    let rotated = run(cmd).ok().json();
    let old_key = std::mem::replace(&mut fx.agent_key, new_key);
    let text = std::fs::read_to_string(&fx.agent_key).unwrap();
    assert!(text.contains("ARKA-AGENT-KEY-2-"), "the new key carries the retired one: {text}");
    let (old_id, new_id) = (str_of(&rotated["retired"]), str_of(&rotated["agent_key"]));
    assert_ne!(old_id, new_id, "{rotated}");
    Rotated { src, first, old_key, old_id, new_id }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string")).to_string()
}

/// `arka --json backup` of `src` with the key file `key`.
fn backup_with(fx: &Fixture, key: &Path, src: &Path) -> Run {
    let args: Vec<OsString> = vec![
        "--json".into(),
        "backup".into(),
        "--repo".into(),
        fx.repo.clone().into(),
        "--agent-key".into(),
        key.into(),
        src.into(),
    ];
    fx.arka(args)
}

/// What holds on every kind of target after the rotation.
fn check_after_rotation(fx: &Fixture, r: &Rotated) {
    let refused = backup_with(fx, &r.old_key, &r.src).expect_code(12);
    assert!(refused.stderr.contains("retired") && refused.stderr.contains(&r.old_id), "{}", refused.stderr);

    let second = fx.backup_ok(&[&r.src], &[]);
    let stored = second["stats"]["bytes_stored"].as_u64().unwrap();
    assert!(stored < SIZE as u64 / 100, "the new key stored the data again ({stored} bytes): {second}");
    let second = str_of(&second["snapshot_id"]);

    for (n, id) in [&r.first, &second].into_iter().enumerate() {
        let target = fx.path(format!("restored-{n}"));
        fx.restore(id, &target, &[]).ok();
        assert_same_tree(&r.src, &target.join("src"));
    }

    let mut args: Vec<OsString> = vec!["--json".into(), "key".into(), "list".into()];
    args.extend(fx.reader_args());
    let listing = fx.arka(args).ok().json();
    let keys = listing["agent_keys"].as_array().unwrap();
    assert_eq!((str_of(&keys[0]["id"]), str_of(&keys[0]["state"])), (r.new_id.clone(), "current".into()));
    assert_eq!((str_of(&keys[1]["id"]), str_of(&keys[1]["state"])), (r.old_id.clone(), "retired".into()));
    assert!(keys[1]["retired"].as_i64().unwrap() > now_secs() - 3600, "{listing}");

    // Audited under the new key, on the chain the old key began.
    let mut args: Vec<OsString> = vec!["audit".into()];
    args.extend(fx.agent_args());
    let trail = fx.arka(args).ok().stdout_text();
    assert!(trail.contains(&format!("rotated agent key {} -> {}", r.old_id, r.new_id)), "{trail}");
}

#[test]
fn a_local_repository_refuses_the_old_key_and_what_it_plants_afterwards() {
    let mut fx = Fixture::new();
    let r = backup_and_rotate(&mut fx, &[]);
    check_after_rotation(&fx, &r);

    // The old key seals a snapshot the way ransomware holding it would; the store records
    // it an hour after the retirement (a directory store's clock is the file's mtime).
    let planted = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(fx.repo.to_str().unwrap(), false).unwrap();
        let repo = Repository::open_with_agent_key(store, load_agent_key(&fx.agent_key).unwrap()).await.unwrap();
        let (_, snap) = repo.list_snapshots().await.unwrap().remove(0);
        let old = load_agent_key(&r.old_key).unwrap();
        let id = repo.put_object(ObjectKind::Snapshot, snap.encode(old.meta_key())).await.unwrap();
        set_mtime(&fx.repo.join(ObjectKind::Snapshot.key(&id)), now_secs() + 3600, 0);
        id.to_hex()
    });
    let listed: Vec<String> = fx.snapshots().iter().map(|s| str_of(&s["id"])).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(!listed.contains(&planted), "the plant is listed: {listed:?}");
    let mut args: Vec<OsString> = vec!["verify".into()];
    args.extend(fx.agent_args());
    let verified = fx.arka(args).expect_code(1);
    let text = verified.stdout_text();
    assert!(text.contains(&planted) && text.contains("retired"), "{text}");
}

#[test]
fn garage_s3_refuses_the_old_key() {
    let garage = Garage::single();
    let mut fx = Fixture::at(&garage.url("clinic/rotation"), garage.env());
    let r = backup_and_rotate(&mut fx, &[]);
    check_after_rotation(&fx, &r);
}

#[test]
fn arka_server_refuses_the_old_key_and_the_old_token_once_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = [TokenSpec::new("reception", "append", &["clinic"]), TokenSpec::new("nas", "maintain", &["clinic"])];
    let mut server = ServerProcess::start(dir.path(), &tokens);
    let mut fx = fixture_on(&server, "clinic", "nas");
    // The clinic server backs up with the append token; replacing the config needs the
    // maintain token (the NAS's, or the IT contractor's).
    fx.env = token_env(&server, "reception");
    let r = backup_and_rotate(&mut fx, &token_env(&server, "nas"));
    check_after_rotation(&fx, &r);

    // The runbook: a new token in place of the old one's secret_file, then a restart.
    let old_secret = server.secret_file("reception").to_path_buf();
    let new_secret = dir.path().join("reception-2.secret");
    let made = run({
        let mut c = std::process::Command::new(server_bin());
        c.arg("token").arg("new").arg(&new_secret);
        c
    });
    made.ok();
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    let swapped = config.replace(
        &format!("{:?}", old_secret.display().to_string()),
        &format!("{:?}", new_secret.display().to_string()),
    );
    assert_ne!(config, swapped);
    std::fs::write(server.config_path(), swapped).unwrap();
    server.restart();

    let old_token = backup_with(&fx, &fx.agent_key, &r.src);
    assert_eq!(old_token.code, 12, "the old token still works: {}", old_token.stderr);
    fx.env = vec![("ARKA_SERVER_TOKEN_FILE".into(), new_secret.display().to_string())];
    let old_key = backup_with(&fx, &r.old_key, &r.src).expect_code(12);
    assert!(old_key.stderr.contains("retired"), "{}", old_key.stderr);
    fx.backup_ok(&[&r.src], &[]);
}
