//! arka-server under clients that hog it (issue #15, point 3), as the real binary on
//! loopback with small limits: uploads that stall mid-body are cut and free their slots
//! while another clinic's uploads go through, and an address that opens more connections
//! than its cap is closed at once while other addresses are served and idle connections
//! are closed after the idle timeout, and a client that stops reading a download is cut.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use arka_tests::server::{bearer, pack, raw_request, ServerProcess, TokenSpec};

fn tokens() -> Vec<TokenSpec> {
    vec![
        TokenSpec::new("clinic-a-agent", "append", &["clinic-a"]),
        TokenSpec::new("clinic-b-agent", "append", &["clinic-b"]),
        TokenSpec::new("chain-admin", "admin", &[]),
    ]
}

fn metric(m: &HashMap<String, u64>, name: &str) -> u64 {
    m.get(name).copied().unwrap_or_else(|| panic!("no {name} in /metrics: {m:?}"))
}

/// Polls `/metrics` until `done` holds, for up to `within`; the last reading either way.
fn metrics_until(
    server: &ServerProcess,
    within: Duration,
    done: impl Fn(&HashMap<String, u64>) -> bool,
) -> HashMap<String, u64> {
    let deadline = Instant::now() + within;
    loop {
        let m = server.metrics();
        if done(&m) || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PUT of a 1 MiB pack whose headers and first 64 KiB are sent, and then nothing.
fn stalled_upload(server: &ServerProcess, secret: &str, seed: u64) -> TcpStream {
    let (key, bytes) = pack(seed, 1 << 20);
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nContent-Length: {}\r\n\r\n",
        arka_proto::server::object_path("clinic-a", &key),
        bytes.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(&bytes[..64 << 10]).unwrap();
    tcp
}

/// Ten uploads of one clinic stall mid-body (the red team's attack on the eight upload
/// slots). They hold at most `max_uploads_per_token` slots, so another clinic's upload is
/// stored before any of them is cut; each is then answered 408 after the stall timeout,
/// and every slot comes back.
#[test]
fn stalled_uploads_of_one_clinic_do_not_hold_up_another_and_are_cut() {
    const STALL: Duration = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let limits = "max_uploads = 8\nmax_uploads_per_token = 5\nbody_stall_secs = 3\nbody_grace_secs = 60";
    let server = ServerProcess::start_with(dir.path(), &tokens(), limits, &[]);
    let (a, b) = (server.secret("clinic-a-agent"), server.secret("clinic-b-agent"));
    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..10).map(|i| stalled_upload(&server, &a, i)).collect();
    let m = metrics_until(&server, Duration::from_secs(20), |m| {
        metric(m, "arka_server_uploads_receiving") == 5 && metric(m, "arka_server_uploads_waiting") == 5
    });
    assert_eq!(metric(&m, "arka_server_uploads_receiving"), 5, "{m:?}");

    // Without the per-token cap, clinic A would hold all eight slots and this would wait
    // for the first of them to be cut.
    let (key, bytes) = pack(100, 1 << 20);
    let r =
        raw_request(server.port(), "PUT", &arka_proto::server::object_path("clinic-b", &key), &[bearer(&b)], &bytes);
    assert_eq!(r.status, 201, "{}", r.text());
    let m = server.metrics();
    assert_eq!(metric(&m, "arka_server_slow_clients_cut_total{reason=\"body_stalled\"}"), 0, "{m:?}");

    for (i, tcp) in stalled.iter_mut().enumerate() {
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "stalled upload #{i}: {answer}");
        assert!(answer.contains("body_stall_secs"), "stalled upload #{i}: {answer}");
    }
    let took = opened.elapsed();
    eprintln!("10 stalled uploads (5 at a time, stall timeout {STALL:?}) all cut in {:.1} s", took.as_secs_f64());
    assert!(took >= STALL * 2, "cut before their time: {took:?}");

    let m = metrics_until(&server, Duration::from_secs(10), |m| metric(m, "arka_server_uploads_receiving") == 0);
    assert_eq!(metric(&m, "arka_server_slow_clients_cut_total{reason=\"body_stalled\"}"), 10, "{m:?}");
    assert_eq!(metric(&m, "arka_server_uploads_receiving"), 0, "{m:?}");
    assert_eq!(metric(&m, "arka_server_uploads_waiting"), 0, "{m:?}");
    // Every slot of clinic A is free again: five uploads at once go through.
    let port = server.port();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..5u64)
            .map(|i| {
                let a = &a;
                s.spawn(move || {
                    let (key, bytes) = pack(200 + i, 256 << 10);
                    let path = arka_proto::server::object_path("clinic-a", &key);
                    raw_request(port, "PUT", &path, &[bearer(a)], &bytes).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, vec![201; 5]);
    let log = server.log();
    assert!(log.contains("cut a slow client") && log.contains("clinic-a-agent"), "{log}");
    assert!(!log.contains(&a), "the log shows a secret");
}

/// A connection from `source` (any 127/8 address on Linux loopback) to the server.
fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((source, 0).into()).unwrap();
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        tcp.into_std().unwrap()
    })
}

