//! The S3 client's connection when a target has bandwidth limits: object_store builds and
//! signs each request and hands it to [`PacedService`], which sends it with reqwest, the
//! request's body and the answer's body released as the limits allow. Without limits the
//! S3 target keeps object_store's own connection.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};
use object_store::{ClientConfigKey, ClientOptions};

use super::limit::Limits;
use super::paced::PacedBody;

/// The largest object a GET is budgeted time for: the largest pack the format allows.
const MAX_OBJECT: u64 = 64 << 20;

/// What a request gets before its transfer's share of the time budget (object_store's
/// own total timeout for an S3 target, which would cut off a slow paced pack).
const BASE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct PacedConnector {
    limits: Limits,
}

impl PacedConnector {
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }
}

impl HttpConnector for PacedConnector {
    /// A reqwest client with what arka's S3 options set (connect timeout, plain HTTP only
    /// when allowed); per-request timeouts follow each transfer's size and rate.
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let allow_http = options.get_config_value(&ClientConfigKey::AllowHttp).is_some_and(|v| v == "true");
        let client = reqwest::Client::builder()
            .user_agent(concat!("arka/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .https_only(!allow_http)
            .build()
            .map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e) })?;
        Ok(HttpClient::new(PacedService { client, limits: self.limits.clone() }))
    }
}

#[derive(Debug)]
struct PacedService {
    client: reqwest::Client,
    limits: Limits,
}

#[async_trait]
impl HttpService for PacedService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url: reqwest::Url = parts.uri.to_string().parse().map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        let length = body.content_length() as u64;
        let mut request = reqwest::Request::new(parts.method.clone(), url);
        *request.headers_mut() = parts.headers;
        // The body keeps its exact size hint, so reqwest still sends a Content-Length.
        *request.body_mut() = Some(match &self.limits.upload {
            Some(up) if length > 0 => reqwest::Body::wrap(PacedBody::new(body, up.clone())),
            _ => reqwest::Body::wrap(body),
        });
        let mut budget = BASE_TIMEOUT;
        if let (Some(up), true) = (&self.limits.upload, length > 0) {
            budget = budget.max(up.budget(BASE_TIMEOUT, length));
        }
        if let (Some(down), true) = (&self.limits.download, parts.method == reqwest::Method::GET) {
            budget = budget.max(down.budget(BASE_TIMEOUT, MAX_OBJECT));
        }
        *request.timeout_mut() = Some(budget);

        let response = self.client.execute(request).await.map_err(http_error)?;
        let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
        let body = body.map_err(http_error as fn(reqwest::Error) -> HttpError);
        let body = match &self.limits.download {
            Some(down) => HttpResponseBody::new(PacedBody::new(body, down.clone())),
            None => HttpResponseBody::new(body),
        };
        Ok(HttpResponse::from_parts(parts, body))
    }
}

/// Classifies a reqwest error the way object_store's own client does, so that its retry
/// logic treats a paced request like any other: connection trouble and timeouts retried,
/// a body that cannot be decoded not.
fn http_error(e: reqwest::Error) -> HttpError {
    let interrupted = {
        let mut source = std::error::Error::source(&e);
        let mut found = false;
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind as K;
                found |=
                    matches!(io.kind(), K::ConnectionAborted | K::ConnectionReset | K::BrokenPipe | K::UnexpectedEof);
            }
            source = s.source();
        }
        found
    };
    let kind = if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_decode() {
        HttpErrorKind::Decode
    } else if interrupted {
        HttpErrorKind::Interrupted
    } else if e.is_request() || e.is_body() {
        HttpErrorKind::Request
    } else {
        HttpErrorKind::Unknown
    };
    HttpError::new(kind, e.without_url())
}
