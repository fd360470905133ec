//! Harness for arka's end-to-end suites: it finds (and if need be builds) the real `arka`
//! binary, makes throwaway repositories with fresh keys, runs the CLI as a separate process
//! (exit codes and stderr are part of the contract) and compares directory trees.
//!
//! Unix only: the suites exercise modes, symlinks, FIFOs, sparse files and non-UTF-8 names.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub mod agent;
pub mod databases;
pub mod docs;
pub mod garage;
pub mod server;

/// The uid/gid the suites drop to when they run as root and need unreadable files.
pub const NOBODY: u32 = 65534;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The `arka` binary under test.
///
/// `$ARKA_BIN` if set; otherwise `target/<profile>/arka` next to this test executable
/// (`target/<profile>/deps/<test>`). The binary is (re)built with cargo, for the same
/// profile, when it is missing or older than any source of `agent/` or `proto/`, so the
/// suite never silently tests a stale build.
pub fn arka_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(find_or_build)
}

fn find_or_build() -> PathBuf {
    if let Some(p) = std::env::var_os("ARKA_BIN") {
        return PathBuf::from(p);
    }
    let name = format!("arka{}", std::env::consts::EXE_SUFFIX);
    cargo_artifact(&name, "arka-agent", &["--bin", "arka"], &["Cargo.toml"])
}

/// `target/<profile>/<rel>` (the profile of this test executable), built with cargo from
/// `package` (`arka-agent` or `arka-server`) with `what` (e.g. `--bin arka`) when missing
/// or older than any source of that package, `proto/`, the lock file or `extra_inputs`
/// (paths from the workspace root).
pub fn cargo_artifact(rel: &str, package: &str, what: &[&str], extra_inputs: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir =
        exe.parent().and_then(Path::parent).expect("test executables live in target/<profile>/deps").to_path_buf();
    let bin = profile_dir.join(rel);
    if !bin.exists() || is_stale(&bin, package, extra_inputs) {
        build(&profile_dir, package, what);
    }
    assert!(bin.exists(), "cargo build succeeded but {} does not exist", bin.display());
    bin
}

/// Whether any input of the artifact is newer than it.
fn is_stale(bin: &Path, package: &str, extra_inputs: &[&str]) -> bool {
    let Ok(built) = fs::metadata(bin).and_then(|m| m.modified()) else { return true };
    let root = workspace_root();
    let mut inputs: Vec<PathBuf> = extra_inputs.iter().map(|p| root.join(p)).collect();
    inputs.push(root.join("Cargo.lock"));
    let package_dir = package.strip_prefix("arka-").unwrap_or(package);
    for krate in [package_dir, "proto"] {
        inputs.push(root.join(krate).join("Cargo.toml"));
        inputs.extend(walk_files(&root.join(krate).join("src")));
    }
    inputs.iter().filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok()).any(|t| t > built)
}

fn build(profile_dir: &Path, package: &str, what: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args(["build", "--quiet", "-p", package]).args(what);
    match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    let status = cmd.status().expect("running cargo");
    assert!(status.success(), "building {what:?} failed ({status}); see cargo's output above");
}

/// Every regular file under `root`, recursively (symlinks are not followed).
pub fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// A `Vec<OsString>` of arguments from anything that is `AsRef<OsStr>` (`&str`, paths…).
#[macro_export]
macro_rules! os_args {
    ($($a:expr),* $(,)?) => {
        vec![$(::std::ffi::OsString::from(::std::convert::AsRef::<::std::ffi::OsStr>::as_ref(&$a))),*]
    };
}

/// The outcome of one `arka` run.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub what: String,
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit code, showing stderr when it differs.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            code,
            "`{}` exited with {} (wanted {code})\n--- stderr:\n{}\n--- stdout:\n{}",
            self.what,
            self.code,
            self.stderr,
            truncate(&self.stdout_text(), 4000)
        );
        self
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        self.expect_code(0)
    }

    /// Asserts stderr contains `needle` (case-sensitive).
    #[track_caller]
    pub fn expect_stderr(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "stderr of `{}` (exit {}) does not mention {needle:?}:\n{}",
            self.what,
            self.code,
            self.stderr
        );
        self
    }

    /// stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout of `{}` is not JSON ({e}):\n{}", self.what, self.stdout_text()))
    }

    /// stdout as JSON lines (e.g. `ls --json`).
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
            .collect()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Runs a prepared command to completion and captures its outcome.
