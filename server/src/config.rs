//! `arka-server --config FILE`: the TOML config, checked whole before the server starts.
//! Syntax errors and unknown keys come with the line from the TOML parser; semantic
//! problems name the token or section and the key, all of them at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use arka_proto::server::valid_repo_name;

/// Largest object accepted unless the config says otherwise. Packs are 16 MiB by default
/// (a repository may choose up to 128 MiB), so this leaves room without letting one
/// request hold much memory.
pub const DEFAULT_MAX_OBJECT_MIB: u64 = 160;
/// Uploads buffered at once; further uploads wait. Bounds memory at about this many
/// times the object limit in the worst case.
pub const DEFAULT_MAX_UPLOADS: usize = 8;
/// Connections served at once unless the config says otherwise; more wait in the kernel's
/// backlog. Each holds a file descriptor (systemd's default limit is 1,024 soft, raised by
/// the unit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Connections one address may hold: an agent uses a handful, a browser six; far below
/// the global cap so one address cannot take every slot.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// Seconds a connection may send nothing, or dribble a request's headers, before it is
/// closed.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;
/// The slowest body accepted, on average: a quarter of the 256 KiB/s the agent's own
/// upload timeout assumes, so the server never cuts an upload the agent would still wait for.
pub const DEFAULT_BODY_MIN_RATE_KIB: u64 = 64;
/// Seconds every body gets on top of what the minimum rate allows (slow start, a pause).
pub const DEFAULT_BODY_GRACE_SECS: u64 = 30;
/// Seconds a body may go without a byte arriving (or an answer without a byte read).
pub const DEFAULT_BODY_STALL_SECS: u64 = 30;
/// Shortest accepted token secret (`arka-server token new` writes 43 characters).
pub const MIN_SECRET_LEN: usize = 24;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    data_dir: PathBuf,
    storage: Option<String>,
    max_object_mib: Option<u64>,
    max_uploads: Option<usize>,
    max_uploads_per_token: Option<usize>,
    body_min_rate_kib: Option<u64>,
    body_grace_secs: Option<u64>,
    body_stall_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    #[serde(default)]
    token: Vec<RawToken>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    role: String,
    #[serde(default)]
    repos: Vec<String>,
    secret_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Create, read and list objects in its repositories; push its status.
    Append,
    /// Also delete (the prune job on the NAS).
    Maintain,
    /// Everything in every repository, and the dashboard's admin views.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Maintain => "maintain",
            Self::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Append, Self::Maintain, Self::Admin].into_iter().find(|r| r.name() == s)
    }
}

/// Which repositories a token reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoScope {
    All,
    Only(Vec<String>),
}

impl RepoScope {
    pub fn allows(&self, repo: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(list) => list.iter().any(|r| r == repo),
        }
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".into()],
            Self::Only(list) => list.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    pub repos: RepoScope,
    pub secret_file: PathBuf,
}

#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Under `data_dir`, one folder per repository.
    Local,
    /// In an S3 bucket the server fronts (endpoint and keys from the `AWS_*` variables).
    S3 { bucket: String, prefix: String },
}

