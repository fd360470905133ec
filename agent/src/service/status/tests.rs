//! Every route driven in-process with `tower::ServiceExt::oneshot`, plus one real socket.

use super::*;
use arka_proto::status::{RunOutcome, SourceKind, SourceState, SourceStatus, TargetRole, TargetStatus};
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

const S: i64 = 1_000_000_000;
const H: i64 = 3_600 * S;

fn source(name: &str, last_success_ago: i64) -> SourceStatus {
    let now = now_ns();
    let mut s = SourceStatus::new(name, SourceKind::Files, "every 1h", 3_600);
    s.started(now - last_success_ago - 90 * S);
    s.succeeded(
        now - last_success_ago,
        RunOutcome {
            snapshot: "5e1f0c2a".into(),
            duration_ms: 90_000,
            bytes: 3 << 30,
            bytes_new: 40 << 20,
            files: 12_482,
            ..Default::default()
        },
    );
    s.next_run_ns = Some(now + 20 * 60 * S + 10 * S);
    s
}

/// One healthy source, a primary and a replica, verified yesterday.
fn healthy_board() -> Arc<StatusBoard> {
    let now = now_ns();
    let mut st = AgentStatus::new("0.1.0", "reception-pc", now - 48 * H);
    st.sources.push(source("imaging", 10 * 60 * S));
    let mut primary = TargetStatus::new("nas", "/mnt/nas/arka", TargetRole::Primary);
    primary.last_sync_ns = Some(now - 10 * 60 * S);
    let mut replica = TargetStatus::new("offsite", "s3://KEY:SECRET@clinic-offsite/arka", TargetRole::Replica);
    replica.last_sync_ns = Some(now - H);
    replica.backlog_snapshots = 2;
    replica.backlog_bytes = 80 << 20;
    st.targets = vec![primary, replica];
    st.maintenance.last_verify_ns = Some(now - 24 * H);
    Arc::new(StatusBoard::new(st))
}

