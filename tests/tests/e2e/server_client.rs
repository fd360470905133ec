//! The agent's arka-server target (`arka+http://` on loopback, `arka+https://` with a
//! certificate made here by the openssl CLI) against the real `arka-server` binary: the
//! store conformance suite, every CLI command, refusals with advice (unknown token, wrong
//! repository, delete with an append token), a server killed mid-backup, TLS with a pin or
//! a CA file, prune with an append and then a maintain token, `agent check` asking whether
//! a token may delete, and the agent service's status push.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use arka_agent::store::{ServerOptions, Store};
use arka_tests::agent::{free_port, AgentProcess};
use arka_tests::server::{ServerProcess, TokenSpec};
use arka_tests::{assert_same_tree, os_args, pseudo_random, run, write_file, Fixture, Run};

use crate::agent::{status, wait_for};
use crate::conformance::{conformance, fast_limits, runtime, CreateOnly, ForeignNames};
use crate::s3::small_tree;

/// `ARKA_SERVER_TOKEN_FILE` for a token of `server`.
pub(crate) fn token_env(server: &ServerProcess, token: &str) -> Vec<(String, String)> {
    vec![("ARKA_SERVER_TOKEN_FILE".into(), server.secret_file(token).display().to_string())]
}

/// A server whose `clinic` repository has the clinic server's `append` token `reception`
/// and the NAS's `maintain` token `nas`.
pub(crate) fn clinic_and_nas(dir: &Path) -> ServerProcess {
    let tokens = [TokenSpec::new("reception", "append", &["clinic"]), TokenSpec::new("nas", "maintain", &["clinic"])];
    ServerProcess::start(dir, &tokens)
}

/// A fixture whose repository `repo` lives on `server`, used with `token`.
pub(crate) fn fixture_on(server: &ServerProcess, repo: &str, token: &str) -> Fixture {
    Fixture::at(&server.repo_url(repo), token_env(server, token))
}

/// `arka ARGS…` with the fixture's environment, but with another token of `server`.
fn arka_with_token(fx: &Fixture, server: &ServerProcess, token: &str, args: Vec<OsString>) -> Run {
    let mut cmd = fx.command();
    cmd.env("ARKA_SERVER_TOKEN_FILE", server.secret_file(token)).args(args);
    run(cmd)
}

fn verify_read_data(fx: &Fixture) -> Run {
    let mut args: Vec<OsString> = vec!["verify".into(), "--read-data".into()];
    args.extend(fx.reader_args());
    fx.arka(args)
}

#[test]
fn server_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[TokenSpec::new("nas", "maintain", &["conformance", "fresh"])]);
    // Settings passed in, not through the environment (not sound to set in a test process).
    let options = ServerOptions { token_file: Some(server.secret_file("nas").into()), ..Default::default() };
    // Paced (bandwidth limits on): request bodies stream in slices with their length, and
    // answers are paid for as they arrive. server.rs runs the suite unpaced.
    let limits = fast_limits();
    let store = Store::open_with(&server.repo_url("conformance"), true, &options, &limits).expect("open the store");
    let fresh = Store::open_with(&server.repo_url("fresh"), true, &options, &limits).expect("open the fresh store");
    runtime().block_on(conformance(&store, &fresh, CreateOnly::Enforced, ForeignNames::Refused));
}

