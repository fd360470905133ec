//! Notifications: a webhook and/or an e-mail when a backup fails, a source misses its RPO,
//! verify finds damage or replication keeps failing, and once more when it recovers.
//!
//! [`AlertLedger`] decides what goes out (pure, driven by the events' own times);
//! [`Notifier`] delivers it. Messages carry a one-line summary and detail lines written by
//! the runner: never a file name (personal data), never a secret.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Url;

use crate::platform::retry::{error_chain, retryable_status, GaveUp, Retry, Step};
use crate::platform::Secret;

/// What happened. The order is the order "resolves" lines list them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    BackupFailed,
    /// A backup was written without some files (unreadable) or with some that changed
    /// while read.
    BackupIncomplete,
    RpoMissed,
    VerifyDamage,
    ReplicationFailing,
    /// A backup stored again the data of damaged copies: the repository is whole again.
    DamageHealed,
    /// Forget or verify flagged snapshots: a time the storage contradicts, a rollback, a
    /// shrink (`repo::timeline`).
    SnapshotFlagged,
    /// Verify found snapshots gone from the storage without a forget.
    SnapshotsVanished,
    /// The primary target cannot be reached: backups go to the next target meanwhile and
    /// are copied back once it is reachable again.
    TargetUnreachable,
    /// A source (or target) that was alerted on is fine again. Sent only if something was
    /// alerted for it, so the runner may report every success as `Recovered`.
    Recovered,
}

impl EventKind {
    /// The `kind` field of the webhook JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BackupFailed => "backup_failed",
            EventKind::BackupIncomplete => "backup_incomplete",
            EventKind::RpoMissed => "rpo_missed",
            EventKind::VerifyDamage => "verify_damage",
            EventKind::ReplicationFailing => "replication_failing",
            EventKind::DamageHealed => "damage_healed",
            EventKind::SnapshotFlagged => "snapshot_flagged",
            EventKind::SnapshotsVanished => "snapshots_vanished",
            EventKind::TargetUnreachable => "target_unreachable",
            EventKind::Recovered => "recovered",
        }
    }

    /// Plain words for people.
    fn describe(self) -> &'static str {
        match self {
            EventKind::BackupFailed => "backup failed",
            EventKind::BackupIncomplete => "backup incomplete (files unreadable or changed while read)",
            EventKind::RpoMissed => "no recent backup (RPO missed)",
            EventKind::VerifyDamage => "verify found damage",
            EventKind::ReplicationFailing => "replication failing",
            EventKind::DamageHealed => "damage found and healed",
            EventKind::SnapshotFlagged => "suspicious snapshot (possible tampering)",
            EventKind::SnapshotsVanished => "backups deleted outside arka",
            EventKind::TargetUnreachable => "backup target unreachable (backups go to the next one)",
            EventKind::Recovered => "recovered",
        }
    }
}

/// One notification, as the runner reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The source it concerns (for replication, the target's name); `None` for the agent as a
    /// whole. Alerts are de-duplicated per (kind, source).
    pub source: Option<String>,
    pub hostname: String,
    /// When it happened, ns since the Unix epoch; also the clock of the de-duplication.
    pub time_ns: i64,
    /// One line in plain words, e.g. "backup of clinic-db failed". Never a file name.
    pub summary: String,
    /// Further lines: the error, counts, advice. Never a file name.
    pub details: Vec<String>,
}

impl Event {
    /// An event happening now on this machine.
    pub fn now(kind: EventKind, source: Option<&str>, summary: impl Into<String>) -> Self {
        Event {
            kind,
            source: source.map(str::to_string),
            hostname: crate::platform::hostname(),
            time_ns: jiff::Timestamp::now().as_nanosecond() as i64,
            summary: summary.into(),
            details: Vec::new(),
        }
    }

    pub fn with_detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }
}

/// `[notify]` webhook (`service::config` builds it from the config file): a JSON POST,
/// signed when a secret is set.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Often carries a token in its path (Slack, Teams): `Debug` shows only the origin.
    pub url: String,
    /// Signs the body (HMAC-SHA256) when set.
    pub secret: Option<Secret>,
}

