//! arka-server's fleet dashboard as a person sees it: the real `arka-server` binary, three
//! agents' tokens (one reports a healthy run, one a database dump five hours late whose
//! last attempt failed, one never reports), reports pushed over HTTP as the agents do, and
//! the real headless Chromium signing in with HTTP Basic in the address. Screenshots are
//! copied to `target/fleet-page*.png` for a person to look at.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`): `scripts/install-test-deps.sh` installs it.
#![cfg(unix)]

#[path = "support/chromium.rs"]
mod chromium;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arka_proto::layout::ObjectKind;
use arka_proto::status::{AgentStatus, RunOutcome, SourceKind, SourceStatus, TargetRole, TargetStatus};
use arka_proto::ObjectId;
use arka_tests::server::{ServerProcess, TokenSpec};
use chromium::{assert_png, keep, Chromium};

const S: i64 = 1_000_000_000;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;

#[test]
fn the_fleet_page_shows_a_late_failing_agent_and_a_silent_one_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &tokens());
    let now = now_ns();
    push(&server, "north-clinic", &healthy_report(now, &server));
    push(&server, "south-clinic", &failing_report(now));
    // Some storage and two refusals for the admin views.
    let pack = vec![7u8; 3 << 20];
    let key = ObjectKind::Pack.key(&ObjectId::of(&pack));
    let put = request(&server, "PUT", &format!("/v1/repos/north/objects/{key}"), Some("north-clinic"), &pack);
    assert_eq!(put.0, 201, "{}", put.1);
    let delete = request(&server, "DELETE", &format!("/v1/repos/north/objects/{key}"), Some("north-clinic"), b"");
    assert_eq!(delete.0, 403, "an append token must not delete: {}", delete.1);

    let browser = Chromium::find();
    let page = signed_in(&server, "it-admin");
    let dom = browser.dump_dom(&page);
    for needle in [
        "2 of 3 computers need attention",
        "clinic-db: last successful backup 5 hours ago (should be every hour); the last attempt 10 minutes ago \
         failed: pg_dump: connection to server failed: password authentication failed",
        "has never sent a report to this server",
        "south-reception",
        "north-reception",
        "Failing",
        "Never reported",
        "Up to date",
        "offsite: cannot be reached; 3 backups (1.6 GiB) waiting to be copied",
        "should be every 15 minutes",
        "Storage on this server",
        "3.0 MiB",
        "Access (shown to administrators only)",
        "it-admin",
        "not allowed for the token's role",
        "DELETE /v1/repos/north/objects/packs/",
    ] {
        assert!(dom.contains(needle), "the rendered page lacks {needle:?}:\n{dom}");
    }
    // Problems first: the failing agent, then the silent one, then the healthy one.
    let at = |name: &str| dom.find(&format!("<span>{name}</span>")).unwrap_or_else(|| panic!("no card for {name}"));
    assert!(at("south-clinic") < at("east-clinic") && at("east-clinic") < at("north-clinic"), "{dom}");
    for secret in ["north-clinic", "south-clinic", "it-admin"].map(|t| server.secret(t)) {
        assert!(!dom.contains(&secret), "a token secret on the page");
    }

    let shot = browser.screenshot(&page, (1200, 2200));
    assert_png(&shot, (1200, 2200));
    keep(&shot, "fleet-page.png");
    let phone = browser.screenshot(&page, (390, 844));
    assert_png(&phone, (390, 844));
    keep(&phone, "fleet-page-phone.png");

    // An agent's token sees its own agent and repository, not the others or the admin views.
    let own = browser.dump_dom(&signed_in(&server, "north-clinic"));
    assert!(own.contains("north-reception") && own.contains("The computer's backups are up to date"), "{own}");
    for hidden in ["south-clinic", "east-clinic", "Access (shown", "Refused requests", "it-admin"] {
        assert!(!own.contains(hidden), "{hidden} shown to an agent's token:\n{own}");
    }
    // Without a token: 401 and nothing about the fleet.
    let (code, body) = request(&server, "GET", "/", None, b"");
    assert_eq!(code, 401, "{body}");
    for hidden in ["south", "north", "east", "clinic-db"] {
        assert!(!body.contains(hidden), "{hidden} shown without a token:\n{body}");
    }
}