#[test]
fn every_command_works_through_the_server_and_refusals_come_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &[
            TokenSpec::new("reception", "append", &["clinic"]),
            TokenSpec::new("other-clinic", "append", &["other"]),
            TokenSpec::new("nas", "maintain", &["clinic", "copy"]),
        ],
    );
    let fx = fixture_on(&server, "clinic", "reception");
    let src = fx.path("src");
    small_tree(&src, 1);
    let first = fx.backup_ok(&[&src], &["--tag", "nightly"]);
    let dump = fx.backup(&[] as &[&str], &["--stdin-from-command", "seq 1 200000", "--name", "clinic.sql"]).ok().json();
    assert_eq!(fx.snapshots().len(), 2);

    let target = fx.path("restored");
    fx.restore(first["snapshot_id"].as_str().unwrap(), &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
    let expected = Command::new("seq").args(["1", "200000"]).output().unwrap().stdout;
    assert!(fx.dump(dump["snapshot_id"].as_str().unwrap(), "clinic.sql").ok().stdout == expected, "dump differs");
    verify_read_data(&fx).ok();
    // The objects are on the server's disk, under the repository's name.
    assert!(server.data_dir().join("clinic").join("config").is_file());

    // init refuses a repository that exists (the server's create-only config).
    fx.arka(os_args!["init", "--repo", fx.repo, "--recipient", fx.recipient])
        .expect_code(1)
        .expect_stderr("already holds an arka repository");

    // sync: server -> local directory -> another repository on the server.
    let local = fx.path("local-copy");
    fx.arka(os_args!["--json", "sync", "--repo", fx.repo, "--to", local]).ok();
    let copy = server.repo_url("copy");
    arka_with_token(&fx, &server, "nas", os_args!["--json", "sync", "--repo", local, "--to", copy]).ok();
    let from_copy = fx.path("from-copy");
    let restore_copy =
        os_args!["--json", "restore", "--repo", copy, "--identity", fx.identity, "latest", "--target", from_copy];
    arka_with_token(&fx, &server, "nas", restore_copy).ok();
    assert!(from_copy.join("clinic.sql").exists() || from_copy.join("src").exists(), "nothing restored from the copy");

    // An unknown token, a token for another repository, no token at all.
    let mut bogus = fx.command();
    bogus.env("ARKA_SERVER_TOKEN", "not-a-token-the-server-knows-at-all").args(os_args![
        "snapshots",
        "--repo",
        fx.repo,
        "--agent-key",
        fx.agent_key
    ]);
    run(bogus).expect_code(12).expect_stderr("check ARKA_SERVER_TOKEN");
    arka_with_token(
        &fx,
        &server,
        "other-clinic",
        os_args!["snapshots", "--repo", fx.repo, "--agent-key", fx.agent_key],
    )
    .expect_code(12)
    .expect_stderr("this token is not for this repository");
    let mut none = fx.command();
    none.env_remove("ARKA_SERVER_TOKEN_FILE").args(os_args![
        "snapshots",
        "--repo",
        fx.repo,
        "--agent-key",
        fx.agent_key
    ]);
    run(none).expect_code(2).expect_stderr("needs a token: set ARKA_SERVER_TOKEN");
    // Plain HTTP to another machine is a usage error before anything is sent.
    fx.arka(os_args!["snapshots", "--repo", "arka+http://192.0.2.1/clinic", "--agent-key", fx.agent_key])
        .expect_code(2)
        .expect_stderr("use arka+https://");
    // The token is in no output.
    let secret = server.secret("reception");
    let out = fx.arka(os_args!["snapshots", "--repo", fx.repo, "--agent-key", fx.agent_key]).ok();
    assert!(!out.stderr.contains(&secret) && !out.stdout_text().contains(&secret));
}

#[test]
fn a_backup_survives_the_server_being_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[TokenSpec::new("reception", "append", &["clinic"])]);
    let fx = fixture_on(&server, "clinic", "reception");
    let src = fx.path("src");
    small_tree(&src, 2);
    server.kill9();
    let mut backup = fx.command();
    backup.args(fx.backup_args(&[&src], &[])).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = backup.spawn().unwrap();
    // The agent retries with backoff while the server is away.
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "backup failed across a server restart:\n{}", String::from_utf8_lossy(&out.stderr));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["snapshot_id"].as_str().unwrap().to_string();
    let target = fx.path("restored");
    fx.restore(&id, &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `openssl x509 -fingerprint -sha256` of a certificate: `AB:CD:…`.
pub(crate) fn fingerprint(cert: &Path) -> String {
    let out =
        Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(cert).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit('=').next().unwrap().to_string()
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A self-signed certificate for a name that is not the address the agent dials.
pub(crate) fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let mut args = vec!["req", "-x509", "-nodes", "-days", "30", "-keyout", "self.key", "-out", "self.crt"];
    args.extend(EC);
    args.extend(["-subj", "/CN=nas.clinic.lan", "-addext", "subjectAltName=DNS:nas.clinic.lan"]);
    openssl(dir, &args);
    (dir.join("self.crt"), dir.join("self.key"))
}

/// A CA, and a certificate for 127.0.0.1 that it signed: (CA cert, leaf cert, leaf key).
fn ca_signed(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "30", "-keyout", "ca.key", "-out", "ca.crt"];
    ca.extend(EC);
    ca.extend(["-subj", "/CN=Clinic Test CA", "-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"];
    csr.extend(EC);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &["x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30"]
            .into_iter()
            .chain(["-out", "leaf.crt", "-extfile", "leaf.ext"])
            .collect::<Vec<_>>(),
    );
    (dir.join("ca.crt"), dir.join("leaf.crt"), dir.join("leaf.key"))
}

