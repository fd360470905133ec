//! An arka-server repository (`arka+https://host/repo`) as an `object_store::ObjectStore`,
//! over the API of `arka_proto::server`.
//!
//! Contracts, as `Store` relies on them:
//! - puts are create-only: 201 is a write, 409 `exists` is `AlreadyExists`, and a retried
//!   put answered 409 counts as written (the first attempt stored it); overwriting modes
//!   are not supported;
//! - a ranged read returns exactly the asked range or an error; a whole read returns
//!   exactly the `Content-Length` the server announced, at most [`OBJECT_MAX`];
//! - a listing is checked page by page (see `listing`) and an error is never an empty
//!   listing; `stored_at_ns` becomes `last_modified`;
//! - deleting a missing object succeeds;
//! - connection failures, timeouts and 5xx answers are retried with backoff (every call
//!   here is idempotent); refusals (4xx) are not, and carry the server's message with
//!   advice in words.
//!
//! The token is sent as `Authorization: Bearer`, in a header marked sensitive, and appears
//! in no `Debug` or error.

mod listing;
pub(crate) mod options;

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use http_body_util::Full;
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{StatusCode, Url};

use arka_proto::server::{list_path, object_path, status_path, ApiError, ListPage, Refusal, STORED_AT_HEADER};
use arka_proto::AgentStatus;

use super::limit::{Limits, Pacer};
use super::paced::PacedBody;
use crate::error::{Error, Result};
use crate::platform::retry::{error_chain as chain, retryable_status as retryable, Retry};
pub use options::{check_ca_pem, parse_pin, PinMismatch, PinnedCert, ServerOptions, Token, Trust};
pub use options::{CA_ENV, PIN_ENV, TOKEN_ENV, TOKEN_FILE_ENV};

const STORE: &str = "arka-server";

/// How long a read may take: a whole pack on a slow link.
const GET_TIMEOUT: Duration = Duration::from_secs(900);

/// The largest object a paced read is budgeted time for: the largest pack the format allows.
const MAX_PACED_OBJECT: u64 = 64 << 20;
/// The largest object a whole read accepts (packs are at most 128 MiB).
pub const OBJECT_MAX: u64 = 256 << 20;
/// The largest error body read (the message is cut much shorter).
const ERROR_BODY_MAX: usize = 64 << 10;
const MESSAGE_MAX: usize = 300;
/// Every call here is idempotent, so each is retried: 7 attempts, 250 ms backoff doubling
/// to 10 s, with jitter; no request, retries included, outlives 180 s unless its body is
/// large.
const RETRY: Retry = Retry {
    attempts: 7,
    first_backoff: Duration::from_millis(250),
    max_backoff: Duration::from_secs(10),
    jitter: true,
    budget: Some(Duration::from_secs(180)),
};

/// An arka-server repository.
#[derive(Clone)]
pub struct ServerStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// `https://host:port`, no path.
    base: Url,
    repo: String,
    auth: HeaderValue,
    /// `arka+https://host:port/repo`, for messages.
    shown: String,
    /// The target's bandwidth limits: bodies go and come in paced slices.
    limits: Limits,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore").field("url", &self.inner.shown).field("token", &"***").finish()
    }
}

impl std::fmt::Display for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerStore({})", self.inner.shown)
    }
}

/// An error from the server or the way to it, in words, with advice where there is some.
/// `store::advice` finds it inside an `object_store::Error`.
#[derive(Debug)]
pub struct ServerError {
    pub what: String,
    pub advice: Option<&'static str>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for ServerError {}

fn generic(what: String, advice: Option<&'static str>) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: Box::new(ServerError { what, advice }) }
}

/// The error of this store somewhere in `e`'s chain of causes.
fn server_error(e: &object_store::Error) -> Option<&ServerError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(se) = s.downcast_ref::<ServerError>() {
            return Some(se);
        }
        source = s.source();
    }
    None
}

