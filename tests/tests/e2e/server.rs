//! arka-server against abuse and accidents, as the real binary on loopback, spoken to
//! byte for byte over TCP: the server-abuse list of QUALITY.md (every attempt refused,
//! logged and counted), kill -9 in the middle of uploads, many writers at once, and the
//! server fronting a real Garage bucket.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use arka_agent::store::{Limits, ServerOptions, Store};
use arka_proto::ObjectId;
use arka_tests::garage::Garage;
use arka_tests::server::{bearer, pack, raw_request, try_raw_request, ServerProcess, TokenSpec};
use arka_tests::{pseudo_random, walk_files};

use crate::conformance::{conformance, runtime, CreateOnly, ForeignNames};

fn tokens() -> Vec<TokenSpec> {
    vec![
        TokenSpec::new("clinic-a-agent", "append", &["clinic-a"]),
        TokenSpec::new("clinic-b-agent", "append", &["clinic-b"]),
        TokenSpec::new("nas-prune", "maintain", &["clinic-a"]),
        TokenSpec::new("chain-admin", "admin", &[]),
    ]
}

fn object_path(repo: &str, key: &str) -> String {
    arka_proto::server::object_path(repo, key)
}

fn refusals(server: &ServerProcess, reason: &str) -> u64 {
    server.metrics().get(&format!("arka_server_refusals_total{{reason=\"{reason}\"}}")).copied().unwrap_or(0)
}

/// Every file under the data directory other than the server's own state, relative.
fn stored_files(data: &Path) -> Vec<String> {
    let mut files: Vec<String> = walk_files(data)
        .into_iter()
        .map(|p| p.strip_prefix(data).unwrap().display().to_string())
        .filter(|p| !p.starts_with(".server/"))
        .collect();
    files.sort();
    files
}

/// What, method, path, headers, body, the expected status and refusal.
type Attempt<'a> = (&'a str, &'a str, String, Vec<(&'a str, String)>, Vec<u8>, u16, &'a str);

/// The secrets, and the objects stored before the abuse starts, that the attempts aim at.
struct Abuse {
    a: String,
    b: String,
    nas: String,
    /// A pack stored in clinic-a, and its path.
    key: String,
    bytes: Vec<u8>,
    path_a: String,
    /// A pack never stored.
    other_key: String,
    other_bytes: Vec<u8>,
    /// A pack over the server's 1 MiB limit.
    big_key: String,
    big_bytes: Vec<u8>,
    /// The stored pack's ID in hex.
    hex: String,
}

impl Abuse {
    /// Stores a pack and a config in clinic-a.
    fn stored(server: &ServerProcess) -> Self {
        let port = server.port();
        let (a, b, nas) =
            (server.secret("clinic-a-agent"), server.secret("clinic-b-agent"), server.secret("nas-prune"));
        let (key, bytes) = pack(1, 200_000);
        let path_a = object_path("clinic-a", &key);
        assert_eq!(raw_request(port, "PUT", &path_a, &[bearer(&a)], &bytes).status, 201);
        let config = object_path("clinic-a", "config");
        assert_eq!(raw_request(port, "PUT", &config, &[bearer(&a)], b"config v1").status, 201);
        let (other_key, other_bytes) = pack(2, 1000);
        let (big_key, big_bytes) = pack(3, (1 << 20) + 1);
        let hex = ObjectId::of(&bytes).to_hex();
        Self { a, b, nas, key, bytes, path_a, other_key, other_bytes, big_key, big_bytes, hex }
    }

