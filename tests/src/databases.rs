//! Throwaway PostgreSQL and MariaDB servers for the dump suites: each is initialised in its
//! own temp dir, listens on 127.0.0.1 on a free port, belongs to the test that started it,
//! and is stopped (its files removed) when dropped.
//!
//! The servers are the distribution's own binaries (Debian: `postgresql`, `mariadb-server`,
//! `mariadb-client`). If one is missing the test fails and says to run
//! `scripts/install-test-deps.sh`; it never passes without having dumped a real database.
//!
//! Neither server runs as root, so a test running as root starts them as `nobody` (through
//! `setpriv`, as [`crate::Fixture::command_as`] does) in a temp dir given to that user. They
//! run as children of the test (not daemonised) with a parent-death signal, so even a test
//! process killed outright leaves no server behind.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{is_root, NOBODY};

/// What a failing test says when a server binary is missing.
const INSTALL_HINT: &str = "run `bash scripts/install-test-deps.sh` (CI does), which installs Debian's \
                            postgresql, mariadb-server and mariadb-client";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A database server the dump suites can load, dump and restore, whatever its kind.
pub trait SqlServer {
    /// "PostgreSQL" or "MariaDB", for messages.
    fn kind(&self) -> &'static str;
    fn port(&self) -> u16;
    /// Creates an empty database `db` (UTF-8 throughout).
    fn create_database(&self, db: &str);
    /// A client that executes the SQL it reads on stdin in `db` and stops at the first
    /// error with a non-zero exit: what a restore pipes a dump into.
    fn client(&self, db: &str) -> Command;
    /// Runs `sql` in `db` and returns its output: one line per row, tab-separated columns,
    /// no headers. Panics, showing the server's message, if any statement fails.
    fn sql(&self, db: &str, sql: &str) -> String {
        let out = feed(self.client(db), sql.as_bytes());
        assert!(
            out.status.success(),
            "{} refused SQL in {db} ({}):\n{}\n--- SQL (start):\n{}",
            self.kind(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            sql.chars().take(2000).collect::<String>()
        );
        String::from_utf8(out.stdout).expect("the server answered in UTF-8")
    }
    /// The shell command line that writes a plain SQL dump of `db` to stdout, as a clinic
    /// would give it to `arka backup --stdin-from-command` or a `command` source.
    fn dump_command(&self, db: &str) -> String;
}

/// A PostgreSQL server (the newest version under `/usr/lib/postgresql`), trust
/// authentication for the `postgres` superuser on loopback only.
pub struct Postgres {
    bin: PathBuf,
    port: u16,
    server: Server,
}

impl Postgres {
    /// `initdb`, then `postgres` on a free port; returns once it accepts connections.
    pub fn start() -> Self {
        let bin = postgres_bin_dir();
        let server = Server::start("postgres", "-INT", |dir, port| {
            let data = dir.join("data");
            let initdb = unprivileged(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
                .output()
                .expect("run initdb");
            assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
            let mut postgres = unprivileged(&bin.join("postgres"));
            postgres.arg("-D").arg(&data).arg("-k").arg(dir).arg("-p").arg(port.to_string());
            // Throwaway data: no fsync, and no listening beyond loopback.
            for setting in ["listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off", "full_page_writes=off"]
            {
                postgres.args(["-c", setting]);
            }
            postgres
        });
        let mut pg = Self { bin, port: server.port, server };
        let mut probe = Command::new(pg.tool("pg_isready"));
        probe.args(["-q", "-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "-t", "1"]);
        pg.server.wait_ready(probe);
        pg
    }

    /// A binary of this server's version: `pg_dump`, `psql`, `pg_isready`…
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

impl SqlServer for Postgres {
    fn kind(&self) -> &'static str {
        "PostgreSQL"
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn create_database(&self, db: &str) {
        self.sql("postgres", &format!("CREATE DATABASE {db} ENCODING 'UTF8' TEMPLATE template0;"));
    }

    fn client(&self, db: &str) -> Command {
        let mut c = Command::new(self.tool("psql"));
        // -X: no ~/.psqlrc; -A -t: bare rows; -q: no command tags.
        c.args(["-X", "-A", "-t", "-q", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .env("PGCLIENTENCODING", "UTF8");
        c
    }

    fn dump_command(&self, db: &str) -> String {
        format!("{} --no-owner -h 127.0.0.1 -p {} -U postgres {db}", sh_quote(&self.tool("pg_dump")), self.port)
    }
}

/// A MariaDB server with its system tables made by `mariadb-install-db`; `root` logs in
/// without a password from 127.0.0.1 (real authentication, not `--skip-grant-tables`).
pub struct MariaDb {
    client: PathBuf,
    dump: PathBuf,
    port: u16,
    server: Server,
}

impl MariaDb {
    /// `mariadb-install-db`, then `mariadbd` on a free port; returns once it accepts
    /// connections.
    pub fn start() -> Self {
        let server_bin = find_first(&["/usr/sbin/mariadbd", "/usr/sbin/mysqld"], "the MariaDB server (mariadbd)");
        let install_db = find_first(
            &["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"],
            "the MariaDB installer (mariadb-install-db)",
        );
        let client = find_first(&["/usr/bin/mariadb", "/usr/bin/mysql"], "the MariaDB client (mariadb)");
        let dump = find_first(&["/usr/bin/mariadb-dump", "/usr/bin/mysqldump"], "the MariaDB dump tool (mariadb-dump)");
        let server = Server::start("mariadb", "-TERM", |dir, port| {
            let data = dir.join("data");
            let install = unprivileged(&install_db)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"])
                .output()
                .expect("run mariadb-install-db");
            assert!(
                install.status.success(),
                "mariadb-install-db failed: {}{}",
                String::from_utf8_lossy(&install.stdout),
                String::from_utf8_lossy(&install.stderr)
            );
            let mut mariadbd = unprivileged(&server_bin);
            mariadbd
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", dir.join("mariadb.sock").display()))
                .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
                .arg(format!("--port={port}"))
                .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
                .args(["--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"])
                // Throwaway data: small and without flushing each commit.
                .args(["--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0"]);
            mariadbd
        });
        let mut db = Self { client, dump, port: server.port, server };
        let mut probe = db.client("mysql");
        probe.args(["-e", "SELECT 1"]);
        db.server.wait_ready(probe);
        db
    }
}

impl SqlServer for MariaDb {
    fn kind(&self) -> &'static str {
        "MariaDB"
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn create_database(&self, db: &str) {
        self.sql("mysql", &format!("CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"));
    }

    fn client(&self, db: &str) -> Command {
        let mut c = Command::new(&self.client);
        // --batch --skip-column-names: bare tab-separated rows; --raw: no escaping of them.
        c.args(["--no-defaults", "--default-character-set=utf8mb4", "--batch", "--raw", "--skip-column-names"]).args([
            "-h",
            "127.0.0.1",
            "-P",
            &self.port.to_string(),
            "-u",
            "root",
            db,
        ]);
        c
    }

    fn dump_command(&self, db: &str) -> String {
        format!(
            "{} --no-defaults --default-character-set=utf8mb4 --single-transaction --routines --events \
             -h 127.0.0.1 -P {} -u root {db}",
            sh_quote(&self.dump),
            self.port
        )
    }
}

/// One server process in its temp dir, owned by `nobody` when the test runs as root.
struct Server {
    what: &'static str,
    /// The `kill` option that shuts the server down cleanly.
    stop_signal: &'static str,
    port: u16,
    child: Child,
    log: PathBuf,
    // Last, so the process is gone before its directory is removed.
    dir: tempfile::TempDir,
}

impl Server {
    /// Makes a temp dir, lets `prepare(dir, port)` initialise it and build the server's
    /// command, and spawns that with its output in `dir/server.log`. Tries again on a new
    /// port (three times in all) if the server dies at once, as when another process took
    /// the free port in between.
    fn start(what: &'static str, stop_signal: &'static str, mut prepare: impl FnMut(&Path, u16) -> Command) -> Self {
        const ATTEMPTS: u32 = 3;
        let mut last_log = String::new();
        for _ in 0..ATTEMPTS {
            let dir = tempfile::Builder::new().prefix(&format!("arka-{what}-")).tempdir().expect("temp dir");
            if is_root() {
                std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).expect("give the temp dir to nobody");
            }
            let port = free_port();
            let mut cmd = prepare(dir.path(), port);
            let log = dir.path().join("server.log");
            let out = fs::File::create(&log).expect("server log");
            let err = out.try_clone().expect("server log");
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
            let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
            let mut server = Self { what, stop_signal, port, child, log, dir };
            std::thread::sleep(Duration::from_millis(200));
            if server.child.try_wait().expect("poll the server").is_none() {
                return server;
            }
            last_log = server.log_tail(30);
        }
        panic!("{what} exited at start {ATTEMPTS} times; the last log:\n{last_log}");
    }

    /// Runs `probe` until it succeeds; fails with the server's log if the server exits or
    /// takes longer than [`START_TIMEOUT`].
    fn wait_ready(&mut self, mut probe: Command) {
        probe.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let started = Instant::now();
        while !probe.status().is_ok_and(|s| s.success()) {
            let exited = self.child.try_wait().expect("poll the server");
            assert!(exited.is_none(), "{} exited before accepting connections:\n{}", self.what, self.log_tail(40));
            assert!(
                started.elapsed() < START_TIMEOUT,
                "{} did not accept connections within {START_TIMEOUT:?}:\n{}",
                self.what,
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log ({}), last lines:\n{}", self.what, self.dir.path().display(), self.log_tail(30));
        }
        // A clean shutdown (PostgreSQL releases its shared memory), SIGKILL if it takes
        // too long.
        let _ = Command::new("kill").args([self.stop_signal, &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command for `program` that runs as `nobody` when the test runs as root, and dies with
/// the thread that started it either way.
fn unprivileged(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    if is_root() {
        c.arg(format!("--reuid={NOBODY}")).arg(format!("--regid={NOBODY}")).arg("--clear-groups");
    }
    c.args(["--pdeathsig", "KILL"]).arg(program);
    // nobody's home does not exist; nothing should look there.
    c.env("HOME", "/tmp");
    c
}

/// The newest `/usr/lib/postgresql/N/bin` that has the server (`initdb`, `postgres`).
fn postgres_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => {
            panic!("the PostgreSQL server (/usr/lib/postgresql/*/bin/initdb and postgres) is missing: {INSTALL_HINT}")
        }
    }
}

fn find_first(candidates: &[&str], what: &str) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{what} is missing (looked for {}): {INSTALL_HINT}", candidates.join(", ")))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// `path` quoted for `/bin/sh`.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Runs `cmd` with `input` on its stdin and collects its output (stdin is written from
/// another thread, so a command that answers while reading cannot deadlock).
pub fn feed(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A client that stops at an error closes its stdin early; its exit status tells.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for the command");
    writer.join().expect("stdin writer");
    out
}

/// Runs `from | into`, a real pipe between two processes, and returns both outcomes.
pub fn pipe(mut from: Command, mut into: Command) -> (Output, Output) {
    from.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut first = from.spawn().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", from.get_program()));
    let stdout = first.stdout.take().expect("piped stdout");
    into.stdin(Stdio::from(stdout)).stdout(Stdio::piped()).stderr(Stdio::piped());
    let second = into.spawn().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", into.get_program()));
    // Both are collected at once, so neither can block on a full stderr pipe.
    let first = std::thread::spawn(move || first.wait_with_output().expect("wait for the sending command"));
    let second = second.wait_with_output().expect("wait for the receiving command");
    (first.join().expect("sending command"), second)
}
