//! The command-line interface: arguments (clap) resolved into engine calls, with human
//! output on a terminal and `--json` for scripts. Exit codes: 0 ok, 1 error, 2 usage,
//! 3 partial (a snapshot was written but some files could not be read).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::backup::{self, BackupOptions, Problem, Source};

/// Prints a line to stdout. A closed stdout (`arka ls … | head`) ends the process quietly
/// with the status a SIGPIPE would give, instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

mod agent_cmd;
mod audit_cmd;
mod erase_cmd;
mod prune_cmd;
mod service_cmd;

use crate::engine::audit::{Entry as AuditEntry, Operation};
use crate::engine::progress::Progress;
use crate::engine::restore;
use crate::error::{Error, Result};
use crate::repo::blob::BlobReader;
use crate::repo::keys::{load_agent_key, load_identities, write_secret_file};
use crate::repo::snapshots;
use crate::repo::Repository;
use crate::store::Store;

#[derive(Parser)]
#[command(name = "arka", version, about = "Encrypted, deduplicated backups for clinics")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// No progress display.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Make a recovery identity (keep it offline) and print its public recipient.
    Keygen(KeygenArgs),
    /// Create a repository for one or more recipients and write its agent key.
    Init(InitArgs),
    /// Back up paths, or a command's output, with the agent key.
    Backup(BackupArgs),
    /// List snapshots (agent key or recovery identity).
    Snapshots(SnapshotsArgs),
    /// List the files of a snapshot (recovery identity).
    Ls(LsArgs),
    /// Restore a snapshot into a directory (recovery identity).
    Restore(RestoreArgs),
    /// Write one file of a snapshot to standard output (recovery identity).
    Dump(DumpArgs),
    /// Copy what another target lacks (no keys needed: objects are checked by hash).
    Sync(SyncArgs),
    /// Check that every snapshot is restorable (agent key: structure and data hashes;
    /// recovery identity: also decrypt every blob read).
    Verify(VerifyArgs),
    /// Remove snapshots a retention policy does not keep (default: the clinic policy).
    Forget(ForgetArgs),
    /// Delete data no snapshot references, after a grace period that protects running backups.
    Prune(prune_cmd::PruneArgs),
    /// Remove paths from every snapshot and delete their data (recovery identity).
    Erase(erase_cmd::EraseArgs),
    /// The agent service: `agent run --config FILE` (scheduled backups, status page).
    Agent(agent_cmd::AgentArgs),
    /// List the audit trail of every operation on the repository, or `audit verify` its chain.
    Audit(audit_cmd::AuditArgs),
    /// The agent as a Windows service: `service install --config FILE`, `start`, `stop`, `uninstall`.
    Service(service_cmd::ServiceArgs),
}

#[derive(Args)]
struct RepoArg {
    /// Repository: a path, file:///path or s3://bucket/prefix (S3 settings from AWS_*).
    #[arg(long, env = "ARKA_REPO")]
    repo: String,
}

#[derive(Args)]
struct KeygenArgs {
    /// Write the identity here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Protect the identity file with a passphrase (ARKA_PASSPHRASE or a prompt).
    #[arg(long)]
    passphrase: bool,
}

#[derive(Args)]
struct InitArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Recovery recipient (age1…); repeat for several people.
    #[arg(long = "recipient", required = true)]
    recipients: Vec<String>,
    /// Where to write the agent key (default: print it).
    #[arg(long)]
    agent_key_out: Option<PathBuf>,
    /// Target pack size in MiB.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=512))]
    pack_size_mib: Option<u32>,
}

#[derive(Args)]
struct BackupArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long, env = "ARKA_AGENT_KEY")]
    agent_key: PathBuf,
    /// Files and directories to back up.
    #[arg(required_unless_present = "stdin_from_command", conflicts_with = "stdin_from_command")]
    paths: Vec<PathBuf>,
    /// Back up this command's standard output (e.g. "pg_dump clinic").
    #[arg(long, requires = "name")]
    stdin_from_command: Option<String>,
    /// Name of the command source (the file name it restores as).
    #[arg(long)]
    name: Option<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Host name recorded in the snapshot.
    #[arg(long)]
    host: Option<String>,
    /// Files cache directory.
    #[arg(long, env = "ARKA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Read every file even if the files cache says it is unchanged.
    #[arg(long)]
    no_cache: bool,
}

