//! Garage, a real distributed S3-compatible store, started on loopback for a test.
//!
//! [`Garage::single`] starts one node (replication factor 1), [`Garage::cluster`] starts
//! several on one machine (replication factor 3), connected, with a layout applied. Each
//! node gets free loopback ports, its own directory and config under one temp dir, and logs
//! to `nodeN/garage.log` there. An access key and a bucket with read/write/owner rights are
//! made, and the constructor returns only once the S3 API accepts a write through it.
//! Dropping the value kills every node (and, if the test is failing, prints their logs'
//! tails first).
//!
//! The `garage` binary comes from `$GARAGE_BIN`, `PATH` or `~/.cargo/bin`; if it is
//! missing the test fails and says to run `scripts/install-test-deps.sh`.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

/// The region Garage is configured with (arka signs requests for it).
pub const REGION: &str = "garage";
/// The bucket every harness-made Garage has.
pub const BUCKET: &str = "arka-test";

/// How long a node may take to answer its CLI, and the cluster to accept a write.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `garage` binary, or a failure that says how to get it.
pub fn garage_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("GARAGE_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "GARAGE_BIN={} is not a file", p.display());
            return p;
        }
        find_garage().unwrap_or_else(|| {
            panic!(
                "the `garage` binary is missing (looked in PATH and ~/.cargo/bin): run \
                 scripts/install-test-deps.sh, which installs it with `cargo install garage` \
                 (about 15 minutes on 2 cores, once)"
            )
        })
    })
}

fn find_garage() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("garage"));
    let in_cargo = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin").join("garage"));
    in_path.chain(in_cargo).find(|p| p.is_file())
}

struct Node {
    config: PathBuf,
    log: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    /// Full node ID (64 hex digits), known once the node has started.
    id: String,
    child: Mutex<Option<Child>>,
}

/// A running Garage: one node or a cluster. See the module documentation.
pub struct Garage {
    // Declared before `dir` so processes die before their directories are removed.
    nodes: Vec<Node>,
    pub key_id: String,
    pub secret_key: String,
    dir: tempfile::TempDir,
}

impl Garage {
    /// One node, replication factor 1.
    pub fn single() -> Self {
        Self::start(1, 1)
    }

    /// `n` nodes on loopback with replication factor 3 (`n` ≥ 3), all in one zone.
    pub fn cluster(n: usize) -> Self {
        assert!(n >= 3, "replication factor 3 needs at least 3 nodes");
        Self::start(n, 3)
    }