/// Whether the server has closed `tcp`, reading (and dropping) whatever it sent first.
fn closed(tcp: &mut TcpStream) -> bool {
    tcp.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Polls until `want` of `conns` are closed, for up to `within`; how many are.
fn wait_closed(conns: &mut [TcpStream], want: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = conns.iter_mut().map(closed).filter(|c| *c).count();
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An address that opens ten connections and sends nothing (the red team's attack on the
/// connection slots, scaled down: 8 slots, 4 per address). Four are kept, six are closed
/// at once, a client from another address is served meanwhile, and the four are closed
/// after the idle timeout: one that sent nothing, one that sent half its headers, and one
/// that went quiet after an answer on a keep-alive connection.
#[test]
fn an_address_hogging_connections_is_capped_and_idle_connections_are_closed() {
    const IDLE: Duration = Duration::from_secs(5);
    let dir = tempfile::tempdir().unwrap();
    let limits = "max_connections = 8\nmax_connections_per_address = 4\nidle_timeout_secs = 5";
    let server = ServerProcess::start_with(dir.path(), &tokens(), limits, &[]);
    let port = server.port();
    let opened = Instant::now();
    let mut hogs: Vec<TcpStream> = (0..10).map(|_| connect_from([127, 0, 0, 2], port)).collect();
    assert_eq!(wait_closed(&mut hogs, 6, IDLE / 2), 6, "not the six over the cap");
    let mut kept: Vec<TcpStream> = hogs.into_iter().filter_map(|mut t| (!closed(&mut t)).then_some(t)).collect();
    assert_eq!(kept.len(), 4);
    kept[1].set_nonblocking(false).unwrap();
    kept[1].write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    kept[2].set_nonblocking(false).unwrap();
    kept[2].write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    kept[2].set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = [0u8; 512];
    let n = kept[2].read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));

    // Without the per-address cap, the ten would hold all eight slots and this would wait
    // in the backlog until the idle timeout freed one.
    let r = raw_request(port, "GET", "/healthz", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(kept.iter_mut().map(closed).filter(|c| *c).count(), 0, "closed before the idle timeout");

    assert_eq!(wait_closed(&mut kept, 4, IDLE * 4), 4, "idle connections still open after {:?}", IDLE * 4);
    let took = opened.elapsed();
    eprintln!("4 idle connections closed {:.1} s after they opened (idle timeout {IDLE:?})", took.as_secs_f64());
    assert!(took >= IDLE, "closed after {took:?}");
    let m = server.metrics();
    assert_eq!(metric(&m, "arka_server_connections_refused_total"), 6, "{m:?}");
    assert_eq!(metric(&m, "arka_server_slow_clients_cut_total{reason=\"idle\"}"), 4, "{m:?}");
    // The address's slots came back with the closed connections (a moment after the
    // client sees the close: the server counts a connection until its task ends).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from([127, 0, 0, 2], port);
        again.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        again.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        let _ = again.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "127.0.0.2 is still refused after its connections closed: {answer:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client that asks for a 32 MiB pack and stops reading the answer (a download is held
/// in memory until sent) is cut after the stall timeout rather than holding it forever.
#[test]
fn a_client_that_stops_reading_a_download_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(dir.path(), &tokens(), "body_stall_secs = 2", &[]);
    let a = server.secret("clinic-a-agent");
    // Larger than what loopback's socket buffers take in without the client reading.
    let (key, bytes) = pack(300, 32 << 20);
    let path = arka_proto::server::object_path("clinic-a", &key);
    assert_eq!(raw_request(server.port(), "PUT", &path, &[bearer(&a)], &bytes).status, 201);
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {a}\r\nConnection: close\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    tcp.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..200]));
    let key = "arka_server_slow_clients_cut_total{reason=\"answer_unread\"}";
    let m = metrics_until(&server, Duration::from_secs(30), |m| metric(m, key) == 1);
    assert_eq!(metric(&m, key), 1, "{m:?}");
    // What the kernel had buffered arrives, then the end: never the whole pack.
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(first.len() + rest.len() < bytes.len(), "the whole answer arrived ({} bytes)", rest.len());
}