/// Either key: the agent key for what it may do, or a recovery identity, which can do all.
#[derive(Args)]
struct AnyKeyArgs {
    #[arg(long, env = "ARKA_AGENT_KEY", required_unless_present = "identity")]
    agent_key: Option<PathBuf>,
    #[arg(long, env = "ARKA_IDENTITY")]
    identity: Option<PathBuf>,
}

#[derive(Args)]
struct SnapshotsArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    keys: AnyKeyArgs,
}

#[derive(Args)]
struct IdentityArg {
    /// Recovery identity file (AGE-SECRET-KEY-1…, possibly passphrase-protected).
    #[arg(long, env = "ARKA_IDENTITY")]
    identity: PathBuf,
}

#[derive(Args)]
struct LsArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// `latest`, or a snapshot ID (prefix).
    snapshot: String,
    /// A directory or file within the snapshot.
    path: Option<String>,
    /// With `latest`: the newest snapshot at or before this time.
    #[arg(long)]
    at: Option<String>,
}

#[derive(Args)]
struct RestoreArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// `latest`, or a snapshot ID (prefix).
    snapshot: String,
    /// With `latest`: the newest snapshot at or before this time ("2026-05-01 14:00").
    #[arg(long)]
    at: Option<String>,
    /// Restore only this path within the snapshot.
    #[arg(long)]
    path: Option<String>,
    /// Directory to restore into.
    #[arg(long)]
    target: PathBuf,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    keys: AnyKeyArgs,
    /// Also download packs and check their contents: all of them, or the given percentage,
    /// least recently checked first (`--read-data=5` daily covers everything in 20 days).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "100", value_name = "PERCENT")]
    read_data: Option<f64>,
    /// Where the rotation of partial --read-data runs is remembered.
    #[arg(long, env = "ARKA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ForgetArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long, env = "ARKA_AGENT_KEY")]
    agent_key: PathBuf,
    /// Keep the N newest snapshots of each source.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep every snapshot within this time of now (48h, 7d, 6m, 2y).
    #[arg(long, value_parser = crate::engine::retention::parse_duration)]
    keep_within: Option<i64>,
    /// Newest snapshot of each hour: a count (24) or a time span (7d).
    #[arg(long)]
    keep_hourly: Option<crate::engine::retention::Keep>,
    #[arg(long)]
    keep_daily: Option<crate::engine::retention::Keep>,
    #[arg(long)]
    keep_weekly: Option<crate::engine::retention::Keep>,
    #[arg(long)]
    keep_monthly: Option<crate::engine::retention::Keep>,
    #[arg(long)]
    keep_yearly: Option<crate::engine::retention::Keep>,
    /// Show what would be kept and why, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Then prune with its defaults (1 day grace period, repack above 10% unused).
    #[arg(long)]
    prune: bool,
}

#[derive(Args)]
struct SyncArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The target to bring up to date: a path, file:///path or s3://bucket/prefix.
    #[arg(long)]
    to: String,
}

#[derive(Args)]
struct DumpArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    snapshot: String,
    /// The file within the snapshot.
    path: String,
    #[arg(long)]
    at: Option<String>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ARKA_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    // Few blocking threads: each thread that allocates gets its own glibc malloc arena, and
    // a pool of dozens of short-lived file I/O threads tripled restore's peak memory.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("arka: error: {e}");
            ExitCode::from(if matches!(e, Error::Usage(_)) { 2 } else { 1 })
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let out = Output { json: cli.json, progress: !cli.quiet && !cli.json && std::io::stderr().is_terminal() };
    match cli.command {
        Command::Keygen(a) => keygen(a, &out),
        Command::Init(a) => init(a, &out).await,
        Command::Backup(a) => backup(a, &out).await,
        Command::Snapshots(a) => list_snapshots(a, &out).await,
        Command::Ls(a) => ls(a, &out).await,
        Command::Restore(a) => restore(a, &out).await,
        Command::Dump(a) => dump(a).await,
        Command::Sync(a) => sync(a, &out).await,
        Command::Verify(a) => verify(a, &out).await,
        Command::Forget(a) => forget(a, &out).await,
        Command::Prune(a) => prune_cmd::prune(a, &out).await,
        Command::Erase(a) => erase_cmd::erase(a, &out).await,
        Command::Agent(a) => agent_cmd::agent(a).await,
        Command::Audit(a) => audit_cmd::run(a, &out).await,
        Command::Service(a) => service_cmd::service(a).await,
    }
}

