//! The agent's status endpoint: the runner keeps an [`AgentStatus`] on a [`StatusBoard`],
//! and [`serve`] shows it over HTTP as `/status` (JSON), `/metrics` (Prometheus text),
//! `/healthz` (200 "ok" or 503 with the problems) and `/` (an HTML page for people), and
//! takes `POST /run-now` ("back up now", see `run_now`).
//!
//! Access: loopback by default; [`serve`] refuses any other address unless a token is set,
//! and with a token every route wants `Authorization: Bearer TOKEN` or `?token=TOKEN`. No
//! route shows a file name: the report types cannot carry one (see `arka_proto::status`).

mod metrics;
mod page;
mod pictures;
mod run_now;

pub use run_now::{urlencode, RunNow, REQUEST_HEADER};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arka_proto::AgentStatus;
use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{Error, Result};

/// The live report. The runner writes with [`update`](Self::update); the endpoint and
/// anyone who [`subscribe`](Self::subscribe)s (notifications) read it.
#[derive(Debug)]
pub struct StatusBoard {
    current: watch::Sender<AgentStatus>,
    run_now: RunNow,
}

impl StatusBoard {
    pub fn new(initial: AgentStatus) -> Self {
        Self { current: watch::Sender::new(initial), run_now: RunNow::default() }
    }

    /// The "back up now" signals of the sources.
    pub fn run_now(&self) -> &RunNow {
        &self.run_now
    }

    /// Changes the report in place and wakes subscribers. Keep `f` short: readers wait
    /// while it runs.
    pub fn update(&self, f: impl FnOnce(&mut AgentStatus)) {
        self.current.send_modify(f);
    }

    /// The report as of now: `now_ns` set to the clock and lateness reassessed, so a source
    /// whose runner is stuck still turns `Late` when its RPO passes.
    pub fn snapshot(&self) -> AgentStatus {
        let mut st = self.current.borrow().clone();
        st.reassess(now_ns());
        st
    }

    /// A receiver that sees every [`update`](Self::update) (not reassessed: call
    /// [`AgentStatus::reassess`] on what it borrows).
    pub fn subscribe(&self) -> watch::Receiver<AgentStatus> {
        self.current.subscribe()
    }
}

fn now_ns() -> i64 {
    i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX)
}

/// The endpoint's routes. With `token` set, every route requires it; an empty token
/// matches no request.
pub fn router(board: Arc<StatusBoard>, token: Option<String>) -> Router {
    // Compared as BLAKE3 hashes: `blake3::Hash` equality is constant-time, and hashing
    // first hides the token's length too.
    let expected = Arc::new(token.map(|t| blake3::hash(t.as_bytes())));
    Router::new()
        .route("/", get(page_route))
        .route("/status", get(status_route))
        .route("/metrics", get(metrics_route))
        .route("/healthz", get(healthz_route))
        .route("/run-now", post(run_now::run_now_route))
        .with_state(board)
        .layer(middleware::from_fn_with_state(expected, require_token))
        .layer(middleware::map_response(security_headers))
}

/// Binds `bind` and serves [`router`] until `shutdown` completes.
pub async fn serve(
    bind: SocketAddr,
    board: Arc<StatusBoard>,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    check_exposure(bind, token.as_deref())?;
    let listener = TcpListener::bind(bind).await.map_err(|e| Error::io(format!("status endpoint on {bind}"), e))?;
    serve_on(listener, board, token, shutdown).await
}

/// Serves on a listener the caller bound (tests and the demo bind port 0 and print the
/// port). Refuses a non-loopback listener without a token, like [`serve`].
pub async fn serve_on(
    listener: TcpListener,
    board: Arc<StatusBoard>,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr().map_err(|e| Error::io("status endpoint", e))?;
    check_exposure(addr, token.as_deref())?;
    tracing::info!(%addr, token = token.is_some(), "status endpoint listening");
    axum::serve(listener, router(board, token))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io(format!("status endpoint on {addr}"), e))
}

/// Anyone on the network could read the report (source names, host name, errors) and
/// hammer the agent, so only loopback may go without a token.
fn check_exposure(addr: SocketAddr, token: Option<&str>) -> Result<()> {
    match token {
        Some("") => Err(Error::Config("[status] token is empty: set a long random token or remove the key".into())),
        None if !addr.ip().is_loopback() => Err(Error::Config(format!(
            "[status] bind = \"{addr}\" is reachable from the network: set [status] token_file, or bind to 127.0.0.1"
        ))),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct TokenParam {
    token: Option<String>,
}

async fn require_token(State(expected): State<Arc<Option<blake3::Hash>>>, req: Request, next: Next) -> Response {
    let Some(expected) = expected.as_ref() else {
        // Without a token only loopback reaches the endpoint; a Host that names something
        // else is a web page that rebound its own domain to this machine (DNS rebinding).
        if !run_now::loopback_host(req.headers()) {
            let why = "This status page answers only at http://127.0.0.1:PORT/ or http://localhost:PORT/\n";
            return (StatusCode::MISDIRECTED_REQUEST, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], why)
                .into_response();
        }
        return next.run(req).await;
    };
    let given = bearer(req.headers())
        .map(str::to_owned)
        .or_else(|| Query::<TokenParam>::try_from_uri(req.uri()).ok().and_then(|q| q.0.token));
    match given {
        Some(g) if !g.is_empty() && blake3::hash(g.as_bytes()) == *expected => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"arka\""), (header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This status page needs its access token: add ?token=... to the address, \
             or send the header Authorization: Bearer ...\n",
        )
            .into_response(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn status_route(State(board): State<Arc<StatusBoard>>) -> Response {
    match serde_json::to_string_pretty(&board.snapshot()) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the report: {e}\n")).into_response(),
    }
}

async fn metrics_route(State(board): State<Arc<StatusBoard>>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render(&board.snapshot())).into_response()
}

/// 200 "ok" while [`AgentStatus::healthy`]; otherwise 503 with one problem per line, for
/// Nagios, Zabbix or Uptime Kuma.
async fn healthz_route(State(board): State<Arc<StatusBoard>>) -> Response {
    let problems = board.snapshot().problems();
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if problems.is_empty() {
        (StatusCode::OK, text, "ok\n".to_string()).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, text, problems.join("\n") + "\n").into_response()
    }
}

async fn page_route(State(board): State<Arc<StatusBoard>>, Query(q): Query<TokenParam>) -> Response {
    // The forms post back with the token the page was opened with (already checked).
    let forms = page::Forms { csrf: board.run_now().csrf(), token: q.token.as_deref() };
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page::render(&board.snapshot(), Some(&forms)))
        .into_response()
}

#[cfg(test)]
mod tests;
