//! Turning a repository URL into a backend: a local directory (or mounted NAS share) or
//! an S3-compatible bucket.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{Error, Result};

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Accepts a path, `file:///path`, or `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Usage(format!("{url:?} names no bucket: use s3://bucket/prefix")));
            }
            return Ok(Self::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Self::Local(path.into()));
        }
        if url.contains("://") {
            return Err(Error::Usage(format!(
                "unsupported repository URL {url:?}: use a path, file:///path or s3://bucket/prefix"
            )));
        }
        Ok(Self::Local(url.into()))
    }
}

/// Retries with exponential backoff and jitter (object_store's client applies jitter to
/// each backoff); a dead link gives up after a few minutes with the last error.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(180),
    }
}

/// Opens the backend. `create` makes a missing local directory (for `init`).
pub fn open_backend(location: &Location, create: bool) -> Result<Arc<dyn ObjectStore>> {
    match location {
        Location::Local(path) => {
            if create {
                std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
            } else if !path.is_dir() {
                return Err(Error::NotARepository(path.display().to_string()));
            }
            let fs = LocalFileSystem::new_with_prefix(path)
                .map_err(|e| Error::store("open", path.display().to_string(), e))?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            Ok(Arc::new(fs))
        }
        Location::S3 { bucket, prefix } => {
            install_tls_provider();
            // Endpoint, region, keys and AWS_ALLOW_HTTP come from the usual AWS_* variables.
            // Path-style addressing is the default, which every S3-compatible store accepts.
            let mut builder =
                AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry_config()).with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(10))
                        .with_timeout(Duration::from_secs(120))
                        .with_allow_http(allow_http()),
                );
            if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                builder = builder.with_region("us-east-1");
            }
            let s3 = builder.build().map_err(|e| Error::store("open", format!("s3://{bucket}"), e))?;
            if prefix.is_empty() {
                Ok(Arc::new(s3))
            } else {
                Ok(Arc::new(PrefixStore::new(s3, prefix.as_str())))
            }
        }
    }
}

/// Plain HTTP only when asked for (`AWS_ALLOW_HTTP=true`), e.g. a store on loopback.
fn allow_http() -> bool {
    std::env::var("AWS_ALLOW_HTTP").map(|v| v.eq_ignore_ascii_case("true") || v == "1").unwrap_or(false)
}

fn install_tls_provider() {
    // Fails only if a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Turns a backend error into advice an IT contractor can act on, where we recognise it.
pub fn advice(e: &object_store::Error) -> Option<&'static str> {
    let text = format!("{e:?} {e}");
    let has = |needle: &str| text.contains(needle);
    if has("NoSuchBucket") {
        Some("the bucket does not exist: create it, or check the bucket name in the URL")
    } else if has("InvalidAccessKeyId") || has("SignatureDoesNotMatch") || has("AccessDenied") || has("403") {
        Some("the S3 endpoint refused the credentials: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the key's rights on the bucket")
    } else if has("RequestTimeTooSkewed") || has("RequestExpired") {
        Some("this machine's clock is too far from the store's: fix the system time (NTP)")
    } else if has("onnection refused") || has("dns error") || has("error sending request") || has("timed out") {
        Some("cannot reach the S3 endpoint: check AWS_ENDPOINT_URL, the network and the firewall")
    } else if has("No space left") {
        Some("the target disk is full: free space or move the repository; nothing was committed")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repository_urls() {
        assert_eq!(Location::parse("/mnt/nas/arka").unwrap(), Location::Local("/mnt/nas/arka".into()));
        assert_eq!(Location::parse("file:///mnt/x").unwrap(), Location::Local("/mnt/x".into()));
        assert_eq!(
            Location::parse("s3://clinic-offsite/arka/").unwrap(),
            Location::S3 { bucket: "clinic-offsite".into(), prefix: "arka".into() }
        );
        assert_eq!(Location::parse("s3://b").unwrap(), Location::S3 { bucket: "b".into(), prefix: "".into() });
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("ftp://x").is_err());
    }
}
