//! The HTTP surface: the object API (proto::server), status reports, the dashboard and
//! `/metrics`. Object paths are parsed from the raw request path, before any decoding, so
//! a percent-escaped slash or dot never reaches the storage layer.

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use axum::Router;
use bytes::Bytes;
use tokio::sync::Semaphore;

use arka_proto::layout::{valid_list_prefix, ObjectKey};
use arka_proto::server::{
    self as api, parse_range, ApiError, ObjectTarget, Refusal, LIST_PAGE_MAX, STATUS_BODY_MAX, STORED_AT_HEADER,
};
use arka_proto::{AgentStatus, ObjectId};

use crate::agents::{AgentReports, Report};
use crate::auth::{Token, Tokens};
use crate::config::{Config, Role};
use crate::fleet::RefusalRow;
use crate::metrics::{self, Metrics};
use crate::storage::{now_ns, PutOutcome, Storage, StorageError};
use crate::{dashboard, view};

/// Largest `config` object: it is a few hundred bytes.
const CONFIG_MAX: usize = 64 << 10;

pub struct AppState {
    pub config: Config,
    pub tokens: Tokens,
    pub storage: Storage,
    pub agents: AgentReports,
    pub metrics: Metrics,
    /// Bounds the uploads buffered in memory at once.
    pub uploads: Semaphore,
}

/// The peer's address, put on each request by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Remote(pub std::net::SocketAddr);

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(dashboard_page))
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        // Browsers ask for it on every visit; not worth a refusal.
        .route("/favicon.ico", get(|| async { StatusCode::NOT_FOUND }))
        .route("/v1/agents/status", put(push_status))
        .route("/v1/repos/{*rest}", any(objects))
        .fallback(unknown)
        .with_state(state)
}

/// What a refusal log line and the admin view record about the request.
struct Ctx {
    method: Method,
    path: String,
    remote: String,
}

impl Ctx {
    fn of(req: &Request) -> Self {
        let remote = req.extensions().get::<Remote>().map_or_else(|| "-".into(), |r| r.0.ip().to_string());
        let path: String = req.uri().path().chars().take(200).collect();
        Self { method: req.method().clone(), path, remote }
    }
}

fn refuse(state: &AppState, ctx: &Ctx, token: Option<&Token>, reason: Refusal, message: String) -> Response {
    let token_name = token.map(|t| t.name.clone());
    // Never the secret: the token is named by its config name. `?` escapes whatever an
    // attacker put in the path.
    tracing::warn!(
        reason = reason.name(),
        token = token_name.as_deref().unwrap_or("-"),
        remote = %ctx.remote,
        method = %ctx.method,
        path = ?ctx.path,
        "refused: {message}"
    );
    state.metrics.refused(RefusalRow {
        at_ns: now_ns(),
        reason,
        token: token_name,
        remote: ctx.remote.clone(),
        method: ctx.method.to_string(),
        path: ctx.path.clone(),
    });
    let status = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = error_body(status, Some(reason), message);
    if reason == Refusal::Unauthenticated {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"arka-server\""));
    }
    resp
}

fn error_body(status: StatusCode, refusal: Option<Refusal>, message: String) -> Response {
    let body = serde_json::to_vec(&ApiError { refusal, message }).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn storage_failed(state: &AppState, e: StorageError) -> Response {
    match e {
        StorageError::NotFound => error_body(StatusCode::NOT_FOUND, None, "no such object".into()),
        StorageError::BadRange => {
            error_body(StatusCode::RANGE_NOT_SATISFIABLE, None, "the range is outside the object".into())
        }
        StorageError::Backend(e) => {
            metrics::Metrics::add(&state.metrics.storage_errors, 1);
            tracing::error!("storage failed: {e}");
            error_body(StatusCode::SERVICE_UNAVAILABLE, None, "the server's storage failed; try again later".into())
        }
    }
}

fn authenticate<'a>(state: &'a AppState, headers: &HeaderMap) -> Option<&'a Token> {
    state.tokens.authenticate(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
}

async fn unknown(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let ctx = Ctx::of(&req);
    Metrics::add(&state.metrics.requests, 1);
    let token = authenticate(&state, req.headers());
    refuse(&state, &ctx, token, Refusal::BadRequest, "no such API path".into())
}

