//! Turning a repository URL into a backend: a local directory (or mounted NAS share), an
//! S3-compatible bucket, or a repository on an arka-server.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::limit::Limits;
use super::paced::PacedLocal;
use super::paced_s3::PacedConnector;
use super::server::{ServerOptions, ServerStore};
use crate::error::{Error, Result};

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(std::path::PathBuf),
    S3 {
        bucket: String,
        prefix: String,
    },
    /// A repository on an arka-server: `base` is `https://host[:port]` (or `http://` to a
    /// loopback host), `repo` a valid repository name.
    Server {
        base: String,
        repo: String,
    },
}

impl Location {
    /// Accepts a path, `file:///path`, `s3://bucket[/prefix]`, `arka+https://host[:port]/repo`
    /// or `arka+http://` to a loopback host.
    /// Errors show the URL without credentials, query or fragment: a password or token
    /// typed into a URL is never printed back.
    pub fn parse(url: &str) -> Result<Self> {
        let shown = arka_proto::status::display_url(url);
        if let Some(rest) = url.strip_prefix("arka+") {
            return parse_server(&shown, rest);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.contains('@') {
                return Err(Error::Usage(format!(
                    "{shown:?}: credentials do not belong in the URL: give them in AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY; use s3://bucket/prefix"
                )));
            }
            if bucket.is_empty() {
                return Err(Error::Usage(format!("{shown:?} names no bucket: use s3://bucket/prefix")));
            }
            return Ok(Self::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Self::Local(path.into()));
        }
        if url.contains("://") {
            return Err(Error::Usage(format!(
                "unsupported repository URL {shown:?}: use a path, file:///path, s3://bucket/prefix \
                 or arka+https://host/repo"
            )));
        }
        Ok(Self::Local(url.into()))
    }
}

/// `arka+https://host[:port]/repo`: no credentials, query or fragment in the URL (the token
/// has its own settings), one path segment naming the repository, and plain HTTP only to
/// this machine, where nothing on the network can read the token. `shown` is the URL as
/// errors may print it (no credentials).
fn parse_server(shown: &str, rest: &str) -> Result<Location> {
    let usage = |why: &str| Error::Usage(format!("{shown:?}: {why}; use arka+https://host[:port]/repo"));
    let parsed = reqwest::Url::parse(rest).map_err(|e| usage(&format!("not a URL ({e})")))?;
    let https = match parsed.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(usage("the scheme after arka+ must be https (or http to this machine)")),
    };
    let host = match parsed.host_str() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => return Err(usage("no host")),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(usage(
            "credentials do not belong in the URL: give the token in ARKA_SERVER_TOKEN or the target's token_file",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(usage("a query or fragment is not part of a repository URL"));
    }
    // The URL parser has normalised the host: lower case, IPv6 in brackets.
    let loopback = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
        None => host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()),
    };
    if !https && !loopback {
        return Err(Error::Usage(format!(
            "{shown:?}: plain HTTP would send the token and the backups' metadata unprotected over the network; \
             use arka+https://{}/… (arka+http:// is only for a server on this machine)",
            host
        )));
    }
    let repo = parsed.path().trim_start_matches('/').trim_end_matches('/');
    if repo.is_empty() {
        return Err(usage("the URL names no repository"));
    }
    if !arka_proto::server::valid_repo_name(repo) {
        return Err(usage(&format!(
            "{repo:?} is not a repository name (1 to 64 of a-z 0-9 - _ ., starting with a letter or digit)"
        )));
    }
    let mut base = format!("{}://{}", parsed.scheme(), host);
    if let Some(port) = parsed.port() {
        base += &format!(":{port}");
    }
    Ok(Location::Server { base, repo: repo.to_string() })
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

/// Opens the backend. `create` makes a missing local directory (for `init`); `server`
/// applies to an arka-server location only; `limits` paces every kind.
pub fn open_backend(
    location: &Location,
    create: bool,
    server: &ServerOptions,
    limits: &Limits,
) -> Result<Arc<dyn ObjectStore>> {
    match location {
        Location::Server { base, repo } => {
            Ok(Arc::new(ServerStore::new(base, repo, server)?.with_limits(limits.clone())))
        }
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
            if limits.is_none() {
                return Ok(Arc::new(fs));
            }
            Ok(Arc::new(PacedLocal::new(fs, limits.upload.clone(), limits.download.clone())))
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
            if !limits.is_none() {
                builder = builder.with_http_connector(PacedConnector::new(limits.clone()));
            }
            if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                builder = builder.with_region("us-east-1");
            }
            check_s3_credentials(&builder, bucket, instance_credentials_asked())?;
            let s3 = builder.build().map_err(|e| Error::store("open", format!("s3://{bucket}"), e))?;
            if prefix.is_empty() {
                Ok(Arc::new(s3))
            } else {
                Ok(Arc::new(PrefixStore::new(s3, prefix.as_str())))
            }
        }
    }
}