/// The advice carried by an error of this store: `Some(advice)` when `e` came from here.
pub fn advice_of(e: &object_store::Error) -> Option<Option<&'static str>> {
    server_error(e).map(|se| se.advice)
}

/// An error of this store in words, with its advice: for the status page.
fn describe(e: &object_store::Error) -> String {
    match server_error(e) {
        Some(ServerError { what, advice: Some(a) }) => format!("{what}; {a}"),
        Some(se) => se.what.clone(),
        None => e.to_string(),
    }
}

/// What one attempt came to: done, worth another try, or final.
type Step<T> = crate::platform::retry::Step<T, object_store::Error>;

const ADVICE_UNREACHABLE: &str =
    "cannot reach the arka-server: check the URL's host and port, the network and firewall, and that arka-server runs";
const ADVICE_TLS: &str =
    "the server's TLS certificate is not trusted: give its CA with ARKA_SERVER_CA (ca_file in the \
     agent config), or pin the certificate with ARKA_SERVER_CERT_SHA256 (cert_sha256)";
const ADVICE_PIN: &str = "the server presented another certificate than the pinned one: if the server's certificate \
     was renewed, update ARKA_SERVER_CERT_SHA256 (cert_sha256); otherwise something is intercepting the connection";
const ADVICE_TOKEN: &str =
    "the server does not accept this token: check ARKA_SERVER_TOKEN (or ARKA_SERVER_TOKEN_FILE), \
     or token_file in the agent config's [[target]]";
const ADVICE_WRONG_REPO: &str =
    "this token is not for this repository: check the repository name in the URL, or ask for a token that covers it";
const ADVICE_NO_DELETE: &str = "this token may not delete: run prune on the NAS with a maintain token";
const ADVICE_ROLE: &str = "this token's role does not allow this operation";
const ADVICE_TOO_LARGE: &str = "the object is larger than the server accepts: raise max_object_mib in its config";