/// `[notify.email]` through an SMTP relay (`service::config` builds it from the config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailSettings {
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `true`: STARTTLS is required (implicit TLS on port 465); `false`: plain SMTP, for a
    /// relay on this machine or the clinic's LAN.
    pub starttls: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

// Webhook URLs often carry a token in the path (Slack, Teams): only the origin is printed.
impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &Url::parse(&self.url).map(|u| origin(&u)).unwrap_or_else(|_| "(invalid)".into()))
            .field("secret", &self.secret)
            .finish()
    }
}

/// How hard one channel tries before giving up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Per attempt: connecting, TLS, sending and the answer together.
    pub timeout: Duration,
    /// Attempts in all (the first plus retries).
    pub attempts: u32,
    /// Pause before the first retry; doubled before each further one.
    pub backoff: Duration,
}

impl Delivery {
    /// Pauses of `backoff`, doubling (at most 2^16 times), no jitter, no overall budget.
    fn retry(self) -> Retry {
        let max_backoff = self.backoff.saturating_mul(1 << 16);
        Retry { attempts: self.attempts, first_backoff: self.backoff, max_backoff, jitter: false, budget: None }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery { timeout: Duration::from_secs(10), attempts: 4, backoff: Duration::from_secs(1) }
    }
}

/// Settings that cannot work, found when the notifier is built (at agent start).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify webhook url is not a usable http:// or https:// URL: {0}")]
    WebhookUrl(String),
    #[error("notify e-mail `{field}` = {value:?} is not an e-mail address: {reason}")]
    Address { field: &'static str, value: String, reason: String },
    #[error("notify e-mail has no recipients: list at least one address in `to`")]
    NoRecipients,
    #[error("notify e-mail: `username` and `password` go together; set both or neither")]
    HalfCredentials,
    #[error(
        "notify e-mail: the SMTP password would cross the network unencrypted; set starttls = true, \
         or relay through this machine (smtp_host = \"localhost\") without a password"
    )]
    CleartextPassword,
    #[error("notify webhook: cannot set up the HTTP client: {0}")]
    HttpClient(String),
}

type AlertKey = (EventKind, Option<String>);

/// Which alerts are open and when each was last sent: an alert for the same (kind, source)
/// goes out again only after `repeat_after` while the condition lasts, and a `Recovered`
/// goes out once for a source with open alerts, closing them all.
///
/// Time is the events' own `time_ns`. A clock that went backwards sends rather than stays
/// silent. The ledger lives in memory: after a restart an open alert is sent once more.
#[derive(Debug)]
pub struct AlertLedger {
    repeat_after_ns: i64,
    open: HashMap<AlertKey, i64>,
}

/// What [`AlertLedger::admit`] changed, so a delivery that failed everywhere can be undone.
#[derive(Debug)]
pub struct Admission {
    previous: Vec<(AlertKey, Option<i64>)>,
    /// For `Recovered`: the kinds of alert it closes, in [`EventKind`] order.
    pub resolves: Vec<EventKind>,
}

impl AlertLedger {
    pub fn new(repeat_after: Duration) -> Self {
        AlertLedger {
            repeat_after_ns: i64::try_from(repeat_after.as_nanos()).unwrap_or(i64::MAX),
            open: HashMap::new(),
        }
    }

    /// `Some` when the event should be sent now; the ledger then already counts it as sent.
    pub fn admit(&mut self, kind: EventKind, source: Option<&str>, now_ns: i64) -> Option<Admission> {
        if kind == EventKind::Recovered {
            let mut closed: Vec<AlertKey> = self.open.keys().filter(|k| k.1.as_deref() == source).cloned().collect();
            if closed.is_empty() {
                return None;
            }
            closed.sort();
            let previous = closed.iter().map(|k| (k.clone(), self.open.remove(k))).collect();
            return Some(Admission { previous, resolves: closed.into_iter().map(|k| k.0).collect() });
        }
        let key = (kind, source.map(str::to_string));
        let last = self.open.get(&key).copied();
        if let Some(sent) = last {
            let elapsed = now_ns.saturating_sub(sent);
            if (0..self.repeat_after_ns).contains(&elapsed) {
                return None;
            }
        }
        self.open.insert(key.clone(), now_ns);
        Some(Admission { previous: vec![(key, last)], resolves: Vec::new() })
    }