pub fn run(mut cmd: Command) -> Run {
    let what = describe(&cmd);
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    Run {
        what,
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a prepared command with `input` on its standard input (`--identity -`).
pub fn run_with_stdin(mut cmd: Command, input: &[u8]) -> Run {
    let what = describe(&cmd);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // From a thread: a command that stops reading early must not block the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("waiting for `{what}`: {e}"));
    writer.join().expect("stdin writer");
    Run {
        what,
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// A throwaway world for one test: a temp dir holding a recovery identity, a repository
/// initialised for it, the repository's agent key and an isolated files-cache directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// Recovery identity file (passphrase-protected if made with [`Fixture::with_passphrase`]).
    pub identity: PathBuf,
    /// Its public recipient (age1…).
    pub recipient: String,
    /// The repository as given to `--repo`: a directory in the temp dir, or a URL such as
    /// `s3://bucket/prefix` for a fixture made with [`Fixture::at`].
    pub repo: PathBuf,
    pub agent_key: PathBuf,
    pub cache: PathBuf,
    /// Extra environment for every run (e.g. the `AWS_*` variables of an S3 target).
    pub env: Vec<(String, String)>,
    passphrase: Option<String>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        Self::make(None, None, Vec::new())
    }

    /// A fixture whose repository packs hold about `mib` MiB, so that a test can damage,
    /// forget or prune part of a small repository.
    pub fn with_pack_size_mib(mib: u32) -> Self {
        let fx = Self::new();
        // Re-init: the fixture's repository is replaced by a fresh one.
        fs::remove_dir_all(&fx.repo).expect("remove the fixture's repository");
        fs::remove_file(&fx.agent_key).expect("remove the fixture's agent key");
        fx.arka([
            OsString::from("init"),
            "--repo".into(),
            fx.repo.clone().into(),
            "--recipient".into(),
            fx.recipient.clone().into(),
            "--agent-key-out".into(),
            fx.agent_key.clone().into(),
            "--pack-size-mib".into(),
            mib.to_string().into(),
        ])
        .ok();
        fx
    }

    /// A fixture whose repository is `repo` (e.g. `s3://bucket/prefix`), initialised with
    /// `env` set; every later run gets `env` too.
    pub fn at(repo: &str, env: Vec<(String, String)>) -> Self {
        Self::make(None, Some(repo), env)
    }

    /// A fixture whose recovery identity is protected with `passphrase`; every run gets it
    /// in `ARKA_PASSPHRASE` unless the test overrides that.
    pub fn with_passphrase(passphrase: &str) -> Self {
        Self::make(Some(passphrase.to_string()), None, Vec::new())
    }

    fn make(passphrase: Option<String>, repo: Option<&str>, env: Vec<(String, String)>) -> Self {
        let dir = tempfile::Builder::new().prefix("arka-e2e-").tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let mut fx = Self {
            identity: root.join("recovery.key"),
            recipient: String::new(),
            repo: repo.map(PathBuf::from).unwrap_or_else(|| root.join("repo")),
            agent_key: root.join("agent.key"),
            cache: root.join("cache"),
            env,
            dir,
            passphrase,
        };
        fx.recipient = fx.keygen(&fx.identity, fx.passphrase.is_some());
        let init = fx.arka([
            OsStr::new("init"),
            "--repo".as_ref(),
            fx.repo.as_os_str(),
            "--recipient".as_ref(),
            fx.recipient.as_ref(),
            "--agent-key-out".as_ref(),
            fx.agent_key.as_os_str(),
        ]);
        init.ok();
        fx
    }

    /// `arka keygen -o path`; returns the printed recipient.
    pub fn keygen(&self, path: &Path, passphrase: bool) -> String {
        let mut args = vec![OsString::from("keygen"), "-o".into(), path.into()];
        if passphrase {
            args.push("--passphrase".into());
        }
        let out = self.arka(args).ok();
        let recipient = out.stdout_text().trim().to_string();
        assert!(recipient.starts_with("age1"), "keygen printed {recipient:?}, not a recipient");
        recipient
    }

    /// A path inside the fixture's temp dir.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A `Command` for arka with a clean environment: only this fixture's cache dir (and
    /// passphrase, if any) is set among arka's variables, and only the fixture's `env` among
    /// the `AWS_*` ones.
    pub fn command(&self) -> Command {
        self.command_as(None)
    }

    /// Like [`Fixture::command`], but running as `uid` (gid the same, no supplementary
    /// groups) through `setpriv`, for tests that run as root and need a lesser user.
    pub fn command_as(&self, uid: Option<u32>) -> Command {
        let mut cmd = match uid {
            None => Command::new(arka_bin()),
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}")).arg(format!("--regid={uid}")).arg("--clear-groups").arg(arka_bin());
                c
            }
        };
        for var in ["ARKA_REPO", "ARKA_AGENT_KEY", "ARKA_IDENTITY", "ARKA_PASSPHRASE", "ARKA_LOG"] {
            cmd.env_remove(var);
        }
        // S3 settings come only from the fixture (object_store reads every AWS_* variable).
        for (var, _) in std::env::vars_os() {
            if var.as_encoded_bytes().starts_with(b"AWS_") {
                cmd.env_remove(var);
            }
        }
        cmd.env("ARKA_CACHE_DIR", &self.cache);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(p) = &self.passphrase {
            cmd.env("ARKA_PASSPHRASE", p);
        }
        cmd
    }

    /// Runs `arka ARGS…`.
    pub fn arka<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command();
        cmd.args(args);
        run(cmd)
    }

    /// `--repo R --agent-key K`
    pub fn agent_args(&self) -> Vec<OsString> {
        vec!["--repo".into(), self.repo.clone().into(), "--agent-key".into(), self.agent_key.clone().into()]
    }

    /// `--repo R --identity I`
    pub fn reader_args(&self) -> Vec<OsString> {
        vec!["--repo".into(), self.repo.clone().into(), "--identity".into(), self.identity.clone().into()]
    }

    /// The argument list of `arka --json backup --repo R --agent-key K EXTRA… PATHS…`.
    pub fn backup_args<P: AsRef<OsStr>>(&self, paths: &[P], extra: &[&str]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--json".into(), "backup".into()];
        args.extend(self.agent_args());
        args.extend(extra.iter().map(OsString::from));
        args.extend(paths.iter().map(|p| p.as_ref().to_os_string()));
        args
    }

    /// `arka --json backup …` of `paths`.
    pub fn backup<P: AsRef<OsStr>>(&self, paths: &[P], extra: &[&str]) -> Run {
        self.arka(self.backup_args(paths, extra))
    }

    /// A successful backup's JSON summary (`snapshot_id`, `time`, `partial`, `stats`…).
    #[track_caller]
    pub fn backup_ok<P: AsRef<OsStr>>(&self, paths: &[P], extra: &[&str]) -> Value {
        self.backup(paths, extra).ok().json()
    }

    /// `arka --json snapshots` with the agent key, oldest first.
    #[track_caller]
    pub fn snapshots(&self) -> Vec<Value> {
        let mut args: Vec<OsString> = vec!["--json".into(), "snapshots".into()];
        args.extend(self.agent_args());
        match self.arka(args).ok().json() {
            Value::Array(v) => v,
            other => panic!("snapshots --json printed {other}, not an array"),
        }
    }

    /// `arka --json restore SNAPSHOT --target TARGET EXTRA…` with the recovery identity.
    pub fn restore(&self, snapshot: &str, target: &Path, extra: &[&str]) -> Run {
        let mut args: Vec<OsString> = vec!["--json".into(), "restore".into()];
        args.extend(self.reader_args());
        args.push(snapshot.into());
        args.push("--target".into());
        args.push(target.into());
        args.extend(extra.iter().map(OsString::from));
        self.arka(args)
    }

    /// `arka dump SNAPSHOT PATH` with the recovery identity.
    pub fn dump(&self, snapshot: &str, path: &str) -> Run {
        let mut args: Vec<OsString> = vec!["dump".into()];
        args.extend(self.reader_args());
        args.push(snapshot.into());
        args.push(path.into());
        self.arka(args)
    }

    /// `arka --json ls SNAPSHOT` with the recovery identity: one JSON value per entry.
    #[track_caller]
    pub fn ls(&self, snapshot: &str) -> Vec<Value> {
        let mut args: Vec<OsString> = vec!["--json".into(), "ls".into()];
        args.extend(self.reader_args());
        args.push(snapshot.into());
        self.arka(args).ok().json_lines()
    }

    /// Lets `uid` run backups in this fixture: the temp dir becomes traversable, and the
    /// repository, cache dir and agent key become the user's.
    pub fn hand_over_to(&self, uid: u32) {
        set_mode(self.dir.path(), 0o755);
        fs::create_dir_all(&self.cache).expect("cache dir");
        chown_recursive(&self.repo, uid);
        chown_recursive(&self.cache, uid);
        std::os::unix::fs::chown(&self.agent_key, Some(uid), Some(uid)).expect("chown agent key");
    }
}