impl ServerStore {
    /// A store for `repo` on `base` (`https://host:port` or a loopback `http://`).
    pub fn new(base: &str, repo: &str, options: &ServerOptions) -> Result<Self> {
        let shown = format!("arka+{base}/{repo}");
        let base = Url::parse(base).map_err(|e| Error::Usage(format!("{shown}: {e}")))?;
        let resolved = options.resolve(&shown)?;
        let client = options::http_client(&resolved.trust)?;
        let auth = resolved.token.header();
        let inner = Inner { client, base, repo: repo.to_string(), auth, shown, limits: Limits::default() };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// This store with bandwidth limits (before it is shared).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.limits = limits;
        }
        self
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.inner.base.clone();
        url.set_path(path);
        url
    }

    /// The object's URL; only keys made of `A-Z a-z 0-9 . _ -` segments are sent (the
    /// server refuses anything outside arka's layout anyway, and this keeps `..` or
    /// escapes from ever being normalised into another path).
    fn object_url(&self, location: &Path) -> object_store::Result<Url> {
        let key = location.as_ref();
        if key.is_empty() || !listing::key_chars(key) {
            return Err(generic(format!("{key:?} is not a key arka-server accepts"), None));
        }
        Ok(self.url(&object_path(&self.inner.repo, key)))
    }

    /// Runs `attempt` until it is done or final, retrying by [`RETRY`]; `attempt` gets the
    /// attempt number (0 first).
    async fn retrying<T, F, Fut>(&self, attempt: F) -> object_store::Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Step<T>>,
    {
        let on_retry = |e: &object_store::Error| tracing::debug!("{}: retrying after {e}", self.inner.shown);
        RETRY.run(attempt, on_retry).await.map_err(|gave_up| gave_up.error)
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.inner.client.request(method, url).header(AUTHORIZATION, self.inner.auth.clone())
    }

    /// Pushes the agent's status report (`PUT /v1/agents/status`), with a short budget:
    /// a status push must never hold anything up.
    pub async fn push_status(&self, status: &AgentStatus) -> Result<(), String> {
        let body = serde_json::to_vec(status).map_err(|e| e.to_string())?;
        let url = self.url(&status_path());
        let send = async {
            let r = self
                .request(reqwest::Method::PUT, url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .map_err(|e| describe(&transport_error(e)))?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(describe(&answer_error(r, "status", "push status").await))
            }
        };
        tokio::time::timeout(Duration::from_secs(30), send)
            .await
            .unwrap_or_else(|_| Err("no answer within 30 s".into()))
    }

    async fn put(&self, location: &Path, bytes: Bytes) -> object_store::Result<PutResult> {
        let url = self.object_url(location)?;
        let key = location.as_ref();
        // Bounded, but room for a large pack on a slow uplink (256 KiB/s), or at the limit.
        let base = Duration::from_secs(60);
        let mut timeout = base + Duration::from_secs(bytes.len() as u64 / (256 << 10));
        let upload = self.inner.limits.upload.clone();
        if let Some(up) = &upload {
            timeout = timeout.max(up.budget(base, bytes.len() as u64));
        }
        self.retrying(|n| {
            let body = match &upload {
                Some(up) => reqwest::Body::wrap(PacedBody::new(Full::new(bytes.clone()), up.clone())),
                None => reqwest::Body::from(bytes.clone()),
            };
            let request = self.request(reqwest::Method::PUT, url.clone()).body(body).timeout(timeout);
            async move {
                let response = match request.send().await {
                    Ok(r) => r,
                    Err(e) => return transport_step(e),
                };
                match response.status() {
                    StatusCode::CREATED | StatusCode::OK | StatusCode::NO_CONTENT => Step::Done(put_result()),
                    s if retryable(s) => Step::Retry(answer_error(response, key, "write").await),
                    StatusCode::CONFLICT => match answer_error(response, key, "write").await {
                        // An earlier attempt stored it before its answer was lost.
                        object_store::Error::AlreadyExists { .. } if n > 0 => Step::Done(put_result()),
                        e => Step::Fail(e),
                    },
                    _ => Step::Fail(answer_error(response, key, "write").await),
                }
            }
        })
        .await
    }

    async fn get(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let url = self.object_url(location)?;
        let key = location.as_ref();
        if options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
            || options.version.is_some()
        {
            return Err(object_store::Error::NotImplemented {
                operation: "conditional or versioned reads".into(),
                implementer: STORE.into(),
            });
        }
        let range = match &options.range {
            None => None,
            Some(GetRange::Bounded(r)) if r.end <= r.start => {
                return Err(generic(format!("read of {key}: empty range {}..{}", r.start, r.end), None))
            }
            Some(GetRange::Bounded(r)) => Some(format!("bytes={}-{}", r.start, r.end - 1)),
            Some(GetRange::Offset(o)) => Some(format!("bytes={o}-")),
            Some(GetRange::Suffix(n)) => Some(format!("bytes=-{n}")),
        };
        let method = if options.head { reqwest::Method::HEAD } else { reqwest::Method::GET };
        let download = self.inner.limits.download.as_ref();
        let timeout = download.map_or(GET_TIMEOUT, |d| d.budget(GET_TIMEOUT, MAX_PACED_OBJECT).max(GET_TIMEOUT));
        let (meta, range, body) = self
            .retrying(|_| {
                let mut request = self.request(method.clone(), url.clone()).timeout(timeout);
                if let Some(r) = &range {
                    request = request.header(RANGE, r.as_str());
                }
                let (location, options) = (location, &options);
                async move {
                    let response = match send(request, key, "read").await {
                        Ok(r) => r,
                        Err(step) => return step,
                    };
                    let (meta, range) = match read_meta(location, response.status(), response.headers(), options) {
                        Ok(m) => m,
                        Err(e) => return Step::Fail(e),
                    };
                    if options.head {
                        return Step::Done((meta, range, Bytes::new()));
                    }
                    match read_body(response, range.end - range.start, download).await {
                        Ok(body) => Step::Done((meta, range, body)),
                        Err(e) => e.step(key),
                    }
                }
            })
            .await?;
        let payload = GetResultPayload::Stream(stream::once(async move { Ok(body) }).boxed());
        Ok(GetResult { payload, meta, range, attributes: Attributes::default(), extensions: Default::default() })
    }

    async fn delete_one(&self, location: Path) -> object_store::Result<Path> {
        let url = self.object_url(&location)?;
        let key = location.as_ref();
        self.retrying(|_| {
            let request = self.request(reqwest::Method::DELETE, url.clone()).timeout(Duration::from_secs(60));
            async move {
                let response = match request.send().await {
                    Ok(r) => r,
                    Err(e) => return transport_step(e),
                };
                match response.status() {
                    // Already gone is what was asked for.
                    s if s.is_success() || s == StatusCode::NOT_FOUND => Step::Done(()),
                    s if retryable(s) => Step::Retry(answer_error(response, key, "delete").await),
                    _ => Step::Fail(answer_error(response, key, "delete").await),
                }
            }
        })
        .await?;
        Ok(location)
    }

    async fn list_page(&self, prefix: &str, after: Option<&str>) -> object_store::Result<listing::CheckedPage> {
        let what = format!("{prefix}/");
        // Sent as is, unescaped, like keys in paths (the server reads the raw query): so
        // both are held to the key alphabet, and a server's `next_after` cannot add
        // parameters.
        if !listing::key_chars(prefix) || !after.is_none_or(listing::key_chars) {
            return Err(generic(format!("{prefix:?} after {after:?} is not a listing arka-server serves"), None));
        }
        let mut url = self.url(&list_path(&self.inner.repo));
        match after {
            Some(a) => url.set_query(Some(&format!("prefix={prefix}&after={a}"))),
            None => url.set_query(Some(&format!("prefix={prefix}"))),
        }
        let page = self
            .retrying(|_| {
                let request = self.request(reqwest::Method::GET, url.clone()).timeout(Duration::from_secs(120));
                let what = what.as_str();
                async move {
                    let response = match send(request, what, "list").await {
                        Ok(r) => r,
                        Err(step) => return step,
                    };
                    match read_body(response, listing::LIST_BODY_MAX as u64, self.inner.limits.download.as_ref()).await
                    {
                        Ok(body) => Step::Done(body),
                        Err(e) => e.step(what),
                    }
                }
            })
            .await?;
        let page: ListPage = serde_json::from_slice(&page)
            .map_err(|e| protocol(&what, format!("the listing is not a ListPage: {e}")))?;
        listing::check_page(prefix, after, page).map_err(|e| protocol(&what, e))
    }
}