fn tls_server(dir: &Path, cert: &Path, key: &Path) -> ServerProcess {
    let tls = format!("[tls]\ncert = {:?}\nkey = {:?}\n", cert.display().to_string(), key.display().to_string());
    ServerProcess::start_with(&dir.join("server"), &[TokenSpec::new("reception", "append", &["clinic"])], &tls, &[])
}

#[test]
fn tls_with_a_pinned_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let server = tls_server(dir.path(), &cert, &key);
    let url = server.repo_url("clinic");
    assert!(url.starts_with("arka+https://"), "{url}");
    let pin = fingerprint(&cert);
    let mut env = token_env(&server, "reception");
    env.push(("ARKA_SERVER_CERT_SHA256".into(), pin.clone()));
    let fx = Fixture::at(&url, env);
    let src = fx.path("src");
    small_tree(&src, 3);
    let snap = fx.backup_ok(&[&src], &[]);
    let target = fx.path("restored");
    fx.restore(snap["snapshot_id"].as_str().unwrap(), &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));

    let snapshots = |extra: &[(&str, &str)], remove: &[&str]| {
        let mut cmd = fx.command();
        for k in remove {
            cmd.env_remove(k);
        }
        cmd.envs(extra.iter().copied()).args(os_args!["snapshots", "--repo", url, "--agent-key", fx.agent_key]);
        run(cmd)
    };
    // Another pin: refused at once, naming the certificate it saw.
    let wrong = "00".repeat(32);
    let t0 = Instant::now();
    let refused = snapshots(&[("ARKA_SERVER_CERT_SHA256", &wrong)], &[]).expect_code(1);
    assert!(refused.stderr.contains("not the pinned one"), "{}", refused.stderr);
    assert!(refused.stderr.contains(&pin.replace(':', "").to_lowercase()), "{}", refused.stderr);
    assert!(refused.stderr.contains("update ARKA_SERVER_CERT_SHA256"), "{}", refused.stderr);
    assert!(t0.elapsed() < Duration::from_secs(10), "a certificate refusal was retried");
    // No pin and no CA: the platform's roots do not know this certificate.
    snapshots(&[], &["ARKA_SERVER_CERT_SHA256"]).expect_code(1).expect_stderr("TLS certificate is not trusted");
    // A malformed pin is a usage error.
    snapshots(&[("ARKA_SERVER_CERT_SHA256", "12:34")], &[]).expect_code(2).expect_stderr("not a SHA-256 fingerprint");
}

#[test]
fn tls_with_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_signed(dir.path());
    let server = tls_server(dir.path(), &cert, &key);
    let mut env = token_env(&server, "reception");
    env.push(("ARKA_SERVER_CA".into(), ca.display().to_string()));
    let fx = Fixture::at(&server.repo_url("clinic"), env);
    let src = fx.path("src");
    small_tree(&src, 4);
    fx.backup_ok(&[&src], &[]);
    let target = fx.path("restored");
    fx.restore("latest", &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
    // Without the CA file the certificate is not trusted.
    let mut cmd = fx.command();
    cmd.env_remove("ARKA_SERVER_CA").args(os_args!["snapshots", "--repo", fx.repo, "--agent-key", fx.agent_key]);
    run(cmd).expect_code(1).expect_stderr("ARKA_SERVER_CA");
}