    /// Undoes an admission whose delivery failed on every channel, so the next report of the
    /// same condition tries again instead of waiting `repeat_after`.
    pub fn undo(&mut self, admission: Admission) {
        for (key, previous) in admission.previous {
            match previous {
                Some(t) => self.open.insert(key, t),
                None => self.open.remove(&key),
            };
        }
    }

    /// Whether an alert of this kind is open for this source.
    pub fn is_open(&self, kind: EventKind, source: Option<&str>) -> bool {
        self.open.contains_key(&(kind, source.map(str::to_string)))
    }
}

/// Sends events to the configured channels, de-duplicated by an [`AlertLedger`].
#[derive(Debug)]
pub struct Notifier {
    webhook: Option<Webhook>,
    email: Option<Email>,
    delivery: Delivery,
    repeat_after: Duration,
    ledger: Mutex<AlertLedger>,
}

impl Notifier {
    pub const DEFAULT_REPEAT_AFTER: Duration = Duration::from_secs(6 * 3600);

    /// Checks the settings (URL, addresses, credentials); nothing is contacted yet.
    pub fn new(webhook: Option<WebhookSettings>, email: Option<EmailSettings>) -> Result<Self, NotifyError> {
        let delivery = Delivery::default();
        Ok(Notifier {
            webhook: webhook.map(|w| Webhook::new(w, delivery)).transpose()?,
            email: email.map(Email::new).transpose()?,
            delivery,
            repeat_after: Self::DEFAULT_REPEAT_AFTER,
            ledger: Mutex::new(AlertLedger::new(Self::DEFAULT_REPEAT_AFTER)),
        })
    }

    /// How long an open alert stays quiet before it is sent again (default 6 h). Resets
    /// the ledger: call it while building.
    pub fn with_repeat_after(mut self, repeat_after: Duration) -> Self {
        self.repeat_after = repeat_after;
        self.ledger = Mutex::new(AlertLedger::new(repeat_after));
        self
    }

    pub fn with_delivery(mut self, delivery: Delivery) -> Result<Self, NotifyError> {
        self.delivery = delivery;
        if let Some(w) = self.webhook.take() {
            self.webhook = Some(Webhook::new(w.settings, delivery)?);
        }
        Ok(self)
    }

    /// Whether any channel is configured.
    pub fn is_enabled(&self) -> bool {
        self.webhook.is_some() || self.email.is_some()
    }

    /// Sends `event` unless the ledger holds it back; returns one message per channel that
    /// failed (empty when all went out or nothing was due). Never panics. Takes up to
    /// `attempts × timeout` plus backoff when a channel is dead (about 50 s by default), so
    /// the runner should not await it on a backup's path.
    pub async fn notify(&self, mut event: Event) -> Vec<String> {
        if !self.is_enabled() {
            return Vec::new();
        }
        let Some(admission) = self.ledger().admit(event.kind, event.source.as_deref(), event.time_ns) else {
            tracing::debug!(kind = event.kind.as_str(), source = event.source.as_deref(), "notification held back");
            return Vec::new();
        };
        if !admission.resolves.is_empty() {
            let kinds: Vec<&str> = admission.resolves.iter().map(|k| k.describe()).collect();
            event.details.push(format!("No longer: {}.", kinds.join(", ")));
        }
        let errors = self.send(&event).await;
        let channels = usize::from(self.webhook.is_some()) + usize::from(self.email.is_some());
        if errors.len() == channels {
            self.ledger().undo(admission);
        }
        errors
    }

