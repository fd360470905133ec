//! Who is asking, found once per request: the [`Caller`] and [`Authed`] extractors read
//! the credentials, resolve them through [`Tokens`](crate::auth::Tokens) and count the
//! request; every refusal is answered, logged and counted here, the same way for every
//! route.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use arka_proto::server::{ApiError, Refusal};

use crate::auth::Token;
use crate::capability::{self, Action};
use crate::fleet::RefusalRow;
use crate::metrics::Metrics;
use crate::state::{AppState, Remote};
use crate::storage::now_ns;

/// The sign-in challenge: a browser asks for a user name and password (the secret).
const CHALLENGE: &str = "Basic realm=\"arka-server\"";

/// What a refusal log line and the admin view record about the request.
pub struct Ctx {
    method: Method,
    path: String,
    remote: String,
}

impl Ctx {
    fn of(parts: &Parts) -> Self {
        let remote = parts.extensions.get::<Remote>().map_or_else(|| "-".into(), |r| r.0.ip().to_string());
        let path: String = parts.uri.path().chars().take(200).collect();
        Self { method: parts.method.clone(), path, remote }
    }

    /// The peer's address, for a log line.
    pub fn remote(&self) -> &str {
        &self.remote
    }
}

/// Any request, with the token its credentials name if the server knows it. Extracting
/// it counts the request, so every handler takes exactly one `Caller` or [`Authed`].
pub struct Caller {
    pub ctx: Ctx,
    pub token: Option<Token>,
    /// Whether the request carried an `Authorization` header at all, known or not.
    pub presented: bool,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let ctx = Ctx::of(parts);
        Metrics::add(&state.metrics.requests, 1);
        let credentials = parts.headers.get(header::AUTHORIZATION);
        let token = state.tokens.authenticate(credentials.and_then(|v| v.to_str().ok())).cloned();
        Ok(Self { ctx, token, presented: credentials.is_some() })
    }
}

impl Caller {
    pub fn refuse(&self, state: &AppState, reason: Refusal, message: String) -> Response {
        refuse(state, &self.ctx, self.token.as_ref(), reason, message)
    }
}

/// A request whose token the server knows. Without one the request is refused as
/// `unauthenticated` (401, counted and logged) before the handler runs.
pub struct Authed {
    pub ctx: Ctx,
    pub token: Token,
}

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let Ok(caller) = Caller::from_request_parts(parts, state).await;
        match caller.token {
            Some(token) => Ok(Self { ctx: caller.ctx, token }),
            None => Err(caller.refuse(state, Refusal::Unauthenticated, "a valid token is required".into())),
        }
    }
}

impl Authed {
    pub fn refuse(&self, state: &AppState, reason: Refusal, message: String) -> Response {
        refuse(state, &self.ctx, Some(&self.token), reason, message)
    }

    /// Asks the capability table: `None` if the token may, else the refusal to send back
    /// (`role`, 403, counted and logged).
    pub fn forbidden(&self, state: &AppState, action: Action) -> Option<Response> {
        if capability::allows(self.token.role, action) {
            return None;
        }
        let why = capability::denial(&self.token.name, self.token.role, action);
        Some(self.refuse(state, Refusal::Role, why))
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
    let resp = error_body(status, Some(reason), message);
    if reason == Refusal::Unauthenticated {
        return challenge(resp);
    }
    resp
}

/// Adds the sign-in challenge to a 401.
pub fn challenge(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    resp
}

/// A JSON error the agent's client reads (`proto::server::ApiError`).
pub fn error_body(status: StatusCode, refusal: Option<Refusal>, message: String) -> Response {
    let body = serde_json::to_vec(&ApiError { refusal, message }).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