struct Output {
    json: bool,
    progress: bool,
}

impl Output {
    /// Shows a progress line on the terminal until the returned guard is dropped.
    fn progress_bar(&self, progress: &Arc<Progress>, verb: &'static str) -> Option<ProgressGuard> {
        if !self.progress {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        let (p, b) = (progress.clone(), bar.clone());
        let started = std::time::Instant::now();
        let task = tokio::spawn(async move {
            loop {
                let bytes = p.bytes.load(std::sync::atomic::Ordering::Relaxed);
                let files = p.files.load(std::sync::atomic::Ordering::Relaxed);
                let rate = bytes as f64 / started.elapsed().as_secs_f64().max(0.001);
                b.set_message(format!("{verb} {files} files, {} ({}/s)", human_bytes(bytes), human_bytes(rate as u64)));
                b.tick();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Some(ProgressGuard { bar, task })
    }
}

struct ProgressGuard {
    bar: indicatif::ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

fn keygen(a: KeygenArgs, out: &Output) -> Result<ExitCode> {
    let id = arka_proto::RecoveryIdentities::generate();
    let recipient = id.recipients().remove(0);
    let mut text = id.to_file_text().into_bytes();
    if a.passphrase {
        let pass = passphrase_for("new recovery identity", true)?;
        text = arka_proto::crypto::seal_with_passphrase(&text, &pass);
    }
    match &a.output {
        Some(path) => write_secret_file(path, &text)?,
        None if a.passphrase => return Err(Error::Usage("--passphrase needs -o FILE: the result is binary".into())),
        None => say!("{}", String::from_utf8_lossy(&text).trim_end()),
    }
    if out.json {
        say!("{}", serde_json::json!({ "recipient": recipient }));
    } else if a.output.is_some() {
        say!("{recipient}");
    } else {
        eprintln!("public recipient: {recipient}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a passphrase from `ARKA_PASSPHRASE` or the terminal.
fn passphrase_for(what: &str, confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("ARKA_PASSPHRASE") {
        return Ok(p);
    }
    let p = rpassword::prompt_password(format!("passphrase for the {what}: "))
        .map_err(|e| Error::Usage(format!("cannot read a passphrase (set ARKA_PASSPHRASE): {e}")))?;
    if p.is_empty() {
        return Err(Error::Usage("empty passphrase".into()));
    }
    if confirm && rpassword::prompt_password("again: ").map_err(|e| Error::Usage(e.to_string()))? != p {
        return Err(Error::Usage("the passphrases differ".into()));
    }
    Ok(p)
}

async fn init(a: InitArgs, out: &Output) -> Result<ExitCode> {
    let store = Store::open(&a.repo.repo, true)?;
    // Refuse before touching the repository if the key file cannot be written.
    if let Some(p) = &a.agent_key_out {
        if p.exists() {
            return Err(Error::Usage(format!("{} already exists; refusing to overwrite a key", p.display())));
        }
    }
    let (repo, key) = Repository::init(store, &a.recipients, a.pack_size_mib.map(|m| m << 20)).await?;
    match &a.agent_key_out {
        Some(p) => write_secret_file(p, key.to_file_text().as_bytes())?,
        None => say!("{}", key.to_file_text().trim_end()),
    }
    audit_cmd::initialised(&repo).await;
    let id = repo.config.repo_id.to_hex();
    if out.json {
        say!("{}", serde_json::json!({ "repo_id": id, "recipients": repo.config.recipients }));
    } else {
        eprintln!("created repository {} at {}", &id[..8], repo.store.display);
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM stops the backup at the next safe point: what was uploaded is
/// indexed for the next run, and no snapshot is written.
fn cancel_on_signal(progress: &Arc<Progress>) {
    let p = progress.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else { return };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        p.cancelled.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

async fn backup(a: BackupArgs, out: &Output) -> Result<ExitCode> {
    let key = load_agent_key(&a.agent_key)?;
    let repo = Arc::new(Repository::open_with_agent_key(Store::open(&a.repo.repo, false)?, key).await?);
    let source = match a.stdin_from_command {
        Some(command) => Source::Command { command, name: a.name.expect("clap requires --name") },
        None => Source::Paths(
            a.paths.iter().map(|p| std::path::absolute(p).map_err(|e| Error::io(p, e))).collect::<Result<_>>()?,
        ),
    };
    let progress = Arc::new(Progress::default());
    cancel_on_signal(&progress);
    let cache_dir = a.cache_dir.unwrap_or_else(backup::default_cache_dir);
    let opts = BackupOptions {
        hostname: a.host.unwrap_or_else(crate::platform::hostname),
        tags: a.tags,
        cache_dir: (!a.no_cache).then(|| cache_dir.clone()),
        progress: progress.clone(),
    };
    let guard = out.progress_bar(&progress, "backed up");
    let outcome = backup::run(repo.clone(), source, opts).await?;
    drop(guard);
    audit_cmd::backed_up(&repo, &outcome, cache_dir).await;
    let s = &outcome.snapshot.stats;
    // File names go to the operator's own terminal only, never to logs.
    for p in &outcome.problems {
        match p {
            Problem::Unreadable { path, error } => {
                eprintln!("arka: unreadable, not backed up: {}: {error}", path.display())
            }
            Problem::Skipped { path } => eprintln!("arka: special file skipped: {}", path.display()),
        }
    }
    let secs = (s.duration_ms as f64 / 1000.0).max(0.001);
    let mb_s = s.bytes as f64 / 1e6 / secs;
    if out.json {
        let v = serde_json::json!({
            "snapshot_id": outcome.id.to_hex(),
            "time": rfc3339(outcome.snapshot.time_ns),
            "partial": outcome.snapshot.partial,
            "stats": s,
            "throughput_mb_s": mb_s,
        });
        say!("{v}");
    } else {
        say!(
            "snapshot {} saved{}: {} files, {} dirs, {} processed ({} read), {} new, {} stored, in {:.1} s ({:.0} MB/s)",
            outcome.id.short(),
            if outcome.snapshot.partial { " (PARTIAL: some files were unreadable)" } else { "" },
            s.files,
            s.dirs,
            human_bytes(s.bytes),
            human_bytes(s.bytes_read),
            human_bytes(s.bytes_new),
            human_bytes(s.bytes_stored),
            secs,
            mb_s
        );
    }
    Ok(if outcome.snapshot.partial { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

/// Opens the repository with whichever key was given.
async fn open_any(repo: &str, agent_key: Option<&PathBuf>, identity: Option<&PathBuf>) -> Result<Repository> {
    let store = Store::open(repo, false)?;
    match (identity, agent_key) {
        (Some(id), _) => {
            Repository::open_with_identity(store, load_identities(id, || passphrase_for("recovery identity", false))?)
                .await
        }
        (None, Some(k)) => Repository::open_with_agent_key(store, load_agent_key(k)?).await,
        (None, None) => Err(Error::Usage("give --agent-key or --identity".into())),
    }
}

async fn open_for_reading(repo: &str, identity: &IdentityArg) -> Result<Arc<Repository>> {
    Ok(Arc::new(open_any(repo, None, Some(&identity.identity)).await?))
}

async fn list_snapshots(a: SnapshotsArgs, out: &Output) -> Result<ExitCode> {
    let repo = open_any(&a.repo.repo, a.keys.agent_key.as_ref(), a.keys.identity.as_ref()).await?;
    let snaps = repo.list_snapshots().await?;
    if out.json {
        let list: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(),
                    "time": rfc3339(s.time_ns),
                    "time_unix_ns": s.time_ns,
                    "hostname": s.hostname,
                    "source_kind": s.source_kind,
                    "source": s.source,
                    "tags": s.tags,
                    "partial": s.partial,
                    "stats": s.stats,
                    "program": s.program,
                })
            })
            .collect();
        say!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    say!("{:<8}  {:<19}  {:<16}  {:<7}  {:>8}  {:>10}  source", "ID", "time", "host", "kind", "files", "size");
    for (id, s) in &snaps {
        let time = jiff::Timestamp::from_nanosecond(s.time_ns as i128)
            .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| s.time_ns.to_string());
        say!(
            "{:<8}  {:<19}  {:<16}  {:<7}  {:>8}  {:>10}  {}{}",
            id.short(),
            time,
            s.hostname,
            s.source_kind,
            s.stats.files,
            human_bytes(s.stats.bytes),
            s.source.join(" "),
            if s.partial { "  (partial)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn pick(repo: &Repository, spec: &str, at: Option<&str>) -> Result<(arka_proto::ObjectId, arka_proto::Snapshot)> {
    let at = at.map(snapshots::parse_time).transpose()?;
    let snaps = repo.list_snapshots().await?;
    Ok(snapshots::select(&snaps, spec, at)?.clone())
}

async fn reader_for(repo: Arc<Repository>) -> Result<Arc<BlobReader>> {
    let index = Arc::new(repo.load_index_for_reading().await?);
    Ok(Arc::new(BlobReader::new(repo, index)))
}

async fn ls(a: LsArgs, out: &Output) -> Result<ExitCode> {
    let repo = open_for_reading(&a.repo.repo, &a.identity).await?;
    let (_, snap) = pick(&repo, &a.snapshot, a.at.as_deref()).await?;
    let reader = reader_for(repo).await?;
    let entries = restore::walk(&reader, &snap, a.path.as_deref()).await?;
    for e in &entries {
        let n = &e.node;
        if out.json {
            let v = serde_json::json!({
                "path": e.display_path(), "kind": n.kind, "size": n.size, "mode": n.mode, "mtime_ns": n.mtime_ns,
            });
            say!("{v}");
        } else {
            let kind = match n.kind {
                arka_proto::NodeKind::Dir => 'd',
                arka_proto::NodeKind::Symlink => 'l',
                arka_proto::NodeKind::File => '-',
            };
            say!("{kind} {:04o} {:>12}  {}", n.mode.unwrap_or(0), n.size, e.display_path());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore(a: RestoreArgs, out: &Output) -> Result<ExitCode> {
    let repo = open_for_reading(&a.repo.repo, &a.identity).await?;
    let (id, snap) = pick(&repo, &a.snapshot, a.at.as_deref()).await?;
    let reader = reader_for(repo.clone()).await?;
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let guard = out.progress_bar(&progress, "restored");
    let summary = restore::restore(reader, &snap, a.path.as_deref(), &a.target, progress).await?;
    drop(guard);
    audit_cmd::restored(&repo, id, &summary, a.path.is_some()).await;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    if out.json {
        say!("{}", serde_json::json!({ "snapshot_id": id.to_hex(), "summary": summary, "seconds": secs }));
    } else {
        say!(
            "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} in {:.1} s ({:.0} MB/s)",
            id.short(),
            a.target.display(),
            summary.files,
            summary.dirs,
            summary.symlinks,
            human_bytes(summary.bytes),
            secs,
            summary.bytes as f64 / 1e6 / secs
        );
    }
    for (path, reason) in &summary.damaged {
        eprintln!("arka: not restored, its data is damaged: {path}: {reason}");
    }
    if !summary.damaged.is_empty() {
        eprintln!(
            "arka: {} files could not be restored; everything else was. Run `arka verify --read-data` to see the damage",
            summary.damaged.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

async fn dump(a: DumpArgs) -> Result<ExitCode> {
    let repo = open_for_reading(&a.repo.repo, &a.identity).await?;
    let (id, snap) = pick(&repo, &a.snapshot, a.at.as_deref()).await?;
    let reader = reader_for(repo.clone()).await?;
    let entry = restore::find(&reader, &snap, &a.path).await?;
    let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    let bytes = restore::dump(&reader, &entry.node, &mut stdout).await?;
    audit_cmd::dumped(&repo, id, bytes).await;
    Ok(ExitCode::SUCCESS)
}

async fn verify(a: VerifyArgs, out: &Output) -> Result<ExitCode> {
    if let Some(p) = a.read_data.filter(|p| !(0.0..=100.0).contains(p)) {
        return Err(Error::Usage(format!("--read-data={p}: give a percentage between 0 and 100")));
    }
    let repo = Arc::new(open_any(&a.repo.repo, a.keys.agent_key.as_ref(), a.keys.identity.as_ref()).await?);
    let cache_dir = a.cache_dir.unwrap_or_else(backup::default_cache_dir);
    let opts = crate::engine::verify::VerifyOptions {
        read_data_percent: a.read_data,
        state_file: Some(cache_dir.join(repo.config.repo_id.to_hex()).join("verify-state.cbor")),
    };
    let report = crate::engine::verify::verify(repo.clone(), &opts).await?;
    audit_cmd::verified(&repo, &report, a.read_data, cache_dir).await;
    if out.json {
        say!("{}", serde_json::to_string(&report).expect("report serializes"));
    } else {
        say!(
            "checked {} snapshots, {} index segments, {} packs, {} blobs; read {} packs ({}), decrypted {} blobs",
            report.snapshots,
            report.index_segments,
            report.packs,
            report.blobs,
            report.packs_read,
            human_bytes(report.bytes_read),
            report.blobs_decrypted
        );
        for d in &report.damage {
            say!("DAMAGED {}: {}", d.object, d.reason);
        }
        for s in &report.broken_snapshots {
            say!("BROKEN snapshot {} ({}): cannot be restored in full", &s.id[..8], s.source.join(" "));
            for f in &s.files {
                say!("    damaged file: {f}");
            }
        }
        if report.is_clean() {
            say!("no problems found");
        }
    }
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn forget(a: ForgetArgs, out: &Output) -> Result<ExitCode> {
    use crate::engine::retention::RetentionPolicy;
    let repo = Arc::new(open_any(&a.repo.repo, Some(&a.agent_key), None).await?);
    let mut policy = RetentionPolicy {
        last: a.keep_last,
        within: a.keep_within,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
    };
    let default_policy = policy.is_empty();
    if default_policy {
        policy = RetentionPolicy::clinic_default();
    }
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let plan = crate::engine::forget::plan(&repo, &policy, now).await?;
    let deleted = if a.dry_run { 0 } else { crate::engine::forget::execute(&repo, &plan).await? };
    if !a.dry_run {
        audit_cmd::forgot(&repo, &plan, deleted, &policy).await;
    }
    let pruned = match a.prune && !a.dry_run {
        true => Some(prune_cmd::prune_with_defaults(&repo).await?),
        false => None,
    };
    if out.json {
        let decisions: Vec<_> = plan
            .decisions
            .iter()
            .map(|(d, s)| {
                serde_json::json!({
                    "id": d.id.to_hex(), "time": rfc3339(s.time_ns), "effective_time": rfc3339(d.time_ns),
                    "group": d.group, "keep": d.keep(), "reasons": d.reasons,
                })
            })
            .collect();
        let unreadable: Vec<_> =
            plan.unreadable.iter().map(|(id, e)| serde_json::json!({"id": id.to_hex(), "error": e})).collect();
        say!(
            "{}",
            serde_json::json!({ "policy": policy, "dry_run": a.dry_run, "deleted": deleted, "decisions": decisions, "unreadable": unreadable, "prune": pruned })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if default_policy {
        say!("no --keep-* given: using the clinic default (all of 48 h, hourly 7 d, daily 6 months, monthly 2 years, yearly 10 years)");
    }
    let mut group = None;
    for (d, s) in &plan.decisions {
        if group != Some(&d.group) {
            say!("{}:", d.group);
            group = Some(&d.group);
        }
        let verdict = if d.keep() { format!("keep    ({})", d.reasons.join(", ")) } else { "forget".to_string() };
        say!("  {}  {}  {}", d.id.short(), rfc3339(s.time_ns), verdict);
    }
    for (id, e) in &plan.unreadable {
        say!("  {}  kept: cannot be read ({e})", id.short());
    }
    let forgotten = plan.forgotten().count();
    if a.dry_run {
        say!("dry run: would forget {forgotten} of {} snapshots", plan.decisions.len());
    } else {
        say!("forgot {deleted} of {} snapshots; the data only they used is freed by prune", plan.decisions.len());
    }
    if let Some(report) = &pruned {
        prune_cmd::print_report(report, false);
    }
    Ok(ExitCode::SUCCESS)
}

async fn sync(a: SyncArgs, out: &Output) -> Result<ExitCode> {
    let from = Store::open(&a.repo.repo, false)?;
    let to = Store::open(&a.to, true)?;
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let guard = out.progress_bar(&progress, "copied");
    let report = crate::engine::sync::sync(&from, &to, &progress).await?;
    drop(guard);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    if out.json {
        say!("{}", serde_json::json!({ "report": report, "seconds": secs }));
    } else {
        say!(
            "synced {} to {}: {} packs, {} index segments, {} snapshots, {} audit records copied ({}, {:.0} MB/s); {} objects already there",
            from.display,
            to.display,
            report.packs_copied,
            report.index_copied,
            report.snapshots_copied,
            report.audit_copied,
            human_bytes(report.bytes_copied),
            report.bytes_copied as f64 / 1e6 / secs,
            report.already_present
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A snapshot time for machines: RFC 3339 in UTC with nanoseconds.
fn rfc3339(time_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(time_ns as i128).map(|t| t.to_string()).unwrap_or_else(|_| time_ns.to_string())
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