    /// Sends `event` to every channel now, bypassing de-duplication (e.g. a test message).
    pub async fn send(&self, event: &Event) -> Vec<String> {
        let webhook = async {
            match &self.webhook {
                Some(w) => w.send(event, self.delivery).await.err(),
                None => None,
            }
        };
        let email = async {
            match &self.email {
                Some(m) => m.send(event, self.delivery, self.repeat_after).await.err(),
                None => None,
            }
        };
        let (a, b) = tokio::join!(webhook, email);
        a.into_iter().chain(b).collect()
    }

    fn ledger(&self) -> MutexGuard<'_, AlertLedger> {
        // The ledger is consistent after every statement; a panic elsewhere cannot break it.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `X-Arka-Signature` value: `sha256=` and the hex HMAC-SHA256 of the exact body bytes.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", arka_proto::id::to_hex(ring::hmac::sign(&key, body).as_ref()))
}

/// The webhook's JSON body. `text` repeats the subject line so chat webhooks (Slack,
/// Mattermost, Rocket.Chat) show something readable without a template.
pub fn webhook_body(event: &Event) -> Vec<u8> {
    let details: Vec<String> = event.details.iter().map(|d| one_line(d, 500)).collect();
    let body = serde_json::json!({
        "kind": event.kind.as_str(),
        "source": event.source,
        "host": event.hostname,
        "time": timestamp(event.time_ns).to_string(),
        "summary": one_line(&event.summary, 200),
        "details": details,
        "text": subject(event),
    });
    body.to_string().into_bytes()
}

/// `[arka] clinic-srv: backup of clinic-db failed`.
pub fn subject(event: &Event) -> String {
    format!("[arka] {}: {}", one_line(&event.hostname, 64), one_line(&event.summary, 200))
}

/// The plain-text mail body.
pub fn mail_text(event: &Event, repeat_after: Duration) -> String {
    let local = timestamp(event.time_ns).to_zoned(jiff::tz::TimeZone::system());
    let mut text = format!("{}\n\n", one_line(&event.summary, 200));
    text += &format!("What:    {}\n", event.kind.describe());
    if let Some(source) = &event.source {
        text += &format!("Source:  {}\n", one_line(source, 64));
    }
    text += &format!("Server:  {}\n", one_line(&event.hostname, 64));
    text += &format!("Time:    {}\n", local.strftime("%Y-%m-%d %H:%M:%S %Z"));
    if !event.details.is_empty() {
        text += "\nDetails:\n";
        for d in &event.details {
            text += &format!("  {}\n", one_line(d, 500));
        }
    }
    text += "\n-- \nSent by the arka backup agent. ";
    if event.kind == EventKind::Recovered {
        text += "The problem reported earlier has cleared.\n";
    } else {
        let hours = repeat_after.as_secs_f64() / 3600.0;
        text += &format!(
            "While this lasts you will get this message again every {hours} h, \
             and one \"recovered\" message when it clears. The agent's status page shows every source.\n"
        );
    }
    text
}

#[derive(Debug)]
struct Webhook {
    settings: WebhookSettings,
    url: Url,
    client: reqwest::Client,
}

impl Webhook {
    fn new(settings: WebhookSettings, delivery: Delivery) -> Result<Self, NotifyError> {
        let url = Url::parse(&settings.url).map_err(|e| NotifyError::WebhookUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(NotifyError::WebhookUrl(format!("scheme {:?} without a host", url.scheme())));
        }
        // Same provider as the S3 client; fails only if one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(delivery.timeout)
            .timeout(delivery.timeout)
            // A webhook that redirects is misconfigured; following would turn the POST into
            // a GET or carry the signature elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("arka/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::HttpClient(error_chain(&e)))?;
        Ok(Webhook { settings, url, client })
    }