#[test]
fn prune_with_an_append_token_deletes_nothing_and_a_maintain_token_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let server = clinic_and_nas(dir.path());
    let fx = fixture_on(&server, "clinic", "reception");
    let src = fx.path("src");
    for i in 0..6u64 {
        write_file(&src.join(format!("scan_{i}.dcm")), &pseudo_random(10 + i, 3 << 20));
    }
    let first = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();
    for i in 0..4u64 {
        std::fs::remove_file(src.join(format!("scan_{i}.dcm"))).unwrap();
    }
    let kept = fx.backup_ok(&[&src], &[])["snapshot_id"].as_str().unwrap().to_string();

    // forget deletes snapshot objects: the append token may not. (By ID: the second
    // snapshot lost two thirds of the source, so retention would keep the first as well.)
    let mut forget: Vec<OsString> = vec!["forget".into(), first.into()];
    forget.extend(fx.agent_args());
    fx.arka(forget.clone()).expect_code(12).expect_stderr("run prune on the NAS with a maintain token");
    arka_with_token(&fx, &server, "nas", forget).ok();
    assert_eq!(fx.snapshots().len(), 1);

    let mut prune: Vec<OsString> = vec!["--json".into(), "prune".into()];
    prune.extend(fx.agent_args());
    prune.extend(["--grace".into(), "0".into()]);
    // Bytes, not pack counts: a repack replaces a partly used pack with a new one.
    let packs = || crate::prune::bytes_under(&server.data_dir().join("clinic").join("packs"));
    let before = packs();
    let refused = fx.arka(prune.clone()).expect_code(1);
    let report = refused.json();
    let refused_keys = report["delete_refused"].as_array().map_or(0, Vec::len);
    assert!(refused_keys > 0, "no refused deletes reported: {report}\n{}", refused.stderr);
    assert!(refused.stderr.contains("maintain token"), "{}", refused.stderr);
    assert!(packs() >= before, "an append token deleted pack data");
    // Everything listed still restores, and verifies.
    let target = fx.path("restored-1");
    fx.restore(&kept, &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
    verify_read_data(&fx).ok();

    let done = arka_with_token(&fx, &server, "nas", prune).ok().json();
    assert!(done["packs_deleted"].as_u64().unwrap() > 0, "{done}");
    assert!(done["delete_refused"].as_array().is_none_or(Vec::is_empty), "{done}");
    assert!(done["plans_pending"].as_array().unwrap().is_empty(), "{done}");
    assert!(packs() < before, "the maintain token freed nothing: {} -> {}", before, packs());
    let target = fx.path("restored-2");
    fx.restore(&kept, &target, &[]).ok();
    assert_same_tree(&src, &target.join("src"));
    verify_read_data(&fx).ok();
}