    fn all(&self) -> Vec<Attempt<'static>> {
        [
            self.unauthenticated(),
            self.out_of_scope_or_role(),
            self.traversals(),
            self.outside_the_layout(),
            self.bad_bodies(),
        ]
        .concat()
    }

    /// No token, or one the server does not know.
    fn unauthenticated(&self) -> Vec<Attempt<'static>> {
        let Self { a, path_a, .. } = self;
        vec![
            ("no token", "GET", path_a.clone(), vec![], vec![], 401, "unauthenticated"),
            ("no token, listing", "GET", "/v1/repos/clinic-a/objects".into(), vec![], vec![], 401, "unauthenticated"),
            (
                "wrong token",
                "GET",
                path_a.clone(),
                vec![bearer("not-a-token-of-this-server-at-all")],
                vec![],
                401,
                "unauthenticated",
            ),
            (
                "wrong basic password",
                "GET",
                "/".into(),
                vec![basic("guess-guess-guess-guess-guess")],
                vec![],
                401,
                "unauthenticated",
            ),
            (
                "token in the wrong scheme",
                "GET",
                path_a.clone(),
                vec![("Authorization", format!("Token {a}"))],
                vec![],
                401,
                "unauthenticated",
            ),
        ]
    }

    /// A known token used on another repository, to overwrite, or beyond its role.
    fn out_of_scope_or_role(&self) -> Vec<Attempt<'static>> {
        let Self { a, b, nas, bytes, path_a, other_key, other_bytes, .. } = self;
        vec![
            ("cross-repo read", "GET", path_a.clone(), vec![bearer(b)], vec![], 403, "wrong_repo"),
            ("cross-repo list", "GET", "/v1/repos/clinic-a/objects".into(), vec![bearer(b)], vec![], 403, "wrong_repo"),
            (
                "cross-repo write",
                "PUT",
                object_path("clinic-a", other_key),
                vec![bearer(b)],
                other_bytes.clone(),
                403,
                "wrong_repo",
            ),
            (
                "maintain token outside its repos",
                "DELETE",
                object_path("clinic-b", other_key),
                vec![bearer(nas)],
                vec![],
                403,
                "wrong_repo",
            ),
            ("overwrite a pack", "PUT", path_a.clone(), vec![bearer(a)], bytes.clone(), 409, "exists"),
            (
                "overwrite the config",
                "PUT",
                object_path("clinic-a", "config"),
                vec![bearer(a)],
                b"config v2".to_vec(),
                409,
                "exists",
            ),
            ("delete with an append token", "DELETE", path_a.clone(), vec![bearer(a)], vec![], 403, "role"),
            (
                "delete the config with an append token",
                "DELETE",
                object_path("clinic-a", "config"),
                vec![bearer(a)],
                vec![],
                403,
                "role",
            ),
            ("metrics with an append token", "GET", "/metrics".into(), vec![bearer(a)], vec![], 403, "role"),
        ]
    }

    /// Paths that try to leave the repository.
    fn traversals(&self) -> Vec<Attempt<'static>> {
        let Self { a, bytes, hex, .. } = self;
        vec![
            (
                "dot-dot in the key",
                "GET",
                "/v1/repos/clinic-a/objects/../../clinic-b/objects/config".into(),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
            (
                "dot-dot as the repo",
                "GET",
                "/v1/repos/../objects/config".into(),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
            (
                "encoded slash in the key",
                "GET",
                format!("/v1/repos/clinic-a/objects/packs%2F{}%2F{hex}", &hex[..2]),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
            (
                "encoded slash in the repo",
                "PUT",
                "/v1/repos/clinic-a%2F..%2Fclinic-b/objects/config".into(),
                vec![bearer(a)],
                b"x".to_vec(),
                400,
                "bad_key",
            ),
            (
                "encoded dots",
                "GET",
                "/v1/repos/clinic-a/objects/%2e%2e/%2e%2e/etc/passwd".into(),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
            (
                "backslashes",
                "PUT",
                format!("/v1/repos/clinic-a/objects/packs\\{}\\{hex}", &hex[..2]),
                vec![bearer(a)],
                bytes.clone(),
                400,
                "bad_key",
            ),
            (
                "encoded NUL",
                "GET",
                "/v1/repos/clinic-a/objects/config%00.txt".into(),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
            (
                "absolute path in the key",
                "GET",
                "/v1/repos/clinic-a/objects//etc/passwd".into(),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
        ]
    }

    /// Keys and paths arka never writes.
    fn outside_the_layout(&self) -> Vec<Attempt<'static>> {
        let Self { a, key, .. } = self;
        vec![
            (
                "a key outside the layout",
                "PUT",
                "/v1/repos/clinic-a/objects/notes.txt".into(),
                vec![bearer(a)],
                b"x".to_vec(),
                400,
                "bad_key",
            ),
            (
                "upper-case hex",
                "GET",
                object_path("clinic-a", &key.to_uppercase()).replace("PACKS", "packs"),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
            (
                "hidden server folder as repo",
                "GET",
                "/v1/repos/.server/objects".into(),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
            (
                "listing outside the layout",
                "GET",
                "/v1/repos/clinic-a/objects?prefix=..%2F".into(),
                vec![bearer(a)],
                vec![],
                400,
                "bad_key",
            ),
            (
                "a path the API does not have",
                "GET",
                "/v1/admin/shutdown".into(),
                vec![bearer(a)],
                vec![],
                400,
                "bad_request",
            ),
        ]
    }

    /// Bodies too large, not matching their name, or not what the route takes.
    fn bad_bodies(&self) -> Vec<Attempt<'static>> {
        let Self { a, b, bytes, other_key, big_key, big_bytes, .. } = self;
        vec![
            (
                "oversized body, declared",
                "PUT",
                object_path("clinic-a", big_key),
                vec![bearer(a)],
                big_bytes.clone(),
                413,
                "too_large",
            ),
            (
                "oversized config",
                "PUT",
                object_path("clinic-b", "config"),
                vec![bearer(b)],
                vec![b'x'; 70_000],
                413,
                "too_large",
            ),
            (
                "bytes that are not the named pack",
                "PUT",
                object_path("clinic-a", other_key),
                vec![bearer(a)],
                bytes.clone(),
                422,
                "hash_mismatch",
            ),
            (
                "a status report that is not one",
                "PUT",
                "/v1/agents/status".into(),
                vec![bearer(a)],
                b"{\"hostname\": 7}".to_vec(),
                400,
                "bad_request",
            ),
        ]
    }
}

fn basic(secret: &str) -> (&'static str, String) {
    ("Authorization", format!("Basic {}", base64(format!("x:{secret}").as_bytes())))
}

#[test]
fn every_abuse_is_refused_logged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(dir.path(), &tokens(), "max_object_mib = 1", &[]);
    let port = server.port();
    let fx = Abuse::stored(&server);
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for (what, method, path, headers, body, status, refusal) in fx.all() {
        let r = raw_request(port, method, &path, &headers, &body);
        assert_eq!(r.status, status, "{what}: {} {}", r.status, r.text());
        assert_eq!(r.refusal().as_deref(), Some(refusal), "{what}: {}", r.text());
        *expected.entry(refusal).or_default() += 1;
    }
    a_chunked_body_over_the_limit_is_cut_off(&server, &fx);
    *expected.entry("too_large").or_default() += 1;

    // Counted, by reason.
    for (reason, n) in &expected {
        assert_eq!(refusals(&server, reason), *n, "refusals of {reason}");
    }
    nothing_changed(&server, dir.path(), &fx);
    logged_without_secrets(&server, &expected, &fx);

    // The maintain token may delete in its repository; the append token still reads the rest.
    assert_eq!(raw_request(port, "DELETE", &fx.path_a, &[bearer(&fx.nas)], b"").status, 204);
    assert_eq!(raw_request(port, "GET", &fx.path_a, &[bearer(&fx.a)], b"").status, 404);
}

/// A body over the limit without a declared length (chunked) is cut off too.
fn a_chunked_body_over_the_limit_is_cut_off(server: &ServerProcess, fx: &Abuse) {
    let chunked = {
        let mut body = format!("{:x}\r\n", fx.big_bytes.len()).into_bytes();
        body.extend_from_slice(&fx.big_bytes);
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        body
    };
    let r = raw_request(
        server.port(),
        "PUT",
        &object_path("clinic-a", &fx.big_key),
        &[bearer(&fx.a), ("Transfer-Encoding", "chunked".into())],
        &chunked,
    );
    assert_eq!((r.status, r.refusal().as_deref()), (413, Some("too_large")), "chunked: {}", r.text());
}

/// The pack and the first config are intact, nothing else was stored, and nothing
/// escaped the data directory.
fn nothing_changed(server: &ServerProcess, dir: &Path, fx: &Abuse) {
    let port = server.port();
    let got = raw_request(port, "GET", &fx.path_a, &[bearer(&fx.a)], b"");
    assert_eq!((got.status, got.body == fx.bytes), (200, true));
    assert_eq!(raw_request(port, "GET", &object_path("clinic-a", "config"), &[bearer(&fx.a)], b"").body, b"config v1");
    let data = server.data_dir();
    assert_eq!(stored_files(&data), vec!["clinic-a/config".to_string(), format!("clinic-a/{}", fx.key)]);
    let outside: Vec<_> = walk_files(dir)
        .into_iter()
        .filter(|p| !p.starts_with(&data))
        .filter(|p| !["server.toml", "server.log"].contains(&p.file_name().unwrap().to_str().unwrap()))
        .filter(|p| p.extension().is_none_or(|e| e != "secret"))
        .collect();
    assert!(outside.is_empty(), "files outside the data directory: {outside:?}");
}

/// Logged, with the reason and the token's name, never a secret.
fn logged_without_secrets(server: &ServerProcess, expected: &HashMap<&str, u64>, fx: &Abuse) {
    let log = server.log();
    for reason in expected.keys() {
        assert!(log.contains(&format!("reason=\"{reason}\"")), "no log line for {reason}:\n{log}");
    }
    assert!(log.contains("token=\"clinic-b-agent\""), "{log}");
    // Who wrote what is logged for everything but packs: junk under snapshots/ or index/
    // that verify reports can be traced to a token.
    let created = |l: &&str| l.contains("created") && l.contains("key=\"config\"");
    assert!(log.lines().filter(created).any(|l| l.contains("token=\"clinic-a-agent\"")), "{log}");
    for secret in [&fx.a, &fx.b, &fx.nas] {
        assert!(!log.contains(secret.as_str()), "a secret was logged");
    }
}

/// Standard base64 (for HTTP Basic), so the test needs no extra crate.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn ranges_listings_and_pages_follow_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &tokens());
    let (port, a) = (server.port(), server.secret("clinic-a-agent"));
    let mut keys = Vec::new();
    for seed in 0..30 {
        let (key, bytes) = pack(100 + seed, 1000 + seed as usize);
        assert_eq!(raw_request(port, "PUT", &object_path("clinic-a", &key), &[bearer(&a)], &bytes).status, 201);
        keys.push((key, bytes));
    }
    let (key, bytes) = &keys[0];
    let r =
        raw_request(port, "GET", &object_path("clinic-a", key), &[bearer(&a), ("Range", "bytes=10-19".into())], b"");
    assert_eq!((r.status, &r.body[..]), (206, &bytes[10..20]));
    assert_eq!(r.header("content-range"), Some(format!("bytes 10-19/{}", bytes.len()).as_str()));
    let r = raw_request(port, "GET", &object_path("clinic-a", key), &[bearer(&a), ("Range", "bytes=990-".into())], b"");
    assert_eq!((r.status, &r.body[..]), (206, &bytes[990..]));
    let r = raw_request(
        port,
        "GET",
        &object_path("clinic-a", key),
        &[bearer(&a), ("Range", "bytes=5000-5009".into())],
        b"",
    );
    assert_eq!(r.status, 416, "{}", r.text());
    let r = raw_request(port, "HEAD", &object_path("clinic-a", key), &[bearer(&a)], b"");
    assert_eq!(r.header("content-length"), Some(bytes.len().to_string().as_str()));
    assert!(r.header(arka_proto::server::STORED_AT_HEADER).is_some_and(|v| v.parse::<i64>().is_ok()));

    // Paged listing: every key once, in order, sizes right.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(k) => format!("/v1/repos/clinic-a/objects?prefix=packs/&limit=7&after={k}"),
            None => "/v1/repos/clinic-a/objects?prefix=packs/&limit=7".into(),
        };
        let r = raw_request(port, "GET", &q, &[bearer(&a)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let page: arka_proto::server::ListPage = serde_json::from_slice(&r.body).unwrap();
        assert!(page.objects.len() <= 7);
        seen.extend(page.objects.into_iter().map(|o| (o.key, o.size)));
        match page.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut want: Vec<(String, u64)> = keys.iter().map(|(k, b)| (k.clone(), b.len() as u64)).collect();
    want.sort();
    assert_eq!(seen, want);
    // A shard prefix lists only its shard.
    let shard = &key[..8];
    let r = raw_request(port, "GET", &format!("/v1/repos/clinic-a/objects?prefix={shard}"), &[bearer(&a)], b"");
    let page: arka_proto::server::ListPage = serde_json::from_slice(&r.body).unwrap();
    assert!(page.objects.iter().all(|o| o.key.starts_with(shard)) && !page.objects.is_empty());
}

/// Many writers at once, including racing writers of the same key: exactly one create
/// wins, every other gets 409, and every object stored is whole.
#[test]
fn many_writers_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<TokenSpec> =
        (0..12).map(|i| TokenSpec::new(&format!("agent-{i}"), "append", &[&format!("clinic-{i}"), "shared"])).collect();
    let server = ServerProcess::start_with(dir.path(), &specs, "max_uploads = 4", &[]);
    let port = server.port();
    let (shared_key, shared_bytes) = pack(7, 300_000);
    let started = Instant::now();
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let secret = server.secret(&format!("agent-{i}"));
            let (shared_key, shared_bytes) = (shared_key.clone(), shared_bytes.clone());
            std::thread::spawn(move || {
                let mut created = 0;
                let shared =
                    raw_request(port, "PUT", &object_path("shared", &shared_key), &[bearer(&secret)], &shared_bytes);
                for j in 0..25u64 {
                    let (key, bytes) = pack(1000 * i + j, 50_000 + (j as usize * 7919) % 400_000);
                    let r = raw_request(
                        port,
                        "PUT",
                        &object_path(&format!("clinic-{i}"), &key),
                        &[bearer(&secret)],
                        &bytes,
                    );
                    assert_eq!(r.status, 201, "{}", r.text());
                    created += 1;
                }
                (shared.status, created)
            })
        })
        .collect();
    let results: Vec<(u16, usize)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let took = started.elapsed();
    eprintln!("12 writers × 26 uploads through arka-server: {:.2} s", took.as_secs_f64());
    assert!(took < Duration::from_secs(120), "the uploads took {took:?}");
    let shared_statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert_eq!(shared_statuses.iter().filter(|s| **s == 201).count(), 1, "{shared_statuses:?}");
    assert_eq!(shared_statuses.iter().filter(|s| **s == 409).count(), 11, "{shared_statuses:?}");
    // Every stored file hashes to its name.
    let files = stored_files(&server.data_dir());
    assert_eq!(files.len(), 12 * 25 + 1);
    for f in &files {
        let bytes = std::fs::read(server.data_dir().join(f)).unwrap();
        assert!(f.ends_with(&ObjectId::of(&bytes).to_hex()), "{f} does not hold what its name says");
    }
}