async fn objects(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let ctx = Ctx::of(&req);
    Metrics::add(&state.metrics.requests, 1);
    let Some(token) = authenticate(&state, req.headers()) else {
        return refuse(&state, &ctx, None, Refusal::Unauthenticated, "a valid token is required".into());
    };
    let target = match api::parse_object_path(req.uri().path()) {
        Ok(t) => t,
        Err(why) => return refuse(&state, &ctx, Some(token), Refusal::BadKey, why.into()),
    };
    let repo = match &target {
        ObjectTarget::List { repo } | ObjectTarget::Object { repo, .. } => repo.clone(),
    };
    if !token.reaches(&repo) {
        let why = format!("token {:?} is not for repository {repo:?}", token.name);
        return refuse(&state, &ctx, Some(token), Refusal::WrongRepo, why);
    }
    match (req.method().clone(), target) {
        (Method::GET, ObjectTarget::List { repo }) => list(&state, &ctx, token, &repo, req.uri().query()).await,
        (Method::GET, ObjectTarget::Object { repo, key }) => {
            get_object(&state, &ctx, token, &repo, &key, req.headers()).await
        }
        (Method::HEAD, ObjectTarget::Object { repo, key }) => match state.storage.head(&repo, &key).await {
            Ok(Some((size, stored))) => object_headers(StatusCode::OK, size, stored, None, Body::empty()),
            Ok(None) => StatusCode::NOT_FOUND.into_response(),
            Err(e) => storage_failed(&state, e),
        },
        (Method::PUT, ObjectTarget::Object { repo, key }) => put_object(&state, &ctx, token, &repo, &key, req).await,
        (Method::DELETE, ObjectTarget::Object { repo, key }) => {
            if !token.may_delete() {
                let why = format!(
                    "token {:?} has role {}, which never deletes: prune with a maintain token on the NAS",
                    token.name,
                    token.role.name()
                );
                return refuse(&state, &ctx, Some(token), Refusal::Role, why);
            }
            match state.storage.delete(&repo, &key).await {
                Ok(existed) => {
                    if existed {
                        Metrics::add(&state.metrics.objects_deleted, 1);
                        tracing::info!(token = %token.name, repo, key, "deleted");
                    }
                    StatusCode::NO_CONTENT.into_response()
                }
                Err(e) => storage_failed(&state, e),
            }
        }
        (m, _) => refuse(&state, &ctx, Some(token), Refusal::BadRequest, format!("{m} is not allowed here")),
    }
}

async fn list(state: &AppState, ctx: &Ctx, token: &Token, repo: &str, query: Option<&str>) -> Response {
    let (mut prefix, mut after, mut limit) = (String::new(), None, LIST_PAGE_MAX);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "prefix" => prefix = v.to_string(),
            "after" if ObjectKey::parse(v).is_some() => after = Some(v.to_string()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=LIST_PAGE_MAX).contains(&n) => limit = n,
                _ => {
                    return refuse(state, ctx, Some(token), Refusal::BadRequest, format!("limit: 1 to {LIST_PAGE_MAX}"))
                }
            },
            _ => {
                return refuse(
                    state,
                    ctx,
                    Some(token),
                    Refusal::BadKey,
                    format!("listing parameter {k:?} is not valid"),
                )
            }
        }
    }
    if !valid_list_prefix(&prefix) {
        return refuse(state, ctx, Some(token), Refusal::BadKey, "the prefix is not a folder arka writes".into());
    }
    match state.storage.list_page(repo, &prefix, after.as_deref(), limit).await {
        Ok(page) => {
            let body = serde_json::to_vec(&page).unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => storage_failed(state, e),
    }
}

async fn get_object(
    state: &AppState,
    ctx: &Ctx,
    token: &Token,
    repo: &str,
    key: &str,
    headers: &HeaderMap,
) -> Response {
    let range = match headers.get(header::RANGE).map(|v| v.to_str().ok().and_then(parse_range)) {
        None => None,
        Some(Some((start, Some(end)))) => Some(start..end),
        Some(Some((start, None))) => match state.storage.head(repo, key).await {
            Ok(Some((size, _))) if start < size => Some(start..size),
            Ok(Some(_)) => return storage_failed(state, StorageError::BadRange),
            Ok(None) => return storage_failed(state, StorageError::NotFound),
            Err(e) => return storage_failed(state, e),
        },
        Some(None) => {
            return refuse(state, ctx, Some(token), Refusal::BadRequest, "Range: use one `bytes=a-b`".into());
        }
    };
    let ranged = range.is_some();
    match state.storage.get(repo, key, range).await {
        Ok(f) => {
            Metrics::add(&state.metrics.bytes_sent, f.bytes.len() as u64);
            let status = if ranged { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
            let range = ranged.then_some(f.range.clone());
            object_headers(status, f.size, f.stored_at_ns, range, Body::from(f.bytes))
        }
        Err(e) => storage_failed(state, e),
    }
}

fn object_headers(status: StatusCode, size: u64, stored_at_ns: i64, range: Option<Range<u64>>, body: Body) -> Response {
    let len = range.as_ref().map_or(size, |r| r.end - r.start);
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(STORED_AT_HEADER, HeaderValue::from(stored_at_ns));
    if let Some(r) = range {
        let v = format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1));
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&v).expect("digits only"));
    }
    resp
}