fn put_result() -> PutResult {
    PutResult { e_tag: None, version: None, extensions: Default::default() }
}

fn transport_error(e: reqwest::Error) -> object_store::Error {
    let (connect, timeout) = (e.is_connect(), e.is_timeout());
    // Without the URL: it is ours, and the key is named by the caller's error.
    let text = chain(&e.without_url());
    let advice = if text.contains("not the pinned one") {
        Some(ADVICE_PIN)
    } else if text.contains("certificate") || text.contains("peer sent no certificates") {
        Some(ADVICE_TLS)
    } else if connect || timeout {
        Some(ADVICE_UNREACHABLE)
    } else {
        None
    };
    let what = if timeout { format!("no answer in time: {text}") } else { text };
    generic(what, advice)
}

/// Connection problems and timeouts are retried; a certificate the client refuses is not
/// (it will be refused again).
fn transport_step<T>(e: reqwest::Error) -> Step<T> {
    let error = transport_error(e);
    match advice_of(&error) {
        Some(Some(ADVICE_PIN | ADVICE_TLS)) => Step::Fail(error),
        _ => Step::Retry(error),
    }
}

/// Sends `request`. A success answer is returned to be read; the rest become the attempt's
/// step: a transport error, 5xx, 408 or 429 is worth another try, any other answer is final.
async fn send<T>(
    request: reqwest::RequestBuilder,
    key: &str,
    op: &str,
) -> std::result::Result<reqwest::Response, Step<T>> {
    let response = request.send().await.map_err(transport_step)?;
    let status = response.status();
    if retryable(status) {
        return Err(Step::Retry(answer_error(response, key, op).await));
    }
    if !status.is_success() {
        return Err(Step::Fail(answer_error(response, key, op).await));
    }
    Ok(response)
}