/// The variable that lets an S3 target take the cloud machine's instance role
/// (`ARKA_S3_CREDENTIALS=instance`).
pub const S3_CREDENTIALS_VAR: &str = "ARKA_S3_CREDENTIALS";

fn instance_credentials_asked() -> bool {
    std::env::var(S3_CREDENTIALS_VAR).is_ok_and(|v| v.trim().eq_ignore_ascii_case("instance"))
}

/// Refuses an S3 target with no credentials configured unless instance credentials were
/// asked for. Without this, object_store's default chain falls back to the cloud metadata
/// address (169.254.169.254): on a clinic network that is someone else's machine at best,
/// and on a cloud host it would quietly use whatever role the machine has.
fn check_s3_credentials(b: &AmazonS3Builder, bucket: &str, instance: bool) -> Result<()> {
    use object_store::aws::AmazonS3ConfigKey as K;
    let set = |k: K| b.get_config_value(&k).is_some_and(|v| !v.trim().is_empty());
    let configured = set(K::AccessKeyId)
        || set(K::SecretAccessKey)
        || (set(K::WebIdentityTokenFile) && set(K::RoleArn))
        || set(K::ContainerCredentialsRelativeUri)
        || (set(K::ContainerCredentialsFullUri) && set(K::ContainerAuthorizationTokenFile))
        || b.get_config_value(&K::SkipSignature).is_some_and(|v| v == "true");
    if configured || instance {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "s3://{bucket}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in arka's environment \
         (for the service, in the file its unit's EnvironmentFile= names, readable by root only); on a cloud \
         machine whose instance role should be used, set {S3_CREDENTIALS_VAR}=instance (arka never asks the \
         cloud metadata address 169.254.169.254 otherwise)"
    )))
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
    // An arka-server error knows its own advice; the S3 guesses below do not apply to it.
    if let Some(advice) = super::server::advice_of(e) {
        return advice;
    }
    if let Some(io) = crate::error::local_io_error(e) {
        return Some(local_advice(io));
    }
    let text = format!("{e:?} {e}");
    let has = |needle: &str| text.contains(needle);
    // Reachability first, and never a bare "403": the URL in a connection error carries a port number,
    // and port 40369 once made a dead endpoint look like refused credentials.
    if has("onnection refused") || has("dns error") || has("error sending request") || has("timed out") {
        Some("cannot reach the S3 endpoint: check AWS_ENDPOINT_URL, the network and the firewall")
    } else if has("NoSuchBucket") {
        Some("the bucket does not exist: create it, or check the bucket name in the URL")
    } else if crate::error::REFUSED_CREDENTIALS.iter().any(|w| has(w)) {
        Some("the S3 endpoint refused the credentials: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the key's rights on the bucket")
    } else if has("RequestTimeTooSkewed") || has("RequestExpired") {
        Some("this machine's clock is too far from the store's: fix the system time (NTP)")
    } else if has("No space left") {
        Some("the target disk is full: free space or move the repository; nothing was committed")
    } else {
        None
    }
}

