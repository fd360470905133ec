//! The HTTP surface: the object API (proto::server), status reports, the dashboard and
//! `/metrics`. Object paths are parsed from the raw request path, before any decoding, so
//! a percent-escaped slash or dot never reaches the storage layer. Who is asking is found
//! by the [`Authed`] and [`Caller`] extractors; what they may do, by the capability table.

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use axum::Router;
use bytes::Bytes;

use arka_proto::layout::{valid_list_prefix, ObjectKey, ObjectKind};
use arka_proto::server::{
    self as api, parse_range, ObjectTarget, Refusal, LIST_PAGE_MAX, STATUS_BODY_MAX, STORED_AT_HEADER,
};
use arka_proto::{AgentStatus, ObjectId};

use crate::agents::Report;
use crate::caller::{challenge, error_body, Authed, Caller};
use crate::capability::{Action, Kind};
use crate::metrics::{self, Metrics};
use crate::state::AppState;
use crate::storage::{now_ns, PutOutcome, StorageError};
use crate::uploads::{read_body, BodyError, BodyLimits};
use crate::{dashboard, view};

/// Largest `config` object: it is a few hundred bytes.
const CONFIG_MAX: usize = 64 << 10;

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

async fn unknown(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    caller.refuse(&state, Refusal::BadRequest, "no such API path".into())
}

async fn objects(State(state): State<Arc<AppState>>, who: Authed, req: Request) -> Response {
    let (repo, key) = match api::parse_object_path(req.uri().path()) {
        Ok(ObjectTarget::List { repo }) => (repo, None),
        Ok(ObjectTarget::Object { repo, key }) => (repo, Some(key)),
        Err(why) => return who.refuse(&state, Refusal::BadKey, why.into()),
    };
    if !who.token.reaches(&repo) {
        let why = format!("token {:?} is not for repository {repo:?}", who.token.name);
        return who.refuse(&state, Refusal::WrongRepo, why);
    }
    let kind = |key: &str| Kind::from(&ObjectKey::parse(key).expect("checked by parse_object_path"));
    let action = match (req.method(), key.as_deref()) {
        (&Method::GET, None) => Action::List,
        (&Method::GET | &Method::HEAD, Some(key)) => Action::Get(kind(key)),
        (&Method::PUT, Some(key)) => Action::Put(kind(key)),
        (&Method::DELETE, Some(key)) => Action::Delete(kind(key)),
        (m, _) => return who.refuse(&state, Refusal::BadRequest, format!("{m} is not allowed here")),
    };
    if let Some(refused) = who.forbidden(&state, action) {
        return refused;
    }
    let Some(key) = key else {
        return list(&state, &who, &repo, req.uri().query()).await;
    };
    match action {
        Action::Get(_) if req.method() == Method::HEAD => head_object(&state, &repo, &key).await,
        Action::Get(_) => get_object(&state, &who, &repo, &key, req.headers()).await,
        Action::Put(_) => put_object(&state, &who, &repo, &key, req).await,
        _ => delete_object(&state, &who, &repo, &key).await,
    }
}

async fn head_object(state: &AppState, repo: &str, key: &str) -> Response {
    match state.storage.head(repo, key).await {
        Ok(Some((size, stored))) => object_headers(StatusCode::OK, size, stored, None, Body::empty()),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => storage_failed(state, e),
    }
}

async fn delete_object(state: &AppState, who: &Authed, repo: &str, key: &str) -> Response {
    match state.storage.delete(repo, key).await {
        Ok(existed) => {
            if existed {
                Metrics::add(&state.metrics.objects_deleted, 1);
                tracing::info!(token = %who.token.name, repo, key, "deleted");
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => storage_failed(state, e),
    }
}

async fn list(state: &AppState, who: &Authed, repo: &str, query: Option<&str>) -> Response {
    let (mut prefix, mut after, mut limit) = (String::new(), None, LIST_PAGE_MAX);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "prefix" => prefix = v.to_string(),
            "after" if ObjectKey::parse(v).is_some() => after = Some(v.to_string()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=LIST_PAGE_MAX).contains(&n) => limit = n,
                _ => return who.refuse(state, Refusal::BadRequest, format!("limit: 1 to {LIST_PAGE_MAX}")),
            },
            _ => return who.refuse(state, Refusal::BadKey, format!("listing parameter {k:?} is not valid")),
        }
    }
    if !valid_list_prefix(&prefix) {
        return who.refuse(state, Refusal::BadKey, "the prefix is not a folder arka writes".into());
    }
    match state.storage.list_page(repo, &prefix, after.as_deref(), limit).await {
        Ok(page) => {
            let body = serde_json::to_vec(&page).unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => storage_failed(state, e),
    }
}

