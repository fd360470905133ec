//! Notifications delivered for real over loopback: a hand-rolled HTTP/1.1 receiver for the
//! webhook and a minimal SMTP server for e-mail, both written here so the test needs nothing
//! installed. They check what a clinic's receiver would see: JSON, signature, subject,
//! recipients, and that a dead receiver costs bounded time.

use std::time::{Duration, Instant};

use arka_agent::platform::Secret;
use arka_agent::service::notify::{Delivery, EmailSettings, Event, EventKind, Notifier, WebhookSettings};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const H: i64 = 3600 * 1_000_000_000;
const T0: i64 = 1_795_000_000 * 1_000_000_000;

fn fast() -> Delivery {
    Delivery { timeout: Duration::from_millis(500), attempts: 2, backoff: Duration::from_millis(50) }
}

fn event(kind: EventKind, time_ns: i64) -> Event {
    Event {
        kind,
        source: Some("clinic-db".into()),
        hostname: "clinic-srv".into(),
        time_ns,
        summary: match kind {
            EventKind::Recovered => "backups of clinic-db work again".into(),
            _ => "backup of clinic-db failed".into(),
        },
        details: vec!["pg_dump exited with status 1".into()],
    }
}

/// One HTTP request as received: request line, headers (lower-case names), body.
#[derive(Debug)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

async fn read_request(stream: &mut TcpStream) -> Request {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).await.unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap();
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.unwrap();
    Request { line: line.trim_end().to_string(), headers, body }
}

/// An HTTP receiver answering each request with the next status of `statuses` (the last
/// one repeating); every request is passed on.
async fn http_receiver(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/T0/tok3n", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            // Passed on before answering, so it is there when the client's call returns.
            let _ = tx.send(read_request(&mut stream).await);
            let status = statuses[n.min(statuses.len() - 1)];
            let answer = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(answer.as_bytes()).await.unwrap();
            let _ = stream.shutdown().await;
        }
    });
    (url, rx)
}

fn webhook(url: &str, secret: Option<&str>) -> Notifier {
    let settings = WebhookSettings { url: url.into(), secret: secret.map(Secret::new) };
    Notifier::new(Some(settings), None).unwrap().with_delivery(fast()).unwrap()
}

fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test]
async fn webhook_posts_json_signed_with_hmac_sha256() {
    let (url, mut requests) = http_receiver(vec![204]).await;
    let errors = webhook(&url, Some("clinic-secret")).notify(event(EventKind::BackupFailed, T0)).await;
    assert!(errors.is_empty(), "{errors:?}");

    let r = requests.recv().await.unwrap();
    assert_eq!(r.line, "POST /hooks/T0/tok3n HTTP/1.1");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["kind"], "backup_failed");
    assert_eq!(json["source"], "clinic-db");
    assert_eq!(json["host"], "clinic-srv");
    assert_eq!(json["time"], "2026-11-18T11:06:40Z");
    assert_eq!(json["summary"], "backup of clinic-db failed");
    assert_eq!(json["details"], serde_json::json!(["pg_dump exited with status 1"]));

    // What a receiver does: HMAC-SHA256 of the raw body with the shared secret.
    let signature = r.header("x-arka-signature").expect("signed");
    let hex = signature.strip_prefix("sha256=").expect("sha256= prefix");
    let mac: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"clinic-secret");
    ring::hmac::verify(&key, &r.body, &mac).expect("signature verifies");
    let wrong = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other-secret");
    assert!(ring::hmac::verify(&wrong, &r.body, &mac).is_err());
}

#[tokio::test]
async fn webhook_without_secret_is_unsigned() {
    let (url, mut requests) = http_receiver(vec![200]).await;
    assert!(webhook(&url, None).notify(event(EventKind::RpoMissed, T0)).await.is_empty());
    let r = requests.recv().await.unwrap();
    assert_eq!(r.header("x-arka-signature"), None);
}