/// Recursively gives `path` to `uid` (gid the same); symlinks themselves, not their targets.
pub fn chown_recursive(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if fs::symlink_metadata(path).map(|m| m.is_dir()).unwrap_or(false) {
        for e in fs::read_dir(path).expect("read_dir").flatten() {
            chown_recursive(&e.path(), uid);
        }
    }
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Sets a file's or directory's mtime to `secs` + `nanos` after (or, for negative
/// `secs`, before) the Unix epoch.
pub fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nanos.into())
    };
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.set_modified(t).unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// An mtime as nanoseconds since the epoch.
pub fn mtime_ns(m: &fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// Writes `bytes` to `path`, creating parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Deterministic pseudo-random bytes (splitmix64): incompressible, reproducible.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Inverts every bit of the byte at `offset` of `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut f = fs::OpenOptions::new().read(true).write(true).open(path).expect("open for damage");
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0xff;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a tree comparison looks at for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File { len: u64 },
    Dir,
    Symlink { target: OsString },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    pub kind: EntryKind,
    /// Permission bits; `None` for symlinks (they have none of their own on Linux).
    pub mode: Option<u32>,
    /// For files and directories; `None` for symlinks (restore does not set theirs).
    pub mtime_ns: Option<i128>,
}

/// Every entry under `root` (and `root` itself, as the empty path), by relative path.
pub fn scan_tree(root: &Path) -> BTreeMap<PathBuf, EntryMeta> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let m = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        let ft = m.file_type();
        let (kind, mode, mtime) = if ft.is_symlink() {
            let target = fs::read_link(&path).expect("readlink").into_os_string();
            (EntryKind::Symlink { target }, None, None)
        } else if ft.is_dir() {
            for e in fs::read_dir(&path).unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display())) {
                stack.push(rel.join(e.expect("dir entry").file_name()));
            }
            (EntryKind::Dir, Some(m.mode() & 0o7777), Some(mtime_ns(&m)))
        } else if ft.is_file() {
            (EntryKind::File { len: m.len() }, Some(m.mode() & 0o7777), Some(mtime_ns(&m)))
        } else {
            panic!("{} is neither a file, a directory nor a symlink", path.display());
        };
        out.insert(rel, EntryMeta { kind, mode, mtime_ns: mtime });
    }
    out
}