    async fn send(&self, event: &Event, delivery: Delivery) -> Result<(), String> {
        let body = webhook_body(event);
        let signature = self.settings.secret.as_ref().map(|s| webhook_signature(s.expose(), &body));
        let attempt = |_| {
            let mut request = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(signature) = &signature {
                request = request.header("X-Arka-Signature", signature);
            }
            async move {
                match request.send().await {
                    Ok(response) if response.status().is_success() => Step::Done(()),
                    Ok(response) => {
                        let status = response.status();
                        let answer = format!("the receiver answered HTTP {status}");
                        if retryable_status(status) {
                            Step::Retry(answer)
                        } else {
                            Step::Fail(answer)
                        }
                    }
                    Err(e) if e.is_timeout() => {
                        Step::Retry(format!("no answer within {} s", delivery.timeout.as_secs_f64()))
                    }
                    Err(e) if e.is_connect() => Step::Retry(format!("could not connect: {}", root_cause(&e))),
                    Err(e) => Step::Retry(error_chain(&e.without_url())),
                }
            }
        };
        delivery
            .retry()
            .run(attempt, |_| {})
            .await
            .map_err(|g| gave_up(&format!("webhook to {}", origin(&self.url)), g))
    }
}

#[derive(Debug)]
struct Email {
    settings: EmailSettings,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    fn new(settings: EmailSettings) -> Result<Self, NotifyError> {
        let parse = |field: &'static str, value: &str| {
            value.parse::<Mailbox>().map_err(|e| NotifyError::Address {
                field,
                value: value.to_string(),
                reason: e.to_string(),
            })
        };
        let from = parse("from", &settings.from)?;
        let to = settings.to.iter().map(|a| parse("to", a)).collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(NotifyError::NoRecipients);
        }
        match (&settings.username, &settings.password) {
            (Some(_), None) | (None, Some(_)) => return Err(NotifyError::HalfCredentials),
            (Some(_), Some(_)) if !settings.starttls && !is_loopback(&settings.smtp_host) => {
                return Err(NotifyError::CleartextPassword)
            }
            _ => {}
        }
        Ok(Email { settings, from, to })
    }

    fn transport(&self, event: &Event, delivery: Delivery) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let s = &self.settings;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.smtp_host.as_str())
            .port(s.smtp_port)
            .timeout(Some(delivery.timeout))
            .hello_name(ClientId::Domain(hello_name(&event.hostname)));
        if s.starttls {
            let params = TlsParameters::new(s.smtp_host.clone()).map_err(|e| format!("TLS setup: {e}"))?;
            // Port 465 speaks TLS from the first byte (SMTPS); everything else upgrades with
            // STARTTLS, and a server that does not offer it is refused, not spoken to in clear.
            builder = builder.tls(if s.smtp_port == 465 { Tls::Wrapper(params) } else { Tls::Required(params) });
        }
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(builder.build())
    }

    fn message(&self, event: &Event, repeat_after: Duration) -> Result<Message, String> {
        let mut builder = Message::builder().from(self.from.clone()).subject(subject(event));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .message_id(Some(format!(
                "<{}.{:016x}@{}>",
                event.time_ns,
                rand::random::<u64>(),
                hello_name(&event.hostname)
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(mail_text(event, repeat_after))
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    async fn send(&self, event: &Event, delivery: Delivery, repeat_after: Duration) -> Result<(), String> {
        let place = format!("e-mail through {}:{}", self.settings.smtp_host, self.settings.smtp_port);
        let message = self.message(event, repeat_after).map_err(|e| format!("{place}: {e}"))?;
        let transport = self.transport(event, delivery).map_err(|e| format!("{place}: {e}"))?;
        let attempt = |_| {
            // lettre's own timeout covers each SMTP step; this one bounds the whole exchange.
            let sent = tokio::time::timeout(delivery.timeout * 2, transport.send(message.clone()));
            async move {
                match sent.await {
                    Ok(Ok(_)) => Step::Done(()),
                    Ok(Err(e)) if e.is_permanent() => Step::Fail(smtp_advice(&e)),
                    Ok(Err(e)) => Step::Retry(smtp_advice(&e)),
                    Err(_) => Step::Retry(format!("no answer within {} s", (delivery.timeout * 2).as_secs_f64())),
                }
            }
        };
        delivery.retry().run(attempt, |_| {}).await.map_err(|g| gave_up(&place, g))
    }
}

fn smtp_advice(e: &lettre::transport::smtp::Error) -> String {
    let text = error_chain(e);
    if e.is_tls() {
        format!("{text}: TLS failed; check that the server offers STARTTLS and has a certificate for this host name")
    } else if e.status().map(|c| c.to_string().starts_with("535")).unwrap_or(false) {
        format!("{text}: check username and password")
    } else {
        text
    }
}

/// `{place}: {error}`, and how often it was tried when every attempt failed alike.
fn gave_up(place: &str, g: GaveUp<String>) -> String {
    match (g.exhausted, g.attempts) {
        (false, _) => format!("{place}: {}", g.error),
        (true, 1) => format!("{place}: {} (1 attempt)", g.error),
        (true, n) => format!("{place}: {} ({n} attempts)", g.error),
    }
}

/// The innermost cause, which for a failed connection is the one that says why.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn timestamp(time_ns: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(time_ns.div_euclid(1_000_000_000)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Control characters become spaces and the text is cut at `max` characters, so a line
/// stays a line in a subject, a header or a chat message.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let flat = flat.trim();
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat.to_string(),
    }
}

/// The EHLO name: the host name when it is a plain DNS name, else `localhost`.
fn hello_name(hostname: &str) -> String {
    let plain = !hostname.is_empty()
        && hostname.len() <= 253
        && hostname.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if plain {
        hostname.to_string()
    } else {
        "localhost".into()
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

fn origin(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * 1_000_000_000;

    fn ledger() -> AlertLedger {
        AlertLedger::new(Duration::from_secs(6 * 3600))
    }

    #[test]
    fn repeated_alert_waits_repeat_after() {
        let mut l = ledger();
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 0).is_some());
        assert!(l.admit(EventKind::BackupFailed, Some("db"), H).is_none());
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 6 * H - 1).is_none());
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 6 * H).is_some());
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 7 * H).is_none());
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 12 * H).is_some());
    }

    #[test]
    fn alerts_are_separate_per_kind_and_source() {
        let mut l = ledger();
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 0).is_some());
        assert!(l.admit(EventKind::BackupFailed, Some("imaging"), 1).is_some());
        assert!(l.admit(EventKind::RpoMissed, Some("db"), 2).is_some());
        assert!(l.admit(EventKind::VerifyDamage, None, 3).is_some());
        assert!(l.admit(EventKind::VerifyDamage, None, 4).is_none());
    }

    #[test]
    fn recovered_is_sent_once_and_only_after_an_alert() {
        let mut l = ledger();
        assert!(l.admit(EventKind::Recovered, Some("db"), 0).is_none(), "nothing was alerted");
        l.admit(EventKind::RpoMissed, Some("db"), H);
        l.admit(EventKind::BackupFailed, Some("db"), 2 * H);
        l.admit(EventKind::BackupFailed, Some("imaging"), 2 * H);
        let a = l.admit(EventKind::Recovered, Some("db"), 3 * H).expect("recovery of an alerted source");
        assert_eq!(a.resolves, vec![EventKind::BackupFailed, EventKind::RpoMissed]);
        assert!(l.admit(EventKind::Recovered, Some("db"), 4 * H).is_none(), "sent once");
        assert!(l.is_open(EventKind::BackupFailed, Some("imaging")), "other sources stay open");
        // The same failure again after recovering is news, not a repeat.
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 4 * H).is_some());
    }

    #[test]
    fn undo_after_failed_delivery_lets_the_next_report_retry() {
        let mut l = ledger();
        let a = l.admit(EventKind::BackupFailed, Some("db"), 0).unwrap();
        l.undo(a);
        assert!(!l.is_open(EventKind::BackupFailed, Some("db")));
        assert!(l.admit(EventKind::BackupFailed, Some("db"), H).is_some());
        // A failed repeat restores the older time, so it is due again at once.
        let a = l.admit(EventKind::BackupFailed, Some("db"), 7 * H).unwrap();
        l.undo(a);
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 7 * H + 1).is_some());
        // A failed recovery message reopens what it closed.
        let a = l.admit(EventKind::Recovered, Some("db"), 8 * H).unwrap();
        l.undo(a);
        assert!(l.is_open(EventKind::BackupFailed, Some("db")));
        assert!(l.admit(EventKind::Recovered, Some("db"), 9 * H).is_some());
    }

    #[test]
    fn clock_going_backwards_sends_rather_than_silences() {
        let mut l = ledger();
        l.admit(EventKind::BackupFailed, Some("db"), 10 * H);
        assert!(l.admit(EventKind::BackupFailed, Some("db"), 2 * H).is_some());
    }

    #[test]
    fn signature_is_standard_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            webhook_signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn event() -> Event {
        Event {
            kind: EventKind::BackupFailed,
            source: Some("clinic-db".into()),
            hostname: "clinic-srv".into(),
            time_ns: 1_795_000_000_123_456_789,
            summary: "backup of clinic-db failed\r\nBcc: someone@else".into(),
            details: vec!["pg_dump exited with status 1".into()],
        }
    }

    #[test]
    fn subject_and_body_stay_one_line_per_field() {
        let e = event();
        assert_eq!(subject(&e), "[arka] clinic-srv: backup of clinic-db failed  Bcc: someone@else");
        let text = mail_text(&e, Duration::from_secs(6 * 3600));
        assert!(text.starts_with("backup of clinic-db failed  Bcc: someone@else\n\n"), "{text}");
        assert!(text.contains("Source:  clinic-db\n") && text.contains("  pg_dump exited with status 1\n"));
        assert!(text.contains("every 6 h"), "{text}");
    }

    #[test]
    fn webhook_body_has_the_documented_fields() {
        let body: serde_json::Value = serde_json::from_slice(&webhook_body(&event())).unwrap();
        assert_eq!(body["kind"], "backup_failed");
        assert_eq!(body["source"], "clinic-db");
        assert_eq!(body["host"], "clinic-srv");
        assert_eq!(body["time"], "2026-11-18T11:06:40Z");
        assert_eq!(body["details"][0], "pg_dump exited with status 1");
        assert!(!body["summary"].as_str().unwrap().contains('\n'));
    }

    #[test]
    fn settings_that_cannot_work_are_refused_at_start() {
        let email = EmailSettings {
            smtp_host: "mail.example.com".into(),
            smtp_port: 587,
            starttls: false,
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            from: "arka@clinic.example".into(),
            to: vec!["it@clinic.example".into()],
        };
        assert!(matches!(Notifier::new(None, Some(email.clone())), Err(NotifyError::CleartextPassword)));
        let local = EmailSettings { smtp_host: "127.0.0.1".into(), ..email.clone() };
        assert!(Notifier::new(None, Some(local)).is_ok());
        let bad = EmailSettings { to: vec!["not an address".into()], starttls: true, ..email.clone() };
        assert!(matches!(Notifier::new(None, Some(bad)), Err(NotifyError::Address { field: "to", .. })));
        let none = EmailSettings { to: vec![], starttls: true, ..email };
        assert!(matches!(Notifier::new(None, Some(none)), Err(NotifyError::NoRecipients)));
        let hook = WebhookSettings { url: "ftp://x/".into(), secret: None };
        assert!(matches!(Notifier::new(Some(hook), None), Err(NotifyError::WebhookUrl(_))));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let hook = WebhookSettings {
            url: "https://hooks.example/services/T0/B0/tok3n".into(),
            secret: Some(Secret::new("s3cret")),
        };
        let text = format!("{hook:?}");
        assert!(!text.contains("tok3n") && !text.contains("s3cret"), "{text}");
    }
}