#[test]
fn the_agent_service_backs_up_to_the_server_and_pushes_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &[
            TokenSpec::new("reception", "append", &["clinic", "replica"]),
            TokenSpec::new("stale", "append", &["replica"]),
        ],
    );
    let mut fx = fixture_on(&server, "clinic", "reception");
    // The service takes its token from the config, not the environment.
    let cli_env = std::mem::take(&mut fx.env);
    let imaging = fx.path("imaging");
    write_file(&imaging.join("study_1/slice_001.dcm"), &pseudo_random(1, 200_000));
    // A replica whose token file holds a token the server does not know.
    let bad_token = fx.path("stale.token");
    std::fs::write(&bad_token, "a-token-the-server-has-never-seen-123\n").unwrap();
    set_private(&bad_token);
    let port = free_port();
    let config = format!(
        "agent_key = {key:?}\nstate_dir = {state:?}\nhostname = \"reception-pc\"\n\
         [[target]]\nname = \"nas\"\nurl = {url:?}\ntoken_file = {token:?}\n\
         [[target]]\nname = \"stale\"\nurl = {replica:?}\ntoken_file = {bad:?}\n\
         [[source]]\nname = \"imaging\"\nkind = \"files\"\npaths = [{imaging:?}]\nschedule = \"every 1h\"\n\
         [status]\nbind = \"127.0.0.1:{port}\"\n",
        key = fx.agent_key,
        state = fx.path("state"),
        url = server.repo_url("clinic"),
        token = server.secret_file("reception"),
        replica = server.repo_url("replica"),
        bad = bad_token,
    );
    let cfg = fx.path("agent.toml");
    std::fs::write(&cfg, config).unwrap();
    let agent = AgentProcess::start(&fx, &cfg);

    // The first backup runs at start; its outcome reaches the server.
    let saved = server.data_dir().join(".server").join("agents").join("reception.json");
    let report = wait_for(90, "a status report with the first backup on the server", || {
        let v: Value = serde_json::from_slice(&std::fs::read(&saved).ok()?).ok()?;
        let source = v["status"]["sources"].as_array()?.iter().find(|s| s["name"] == "imaging")?.clone();
        source["last_success_ns"].as_i64().map(|_| v)
    });
    assert_eq!(report["status"]["hostname"], "reception-pc", "{report}");
    fx.env = cli_env;
    assert_eq!(fx.snapshots().len(), 1, "the backup is not in the server's repository");

    // The target with the unknown token shows why on the agent's own status page; the
    // good one shows no error.
    let st = wait_for(60, "the stale target's error", || {
        let st = status(port)?;
        let t = st["targets"].as_array()?.iter().find(|t| t["name"] == "stale")?.clone();
        t["last_error"].as_str().map(|_| st)
    });
    let targets = st["targets"].as_array().unwrap();
    let stale = targets.iter().find(|t| t["name"] == "stale").unwrap();
    assert!(stale["last_error"].as_str().unwrap().contains("does not accept this token"), "{stale}");
    let nas = targets.iter().find(|t| t["name"] == "nas").unwrap();
    assert!(nas["last_error"].is_null(), "{nas}");
    let log = agent.log();
    let secret = server.secret("reception");
    assert!(!log.contains(&secret) && !log.contains("a-token-the-server-has-never-seen"), "a token is in the log");
    assert!(agent.terminate(30).success());
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// #15 point 6: `agent check` asks the server whether the primary target's token may
/// delete when forget or prune is scheduled; an append token is refused with what to
/// change, a maintain token passes, and verify alone needs no delete right.
#[test]
fn agent_check_refuses_forget_and_prune_on_an_append_token_and_accepts_a_maintain_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = clinic_and_nas(dir.path());
    let mut fx = fixture_on(&server, "clinic", "nas");
    // The agent takes its token from the config, not the environment (which would win).
    let cli_env = std::mem::take(&mut fx.env);
    let check = |token: &str, maintenance: &str| {
        let config = format!(
            "agent_key = {key:?}\nstate_dir = {state:?}\n[[target]]\nname = \"nas\"\nurl = {url:?}\n\
             token_file = {token:?}\n[maintenance]\n{maintenance}\n",
            key = fx.agent_key,
            state = fx.path("state"),
            url = server.repo_url("clinic"),
            token = server.secret_file(token),
        );
        let path = fx.path("agent.toml");
        std::fs::write(&path, config).unwrap();
        fx.arka(os_args!["agent", "check", "--config", path])
    };
    let refused = check("reception", "forget = \"daily 03:00\"\nprune = \"sun 04:00\"").expect_code(2);
    for says in ["schedules forget and prune", "append token", "Remove forget and prune", "maintain token"] {
        assert!(refused.stderr.contains(says), "{says:?} missing from:\n{}", refused.stderr);
    }
    assert!(!refused.stderr.contains(&server.secret("reception")), "the token was printed");
    check("reception", "verify = \"sun 05:00\"").ok();
    check("nas", "forget = \"daily 03:00\"\nprune = \"sun 04:00\"").ok();

    // The service started anyway says so once, on its status page and in its log, instead
    // of failing every scheduled run.
    let port = free_port();
    let path = fx.path("agent.toml");
    let maintenance = format!("prune = \"every 10s\"\nverify = \"every 10s\"\n[status]\nbind = \"127.0.0.1:{port}\"");
    check("reception", &maintenance).expect_code(2);
    let agent = AgentProcess::start(&fx, &path);
    let refused = |st: &Value| {
        st["maintenance"]["deletion_refused"].as_str().is_some_and(|e| e.contains("forget and prune do not run"))
    };
    wait_for(60, "the maintenance error", || status(port).filter(|st| refused(st)));
    std::thread::sleep(Duration::from_secs(12));
    // Verifies ran meanwhile and succeeded; the refusal still stands on the page.
    let st = status(port).unwrap();
    assert!(st["maintenance"]["last_verify_ns"].as_i64().is_some() && refused(&st), "{st}");
    let log = agent.log();
    assert_eq!(log.matches("append token").count(), 1, "said more than once, or a prune ran:\n{log}");
    assert!(agent.terminate(15).success());
    fx.env = cli_env;
    assert_eq!(fx.snapshots().len(), 0);
}