/// `healthy_board` plus a database dump 5 hours late.
fn late_board() -> Arc<StatusBoard> {
    let board = healthy_board();
    board.update(|st| {
        let mut db = source("clinic-db", 5 * H + 5 * 60 * S);
        db.kind = SourceKind::Command;
        st.sources.push(db);
    });
    board
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn get(app: Router, uri: &str, auth: Option<&str>) -> Got {
    let mut req = Request::get(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    Got { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

fn content_type(got: &Got) -> &str {
    got.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn status_is_the_boards_report_as_json_reassessed_now() {
    let before = now_ns();
    let got = get(router(late_board(), None), "/status", None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(content_type(&got), "application/json");
    let st: AgentStatus = serde_json::from_str(&got.body).unwrap();
    assert!(st.now_ns >= before);
    let names: Vec<_> = st.sources.iter().map(|s| (s.name.as_str(), s.state)).collect();
    assert_eq!(names, [("imaging", SourceState::Ok), ("clinic-db", SourceState::Late)]);
    assert_eq!(st.targets[1].url_display, "s3://clinic-offsite/arka", "no credentials in the report");
    assert!(!got.body.contains("SECRET"));
}

#[tokio::test]
async fn healthz_is_ok_while_every_source_is_within_its_rpo() {
    let got = get(router(healthy_board(), None), "/healthz", None).await;
    assert_eq!((got.status, got.body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(content_type(&got), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn healthz_is_503_with_the_problems_in_plain_words() {
    let got = get(router(late_board(), None), "/healthz", None).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(got.body, "clinic-db: last successful backup 5 hours ago (should be every hour)\n");
}

#[tokio::test]
async fn healthz_is_503_when_verify_found_damage_or_a_run_failed() {
    let board = healthy_board();
    board.update(|st| st.maintenance.verify_damage = 3);
    let got = get(router(board.clone(), None), "/healthz", None).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(got.body.contains("found 3 pieces of data damaged"), "{}", got.body);

    let board = healthy_board();
    board.update(|st| st.source_mut("imaging").unwrap().failed("the NAS refused the connection", 2_000));
    let got = get(router(board, None), "/healthz", None).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(got.body.starts_with("imaging: the last attempt") && got.body.contains("refused"), "{}", got.body);
}

#[tokio::test]
async fn vanished_backups_fail_the_health_check_and_flagged_ones_are_shown_as_warnings() {
    let board = healthy_board();
    board.update(|st| {
        st.maintenance.flagged_snapshots = vec!["1a2b3c4d: holds exactly what the older snapshot 99aa88bb holds".into()]
    });
    let got = get(router(board.clone(), None), "/healthz", None).await;
    assert_eq!(got.status, StatusCode::OK, "a flagged snapshot alone is a warning: {}", got.body);
    let page = get(router(board.clone(), None), "/", None).await;
    assert!(
        page.body.contains("Suspicious snapshots") && page.body.contains("1a2b3c4d: holds exactly"),
        "{}",
        page.body
    );
    let metrics = get(router(board.clone(), None), "/metrics", None).await;
    assert!(metrics.body.contains("arka_snapshots_flagged 1\n"), "{}", metrics.body);

    board.update(|st| st.maintenance.vanished_snapshots = 2);
    let got = get(router(board.clone(), None), "/healthz", None).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(got.body.contains("2 backups made by this agent are gone"), "{}", got.body);
    let page = get(router(board, None), "/", None).await;
    assert!(page.body.contains("Damage found") && page.body.contains("2 deleted outside arka"), "{}", page.body);
}

#[test]
fn a_stuck_runner_still_turns_late_when_the_rpo_passes() {
    let board = healthy_board();
    // The runner last wrote "ok" two hours ago and has not been heard of since.
    board.update(|st| st.source_mut("imaging").unwrap().last_success_ns = Some(now_ns() - 2 * H));
    assert_eq!(board.subscribe().borrow().sources[0].state, SourceState::Ok);
    assert_eq!(board.snapshot().sources[0].state, SourceState::Late);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_help_and_type_before_samples() {
    let board = late_board();
    board.update(|st| st.sources[0].name = "x-ray \"room\\2\"\nnew".into());
    let got = get(router(board, None), "/metrics", None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(content_type(&got), "text/plain; version=0.0.4; charset=utf-8");
    let body = &got.body;
    assert!(body.ends_with('\n'));

    let mut typed = std::collections::HashSet::new();
    let mut helped = std::collections::HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(helped.insert(rest.split(' ').next().unwrap().to_string()), "HELP twice: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(typed.contains(name), "sample before its TYPE: {line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
        }
    }
    for family in [
        "arka_up",
        "arka_source_last_success_timestamp_seconds",
        "arka_source_state",
        "arka_source_rpo_seconds",
        "arka_source_last_duration_seconds",
        "arka_source_last_bytes",
        "arka_target_backlog_bytes",
        "arka_target_reachable",
        "arka_verify_damage",
    ] {
        assert!(typed.contains(family), "{family} missing");
    }
    assert!(body.contains("arka_up 1\n"));
    assert!(body.contains("arka_healthy 0\n"));
    assert!(body.contains("arka_source_state{source=\"clinic-db\",state=\"late\"} 1\n"));
    assert!(body.contains("arka_source_state{source=\"clinic-db\",state=\"ok\"} 0\n"));
    assert!(body.contains("arka_source_rpo_seconds{source=\"clinic-db\"} 3600\n"));
    assert!(body.contains("arka_source_last_duration_seconds{source=\"clinic-db\"} 90\n"));
    assert!(body.contains("arka_source_last_bytes{source=\"clinic-db\"} 3221225472\n"));
    assert!(body.contains("arka_target_backlog_bytes{target=\"offsite\"} 83886080\n"));
    assert!(body.contains("arka_target_reachable{target=\"offsite\",role=\"replica\"} 1\n"));
    assert!(body.contains("arka_verify_damage 0\n"));
    assert!(body.contains(r#"arka_source_rpo_seconds{source="x-ray \"room\\2\"\nnew"} 3600"#), "{body}");
}

#[tokio::test]
async fn page_says_all_is_well_in_green_when_healthy() {
    let got = get(router(healthy_board(), None), "/", None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(content_type(&got), "text/html; charset=utf-8");
    let html = &got.body;
    assert!(html.contains("class=\"verdict ok\"><h1>\u{2713} All backups are up to date</h1>"));
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"60\">"));
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("10 minutes ago"), "last backup in words");
    assert!(html.contains("in 20 minutes"), "next run in words");
    assert!(html.contains("12,482") && html.contains("3.0 GiB, 40.0 MiB new"));
    assert!(html.contains("2 backups (80.0 MiB)"), "replica backlog");
    assert!(!html.contains("<script") && !html.contains("SECRET"));
}

#[tokio::test]
async fn page_says_backups_need_attention_in_red_with_the_reasons() {
    let html = get(router(late_board(), None), "/", None).await.body;
    assert!(html.contains("class=\"verdict bad\"><h1>\u{26a0} Backups need attention</h1>"));
    assert!(html.contains("<li>clinic-db: last successful backup 5 hours ago (should be every hour)</li>"));
    assert!(html.contains("<span class=\"badge bad\">Late</span>"));
}

#[tokio::test]
async fn page_escapes_hostile_names_and_errors() {
    let board = late_board();
    board.update(|st| {
        st.hostname = "pc\"><img src=x onerror=alert(1)>".into();
        let db = st.source_mut("clinic-db").unwrap();
        db.name = "<script>alert('db')</script>".into();
        db.failed("bad & <b>worse</b>", 10);
        st.targets[1].name = "</table><script>x</script>".into();
    });
    let got = get(router(board, None), "/", None).await;
    let html = &got.body;
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img") && !html.contains("<b>worse"));
    assert!(html.contains("&lt;script&gt;alert(&#39;db&#39;)&lt;/script&gt;"));
    assert!(html.contains("pc&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("bad &amp; &lt;b&gt;worse&lt;/b&gt;"));
}

#[tokio::test]
async fn every_route_sends_the_security_headers() {
    for (token, auth) in [(None, None), (Some("t0ken"), None)] {
        let app = router(healthy_board(), token.map(str::to_owned));
        for uri in ["/", "/status", "/metrics", "/healthz"] {
            let got = get(app.clone(), uri, auth).await;
            let h = |name| got.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or_default();
            assert!(h(header::CONTENT_SECURITY_POLICY).starts_with("default-src 'none'; style-src 'unsafe-inline'"));
            assert_eq!(h(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            assert_eq!(h(header::CACHE_CONTROL), "no-store");
        }
    }
}

#[tokio::test]
async fn with_a_token_every_route_refuses_requests_without_it() {
    let app = router(healthy_board(), Some("s3cret-t0ken".into()));
    for uri in ["/", "/status", "/metrics", "/healthz"] {
        for (uri, auth) in [
            (uri.to_string(), None),
            (uri.to_string(), Some("Bearer wrong")),
            (uri.to_string(), Some("Bearer s3cret-t0ke")),
            (uri.to_string(), Some("Basic s3cret-t0ken")),
            (format!("{uri}?token=wrong"), None),
            (format!("{uri}?tok=s3cret-t0ken"), None),
        ] {
            let got = get(app.clone(), &uri, auth).await;
            assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{uri} {auth:?}");
            assert!(got.body.contains("access token") && !got.body.contains("imaging"));
            assert_eq!(got.headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer realm=\"arka\"");
        }
        assert_eq!(get(app.clone(), uri, Some("Bearer s3cret-t0ken")).await.status, StatusCode::OK, "{uri}");
        assert_eq!(get(app.clone(), uri, Some("bearer  s3cret-t0ken ")).await.status, StatusCode::OK, "{uri}");
        let with_query = format!("{uri}?token=s3cret-t0ken");
        assert_eq!(get(app.clone(), &with_query, None).await.status, StatusCode::OK, "{uri}");
    }
    // Percent-encoded in the query, as a browser sends it.
    let app = router(healthy_board(), Some("a b/c+d".into()));
    assert_eq!(get(app, "/healthz?token=a%20b%2Fc%2Bd", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_empty_token_matches_nothing() {
    let app = router(healthy_board(), Some(String::new()));
    assert_eq!(get(app.clone(), "/healthz", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(app.clone(), "/healthz", Some("Bearer ")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(app, "/healthz?token=", None).await.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn only_loopback_goes_without_a_token() {
    let lan: SocketAddr = "0.0.0.0:8765".parse().unwrap();
    let lo: SocketAddr = "127.0.0.1:8765".parse().unwrap();
    let lo6: SocketAddr = "[::1]:8765".parse().unwrap();
    assert!(check_exposure(lo, None).is_ok());
    assert!(check_exposure(lo6, None).is_ok());
    assert!(check_exposure(lan, Some("t")).is_ok());
    let err = check_exposure(lan, None).unwrap_err().to_string();
    assert!(err.contains("[status] token"), "{err}");
    assert!(check_exposure(lo, Some("")).is_err());
}

#[tokio::test]
async fn serves_on_a_real_socket_and_stops_on_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(listener, late_board(), None, async {
        let _ = stopped.await;
    }));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("clinic-db: last successful backup 5 hours ago"));
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn serve_refuses_a_network_address_without_a_token() {
    let err = serve("0.0.0.0:0".parse().unwrap(), healthy_board(), None, std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("bind to 127.0.0.1"), "{err}");
}

#[tokio::test]
async fn the_page_says_what_a_backup_did_about_damage() {
    let board = healthy_board();
    let healed = "damage found, healed by snapshot 1a2b3c4d (3 blobs stored again)";
    board.update(|st| st.maintenance.damage_note = Some(healed.into()));
    let got = get(router(board.clone(), None), "/", None).await;
    assert!(got.body.contains(healed), "{}", got.body);

    let lost = "damage found, not healable: 2 damaged blobs are in no current source <script>";
    board.update(|st| st.maintenance.damage_note = Some(lost.into()));
    let got = get(router(board, None), "/", None).await;
    assert!(got.body.contains("<span class=\"err\">damage found, not healable"), "{}", got.body);
    assert!(!got.body.contains("<script>"), "the note is not escaped");
}

async fn post(app: Router, uri: &str, headers: &[(&str, &str)], body: &str) -> Got {
    let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    Got { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

/// Whether `signal` was notified (without waiting for it).
fn woken(signal: &tokio::sync::Notify) -> bool {
    use std::future::Future;
    let notified = signal.notified();
    let mut notified = std::pin::pin!(notified);
    let waker = futures::task::noop_waker();
    notified.as_mut().poll(&mut std::task::Context::from_waker(&waker)).is_ready()
}

#[tokio::test]
async fn run_now_wakes_a_source_only_for_the_page_or_the_cli_never_for_a_forged_request() {
    let board = healthy_board();
    let imaging = board.run_now().register("imaging");
    let db = board.run_now().register("clinic-db");
    let cli = [(REQUEST_HEADER, "run-now")];

    // A cross-site form: no secret, no header. And a page that guessed the header but is
    // cross-site by the browser's own account.
    let forged = post(router(board.clone(), None), "/run-now", &[], "source=imaging").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let wrong = post(router(board.clone(), None), "/run-now", &[], "source=imaging&csrf=0123").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let cross = [(REQUEST_HEADER, "run-now"), ("sec-fetch-site", "cross-site")];
    assert_eq!(post(router(board.clone(), None), "/run-now", &cross, "").await.status, StatusCode::FORBIDDEN);
    // A rebound domain pointing at 127.0.0.1.
    let rebound = [(REQUEST_HEADER, "run-now"), ("host", "evil.example:8080")];
    assert_eq!(
        post(router(board.clone(), None), "/run-now", &rebound, "").await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
    assert!(!woken(&imaging) && !woken(&db), "nothing was woken by a refused request");

    // The CLI: one source by name, an unknown one names the real ones.
    let got = post(router(board.clone(), None), "/run-now", &cli, "source=imaging").await;
    assert_eq!((got.status, got.body.as_str()), (StatusCode::ACCEPTED, "backing up now: imaging\n"));
    assert!(woken(&imaging) && !woken(&db));
    let got = post(router(board.clone(), None), "/run-now", &cli, "source=imagnig").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert!(got.body.contains("the sources are: imaging, clinic-db"), "{}", got.body);

    // The page's button: the secret from the page itself, every source, back to the page.
    let page = get(router(board.clone(), None), "/", None).await.body;
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(page.contains("Back up now"));
    let got = post(router(board.clone(), None), "/run-now", &[], &format!("csrf={csrf}")).await;
    assert_eq!(got.status, StatusCode::SEE_OTHER);
    assert_eq!(got.headers.get(header::LOCATION).unwrap(), "./");
    assert!(woken(&imaging) && woken(&db));
}

#[tokio::test]
async fn with_a_token_run_now_wants_it_and_the_page_posts_it_back() {
    let board = healthy_board();
    let _imaging = board.run_now().register("imaging");
    let app = || router(board.clone(), Some("s3cret-token".into()));
    let cli = [(REQUEST_HEADER, "run-now")];
    assert_eq!(post(app(), "/run-now", &cli, "").await.status, StatusCode::UNAUTHORIZED);
    let authed = [(REQUEST_HEADER, "run-now"), ("authorization", "Bearer s3cret-token")];
    assert_eq!(post(app(), "/run-now", &authed, "").await.status, StatusCode::ACCEPTED);
    let page = get(app(), "/?token=s3cret-token", None).await.body;
    assert!(page.contains("action=\"run-now?token=s3cret-token\""), "the form keeps the page's token");
}