/// What to do when the folder of a local repository (a disk, a mounted NAS share) refuses
/// an operation.
fn local_advice(io: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as Io;
    match io.kind() {
        Io::PermissionDenied | Io::ReadOnlyFilesystem => {
            "the account arka runs as may not write in the repository folder: give it write access \
             (for the service, the service account), or mount the share read-write"
        }
        Io::StorageFull | Io::QuotaExceeded => {
            "the disk holding the repository is full: free space there (`arka prune` frees what \
             forgotten snapshots held), or move the repository to a larger disk"
        }
        Io::NotADirectory | Io::IsADirectory => {
            "something that is not arka's is in the repository folder where arka keeps its own files: \
             move it out of the repository, then run `arka verify`"
        }
        Io::NotFound => {
            "part of the repository folder is missing: check that the share is mounted, then run `arka verify`"
        }
        _ => "the disk or share holding the repository reported an error: check it (the system log, the NAS's log)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: text.to_string().into() }
    }

    #[test]
    fn an_s3_target_without_credentials_is_refused_unless_instance_credentials_are_asked_for() {
        let bare = AmazonS3Builder::new().with_bucket_name("b");
        let e = check_s3_credentials(&bare, "b", false).unwrap_err().to_string();
        assert!(e.contains("AWS_ACCESS_KEY_ID") && e.contains("ARKA_S3_CREDENTIALS=instance"), "{e}");
        assert!(check_s3_credentials(&bare, "b", true).is_ok());
        let keyed = AmazonS3Builder::new().with_access_key_id("k").with_secret_access_key("s");
        assert!(check_s3_credentials(&keyed, "b", false).is_ok());
        let anonymous = AmazonS3Builder::new().with_skip_signature(true);
        assert!(check_s3_credentials(&anonymous, "b", false).is_ok());
    }

    #[test]
    fn advice_tells_an_unreachable_endpoint_from_refused_credentials() {
        let reach = advice(&generic(
            "Error performing GET http://127.0.0.1:40369/b/config in 4.5s, after 8 retries - HTTP error: error sending request",
        ));
        assert!(reach.unwrap().starts_with("cannot reach the S3 endpoint"), "{reach:?}");
        let creds = advice(&generic("Client error with status 403 Forbidden: Forbidden: Invalid signature"));
        assert!(creds.unwrap().contains("refused the credentials"), "{creds:?}");
        assert_eq!(advice(&generic("something else on port 4030")), None);
    }

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

    #[test]
    fn parses_server_urls() {
        let server = |base: &str, repo: &str| Location::Server { base: base.into(), repo: repo.into() };
        for (url, want) in [
            ("arka+https://nas.clinic.lan/clinic-a", server("https://nas.clinic.lan", "clinic-a")),
            ("arka+https://nas:8443/clinic-a/", server("https://nas:8443", "clinic-a")),
            ("arka+https://192.168.1.20:8443/x.y_z-9", server("https://192.168.1.20:8443", "x.y_z-9")),
            ("arka+https://NAS.Clinic.lan/a", server("https://nas.clinic.lan", "a")),
            ("arka+https://[fd00::1]:8443/a", server("https://[fd00::1]:8443", "a")),
            // Plain HTTP to this machine only.
            ("arka+http://127.0.0.1:9000/a", server("http://127.0.0.1:9000", "a")),
            ("arka+http://127.8.9.10/a", server("http://127.8.9.10", "a")),
            ("arka+http://[::1]:9000/a", server("http://[::1]:9000", "a")),
            ("arka+http://localhost:9000/a", server("http://localhost:9000", "a")),
            ("arka+http://LOCALHOST/a", server("http://localhost", "a")),
        ] {
            assert_eq!(Location::parse(url).unwrap_or_else(|e| panic!("{url}: {e}")), want, "{url}");
        }
    }

    #[test]
    fn plain_http_to_another_machine_is_refused_with_the_fix() {
        for url in [
            "arka+http://nas.clinic.lan/a",
            "arka+http://192.168.1.20:8080/a",
            "arka+http://[fd00::1]/a",
            "arka+http://localhost.evil.example/a",
            "arka+http://128.0.0.1/a",
            "arka+http://0.0.0.0/a",
        ] {
            let e = Location::parse(url).unwrap_err().to_string();
            assert!(e.contains("use arka+https://") && e.contains("plain HTTP"), "{url}: {e}");
        }
    }

    #[test]
    fn malformed_server_urls_are_usage_errors() {
        for (url, want) in [
            ("arka+https://nas", "names no repository"),
            ("arka+https://nas/", "names no repository"),
            ("arka+https://nas/a/b", "not a repository name"),
            ("arka+https://nas/Clinic", "not a repository name"),
            ("arka+https://nas/..", "names no repository"),
            ("arka+https://nas/.hidden", "not a repository name"),
            ("arka+https://nas/a%2Fb", "not a repository name"),
            ("arka+https://user:pw@nas/a", "credentials do not belong"),
            ("arka+https://nas/a?token=x", "query or fragment"),
            ("arka+https://nas/a#x", "query or fragment"),
            ("arka+ftp://nas/a", "scheme after arka+"),
            ("arka+s3://b/a", "scheme after arka+"),
            ("arka+https://", "arka+https://host"),
            ("arka+", "not a URL"),
        ] {
            match Location::parse(url) {
                Err(Error::Usage(e)) => assert!(e.contains(want), "{url}: {e} (wanted {want:?})"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_password_or_token_in_a_url_is_refused_and_never_printed_back() {
        for url in [
            "arka+https://user:s3cret@nas/a",
            "arka+https://s3cret@nas/a",
            "arka+https://nas/a?token=s3cret",
            "s3://user:s3cret@bucket/arka",
            "ftp://user:s3cret@host/x",
        ] {
            match Location::parse(url) {
                Err(e) => assert!(!e.to_string().contains("s3cret"), "{url}: {e}"),
                Ok(l) => panic!("{url}: accepted as {l:?}"),
            }
        }
    }
}