/// What one client may hold and for how long: the bounds against clients that hog
/// upload slots or connections (SECURITY.md §4.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Uploads held in memory at once, all tokens together; the rest wait.
    pub max_uploads: usize,
    /// Uploads one token may hold at once, so one clinic cannot take every slot.
    pub max_uploads_per_token: usize,
    /// The slowest average rate of a request body, in bytes per second, after the grace.
    pub body_min_rate: u64,
    pub body_grace: Duration,
    /// The longest pause between two pieces of a body, either way: a request body, or an
    /// answer the client stopped reading.
    pub body_stall: Duration,
    /// Nothing sent for this long (after accept, the TLS handshake or an answer), or
    /// headers still incomplete after it: the connection is closed.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_uploads: DEFAULT_MAX_UPLOADS,
            max_uploads_per_token: DEFAULT_MAX_UPLOADS.div_ceil(4),
            body_min_rate: DEFAULT_BODY_MIN_RATE_KIB << 10,
            body_grace: Duration::from_secs(DEFAULT_BODY_GRACE_SECS),
            body_stall: Duration::from_secs(DEFAULT_BODY_STALL_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Objects (for the local backend) and the server's own state (`.server/`).
    pub data_dir: PathBuf,
    pub backend: Backend,
    pub max_object_bytes: u64,
    pub limits: Limits,
    pub tokens: Vec<TokenConfig>,
    pub tls: Option<TlsConfig>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let mut problems = Vec::new();
        let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
            problems.push(format!("listen = {:?}: use an address and port, e.g. \"0.0.0.0:8443\"", raw.listen))
        });
        let backend = match raw.storage.as_deref() {
            None => Backend::Local,
            Some(s) => match s.strip_prefix("s3://") {
                Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    Backend::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() }
                }
                _ => {
                    problems.push(format!(
                        "storage = {s:?}: use \"s3://bucket/prefix\", or leave it out to store under data_dir"
                    ));
                    Backend::Local
                }
            },
        };
        if !raw.data_dir.is_absolute() {
            problems.push(format!("data_dir = {:?}: use an absolute path", raw.data_dir.display()));
        }
        let max_object_mib = raw.max_object_mib.unwrap_or(DEFAULT_MAX_OBJECT_MIB);
        if !(1..=4096).contains(&max_object_mib) {
            problems.push(format!("max_object_mib = {max_object_mib}: use 1 to 4096"));
        }
        let limits = check_limits(&raw, &mut problems);
        let tokens = check_tokens(raw.token, &mut problems);
        let tls = raw.tls.map(|t| TlsConfig { cert: t.cert, key: t.key });
        if let (Ok(addr), None) = (&listen, &tls) {
            if !addr.ip().is_loopback() {
                problems.push(format!(
                    "listen = \"{addr}\" is reachable from the network, so [tls] with cert and key is required \
                     (tokens must not cross the network in clear text)"
                ));
            }
        }
        if let Some(t) = &tls {
            for (key, path) in [("tls.cert", &t.cert), ("tls.key", &t.key)] {
                if let Err(e) = std::fs::metadata(path) {
                    problems.push(format!("{key}: cannot read {}: {e}", path.display()));
                }
            }
            if let Err(e) = check_secret_file(&t.key) {
                problems.push(format!("tls.key: {e}"));
            }
        }
        match (listen, problems.is_empty()) {
            (Ok(listen), true) => Ok(Self {
                listen,
                data_dir: raw.data_dir,
                backend,
                max_object_bytes: max_object_mib << 20,
                limits,
                tokens,
                tls,
            }),
            _ => Err(problems.join("\n")),
        }
    }
}

/// The limits, with their defaults; a value out of range is a problem naming its key.
fn check_limits(raw: &RawConfig, problems: &mut Vec<String>) -> Limits {
    let mut within = |key: &str, value: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| {
        let v = value.unwrap_or(default);
        if !range.contains(&v) {
            problems.push(format!("{key} = {v}: use {} to {}", range.start(), range.end()));
        }
        v
    };
    let max_uploads = within("max_uploads", raw.max_uploads.map(as_u64), DEFAULT_MAX_UPLOADS as u64, 1..=256);
    // Ranges that depend on another key use its nearest valid value, so one mistake is
    // reported once.
    let uploads = max_uploads.clamp(1, 256);
    let per_token = raw.max_uploads_per_token.map(as_u64);
    let max_uploads_per_token = within("max_uploads_per_token", per_token, uploads.div_ceil(4), 1..=uploads);
    let rate = within("body_min_rate_kib", raw.body_min_rate_kib, DEFAULT_BODY_MIN_RATE_KIB, 1..=1 << 20);
    let grace = within("body_grace_secs", raw.body_grace_secs, DEFAULT_BODY_GRACE_SECS, 1..=3600);
    let stall = within("body_stall_secs", raw.body_stall_secs, DEFAULT_BODY_STALL_SECS, 1..=3600);
    let idle = within("idle_timeout_secs", raw.idle_timeout_secs, DEFAULT_IDLE_TIMEOUT_SECS, 1..=3600);
    let conns = raw.max_connections.map(as_u64);
    let max_connections = within("max_connections", conns, DEFAULT_MAX_CONNECTIONS as u64, 1..=65536);
    let per_address = raw.max_connections_per_address.map(as_u64);
    let conns = max_connections.clamp(1, 65536);
    let default_per_address = (DEFAULT_MAX_CONNECTIONS_PER_ADDRESS as u64).min(conns);
    let max_connections_per_address =
        within("max_connections_per_address", per_address, default_per_address, 1..=conns);
    Limits {
        max_uploads: max_uploads as usize,
        max_uploads_per_token: max_uploads_per_token as usize,
        body_min_rate: rate << 10,
        body_grace: Duration::from_secs(grace),
        body_stall: Duration::from_secs(stall),
        idle_timeout: Duration::from_secs(idle),
        max_connections: max_connections as usize,
        max_connections_per_address: max_connections_per_address as usize,
    }
}