#[tokio::test]
async fn repeated_alerts_wait_and_recovery_is_sent_once() {
    let (url, mut requests) = http_receiver(vec![204]).await;
    let notifier = webhook(&url, Some("s"));
    for (kind, t) in [
        (EventKind::Recovered, T0), // nothing was alerted: not sent
        (EventKind::BackupFailed, T0 + H),
        (EventKind::BackupFailed, T0 + 2 * H), // held back
        (EventKind::BackupFailed, T0 + 7 * H), // repeated after 6 h
        (EventKind::Recovered, T0 + 8 * H),
        (EventKind::Recovered, T0 + 9 * H), // once
    ] {
        assert!(notifier.notify(event(kind, t)).await.is_empty());
    }
    let kinds: Vec<(String, String)> = drain(&mut requests)
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
        .map(|j| (j["kind"].as_str().unwrap().to_string(), j["time"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("backup_failed".to_string(), "2026-11-18T12:06:40Z".to_string()),
            ("backup_failed".to_string(), "2026-11-18T18:06:40Z".to_string()),
            ("recovered".to_string(), "2026-11-18T19:06:40Z".to_string()),
        ]
    );
}

#[tokio::test]
async fn webhook_retries_a_server_error_and_not_a_client_error() {
    let (url, mut requests) = http_receiver(vec![503, 204]).await;
    assert!(webhook(&url, None).notify(event(EventKind::VerifyDamage, T0)).await.is_empty());
    assert_eq!(drain(&mut requests).len(), 2);

    let (url, mut requests) = http_receiver(vec![401]).await;
    let errors = webhook(&url, None).notify(event(EventKind::VerifyDamage, T0)).await;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("HTTP 401"), "{errors:?}");
    assert!(!errors[0].contains("tok3n"), "the URL's token stays out of messages: {errors:?}");
    assert_eq!(drain(&mut requests).len(), 1);
}

#[tokio::test]
async fn dead_webhook_fails_within_the_timeout_and_is_retried_next_time() {
    // Nothing listening: refused at once.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let notifier = webhook(&format!("http://127.0.0.1:{port}/hook"), None);
    let started = Instant::now();
    let errors = notifier.notify(event(EventKind::BackupFailed, T0)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("could not connect") && errors[0].contains("2 attempts"), "{errors:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Not delivered anywhere, so not counted as sent: the next report tries again.
    assert_eq!(notifier.notify(event(EventKind::BackupFailed, T0 + 1)).await.len(), 1);

    // Accepts but never answers: each attempt ends at the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let started = Instant::now();
    let errors = webhook(&url, None).notify(event(EventKind::BackupFailed, T0)).await;
    let took = started.elapsed();
    assert!(errors.len() == 1 && errors[0].contains("no answer within 0.5 s"), "{errors:?}");
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_secs(5), "took {took:?}");
    held.abort();
}

/// What the SMTP server saw in one session.
#[derive(Debug, Default)]
struct SmtpSession {
    commands: Vec<String>,
    rcpt: Vec<String>,
    data: String,
}

/// A minimal SMTP server for one session; `starttls` decides whether it offers STARTTLS
/// (it cannot actually do TLS, so a client must stop before anything sensitive).
async fn smtp_server(offer_starttls: bool) -> (u16, tokio::task::JoinHandle<SmtpSession>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let mut s = SmtpSession::default();
        write.write_all(b"220 relay.test ESMTP\r\n").await.unwrap();
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                return s;
            }
            let line = line.trim_end().to_string();
            let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            s.commands.push(line.clone());
            let answer: &[u8] = match verb.as_str() {
                "EHLO" if offer_starttls => b"250-relay.test\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n",
                "EHLO" => b"250-relay.test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n",
                "STARTTLS" => {
                    // Not a TLS server: answer nothing further; the handshake will fail.
                    write.write_all(b"220 go ahead\r\n").await.unwrap();
                    let mut rest = Vec::new();
                    let _ = tokio::time::timeout(Duration::from_secs(2), lines.read_to_end(&mut rest)).await;
                    return s;
                }
                "AUTH" => b"235 2.7.0 ok\r\n",
                "MAIL" => b"250 ok\r\n",
                "RCPT" => {
                    s.rcpt.push(line[8..].to_string());
                    b"250 ok\r\n"
                }
                "DATA" => {
                    write.write_all(b"354 go on\r\n").await.unwrap();
                    loop {
                        let mut l = String::new();
                        lines.read_line(&mut l).await.unwrap();
                        if l == ".\r\n" {
                            break;
                        }
                        s.data += &l;
                    }
                    b"250 queued\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    return s;
                }
                _ => b"250 ok\r\n",
            };
            write.write_all(answer).await.unwrap();
        }
    });
    (port, task)
}