async fn get_object(state: &AppState, who: &Authed, repo: &str, key: &str, headers: &HeaderMap) -> Response {
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
            return who.refuse(state, Refusal::BadRequest, "Range: use one `bytes=a-b`".into());
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

async fn put_object(state: &AppState, who: &Authed, repo: &str, key: &str, req: Request) -> Response {
    let parsed = ObjectKey::parse(key).expect("checked by parse_target");
    let limit = match parsed {
        // A config copy is the config's bytes: the same small limit.
        ObjectKey::Config | ObjectKey::Content { kind: ObjectKind::ConfigCopy, .. } => CONFIG_MAX,
        ObjectKey::Content { .. } => state.config.max_object_bytes as usize,
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large = || format!("the object is larger than this server's limit of {limit} bytes (max_object_mib)");
    if declared.is_some_and(|n| n > limit as u64) {
        return who.refuse(state, Refusal::TooLarge, too_large());
    }
    // Buffer at most `max_uploads` bodies at once, `max_uploads_per_token` of one token;
    // the rest wait here. The slot is held until the object is stored.
    let Some(_slot) = state.uploads.acquire(&who.token.name).await else {
        return error_body(StatusCode::SERVICE_UNAVAILABLE, None, "the server is shutting down".into());
    };
    let bytes = match receive(state, who, req.into_body(), limit, too_large).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if let Some(expected) = parsed.expected_id() {
        let actual = ObjectId::of(&bytes);
        if actual != expected {
            let why = format!("the bytes hash to {}, not to the object's name", actual.short());
            return who.refuse(state, Refusal::HashMismatch, why);
        }
    }
    let size = bytes.len() as u64;
    match state.storage.put_new(repo, key, bytes).await {
        Ok(PutOutcome::Created) => {
            // Who wrote what: when `arka verify` names a snapshot, index segment or plan
            // that does not open (junk an append token may write), this line says which
            // token wrote it. Packs are many and name nothing, so they stay at debug.
            match parsed {
                ObjectKey::Content { kind: ObjectKind::Pack, .. } => {
                    tracing::debug!(token = who.token.name.as_str(), repo, key, size, "created")
                }
                _ => tracing::info!(token = who.token.name.as_str(), repo, key, size, "created"),
            }
            Metrics::add(&state.metrics.objects_created, 1);
            Metrics::add(&state.metrics.bytes_received, size);
            StatusCode::CREATED.into_response()
        }
        Ok(PutOutcome::Exists) => {
            let why = "the object exists; objects are never overwritten".to_string();
            who.refuse(state, Refusal::Exists, why)
        }
        Err(e) => storage_failed(state, e),
    }
}

/// Reads a request body within the size and time limits. A client cut for being slow gets
/// 408 and the connection is closed (what it still sends is not read); it is logged and
/// counted, but not as a refusal: the request may have been fine, the line was not.
async fn receive(
    state: &AppState,
    who: &Authed,
    body: Body,
    limit: usize,
    too_large: impl FnOnce() -> String,
) -> Result<Bytes, Response> {
    let e = match read_body(body, limit, BodyLimits::from(&state.config.limits)).await {
        Ok(b) => return Ok(b),
        Err(e) => e,
    };
    let Some(reason) = e.slow_reason() else {
        return Err(match e {
            BodyError::TooLarge => who.refuse(state, Refusal::TooLarge, too_large()),
            e => who.refuse(state, Refusal::BadRequest, e.to_string()),
        });
    };
    state.metrics.slow_client_cut(reason);
    tracing::warn!(token = %who.token.name, remote = who.ctx.remote(), reason, "cut a slow client: {e}");
    let mut resp = error_body(StatusCode::REQUEST_TIMEOUT, None, e.to_string());
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    Err(resp)
}

async fn push_status(State(state): State<Arc<AppState>>, who: Authed, req: Request) -> Response {
    if let Some(refused) = who.forbidden(&state, Action::PushStatus) {
        return refused;
    }
    let too_large = || "a status report is at most 1 MiB".to_string();
    let bytes = match receive(&state, &who, req.into_body(), STATUS_BODY_MAX, too_large).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let status: AgentStatus = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => return who.refuse(&state, Refusal::BadRequest, format!("not a status report: {e}")),
    };
    let report = Report { received_ns: now_ns(), status };
    match state.agents.record(&who.token.name, report) {
        Ok(()) => {
            Metrics::add(&state.metrics.status_reports, 1);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::error!(agent = %who.token.name, "cannot save a status report: {e}");
            error_body(StatusCode::SERVICE_UNAVAILABLE, None, "the server cannot save the report".into())
        }
    }
}

async fn dashboard_page(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let Some(token) = &caller.token else {
        // A browser's first visit carries no credentials and is answered with the sign-in
        // challenge alone; only a wrong credential counts as a refusal.
        if !caller.presented {
            return challenge(error_body(StatusCode::UNAUTHORIZED, None, "sign in with a token".into()));
        }
        return caller.refuse(&state, Refusal::Unauthenticated, "sign in with a token".into());
    };
    // Every role may view the fleet today; the check keeps the table the one place that says so.
    let who = Authed { ctx: caller.ctx, token: token.clone() };
    if let Some(refused) = who.forbidden(&state, Action::ViewFleet) {
        return refused;
    }
    let html = dashboard::render(&view::fleet_view(&state, &who.token));
    let mut resp = axum::response::Html(html).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn metrics_page(State(state): State<Arc<AppState>>, who: Authed) -> Response {
    if let Some(refused) = who.forbidden(&state, Action::ReadMetrics) {
        return refused;
    }
    let text = metrics::render(&state.metrics, &view::gauges(&state, &who.token));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