fn as_u64(n: usize) -> u64 {
    n as u64
}

fn check_tokens(raw: Vec<RawToken>, problems: &mut Vec<String>) -> Vec<TokenConfig> {
    if raw.is_empty() {
        problems.push(
            "no [[token]]: add one per agent, e.g. name = \"clinic-a-agent\", role = \"append\", \
             repos = [\"clinic-a\"], secret_file = \"/etc/arka-server/clinic-a-agent.secret\""
                .into(),
        );
    }
    let mut out = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let at = format!("token #{} ({:?})", i + 1, t.name);
        if !valid_repo_name(&t.name) {
            problems.push(format!("{at}: name may hold only a-z, 0-9, '-', '_' and '.', at most 64"));
        }
        if out.iter().any(|o: &TokenConfig| o.name == t.name) {
            problems.push(format!("{at}: the name is used twice"));
        }
        let Some(role) = Role::parse(&t.role) else {
            problems.push(format!("{at}: role = {:?}: use \"append\", \"maintain\" or \"admin\"", t.role));
            continue;
        };
        let repos = if t.repos.iter().any(|r| r == "*") {
            if role == Role::Append {
                problems.push(format!(
                    "{at}: repos = [\"*\"] is for maintain and admin tokens; name the agent's repositories"
                ));
            }
            RepoScope::All
        } else if role == Role::Admin && t.repos.is_empty() {
            RepoScope::All
        } else {
            if t.repos.is_empty() {
                problems.push(format!("{at}: repos is empty: name the repositories, e.g. repos = [\"clinic-a\"]"));
            }
            for r in t.repos.iter().filter(|r| !valid_repo_name(r)) {
                problems
                    .push(format!("{at}: repos: {r:?} is not a repository name (a-z, 0-9, '-', '_', '.', at most 64)"));
            }
            RepoScope::Only(t.repos)
        };
        if let Err(e) = check_secret_file(&t.secret_file) {
            problems.push(format!("{at}: secret_file: {e}"));
        }
        out.push(TokenConfig { name: t.name, role, repos, secret_file: t.secret_file });
    }
    out
}