/// Asserts that `actual` holds the same tree as `expected`: the same entries, kinds,
/// symlink targets, modes, mtimes (files and directories) and, byte for byte, contents
/// (compared streaming, so files of any size are fine).
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let want = scan_tree(expected);
    let got = scan_tree(actual);
    let mut problems = Vec::new();
    for (rel, w) in &want {
        match got.get(rel) {
            None => problems.push(format!("missing: {rel:?}")),
            Some(g) if g != w => problems.push(format!("differs: {rel:?}\n    expected {w:?}\n    restored {g:?}")),
            Some(_) => {}
        }
    }
    for rel in got.keys().filter(|k| !want.contains_key(*k)) {
        problems.push(format!("unexpected: {rel:?}"));
    }
    for (rel, w) in &want {
        if matches!(w.kind, EntryKind::File { .. })
            && got.get(rel) == Some(w)
            && !same_contents(&expected.join(rel), &actual.join(rel))
        {
            problems.push(format!("contents differ: {rel:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differs from {}:\n  {}",
        actual.display(),
        expected.display(),
        problems.join("\n  ")
    );
}

/// Streams both files and compares them; `false` on any difference.
pub fn same_contents(a: &Path, b: &Path) -> bool {
    let open = |p: &Path| fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a), open(b));
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    n
}