fn protocol(key: &str, what: String) -> object_store::Error {
    generic(format!("arka-server's answer for {key} is malformed: {what}"), None)
}

/// Turns a non-success answer into the `object_store` error `Store` expects, with the
/// server's message and advice.
async fn answer_error(response: reqwest::Response, key: &str, op: &str) -> object_store::Error {
    let status = response.status();
    let body = read_body(response, ERROR_BODY_MAX as u64, None).await.unwrap_or_default();
    let api: Option<ApiError> = serde_json::from_slice(&body).ok();
    let refusal = api.as_ref().and_then(|a| a.refusal);
    let message = api.map(|a| sanitize(&a.message)).unwrap_or_else(|| sanitize(&String::from_utf8_lossy(&body)));
    let refused = refusal.map(|r| format!(" {}", r.name())).unwrap_or_default();
    let what = if message.is_empty() {
        format!("arka-server answered {status}{refused}")
    } else {
        format!("arka-server answered {status}{refused}: {message}")
    };
    let path = key.to_string();
    let advice = match (status.as_u16(), refusal) {
        (401, _) => Some(ADVICE_TOKEN),
        (403, Some(Refusal::WrongRepo)) => Some(ADVICE_WRONG_REPO),
        (403, _) if op == "delete" => Some(ADVICE_NO_DELETE),
        (403, _) => Some(ADVICE_ROLE),
        (413, _) => Some(ADVICE_TOO_LARGE),
        (s, _) if retryable(StatusCode::from_u16(s).unwrap_or(status)) => {
            Some("the server failed; if this lasts, look at arka-server's log")
        }
        _ => None,
    };
    let source = Box::new(ServerError { what, advice });
    match (status.as_u16(), refusal) {
        (401, _) => object_store::Error::Unauthenticated { path, source },
        (403, _) => object_store::Error::PermissionDenied { path, source },
        (404, _) => object_store::Error::NotFound { path, source },
        (409, Some(Refusal::Exists)) => object_store::Error::AlreadyExists { path, source },
        _ => object_store::Error::Generic { store: STORE, source },
    }
}

/// The server's words, made safe to print: one line, no control characters, short.
fn sanitize(message: &str) -> String {
    let clean: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let clean = clean.trim();
    match clean.char_indices().nth(MESSAGE_MAX) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean.to_string(),
    }
}

enum BodyError {
    Transport(object_store::Error),
    Protocol(String),
}

impl BodyError {
    /// A body cut off on the way is worth another try; a malformed one is final.
    fn step<T>(self, key: &str) -> Step<T> {
        match self {
            BodyError::Transport(e) => Step::Retry(e),
            BodyError::Protocol(e) => Step::Fail(protocol(key, e)),
        }
    }
}

/// Reads a body of at most `max` bytes; an announced length is believed only up to `max`,
/// and the bytes must match it.
/// With a `pacer`, each piece is paid for as it arrives, so the connection's flow control
/// holds the sender to the limit.
async fn read_body(mut response: reqwest::Response, max: u64, pacer: Option<&Arc<Pacer>>) -> Result<Bytes, BodyError> {
    let announced = response.content_length();
    if announced.is_some_and(|n| n > max) {
        return Err(BodyError::Protocol(format!("{} bytes announced, at most {max} expected", announced.unwrap_or(0))));
    }
    let mut buf = BytesMut::with_capacity(announced.unwrap_or(0).min(max) as usize);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() as u64 + chunk.len() as u64 > max {
                    return Err(BodyError::Protocol(format!("more than {max} bytes sent")));
                }
                buf.extend_from_slice(&chunk);
                if let Some(p) = pacer {
                    p.take(chunk.len()).await;
                }
            }
            Ok(None) => break,
            Err(e) => return Err(BodyError::Transport(transport_error(e))),
        }
    }
    if announced.is_some_and(|n| n != buf.len() as u64) {
        return Err(BodyError::Transport(generic(
            format!("the body ended after {} of {} bytes", buf.len(), announced.unwrap_or(0)),
            None,
        )));
    }
    Ok(buf.freeze())
}