async fn put_object(state: &AppState, ctx: &Ctx, token: &Token, repo: &str, key: &str, req: Request) -> Response {
    let parsed = ObjectKey::parse(key).expect("checked by parse_target");
    let limit = match parsed {
        ObjectKey::Config => CONFIG_MAX,
        ObjectKey::Content { .. } => state.config.max_object_bytes as usize,
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let why = format!("the object is larger than this server's limit of {limit} bytes (max_object_mib)");
        return refuse(state, ctx, Some(token), Refusal::TooLarge, why);
    }
    // Buffer at most `max_uploads` bodies at once; the rest wait here.
    let Ok(_permit) = state.uploads.acquire().await else {
        return error_body(StatusCode::SERVICE_UNAVAILABLE, None, "the server is shutting down".into());
    };
    let bytes: Bytes = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => {
            let why = format!("the object is larger than this server's limit of {limit} bytes (max_object_mib)");
            return refuse(state, ctx, Some(token), Refusal::TooLarge, why);
        }
        Err(e) => {
            let why = format!("the upload did not arrive whole: {e}");
            return refuse(state, ctx, Some(token), Refusal::BadRequest, why);
        }
    };
    if let Some(expected) = parsed.expected_id() {
        let actual = ObjectId::of(&bytes);
        if actual != expected {
            let why = format!("the bytes hash to {}, not to the object's name", actual.short());
            return refuse(state, ctx, Some(token), Refusal::HashMismatch, why);
        }
    }
    let size = bytes.len() as u64;
    match state.storage.put_new(repo, key, bytes).await {
        Ok(PutOutcome::Created) => {
            Metrics::add(&state.metrics.objects_created, 1);
            Metrics::add(&state.metrics.bytes_received, size);
            StatusCode::CREATED.into_response()
        }
        Ok(PutOutcome::Exists) => {
            let why = "the object exists; objects are never overwritten".to_string();
            refuse(state, ctx, Some(token), Refusal::Exists, why)
        }
        Err(e) => storage_failed(state, e),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

async fn push_status(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let ctx = Ctx::of(&req);
    Metrics::add(&state.metrics.requests, 1);
    let Some(token) = authenticate(&state, req.headers()) else {
        return refuse(&state, &ctx, None, Refusal::Unauthenticated, "a valid token is required".into());
    };
    let bytes = match axum::body::to_bytes(req.into_body(), STATUS_BODY_MAX).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(&state, &ctx, Some(token), Refusal::TooLarge, "a status report is at most 1 MiB".into())
        }
    };
    let status: AgentStatus = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => return refuse(&state, &ctx, Some(token), Refusal::BadRequest, format!("not a status report: {e}")),
    };
    let report = Report { received_ns: now_ns(), status };
    match state.agents.record(&token.name, report) {
        Ok(()) => {
            Metrics::add(&state.metrics.status_reports, 1);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::error!(agent = %token.name, "cannot save a status report: {e}");
            error_body(StatusCode::SERVICE_UNAVAILABLE, None, "the server cannot save the report".into())
        }
    }
}

async fn dashboard_page(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let ctx = Ctx::of(&req);
    Metrics::add(&state.metrics.requests, 1);
    let Some(token) = authenticate(&state, req.headers()) else {
        // A browser's first visit carries no credentials and is answered with the sign-in
        // challenge alone; only a wrong credential counts as a refusal.
        if !req.headers().contains_key(header::AUTHORIZATION) {
            let mut resp = error_body(StatusCode::UNAUTHORIZED, None, "sign in with a token".into());
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"arka-server\""));
            return resp;
        }
        return refuse(&state, &ctx, None, Refusal::Unauthenticated, "sign in with a token".into());
    };
    let html = dashboard::render(&view::fleet_view(&state, token));
    let mut resp = axum::response::Html(html).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn metrics_page(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let ctx = Ctx::of(&req);
    Metrics::add(&state.metrics.requests, 1);
    let Some(token) = authenticate(&state, req.headers()) else {
        return refuse(&state, &ctx, None, Refusal::Unauthenticated, "a valid token is required".into());
    };
    if token.role == Role::Append {
        let why = "metrics cover every repository: use a maintain or admin token".into();
        return refuse(&state, &ctx, Some(token), Refusal::Role, why);
    }
    let text = metrics::render(&state.metrics, &view::gauges(&state, token));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