/// kill -9 while uploads are in flight, at several moments: after a restart every object
/// listed is whole and no temporary file is left.
#[test]
fn kill_9_mid_upload_leaves_no_partial_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &tokens());
    let a = server.secret("clinic-a-agent");
    for (round, delay_ms) in [40u64, 150, 400].into_iter().enumerate() {
        let port = server.port();
        let writers: Vec<_> = (0..6u64)
            .map(|w| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for j in 0..4u64 {
                        let (key, bytes) = pack(round as u64 * 10_000 + w * 100 + j, 6 << 20);
                        // Refused connections and cut-off answers after the kill are expected.
                        let _ = try_raw_request(port, "PUT", &object_path("clinic-a", &key), &[bearer(&a)], &bytes);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.kill9();
        for w in writers {
            w.join().unwrap();
        }
        server.restart();
        let files = stored_files(&server.data_dir());
        for f in &files {
            assert!(!f.contains('#'), "a temporary file survived the restart: {f}");
            let bytes = std::fs::read(server.data_dir().join(f)).unwrap();
            assert!(f.ends_with(&ObjectId::of(&bytes).to_hex()), "round {round}: {f} is partial");
        }
        // The listing agrees with the disk, and every listed object reads back whole.
        let r = raw_request(server.port(), "GET", "/v1/repos/clinic-a/objects?prefix=packs", &[bearer(&a)], b"");
        let page: arka_proto::server::ListPage = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(page.objects.len(), files.len(), "round {round}");
        eprintln!("round {round}: killed after {delay_ms} ms, {} whole objects, 0 partial", files.len());
    }
}

/// The server in front of a Garage bucket: Garage itself overwrites on a create-only put,
/// the server does not; hashes are checked; deletes need a maintain token.
#[test]
fn fronting_garage_keeps_writes_create_only() {
    let garage = Garage::single();
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = garage.env().into_iter().map(|(k, v)| (leak(k), v)).collect();
    let storage = format!("storage = {:?}", garage.url("fronted"));
    let server = ServerProcess::start_with(dir.path(), &tokens(), &storage, &env);
    let (port, a, nas) = (server.port(), server.secret("clinic-a-agent"), server.secret("nas-prune"));
    let cfg = object_path("clinic-a", "config");
    assert_eq!(raw_request(port, "PUT", &cfg, &[bearer(&a)], b"first").status, 201);
    let r = raw_request(port, "PUT", &cfg, &[bearer(&a)], b"second");
    assert_eq!((r.status, r.refusal().as_deref()), (409, Some("exists")));
    assert_eq!(raw_request(port, "GET", &cfg, &[bearer(&a)], b"").body, b"first");

    // Racing creates of one key: one wins.
    let (key, bytes) = pack(9, 2 << 20);
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let (a, key, bytes) = (a.clone(), key.clone(), bytes.clone());
            std::thread::spawn(move || {
                raw_request(port, "PUT", &object_path("clinic-a", &key), &[bearer(&a)], &bytes).status
            })
        })
        .collect();
    let statuses: Vec<u16> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    let (other, _) = pack(10, 10);
    let r = raw_request(port, "PUT", &object_path("clinic-a", &other), &[bearer(&a)], &bytes);
    assert_eq!(r.refusal().as_deref(), Some("hash_mismatch"));
    let r = raw_request(port, "GET", "/v1/repos/clinic-a/objects", &[bearer(&a)], b"");
    let page: arka_proto::server::ListPage = serde_json::from_slice(&r.body).unwrap();
    let listed: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(listed, vec!["config", key.as_str()]);
    assert_eq!(raw_request(port, "DELETE", &object_path("clinic-a", &key), &[bearer(&a)], b"").status, 403);
    assert_eq!(raw_request(port, "DELETE", &object_path("clinic-a", &key), &[bearer(&nas)], b"").status, 204);
    assert_eq!(raw_request(port, "HEAD", &object_path("clinic-a", &key), &[bearer(&a)], b"").status, 404);

    // The agent's store conformance suite through the server, create-only enforced even
    // though the bucket underneath would overwrite.
    let options = ServerOptions { token_file: Some(server.secret_file("chain-admin").into()), ..Default::default() };
    let none = Limits::default();
    let store =
        Store::open_with(&server.repo_url("conformance"), true, &options, &none).expect("open the server store");
    let fresh = Store::open_with(&server.repo_url("fresh"), true, &options, &none).expect("open the fresh store");
    runtime().block_on(conformance(&store, &fresh, CreateOnly::Enforced, ForeignNames::Refused));
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// SIGTERM (systemctl stop) while an upload is half sent: the server stops accepting,
/// lets the upload finish and store, then exits 0.
#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &tokens());
    let a = server.secret("clinic-a-agent");
    let (key, bytes) = pack(77, 4 << 20);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {a}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        object_path("clinic-a", &key),
        bytes.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(&bytes[..bytes.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let port = server.port();
    let stopper = std::thread::spawn(move || {
        let status = server.terminate();
        (server, status)
    });
    std::thread::sleep(Duration::from_millis(500));
    // No new connections while draining.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the server still accepts while stopping");
    tcp.write_all(&bytes[bytes.len() / 2..]).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let (server, status) = stopper.join().unwrap();
    assert!(status.success(), "arka-server exited with {status}:\n{}", server.log());
    let stored = std::fs::read(server.data_dir().join("clinic-a").join(&key)).unwrap();
    assert_eq!(stored, bytes);
}

/// Six agents back up at once through one server, each to its own repository with its own
/// append token, with some data every clinic has in common: every backup restores byte
/// for byte and verifies with its data read back.
#[test]
fn many_agents_back_up_at_once_through_the_server() {
    const AGENTS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<TokenSpec> =
        (0..AGENTS).map(|i| TokenSpec::new(&format!("agent-{i}"), "append", &[&format!("clinic-{i}")])).collect();
    let server = ServerProcess::start(&dir.path().join("server"), &specs);
    let fixtures: Vec<arka_tests::Fixture> = (0..AGENTS)
        .map(|i| {
            let env = vec![("ARKA_SERVER_TOKEN".to_string(), server.secret(&format!("agent-{i}")))];
            arka_tests::Fixture::at(&server.repo_url(&format!("clinic-{i}")), env)
        })
        .collect();
    let common = pseudo_random(4242, 3 << 20);
    let started = Instant::now();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = fixtures
            .iter()
            .enumerate()
            .map(|(i, fx)| {
                let common = &common;
                scope.spawn(move || {
                    let src = fx.path("imaging");
                    arka_tests::write_file(&src.join("template.dcm"), common);
                    for j in 0..8u64 {
                        arka_tests::write_file(
                            &src.join(format!("study-{j}.dcm")),
                            &pseudo_random(i as u64 * 100 + j, 1 << 20),
                        );
                    }
                    let out = fx.backup_ok(&[&src], &[]);
                    (src, out["snapshot_id"].as_str().unwrap().to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    eprintln!("{AGENTS} agents backed up 11 MiB each at once through arka-server in {:.1} s", took.as_secs_f64());
    assert!(took < Duration::from_secs(180), "the backups took {took:?}");
    for (fx, (src, snapshot)) in fixtures.iter().zip(&results) {
        let target = fx.path("restored");
        fx.restore(snapshot, &target, &[]).ok();
        for entry in std::fs::read_dir(src).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                arka_tests::same_contents(&src.join(&name), &target.join("imaging").join(&name)),
                "{name:?} differs after the round trip"
            );
        }
        fx.arka(["verify", "--read-data"].iter().map(std::ffi::OsString::from).chain(fx.agent_args())).ok();
    }
}