/// The object's size and store time, and the byte range the answer holds, checked against
/// what was asked.
fn read_meta(
    location: &Path,
    status: StatusCode,
    headers: &HeaderMap,
    options: &GetOptions,
) -> object_store::Result<(ObjectMeta, Range<u64>)> {
    let key = location.as_ref();
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let stored_at_ns = match header(STORED_AT_HEADER) {
        Some(v) => v.trim().parse::<i64>().map_err(|_| protocol(key, format!("{STORED_AT_HEADER}: {v:?}")))?,
        None => return Err(protocol(key, format!("no {STORED_AT_HEADER} header"))),
    };
    let length = header(CONTENT_LENGTH.as_str()).map(|v| v.trim().parse::<u64>());
    let (size, range) = match (status, &options.range) {
        (StatusCode::PARTIAL_CONTENT, Some(asked)) => {
            let cr = header(CONTENT_RANGE.as_str()).ok_or_else(|| protocol(key, "206 without Content-Range".into()))?;
            let (range, total) =
                parse_content_range(cr).ok_or_else(|| protocol(key, format!("Content-Range {cr:?}")))?;
            let want_start = match asked {
                GetRange::Bounded(r) => r.start,
                GetRange::Offset(o) => *o,
                GetRange::Suffix(n) => total.saturating_sub(*n),
            };
            let want_end = match asked {
                GetRange::Bounded(r) => r.end.min(total),
                _ => total,
            };
            if range.start != want_start || range.end != want_end {
                return Err(protocol(
                    key,
                    format!("asked for {want_start}..{want_end}, the answer holds {}..{}", range.start, range.end),
                ));
            }
            (total, range)
        }
        (StatusCode::PARTIAL_CONTENT, None) => return Err(protocol(key, "206 to a whole read".into())),
        (_, Some(_)) if !options.head => return Err(protocol(key, format!("{status} to a ranged read"))),
        _ => {
            let size = match length {
                Some(Ok(n)) => n,
                _ => return Err(protocol(key, "no Content-Length".into())),
            };
            if size > OBJECT_MAX {
                return Err(protocol(key, format!("an object of {size} bytes (at most {OBJECT_MAX} read whole)")));
            }
            (size, 0..size)
        }
    };
    let meta = ObjectMeta {
        location: location.clone(),
        last_modified: time_of_ns(stored_at_ns).into(),
        size,
        e_tag: None,
        version: None,
    };
    Ok((meta, range))
}

/// `bytes a-b/total` → (a..b+1, total), with a <= b < total.
fn parse_content_range(v: &str) -> Option<(Range<u64>, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, total) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?, total.parse::<u64>().ok()?);
    (a <= b && b < total).then_some((a..b + 1, total))
}

/// A store time as `SystemTime` (which `ObjectMeta` turns into its own type).
pub(crate) fn time_of_ns(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    let t = if ns >= 0 { UNIX_EPOCH.checked_add(d) } else { UNIX_EPOCH.checked_sub(d) };
    t.unwrap_or(UNIX_EPOCH)
}

fn not_supported(what: &str) -> object_store::Error {
    object_store::Error::NotSupported { source: format!("arka-server does not support {what}").into() }
}