/// Relative paths of the entries under `root` whose name starts with `.arka-restore-`.
pub fn restore_temp_files(root: &Path) -> Vec<PathBuf> {
    scan_tree(root)
        .into_keys()
        .filter(|p| p.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(b".arka-restore-")))
        .collect()
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(root: &Path) {
        write_file(&root.join("sub").join("a.dcm"), b"scan bytes");
        write_file(&root.join("b.txt"), b"note");
        std::os::unix::fs::symlink("sub/a.dcm", root.join("link")).unwrap();
        set_mtime(&root.join("sub").join("a.dcm"), 1_000_000_000, 5);
        set_mtime(&root.join("b.txt"), 1_100_000_000, 0);
        set_mtime(&root.join("sub"), 1_200_000_000, 0);
        set_mtime(root, 1_300_000_000, 0);
    }

    #[test]
    fn tree_comparison_catches_every_kind_of_difference() {
        type Change = fn(&Path);
        let changes: [(&str, Change); 7] = [
            ("content", |r| {
                fs::write(r.join("b.txt"), b"NOTE").unwrap();
                set_mtime(&r.join("b.txt"), 1_100_000_000, 0);
            }),
            ("mode", |r| set_mode(&r.join("b.txt"), 0o600)),
            ("file mtime", |r| set_mtime(&r.join("sub").join("a.dcm"), 1_000_000_000, 6)),
            ("dir mtime", |r| set_mtime(&r.join("sub"), 1_200_000_001, 0)),
            ("symlink target", |r| {
                fs::remove_file(r.join("link")).unwrap();
                std::os::unix::fs::symlink("b.txt", r.join("link")).unwrap();
                set_mtime(r, 1_300_000_000, 0);
            }),
            ("extra entry", |r| {
                fs::create_dir(r.join("extra")).unwrap();
                set_mtime(r, 1_300_000_000, 0);
            }),
            ("missing entry", |r| {
                fs::remove_file(r.join("sub").join("a.dcm")).unwrap();
                set_mtime(&r.join("sub"), 1_200_000_000, 0);
            }),
        ];
        let tmp = tempfile::tempdir().unwrap();
        let expected = tmp.path().join("expected");
        sample(&expected);
        let same = tmp.path().join("same");
        sample(&same);
        assert_same_tree(&expected, &same);
        for (i, (what, change)) in changes.iter().enumerate() {
            let actual = tmp.path().join(format!("changed{i}"));
            sample(&actual);
            change(&actual);
            let caught = std::panic::catch_unwind(|| assert_same_tree(&expected, &actual)).is_err();
            assert!(caught, "a different {what} went unnoticed");
        }
    }

    #[test]
    fn pseudo_random_is_reproducible_and_seeded() {
        assert_eq!(pseudo_random(1, 1000), pseudo_random(1, 1000));
        assert_ne!(pseudo_random(1, 1000), pseudo_random(2, 1000));
        assert_eq!(pseudo_random(1, 13).len(), 13);
        assert!(contains(b"abcPATIENTdef", b"PATIENT") && !contains(b"abc", b"PATIENT"));
    }
}