    fn start(n: usize, replication: usize) -> Self {
        let bin = garage_bin();
        let dir = tempfile::Builder::new().prefix("arka-garage-").tempdir().expect("temp dir");
        let ports = free_ports(2 * n);
        let secret = crate::pseudo_random(seed(), 32).iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        let mut nodes = Vec::new();
        for i in 0..n {
            let node_dir = dir.path().join(format!("node{i}"));
            fs::create_dir_all(&node_dir).expect("node dir");
            let (s3_port, rpc_port) = (ports[2 * i], ports[2 * i + 1]);
            let config = node_dir.join("garage.toml");
            fs::write(&config, config_text(&node_dir, replication, rpc_port, s3_port, &secret)).expect("write config");
            nodes.push(Node {
                log: node_dir.join("garage.log"),
                config,
                s3_port,
                rpc_port,
                id: String::new(),
                child: Mutex::new(None),
            });
        }
        let mut garage = Self { nodes, key_id: String::new(), secret_key: String::new(), dir };
        for i in 0..n {
            garage.spawn(i, bin);
        }
        for i in 0..n {
            let id = garage.wait_for_cli(i);
            garage.nodes[i].id = id;
        }
        for i in 1..n {
            let target = format!("{}@127.0.0.1:{}", garage.nodes[i].id, garage.nodes[i].rpc_port);
            garage.cli_retry(0, &["node", "connect", &target]);
        }
        let mut assign = vec!["layout", "assign", "-z", "dc1", "-c", "1G"];
        let ids: Vec<String> = garage.nodes.iter().map(|n| n.id.clone()).collect();
        assign.extend(ids.iter().map(String::as_str));
        garage.cli_retry(0, &assign);
        garage.cli_retry(0, &["layout", "apply", "--version", "1"]);

        let created = garage.cli_retry(0, &["json-api", "CreateKey", r#"{"name":"arka-tests"}"#]);
        let key: serde_json::Value = serde_json::from_str(&created)
            .unwrap_or_else(|e| garage.fail(&format!("CreateKey printed no JSON ({e}): {created}")));
        garage.key_id = key["accessKeyId"].as_str().unwrap_or_default().to_string();
        garage.secret_key = key["secretAccessKey"].as_str().unwrap_or_default().to_string();
        if garage.key_id.is_empty() || garage.secret_key.is_empty() {
            garage.fail(&format!("CreateKey returned no key: {created}"));
        }
        garage.cli_retry(0, &["bucket", "create", BUCKET]);
        let key_id = garage.key_id.clone();
        garage.cli_retry(0, &["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", &key_id]);
        for i in 0..n {
            garage.wait_for_s3(i);
        }
        garage
    }

    /// The variables arka needs to reach node 0 (`AWS_ENDPOINT_URL`, keys, region, plain HTTP).
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_for(0)
    }

    /// Like [`Garage::env`], with node `i`'s S3 endpoint.
    pub fn env_for(&self, i: usize) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint(i)),
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// `http://127.0.0.1:PORT` of node `i`'s S3 API.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    pub fn s3_port(&self, i: usize) -> u16 {
        self.nodes[i].s3_port
    }

    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{}", prefix.trim_matches('/'))
    }

    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The harness's temp dir (node directories, configs and logs live under it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// kill -9 node `i` and reap it.
    pub fn stop_node(&self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.lock().expect("node lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether node `i` is running (not stopped with [`Garage::stop_node`]).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.lock().expect("node lock").is_some()
    }

    /// Restarts node `i` with its config and data, and waits until its S3 API takes writes.
    pub fn start_node(&self, i: usize) {
        self.spawn(i, garage_bin());
        self.wait_for_cli(i);
        // Rejoin the others now rather than at the next peering round.
        for j in (0..self.nodes.len()).filter(|&j| j != i && self.is_running(j)) {
            let peer = format!("{}@127.0.0.1:{}", self.nodes[j].id, self.nodes[j].rpc_port);
            self.cli_retry(i, &["node", "connect", &peer]);
        }
        self.wait_for_s3(i);
    }

    /// Bytes in node `i`'s data directory (object data blocks it holds).
    pub fn data_bytes(&self, i: usize) -> u64 {
        crate::walk_files(&self.dir.path().join(format!("node{i}")).join("data"))
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs `garage -c <node i's config> ARGS…` once; its output, or the failure's text.
    pub fn cli(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let out = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run garage: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "`garage {}` on node {i}: {}\n{}{}",
                args.join(" "),
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// [`Garage::cli`], retried for a while (a cluster takes a moment to settle).
    fn cli_retry(&self, i: usize, args: &[&str]) -> String {
        let started = Instant::now();
        loop {
            match self.cli(i, args) {
                Ok(out) => return out,
                Err(e) if started.elapsed() > START_TIMEOUT => self.fail(&e),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    fn spawn(&self, i: usize, bin: &Path) {
        let node = &self.nodes[i];
        let mut slot = node.child.lock().expect("node lock");
        assert!(slot.is_none(), "node {i} is already running");
        let log = fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("open garage log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "garage=info,garage_api_s3=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        *slot = Some(child);
    }

    /// Waits until node `i` answers its CLI; returns its full node ID.
    fn wait_for_cli(&self, i: usize) -> String {
        let started = Instant::now();
        loop {
            self.check_alive(i);
            match self.cli(i, &["node", "id", "-q"]) {
                Ok(out) => {
                    let id = out.trim().split('@').next().unwrap_or_default().to_string();
                    if id.len() == 64 {
                        return id;
                    }
                    self.fail(&format!("`garage node id` printed {out:?}"));
                }
                Err(e) if started.elapsed() > START_TIMEOUT => self.fail(&e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Fails the test, with the log's tail, if node `i` has exited.
    fn check_alive(&self, i: usize) {
        let exited = match self.nodes[i].child.lock().expect("node lock").as_mut() {
            Some(child) => child.try_wait().ok().flatten(),
            None => None,
        };
        if let Some(status) = exited {
            self.fail(&format!("garage node {i} exited ({status})"));
        }
    }

    /// Uploads every file under `local` to `prefix/<its path under local>` through node 0:
    /// a repository prepared (or damaged) on disk, as it would sit in the bucket.
    pub fn upload_dir(&self, local: &Path, prefix: &str) {
        let store = self.client(0);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        for file in crate::walk_files(local) {
            let rel = file.strip_prefix(local).expect("under the root").to_string_lossy().replace('\\', "/");
            let path = ObjectPath::from(format!("{}/{rel}", prefix.trim_matches('/')));
            let bytes = std::fs::read(&file).expect("read a repository file");
            runtime.block_on(store.put(&path, PutPayload::from(bytes))).expect("upload to garage");
        }
    }

    /// A plain S3 client of node `i` on the bucket, without retries.
    fn client(&self, i: usize) -> object_store::aws::AmazonS3 {
        // object_store's HTTP client needs a TLS provider even for plain HTTP (as in arka).
        let _ = rustls::crypto::ring::default_provider().install_default();
        AmazonS3Builder::new()
            .with_endpoint(self.endpoint(i))
            .with_region(REGION)
            .with_bucket_name(BUCKET)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret_key)
            .with_allow_http(true)
            .with_retry(RetryConfig { max_retries: 0, ..Default::default() })
            .with_client_options(ClientOptions::new().with_timeout(Duration::from_secs(5)).with_allow_http(true))
            .build()
            .expect("S3 client")
    }

    /// The bytes of `key` in the bucket (e.g. `clinic/arka/config`), if it exists: for
    /// tests that look at or damage what a repository stored.
    pub fn get_object(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.client(0);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        runtime.block_on(async {
            match store.get(&ObjectPath::from(key)).await {
                Ok(got) => Some(got.bytes().await.expect("object body").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("garage: get {key}: {e}"),
            }
        })
    }

    /// The keys under `prefix` in the bucket, sorted.
    pub fn list_keys(&self, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let store = self.client(0);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let prefix = ObjectPath::from(prefix);
        let listed: Vec<_> = runtime.block_on(store.list(Some(&prefix)).try_collect()).expect("garage: list");
        let mut keys: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        keys
    }

    /// Writes `bytes` at `key`, replacing what is there, behind the repository's back.
    pub fn put_object(&self, key: &str, bytes: Vec<u8>) {
        let store = self.client(0);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        runtime.block_on(store.put(&ObjectPath::from(key), PutPayload::from(bytes))).expect("garage: put");
    }

    /// Deletes `key` from the bucket, behind the repository's back.
    pub fn delete_object(&self, key: &str) {
        let store = self.client(0);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        runtime.block_on(store.delete(&ObjectPath::from(key))).unwrap_or_else(|e| panic!("garage: delete {key}: {e}"));
    }

    /// Waits until a write and a listing through node `i`'s S3 API succeed.
    fn wait_for_s3(&self, i: usize) {
        let store = self.client(i);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let probe = ObjectPath::from(format!("harness-probe/node{i}"));
        let started = Instant::now();
        loop {
            self.check_alive(i);
            let attempt = runtime.block_on(async {
                store.put(&probe, PutPayload::from_static(b"ready?")).await?;
                let _ = store.list_with_delimiter(Some(&ObjectPath::from("harness-probe"))).await?;
                store.delete(&probe).await
            });
            match attempt {
                Ok(()) => return,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    self.fail(&format!("node {i}'s S3 API did not accept a write: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Panics with `what` (dropping `self` then prints every node's log tail).
    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!("garage: {what}")
    }

    fn log_tails(&self, lines: usize) -> String {
        (0..self.nodes.len())
            .map(|i| {
                format!("--- {} (last {lines} lines):\n{}\n", self.nodes[i].log.display(), self.log_tail(i, lines))
            })
            .collect()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("garage logs (the test failed):\n{}", self.log_tails(40));
        }
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}

fn config_text(dir: &Path, replication: usize, rpc_port: u16, s3_port: u16, secret: &str) -> String {
    // Compression is off: arka's and restic's objects are encrypted, so zstd in Garage only
    // costs CPU on a small shared machine. No fsync: the data is throwaway.
    format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "lmdb"
lmdb_map_size = "4G"
replication_factor = {replication}
compression_level = "none"
metadata_fsync = false
data_fsync = false

rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"
"#,
        dir = dir.display()
    )
}

/// `n` distinct free loopback ports: bound together (so they differ), then released.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr").port()).collect()
}

fn seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}