/// A secret file must exist and (on Unix) be readable by its owner only.
pub fn check_secret_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!("{shown} can be read by other users (mode {mode:03o}): run `chmod 600 {shown}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "s".repeat(40)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        p
    }

    #[test]
    fn the_minimal_config_of_the_issue_loads() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret(dir.path(), "a.secret", 0o600);
        let text = format!(
            "listen = \"127.0.0.1:8443\"\ndata_dir = \"/srv/arka\"\n[[token]]\nname = \"clinic-a-agent\"\n\
             role = \"append\"\nrepos = [\"clinic-a\"]\nsecret_file = {:?}\n",
            s.display().to_string()
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.tokens[0].role, Role::Append);
        assert!(c.tokens[0].repos.allows("clinic-a") && !c.tokens[0].repos.allows("clinic-b"));
        assert_eq!(c.backend, Backend::Local);
        assert_eq!(c.max_object_bytes, DEFAULT_MAX_OBJECT_MIB << 20);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.limits.max_uploads_per_token, 2);
    }

    fn loopback(extra: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let s = secret(dir.path(), "a.secret", 0o600);
        Config::parse(&format!(
            "listen = \"127.0.0.1:8443\"\ndata_dir = \"/srv/arka\"\n{extra}\n[[token]]\nname = \"a\"\n\
             role = \"admin\"\nsecret_file = {:?}\n",
            s.display().to_string()
        ))
    }

    #[test]
    fn limits_are_read_and_their_defaults_follow_the_global_caps() {
        let c = loopback(
            "max_uploads = 12\nbody_min_rate_kib = 16\nbody_grace_secs = 5\nbody_stall_secs = 7\n\
             idle_timeout_secs = 9\nmax_connections = 40",
        )
        .unwrap();
        let want = Limits {
            max_uploads: 12,
            max_uploads_per_token: 3,
            body_min_rate: 16 << 10,
            body_grace: Duration::from_secs(5),
            body_stall: Duration::from_secs(7),
            idle_timeout: Duration::from_secs(9),
            max_connections: 40,
            max_connections_per_address: 40,
        };
        assert_eq!(c.limits, want);
        let c = loopback("max_uploads = 1\nmax_connections_per_address = 3").unwrap();
        assert_eq!((c.limits.max_uploads_per_token, c.limits.max_connections_per_address), (1, 3));
    }

    #[test]
    fn limits_out_of_range_are_named_once_each() {
        let e = loopback(
            "max_uploads = 0\nmax_uploads_per_token = 9\nbody_min_rate_kib = 0\nbody_grace_secs = 0\n\
             body_stall_secs = 4000\nidle_timeout_secs = 0\nmax_connections = 10\nmax_connections_per_address = 11",
        )
        .unwrap_err();
        for want in [
            "max_uploads = 0: use 1 to 256",
            "max_uploads_per_token = 9: use 1 to 1",
            "body_min_rate_kib = 0: use 1 to 1048576",
            "body_grace_secs = 0: use 1 to 3600",
            "body_stall_secs = 4000: use 1 to 3600",
            "idle_timeout_secs = 0: use 1 to 3600",
            "max_connections_per_address = 11: use 1 to 10",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        assert_eq!(e.lines().count(), 7, "{e}");
    }

    #[test]
    fn problems_name_the_token_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let open = secret(dir.path(), "open.secret", 0o644);
        let ok = secret(dir.path(), "ok.secret", 0o600);
        let text = format!(
            "listen = \"0.0.0.0:8443\"\ndata_dir = \"rel\"\nstorage = \"ftp://x\"\n\
             [[token]]\nname = \"a\"\nrole = \"owner\"\nrepos = [\"x\"]\nsecret_file = {open:?}\n\
             [[token]]\nname = \"b\"\nrole = \"append\"\nrepos = [\"*\"]\nsecret_file = {open:?}\n\
             [[token]]\nname = \"c\"\nrole = \"append\"\nrepos = [\"../etc\"]\nsecret_file = {ok:?}\n\
             [[token]]\nname = \"c\"\nrole = \"maintain\"\nrepos = []\nsecret_file = \"/nonexistent\"\n"
        );
        let e = Config::parse(&text).unwrap_err();
        for want in [
            "[tls] with cert and key is required",
            "data_dir = \"rel\": use an absolute path",
            "storage = \"ftp://x\"",
            "token #1 (\"a\"): role = \"owner\"",
            "token #2 (\"b\"): repos = [\"*\"] is for maintain and admin",
            "token #2 (\"b\"): secret_file:",
            "chmod 600",
            "token #3 (\"c\"): repos: \"../etc\" is not a repository name",
            "token #4 (\"c\"): the name is used twice",
            "token #4 (\"c\"): repos is empty",
            "token #4 (\"c\"): secret_file: cannot read /nonexistent",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    /// Every table of the file, with one unknown key in each in turn: the message names
    /// the key and its line, so a typo is never silently ignored.
    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let cases = [
            ("top level", "listen = \"127.0.0.1:1\"\ndata_dir = \"/x\"\nmax_object = 5\n", "max_object", 3),
            (
                "a token",
                "listen = \"127.0.0.1:1\"\ndata_dir = \"/x\"\n[[token]]\nname = \"a\"\nrole = \"append\"\n\
                 repo = [\"x\"]\nsecret_file = \"/s\"\n",
                "repo",
                6,
            ),
            (
                "tls",
                "listen = \"127.0.0.1:1\"\ndata_dir = \"/x\"\n[tls]\ncert = \"/c\"\nkey = \"/k\"\nca = \"/a\"\n",
                "ca",
                6,
            ),
            ("an unknown table", "listen = \"127.0.0.1:1\"\ndata_dir = \"/x\"\n[server]\nport = 1\n", "server", 3),
        ];
        for (what, text, key, line) in cases {
            let e = Config::parse(text).unwrap_err();
            assert!(e.contains(&format!("unknown field `{key}`")), "{what}: {e}");
            assert!(e.contains(&format!("line {line}")), "{what}: {e}");
        }
    }

    #[test]
    fn storage_in_s3_and_admin_scope() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret(dir.path(), "adm.secret", 0o400);
        let text = format!(
            "listen = \"[::1]:9000\"\ndata_dir = \"/var/lib/arka-server\"\nstorage = \"s3://bucket/some/prefix/\"\n\
             [[token]]\nname = \"nas-admin\"\nrole = \"admin\"\nsecret_file = {s:?}\n"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.backend, Backend::S3 { bucket: "bucket".into(), prefix: "some/prefix".into() });
        assert_eq!(c.tokens[0].repos, RepoScope::All);
    }
}
