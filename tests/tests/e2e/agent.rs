//! `arka agent run --config FILE` as a process: it backs up at start and again once a
//! watched folder has been quiet, replicates to the second target, serves `/status`,
//! `/healthz` and `/metrics`, reports and notifies a failing dump, keeps backing up to the
//! primary while the offsite target is dead, and stops cleanly on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use arka_tests::agent::{free_port, AgentProcess};
use arka_tests::{pseudo_random, walk_files, write_file, Fixture};
use serde_json::Value;

/// A plain HTTP/1.1 GET on loopback: (status code, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let code = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

/// The agent's `/status` JSON.
pub(crate) fn status(port: u16) -> Option<Value> {
    let (code, body) = get(port, "/status")?;
    (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

/// The agent's status page.
pub(crate) fn page(port: u16) -> String {
    get(port, "/").map(|(_, body)| body).unwrap_or_default()
}

/// Polls `f` until it returns Some, or fails after `secs`.
pub(crate) fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn source<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["sources"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

fn config(fx: &Fixture, port: u16, extra_targets: &str, sources: &str, notify: &str) -> std::path::PathBuf {
    let text = format!(
        "agent_key = {key:?}\nstate_dir = {state:?}\n[[target]]\nurl = {repo:?}\n{extra_targets}\n{sources}\n\
         [status]\nbind = \"127.0.0.1:{port}\"\n{notify}\n",
        key = fx.agent_key,
        state = fx.path("state"),
        repo = fx.repo,
    );
    let path = fx.path("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn snapshot_count(fx: &Fixture, source: &str) -> usize {
    fx.snapshots().iter().filter(|s| s["source"].to_string().contains(source)).count()
}

#[test]
fn the_agent_backs_up_at_start_and_after_changes_replicates_and_serves_its_status() {
    let fx = Fixture::new();
    let imaging = fx.path("imaging");
    write_file(&imaging.join("study_1/slice_001.dcm"), &pseudo_random(1, 200_000));
    write_file(&imaging.join("study_1/viewer.tmp"), b"scratch");
    write_file(&imaging.join("export/.nobackup"), b"");
    write_file(&imaging.join("export/copy.dcm"), b"a copy for a CD");
    let replica = fx.path("replica");
    let port = free_port();
    let sources = format!(
        "[[source]]\nname = \"imaging\"\nkind = \"files\"\npaths = [{imaging:?}]\nschedule = \"every 1h\"\n\
         watch = true\nquiet_period = \"1s\"\nexclude = [\"*.tmp\"]\nexclude_if_present = [\".nobackup\"]\n"
    );
    let cfg = config(&fx, port, &format!("[[target]]\nurl = {replica:?}\n"), &sources, "");
    let agent = AgentProcess::start(&fx, &cfg);

    // Never backed up: the first run starts at once.
    let st = wait_for(60, "the first backup", || status(port).filter(|st| source(st, "imaging")["state"] == "ok"));
    assert_eq!(snapshot_count(&fx, "imaging"), 1, "{st}");
    assert_eq!(get(port, "/healthz").unwrap().0, 200);

    // A new study lands in several files: one more backup once the folder is quiet.
    for i in 0..5 {
        write_file(&imaging.join(format!("study_2/slice_{i:03}.dcm")), &pseudo_random(10 + i, 100_000));
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_for(30, "the backup after the change", || (snapshot_count(&fx, "imaging") == 2).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(snapshot_count(&fx, "imaging"), 2, "one study must give one backup, not one per file");

    // Replicated to the second target.
    wait_for(30, "replication", || (walk_files(&replica.join("snapshots")).len() == 2).then_some(()));
    let (code, metrics) = get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("arka_source_last_success_timestamp_seconds{source=\"imaging\"}"), "{metrics}");
    let page = get(port, "/").unwrap().1;
    assert!(page.contains("imaging") && !page.contains("slice_001"), "the page must never show file names");
    assert!(!get(port, "/status").unwrap().1.contains("slice_"), "the status must never show file names");

    let exit = agent.terminate(15);
    assert!(exit.success(), "the agent exited with {exit} on SIGTERM");
    // The source's excludes held: the temporary file and the marked folder are not stored.
    let restored = fx.path("restored");
    // The service records the source's name: `--source imaging` finds its snapshots.
    fx.restore("latest", &restored, &["--source", "imaging"]).ok();
    assert!(restored.join("imaging/study_1/slice_001.dcm").exists());
    assert!(!restored.join("imaging/study_1/viewer.tmp").exists(), "an excluded file was backed up");
    assert!(!restored.join("imaging/export").exists(), "a folder holding .nobackup was backed up");
}

/// #15 point 5: the dump's stderr names a patient's file; status, healthz, the webhook and
/// the agent's log get its exit status and a last line with the path removed, and only the
/// opt-in debug log (mode 600) keeps the full text.
#[test]
fn a_failing_dump_is_reported_on_healthz_and_by_webhook_without_the_paths_its_stderr_names() {
    let fx = Fixture::new();
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_port = hook.local_addr().unwrap().port();
    let received = std::thread::spawn(move || read_one_webhook(hook));
    let port = free_port();
    let script = fx.path("dump.sh");
    std::fs::write(
        &script,
        "echo 'partial dump'\n\
         echo 'starting' >&2\n\
         echo 'pg_dump: /srv/pacjenci/Kowalski Jan/CBCT.dcm: could not open \"C:\\Pacjenci\\Nowak Anna.sql\": refused' >&2\n\
         exit 3\n",
    )
    .unwrap();
    let sources = format!(
        "[[source]]\nname = \"clinic-db\"\nkind = \"command\"\ncommand = \"sh {}\"\nschedule = \"every 1h\"\n",
        script.display()
    );
    let notify = format!("[notify]\nwebhook = {{ url = \"http://127.0.0.1:{hook_port}/arka\" }}\n");
    let cfg = config(&fx, port, "", &sources, &notify);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("dump_debug_log = true\n{text}")).unwrap();
    let agent = AgentProcess::start(&fx, &cfg);

    let st = wait_for(60, "the failed run", || status(port).filter(|st| source(st, "clinic-db")["state"] == "failed"));
    let error = source(&st, "clinic-db")["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains("exited with status 3") && error.contains("pg_dump: <path>: could not open \"<path>\": refused"),
        "{error}"
    );
    let (code, body) = get(port, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("clinic-db"), "{body}");
    assert_eq!(snapshot_count(&fx, "clinic-db"), 0, "a failed dump must leave no snapshot");

    let hook_text = received.join().unwrap();
    let hook_body: Value = serde_json::from_str(&hook_text).unwrap();
    assert_eq!(hook_body["kind"], "backup_failed", "{hook_body}");
    assert_eq!(hook_body["source"], "clinic-db", "{hook_body}");
    let page = get(port, "/").unwrap().1;
    let shown = [("status", st.to_string()), ("healthz", body), ("webhook", hook_text), ("page", page)];
    for (what, text) in shown.iter().chain([&("log", agent.log())]) {
        for name in ["pacjenci", "Kowalski", "Pacjenci", "Nowak", "CBCT"] {
            assert!(!text.contains(name), "the {what} shows {name:?}:\n{text}");
        }
    }
    let debug = fx.path("state/dump-debug.log");
    let full = std::fs::read_to_string(&debug).unwrap();
    assert!(full.contains("/srv/pacjenci/Kowalski Jan/CBCT.dcm") && full.contains("Nowak Anna.sql"), "{full}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&debug).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(agent.terminate(15).success());
}

/// Reads one webhook request and answers 200: its body.
fn read_one_webhook(hook: TcpListener) -> String {
    let (mut s, _) = hook.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read headers and the body announced by Content-Length.
    loop {
        let n = s.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
                return body.to_string();
            }
        }
        assert!(n > 0, "webhook connection closed early");
    }
}

#[test]
fn a_dead_offsite_target_does_not_delay_backups_and_sigterm_mid_backup_leaves_no_snapshot() {
    let fx = Fixture::new();
    let port = free_port();
    // Nothing listens on the offsite endpoint: every request to it fails.
    let dead = free_port();
    let offsite = "[[target]]\nname = \"offsite\"\nurl = \"s3://offsite/arka\"\n";
    let sources =
        "[[source]]\nname = \"notes\"\nkind = \"command\"\ncommand = \"echo notes\"\nschedule = \"every 1h\"\n\
                   [[source]]\nname = \"big-dump\"\nkind = \"command\"\n\
                   command = \"head -c 3000000000 /dev/urandom\"\nschedule = \"every 1h\"\n";
    let cfg = config(&fx, port, offsite, sources, "");
    let env = [
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{dead}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "x".into()),
        ("AWS_SECRET_ACCESS_KEY", "y".into()),
        ("AWS_REGION", "garage".into()),
    ];
    let agent = AgentProcess::start_with_env(&fx, &cfg, &env);

    // One of the two sources is backed up first; whichever, the small one is done quickly
    // or the big one is running: either way the dead target held nothing up.
    let started = Instant::now();
    let st = wait_for(60, "a backup to the primary", || {
        status(port).filter(|st| source(st, "notes")["state"] == "ok" || source(st, "big-dump")["state"] == "running")
    });
    println!("primary busy after {:.1} s with the offsite target dead: {st}", started.elapsed().as_secs_f64());
    let st = wait_for(60, "the big dump to start", || {
        status(port).filter(|st| source(st, "big-dump")["state"] == "running")
    });
    let notes_done = source(&st, "notes")["state"] == "ok";
    std::thread::sleep(Duration::from_secs(1));

    // SIGTERM in the middle of the big dump: a clean exit and no snapshot of it.
    let exit = agent.terminate(30);
    assert!(exit.success(), "exit status {exit}");
    assert_eq!(snapshot_count(&fx, "big-dump"), 0, "an interrupted dump must leave no snapshot");
    assert_eq!(snapshot_count(&fx, "notes"), usize::from(notes_done));
}

/// The hardened unit runs the agent as documented, and systemd parses every line of it.
#[test]
fn the_systemd_unit_runs_the_agent_and_parses_cleanly() {
    let unit =
        std::fs::read_to_string(arka_tests::workspace_root().join("packaging/systemd/arka-agent.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/arka agent run --config /etc/arka/agent.toml"));
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.contains(hardening), "missing {hardening}");
    }
    systemd_verify("arka-agent.service", &unit, "/usr/local/bin/arka", arka_tests::arka_bin());
}

