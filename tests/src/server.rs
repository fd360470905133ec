//! arka-server as a child process on a free loopback port, with its config and token
//! secret files written by the test.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::agent::free_port;

/// A pack-shaped object: its key and bytes.
pub fn pack(seed: u64, len: usize) -> (String, Vec<u8>) {
    let bytes = crate::pseudo_random(seed, len);
    let id = arka_proto::ObjectId::of(&bytes);
    (arka_proto::layout::ObjectKind::Pack.key(&id), bytes)
}

/// The `arka-server` binary of this test's profile, built if stale.
pub fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ARKA_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let name = format!("arka-server{}", std::env::consts::EXE_SUFFIX);
        crate::cargo_artifact(&name, "arka-server", &["--bin", "arka-server"], &["Cargo.toml"])
    })
}

#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub name: String,
    /// `append`, `maintain` or `admin`.
    pub role: String,
    pub repos: Vec<String>,
}

impl TokenSpec {
    pub fn new(name: &str, role: &str, repos: &[&str]) -> Self {
        Self { name: name.into(), role: role.into(), repos: repos.iter().map(|r| r.to_string()).collect() }
    }
}

/// A random-enough secret for tests (the server wants at least 24 characters).
fn test_secret(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("test-{name}-{nanos:x}-{:x}", std::process::id())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

pub struct ServerProcess {
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    tls: bool,
    env: Vec<(String, String)>,
    secrets: HashMap<String, PathBuf>,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Plain HTTP on loopback, objects under `dir/data`.
    pub fn start(dir: &Path, tokens: &[TokenSpec]) -> Self {
        Self::start_with(dir, tokens, "", &[])
    }

    /// `extra` is appended to the top level of the config (before the tables), e.g.
    /// `max_object_mib = 1`, `storage = "s3://…"` or a `[tls]` table (then served over
    /// HTTPS); `env` is added to the server's environment.
    pub fn start_with(dir: &Path, tokens: &[TokenSpec], extra: &str, env: &[(&str, String)]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut secrets = HashMap::new();
        let mut text =
            format!("listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n", dir.join("data").display().to_string());
        let (top, tables): (Vec<&str>, Vec<&str>) = {
            let cut = extra.find("\n[").map(|i| i + 1).or_else(|| extra.starts_with('[').then_some(0));
            match cut {
                Some(i) => (vec![&extra[..i]], vec![&extra[i..]]),
                None => (vec![extra], vec![]),
            }
        };
        for t in top {
            text.push_str(t);
            text.push('\n');
        }
        for t in tokens {
            let path = dir.join(format!("{}.secret", t.name));
            write_private(&path, &test_secret(&t.name));
            text.push_str(&format!(
                "[[token]]\nname = {:?}\nrole = {:?}\nrepos = {:?}\nsecret_file = {:?}\n",
                t.name,
                t.role,
                t.repos,
                path.display().to_string()
            ));
            secrets.insert(t.name.clone(), path);
        }
        for t in tables {
            text.push_str(t);
            text.push('\n');
        }
        let config = dir.join("server.toml");
        std::fs::write(&config, text).unwrap();
        let mut s = Self {
            dir: dir.to_path_buf(),
            config,
            port,
            tls: extra.contains("[tls]"),
            env: env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            secrets,
            child: None,
            log: dir.join("server.log"),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(server_bin())
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start arka-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("arka-server exited at start ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "arka-server did not listen within 30 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT` (or https with a `[tls]` table).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The agent's URL of a repository on this server.
    pub fn repo_url(&self, repo: &str) -> String {
        format!("arka+{}/{repo}", self.url())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `/metrics` read with the `chain-admin` token (the tests' admin): each sample's name
    /// with its labels, and its value.
    pub fn metrics(&self) -> HashMap<String, u64> {
        let r = raw_request(self.port, "GET", "/metrics", &[bearer(&self.secret("chain-admin"))], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    }

    /// The secret of a token.
    pub fn secret(&self, token: &str) -> String {
        std::fs::read_to_string(self.secret_file(token)).unwrap().trim().to_string()
    }

    /// The file holding a token's secret (mode 600), usable as an agent's token file.
    pub fn secret_file(&self, token: &str) -> &Path {
        self.secrets.get(token).unwrap_or_else(|| panic!("no token {token:?}"))
    }

    /// Where a local-storage server keeps its objects: `data_dir/<repo>/<key>`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again with the same config and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("the server is running");
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn write_private(path: &Path, text: &str) {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).unwrap();
    writeln!(f, "{text}").unwrap();
}

/// An answer read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `refusal` of an error body, if any.
    pub fn refusal(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("refusal")?.as_str().map(str::to_string)
    }
}

/// One HTTP/1.1 request over plain TCP, with the path sent byte for byte as given (no
/// client library normalises `..` or percent-escapes away), and `Connection: close`.
pub fn raw_request(port: u16, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> RawResponse {
    try_raw_request(port, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`raw_request`], with connection failures and cut-off answers as errors (for
/// requests racing a kill).
pub fn try_raw_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let framed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"));
    if !framed {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())?;
    // The server may answer and close before reading a body it refuses.
    let _ = tcp.write_all(body);
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        ))
    })
}

fn parse_response(raw: &[u8]) -> Option<RawResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(RawResponse { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `Authorization: Bearer SECRET`.
pub fn bearer(secret: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {secret}"))
}