#[test]
fn hostile_text_in_a_report_stays_text_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &tokens());
    let evil = "<img src=x onerror=alert(1)><script>document.title='owned'</script>";
    let mut st = failing_report(now_ns());
    st.hostname = evil.into();
    st.sources[0].last_error = Some(evil.into());
    st.targets[0].name = evil.into();
    push(&server, "south-clinic", &st);
    let dom = Chromium::find().dump_dom(&signed_in(&server, "it-admin"));
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;"), "{dom}");
    assert!(!dom.contains("<img") && !dom.contains("<script") && !dom.contains("owned</title>"), "{dom}");
}

fn tokens() -> Vec<TokenSpec> {
    vec![
        TokenSpec::new("north-clinic", "append", &["north"]),
        TokenSpec::new("south-clinic", "append", &["south"]),
        TokenSpec::new("east-clinic", "append", &["east"]),
        TokenSpec::new("it-admin", "admin", &[]),
    ]
}

/// The dashboard's address with `token`'s secret as the HTTP Basic password.
fn signed_in(server: &ServerProcess, token: &str) -> String {
    let url = server.url();
    let (scheme, rest) = url.split_once("://").unwrap();
    format!("{scheme}://{token}:{}@{rest}/", server.secret(token))
}

/// Backups 20 and 5 minutes ago, both copies up to date.
fn healthy_report(now: i64, server: &ServerProcess) -> AgentStatus {
    let mut st = AgentStatus::new("0.1.0", "north-reception", now - 3 * 24 * H);
    st.sources.push(succeeded(SourceStatus::new("clinic-db", SourceKind::Command, "every 1h", 3_600), now - 20 * MIN));
    st.sources.push(succeeded(SourceStatus::new("imaging", SourceKind::Files, "every 15m", 900), now - 5 * MIN));
    let mut nas = TargetStatus::new("nas", &server.repo_url("north"), TargetRole::Primary);
    nas.last_sync_ns = Some(now - 5 * MIN);
    let mut offsite = TargetStatus::new("offsite", "s3://AKIAEXAMPLE:secret@north-offsite/arka", TargetRole::Replica);
    offsite.last_sync_ns = Some(now - 4 * MIN);
    st.targets = vec![nas, offsite];
    st.reassess(now);
    st
}

/// The database dump last succeeded 5 hours ago and failed 10 minutes ago; the offsite
/// copy cannot be reached.
fn failing_report(now: i64) -> AgentStatus {
    let mut st = AgentStatus::new("0.1.0", "south-reception", now - 3 * 24 * H);
    let mut db = succeeded(SourceStatus::new("clinic-db", SourceKind::Command, "every 1h", 3_600), now - 5 * H);
    db.started(now - 10 * MIN);
    db.failed("pg_dump: connection to server failed: password authentication failed", 2_000);
    st.sources.push(db);
    st.sources.push(succeeded(SourceStatus::new("imaging", SourceKind::Files, "every 15m", 900), now - 6 * MIN));
    let mut offsite = TargetStatus::new("offsite", "s3://south-offsite/arka", TargetRole::Replica);
    offsite.reachable = false;
    offsite.backlog_snapshots = 3;
    offsite.backlog_bytes = 1_700_000_000;
    offsite.last_error = Some("the S3 endpoint did not answer within 30 s".into());
    st.targets = vec![offsite];
    st.reassess(now);
    st
}

fn succeeded(mut s: SourceStatus, at: i64) -> SourceStatus {
    s.started(at - 2 * MIN);
    s.succeeded(
        at,
        RunOutcome {
            snapshot: "5e1f0c2a".into(),
            duration_ms: 90_000,
            bytes: 1 << 30,
            bytes_new: 1 << 20,
            files: 12,
            ..Default::default()
        },
    );
    s
}

/// `PUT /v1/agents/status` as the agent holding `token` does it.
fn push(server: &ServerProcess, token: &str, st: &AgentStatus) {
    let body = serde_json::to_vec(st).unwrap();
    let (code, answer) = request(server, "PUT", &arka_proto::server::status_path(), Some(token), &body);
    assert!((200..300).contains(&code), "the status report of {token} was refused ({code}): {answer}");
}

/// One HTTP/1.1 request over plain loopback HTTP; the status code and the body.
fn request(server: &ServerProcess, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {}\r\n", server.secret(t))).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let code =
        answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no HTTP answer: {answer}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}
