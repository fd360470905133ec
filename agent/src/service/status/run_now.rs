//! "Back up now": `POST /run-now` (from `arka agent run-now` or the status page's buttons)
//! wakes a source's task as if its schedule had come.
//!
//! Forged requests: any web page the receptionist opens could make the browser post to
//! `http://127.0.0.1:…/run-now`. A request is taken only with one of
//! - the form field `csrf` equal to this process's random secret, which only a page served
//!   by the agent carries (another site cannot read that page: same-origin policy); or
//! - the header `X-Arka-Request: run-now`, which a cross-site form cannot send and a
//!   cross-site `fetch` may send only after a CORS preflight the agent never grants;
//!
//! and never with `Sec-Fetch-Site: cross-site`. Without a status token, the Host header must
//! name a loopback address, so a DNS-rebinding page cannot read the secret either (see
//! `status::require_token`). With a token, every route wants it anyway.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tokio::sync::Notify;

use super::StatusBoard;

/// The header `arka agent run-now` sends.
pub const REQUEST_HEADER: &str = "x-arka-request";

/// The sources that can be woken, and the secret the page's forms carry.
pub struct RunNow {
    sources: Mutex<Vec<(String, Arc<Notify>)>>,
    csrf: String,
}

impl std::fmt::Debug for RunNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunNow").field("sources", &self.sources).finish_non_exhaustive()
    }
}

impl Default for RunNow {
    fn default() -> Self {
        Self { sources: Mutex::default(), csrf: format!("{:032x}", rand::random::<u128>()) }
    }
}

impl RunNow {
    /// The signal that wakes the source `name` (its task waits on it beside its schedule).
    pub fn register(&self, name: &str) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.sources.lock().expect("no panics while locked").push((name.to_string(), notify.clone()));
        notify
    }

    /// Wakes `name`, or every source; returns the names woken. A source that is running
    /// runs once more right after.
    pub fn trigger(&self, name: Option<&str>) -> Result<Vec<String>, String> {
        let sources = self.sources.lock().expect("no panics while locked");
        let chosen: Vec<_> = sources.iter().filter(|(n, _)| name.is_none_or(|want| want == n)).collect();
        if chosen.is_empty() {
            let known: Vec<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
            return Err(match name {
                Some(_) => format!("no source has that name; the sources are: {}", known.join(", ")),
                None => "no sources are configured".to_string(),
            });
        }
        for (_, notify) in &chosen {
            notify.notify_one();
        }
        Ok(chosen.iter().map(|(n, _)| n.clone()).collect())
    }

    /// The secret the status page puts in its forms.
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }

    fn csrf_matches(&self, given: &str) -> bool {
        // Constant-time, like the token.
        blake3::hash(given.as_bytes()) == blake3::hash(self.csrf.as_bytes())
    }
}

#[derive(Deserialize)]
pub(super) struct RunNowForm {
    source: Option<String>,
    csrf: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    token: Option<String>,
}

pub(super) async fn run_now_route(
    State(board): State<Arc<StatusBoard>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    Form(form): Form<RunNowForm>,
) -> Response {
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site");
    let from_cli = headers.get(REQUEST_HEADER).is_some_and(|v| v.as_bytes() == b"run-now");
    let from_page = form.csrf.as_deref().is_some_and(|c| board.run_now().csrf_matches(c));
    if cross_site || !(from_cli || from_page) {
        let why = "refused: this request did not come from the status page or `arka agent run-now`\n";
        return (StatusCode::FORBIDDEN, text, why).into_response();
    }
    let source = form.source.as_deref().filter(|s| !s.is_empty());
    match board.run_now().trigger(source) {
        Ok(_) if from_page => {
            // Back to the page, which shows the source running.
            let back = match query.token {
                Some(t) => format!("./?token={}", urlencode(&t)),
                None => "./".to_string(),
            };
            Redirect::to(&back).into_response()
        }
        Ok(names) => (StatusCode::ACCEPTED, text, format!("backing up now: {}\n", names.join(", "))).into_response(),
        Err(why) => (StatusCode::NOT_FOUND, text, why + "\n").into_response(),
    }
}

/// Percent-encodes everything but unreserved characters (a token is used as given).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether the Host header names this machine's loopback interface (or is absent, as in
/// HTTP/1.0): what a page that rebinds its own domain to 127.0.0.1 cannot send.
pub(super) fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else { return true };
    let Ok(host) = host.to_str() else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