#[async_trait]
impl ObjectStore for ServerStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match opts.mode {
            PutMode::Create => self.put(location, Bytes::from(payload)).await,
            PutMode::Overwrite | PutMode::Update(_) => {
                Err(not_supported("overwriting objects (writes are create-only)"))
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(object_store::Error::NotImplemented { operation: "multipart uploads".into(), implementer: STORE.into() })
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.get(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone();
        locations
            .and_then(move |location| {
                let this = this.clone();
                async move { this.delete_one(location).await }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let this = self.clone();
        let prefix = prefix.map(|p| p.as_ref().trim_end_matches('/').to_string()).unwrap_or_default();
        // (where the next page starts, whether a page is due, objects so far)
        let pages = stream::try_unfold((None::<String>, true, 0usize), move |(after, due, seen)| {
            let (this, prefix) = (this.clone(), prefix.clone());
            async move {
                if !due {
                    return Ok(None);
                }
                let page = this.list_page(&prefix, after.as_deref()).await?;
                let seen = seen + page.objects.len();
                if seen > listing::LISTING_MAX_OBJECTS {
                    return Err(protocol(&prefix, format!("the listing goes on past {seen} objects")));
                }
                let due = page.next_after.is_some();
                let next = page.next_after.or(after);
                Ok(Some((stream::iter(page.objects.into_iter().map(Ok)), (next, due, seen))))
            }
        });
        pages.try_flatten().boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let base = prefix.map(|p| p.as_ref().trim_end_matches('/').to_string()).unwrap_or_default();
        let all: Vec<ObjectMeta> = self.list(prefix).try_collect().await?;
        let mut objects = Vec::new();
        let mut common_prefixes: Vec<Path> = Vec::new();
        for meta in all {
            let rest = meta.location.as_ref().strip_prefix(base.as_str()).unwrap_or_default().trim_start_matches('/');
            match rest.split_once('/') {
                None => objects.push(meta),
                Some((dir, _)) => {
                    let p = if base.is_empty() { Path::from(dir) } else { Path::from(format!("{base}/{dir}")) };
                    if common_prefixes.last() != Some(&p) {
                        common_prefixes.push(p);
                    }
                }
            }
        }
        Ok(ListResult { common_prefixes, objects, extensions: Default::default() })
    }

    async fn copy_opts(&self, _from: &Path, _to: &Path, _options: CopyOptions) -> object_store::Result<()> {
        Err(object_store::Error::NotImplemented { operation: "copy".into(), implementer: STORE.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0..10, 100)));
        assert_eq!(parse_content_range("bytes 99-99/100"), Some((99..100, 100)));
        for bad in ["bytes 5-4/100", "bytes 0-100/100", "bytes */100", "items 0-1/2", "bytes 0-1", "bytes -1-2/3"] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn server_messages_are_one_short_line() {
        assert_eq!(sanitize("a\nb\x1b[31mc"), "a b [31mc");
        assert_eq!(sanitize(&"x".repeat(1000)).chars().count(), MESSAGE_MAX + 1);
    }

    #[test]
    fn store_times_convert_both_ways() {
        for ns in [0i64, 1, 1_700_000_000_123_456_789, -5_000_000_000] {
            let meta = ObjectMeta {
                location: Path::from("config"),
                last_modified: time_of_ns(ns).into(),
                size: 0,
                e_tag: None,
                version: None,
            };
            assert_eq!(meta.last_modified.timestamp_nanos_opt(), Some(ns));
        }
    }

    #[test]
    fn debug_shows_no_token() {
        // Built by hand: `ServerOptions::resolve` reads the environment.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let token = Token::new("very-secret-token-123").unwrap();
        let inner = Inner {
            client,
            base: Url::parse("https://nas:8443").unwrap(),
            repo: "clinic".into(),
            auth: token.header(),
            shown: "arka+https://nas:8443/clinic".into(),
            limits: Limits::default(),
        };
        let store = ServerStore { inner: Arc::new(inner) };
        let shown = format!("{store:?} {store}");
        assert!(!shown.contains("very-secret") && shown.contains("nas:8443/clinic"), "{shown}");
    }
}