/// Under TLS, a connection that never starts the handshake and one that completes it and
/// then sends nothing are both closed after the idle timeout (`openssl s_client` as the
/// second: it exits when the server closes).
#[test]
fn idle_tls_connections_are_closed_before_and_after_the_handshake() {
    const IDLE: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::server_client::self_signed(dir.path());
    let config = format!(
        "idle_timeout_secs = 2\n[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let server = ServerProcess::start_with(&dir.path().join("server"), &tokens(), &config, &[]);
    let started = Instant::now();
    let mut silent = vec![TcpStream::connect(("127.0.0.1", server.port())).unwrap()];
    let stderr = dir.path().join("s_client.txt");
    let mut handshaken = std::process::Command::new("openssl")
        .args(["s_client", "-brief", "-connect", &format!("127.0.0.1:{}", server.port())])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("the openssl CLI");
    assert_eq!(wait_closed(&mut silent, 1, IDLE * 10), 1, "a connection without a handshake is still open");
    let before_handshake = started.elapsed();
    let deadline = Instant::now() + IDLE * 10;
    while handshaken.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "a connection idle after its handshake is still open");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after_handshake = started.elapsed();
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert!(said.contains("CONNECTION ESTABLISHED"), "openssl s_client: {said}");
    eprintln!(
        "idle TLS connections closed after {:.1} s (no handshake) and {:.1} s (after it); idle timeout {IDLE:?}",
        before_handshake.as_secs_f64(),
        after_handshake.as_secs_f64()
    );
    assert!(before_handshake >= IDLE && after_handshake >= IDLE, "closed too soon");
}

/// An upload that never pauses long but trickles (1 KiB every 100 ms, 10 KiB/s) is cut by
/// the minimum rate once the grace is over, long before the stall timeout could.
#[test]
fn a_trickling_upload_is_cut_at_the_minimum_rate() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "body_min_rate_kib = 64\nbody_grace_secs = 2\nbody_stall_secs = 60";
    let server = ServerProcess::start_with(dir.path(), &tokens(), limits, &[]);
    let started = Instant::now();
    let mut tcp = stalled_upload(&server, &server.secret("clinic-a-agent"), 400);
    let mut answer = Vec::new();
    while !answer.starts_with(b"HTTP/1.1 ") {
        // The server stops reading once it answers; a write may then fail.
        if tcp.write_all(&[0u8; 1024]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(30), "the trickle was not cut");
        tcp.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(n) = tcp.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
        }
        tcp.set_nonblocking(false).unwrap();
    }
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = tcp.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("body_min_rate_kib"), "{answer}");
    let took = started.elapsed();
    eprintln!("a 10 KiB/s trickle was cut after {:.1} s (grace 2 s, minimum 64 KiB/s)", took.as_secs_f64());
    assert!(took >= Duration::from_secs(2), "cut after {took:?}, within the grace");
    let m = server.metrics();
    assert_eq!(metric(&m, "arka_server_slow_clients_cut_total{reason=\"body_too_slow\"}"), 1, "{m:?}");
}