/// The server's unit runs `arka-server` as its own user with no capability, writing only
/// its data_dir and state directory, and systemd parses every line of it.
#[test]
fn the_systemd_unit_runs_the_server_without_privileges_and_parses_cleanly() {
    let unit =
        std::fs::read_to_string(arka_tests::workspace_root().join("packaging/systemd/arka-server.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/arka-server --config /etc/arka-server/server.toml"));
    for setting in [
        "User=arka-server",
        "Restart=on-failure",
        "LimitNOFILE=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "ReadWritePaths=/srv/arka\n",
        "StateDirectory=arka-server",
        "CapabilityBoundingSet=\n",
        "AmbientCapabilities=\n",
        "SystemCallFilter=@system-service",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.contains(setting), "missing {setting:?}");
    }
    // Exactly one writable path: a second one would be a hole in ProtectSystem=strict.
    assert_eq!(unit.lines().filter(|l| l.starts_with("ReadWritePaths=")).count(), 1);
    systemd_verify("arka-server.service", &unit, "/usr/local/bin/arka-server", arka_tests::server::server_bin());
}

/// The packaged example server config passes `arka-server check` once its files exist:
/// every key it shows is one the server accepts.
#[test]
fn the_example_server_config_checks() {
    let example =
        std::fs::read_to_string(arka_tests::workspace_root().join("packaging/arka-server.example.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let text = example
        .replace("/etc/arka-server/", &format!("{}/", etc.display()))
        .replace("\"/srv/arka\"", &format!("{:?}", dir.path().join("data").display().to_string()));
    assert!(!text.contains("/etc/arka-server/") && !text.contains("\"/srv/arka\""));
    // The optional keys shown commented out with their defaults are accepted too (all but
    // `storage`, which would need a bucket).
    let text: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(kv)
                if kv
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_') && k != "storage") =>
            {
                kv
            }
            _ => l,
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    assert!(text.contains("\nmax_uploads_per_token = 2\n"), "{text}");
    // Every file the config names: the secrets as the comments say to make them, and a
    // TLS pair (`check` looks at their presence and the key's mode).
    let server = arka_tests::server::server_bin();
    for line in text.lines().filter(|l| l.starts_with("secret_file")) {
        let path = line.split('"').nth(1).unwrap();
        let out = std::process::Command::new(server).args(["token", "new", path]).output().unwrap();
        assert!(out.status.success(), "arka-server token new: {}", String::from_utf8_lossy(&out.stderr));
    }
    for line in text.lines().filter(|l| l.starts_with("cert") || l.starts_with("key")) {
        let path = line.split('"').nth(1).unwrap();
        std::fs::write(path, "-----BEGIN PLACEHOLDER-----\n").unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let config = dir.path().join("server.toml");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(server).args(["check", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "arka-server check refused the example:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// `systemd-analyze verify` on `unit` with `exec` in ExecStart replaced by `bin` (verify
/// wants an existing binary). It warns about unknown or malformed settings on stderr, not
/// with its exit code, so any output fails. Skipped where systemd is not installed, saying
/// so on stderr: scripts/install-test-deps.sh does not install systemd (containers often
/// lack it), so a missing systemd-analyze is not a failure, in CI or not.
fn systemd_verify(name: &str, unit: &str, exec: &str, bin: &std::path::Path) {
    let Ok(out) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        // Written to stderr itself: the harness captures eprintln!, so it would show only
        // on failure.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: systemd-analyze not installed, so {name} was not checked by systemd \
             (Debian package systemd; scripts/install-test-deps.sh does not install it)"
        );
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(name);
    std::fs::write(&copy, unit.replace(&format!("{exec} "), &format!("{} ", bin.display()))).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && complaints.trim().is_empty(), "systemd-analyze verify {name}: {complaints}");
}