fn email(port: u16, starttls: bool) -> EmailSettings {
    EmailSettings {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        starttls,
        username: Some("arka".into()),
        password: Some(Secret::new("relay-pass")),
        from: "arka agent <arka@clinic.example>".into(),
        to: vec!["it@clinic.example".into(), "Dr Nowak <owner@clinic.example>".into()],
    }
}

#[tokio::test]
async fn email_reaches_a_local_relay_with_subject_body_and_recipients() {
    let (port, server) = smtp_server(false).await;
    let notifier = Notifier::new(None, Some(email(port, false))).unwrap().with_delivery(fast()).unwrap();
    let errors = notifier.notify(event(EventKind::BackupFailed, T0)).await;
    assert!(errors.is_empty(), "{errors:?}");
    let s = server.await.unwrap();

    assert_eq!(s.commands[0], "EHLO clinic-srv");
    // AUTH PLAIN carries base64("\0arka\0relay-pass").
    assert!(s.commands.iter().any(|c| c == "AUTH PLAIN AGFya2EAcmVsYXktcGFzcw=="), "{:?}", s.commands);
    assert!(s.commands.iter().any(|c| c == "MAIL FROM:<arka@clinic.example>"), "{:?}", s.commands);
    assert_eq!(s.rcpt, ["<it@clinic.example>", "<owner@clinic.example>"]);
    assert!(s.data.contains("Subject: [arka] clinic-srv: backup of clinic-db failed\r\n"), "{}", s.data);
    assert!(s.data.contains("To: it@clinic.example, \"Dr Nowak\" <owner@clinic.example>\r\n"), "{}", s.data);
    assert!(s.data.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{}", s.data);
    let body = s.data.split_once("\r\n\r\n").unwrap().1;
    assert!(body.starts_with("backup of clinic-db failed\r\n"), "{body}");
    assert!(body.contains("Source:  clinic-db\r\n") && body.contains("pg_dump exited with status 1"), "{body}");
}

#[tokio::test]
async fn starttls_required_never_sends_credentials_or_mail_in_clear() {
    for offer in [false, true] {
        let (port, server) = smtp_server(offer).await;
        let notifier = Notifier::new(None, Some(email(port, true)))
            .unwrap()
            .with_delivery(Delivery { attempts: 1, ..fast() })
            .unwrap();
        let errors = notifier.notify(event(EventKind::BackupFailed, T0)).await;
        assert_eq!(errors.len(), 1, "offer STARTTLS {offer}: {errors:?}");
        let s = server.await.unwrap();
        let verbs: Vec<&str> = s.commands.iter().map(|c| c.split_whitespace().next().unwrap_or("")).collect();
        assert!(!verbs.iter().any(|v| ["AUTH", "MAIL", "RCPT", "DATA"].contains(v)), "offer {offer}: {verbs:?}");
        if offer {
            assert!(verbs.contains(&"STARTTLS"), "{verbs:?}");
        }
    }
}

#[tokio::test]
async fn dead_smtp_relay_fails_within_the_timeout() {
    // Accepts and never greets.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let mut settings = email(port, false);
    settings.username = None;
    settings.password = None;
    let notifier = Notifier::new(None, Some(settings)).unwrap().with_delivery(fast()).unwrap();
    let started = Instant::now();
    let errors = notifier.notify(event(EventKind::RpoMissed, T0)).await;
    let took = started.elapsed();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(&format!("127.0.0.1:{port}")), "{errors:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    held.abort();
}

#[tokio::test]
async fn both_channels_fire_and_one_dead_channel_does_not_stop_the_other() {
    let (url, mut requests) = http_receiver(vec![204]).await;
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let mut mail = email(port, false);
    mail.username = None;
    mail.password = None;
    let notifier =
        Notifier::new(Some(WebhookSettings { url, secret: None }), Some(mail)).unwrap().with_delivery(fast()).unwrap();
    let errors = notifier.notify(event(EventKind::ReplicationFailing, T0)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("e-mail through 127.0.0.1:"), "{errors:?}");
    assert_eq!(drain(&mut requests).len(), 1);
    // One channel delivered, so the alert counts as sent and is held back now.
    assert!(notifier.notify(event(EventKind::ReplicationFailing, T0 + H)).await.is_empty());
    assert!(drain(&mut requests).is_empty());
}
