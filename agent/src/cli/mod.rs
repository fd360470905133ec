//! The command-line interface: arguments (clap) resolved into engine calls through one
//! `engine::Session`, with human output on a terminal and `--json` for scripts. One file a
//! command group. Exit codes (DESIGN.md §8): 0 ok, 1 failed, 2 usage or configuration,
//! 3 partly done, 10 repository missing, 11 busy, 12 wrong or missing key, 130 cancelled.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

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
mod backup_cmd;
mod erase_cmd;
mod forget_cmd;
mod key_cmd;
mod key_rewrap_cmd;
mod key_rotate_cmd;
mod keys_cmd;
mod output;
mod paper_cmd;
mod paper_sheet;
mod prune_cmd;
mod read_cmd;
mod repair_cmd;
mod restore_cmd;
mod service_cmd;
mod sync_cmd;
mod verify_cmd;

use crate::engine::{Actor, Session};
use crate::error::{Error, Result};
use crate::repo::keys::{load_agent_key, load_identities};
use crate::repo::Repository;
use crate::store::{Limits, ServerOptions, Store};
use output::Output;

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
    Keygen(keys_cmd::KeygenArgs),
    /// Create a repository for one or more recipients and write its agent key.
    Init(keys_cmd::InitArgs),
    /// Back up paths, or a command's output, with the agent key.
    Backup(backup_cmd::BackupArgs),
    /// List snapshots (agent key or recovery identity).
    Snapshots(read_cmd::SnapshotsArgs),
    /// List the files of a snapshot (recovery identity).
    Ls(read_cmd::LsArgs),
    /// Restore a snapshot into a directory, or without one every source as of a time,
    /// each into its own folder (recovery identity).
    Restore(restore_cmd::RestoreArgs),
    /// Write one file of a snapshot to standard output (recovery identity).
    Dump(read_cmd::DumpArgs),
    /// Copy what another target lacks (no keys needed: objects are checked by hash).
    Sync(sync_cmd::SyncArgs),
    /// Check that every snapshot, or those --source/--host/--tag/--path select, is
    /// restorable (agent key: structure and data hashes; recovery identity: also decrypt
    /// every blob read).
    Verify(verify_cmd::VerifyArgs),
    /// Remove snapshots a retention policy does not keep (default: the clinic policy).
    Forget(forget_cmd::ForgetArgs),
    /// Delete data no snapshot references, after a grace period that protects running backups.
    Prune(prune_cmd::PruneArgs),
    /// Remove paths from every snapshot and delete their data (recovery identity).
    Erase(erase_cmd::EraseArgs),
    /// Who can read the repository: `key list`, `key add`, `key remove` (recovery identity).
    Key(key_cmd::KeyArgs),
    /// Repair a damaged repository: `repair config`, `repair index`, `repair snapshots`, `repair packs`.
    Repair(repair_cmd::RepairArgs),
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

/// Either key: the agent key for what it may do, or a recovery identity, which can do all.
#[derive(Args)]
struct AnyKeyArgs {
    #[arg(long, env = "ARKA_AGENT_KEY", required_unless_present = "identity")]
    agent_key: Option<PathBuf>,
    /// Recovery identity file, or `-` to read it (or type a paper key) on standard input.
    #[arg(long, env = "ARKA_IDENTITY")]
    identity: Option<PathBuf>,
}

/// A repository, opened with either key.
#[derive(Args)]
struct KeyedRepo {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    keys: AnyKeyArgs,
    #[command(flatten)]
    cache: CacheArg,
}

#[derive(Args)]
struct IdentityArg {
    /// Recovery identity file (AGE-SECRET-KEY-1…, possibly passphrase-protected, or a paper
    /// key typed into a file), or `-` to read it on standard input: piped in, or typed from
    /// the paper key line by line at the terminal.
    #[arg(long, env = "ARKA_IDENTITY")]
    identity: PathBuf,
}

/// Which snapshots a command considers: `--source`, `--host`, `--tag` (each repeatable).
#[derive(Args)]
struct FilterArgs {
    /// Only snapshots of this source: its name in agent.toml, or a dump's --name.
    #[arg(long = "source", value_name = "NAME")]
    sources: Vec<String>,
    /// Only snapshots made on this host.
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Only snapshots carrying this tag (all tags given must be there).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
}

impl FilterArgs {
    /// The filter, with `paths` (`--path` where a command has it).
    fn filter(&self, paths: &[String]) -> crate::repo::snapshots::SnapshotFilter {
        crate::repo::snapshots::SnapshotFilter {
            sources: self.sources.clone(),
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: paths.to_vec(),
        }
    }
}

/// Bandwidth limits for a command that moves data (agent.toml sets them per target).
#[derive(Args)]
struct LimitArgs {
    /// Pace what this command sends to the repository to this rate, e.g. "2 MiB/s".
    #[arg(long, value_name = "RATE", value_parser = crate::store::limit::parse_rate)]
    limit_upload: Option<u64>,
    /// Pace what this command reads from the repository to this rate, e.g. "8 MiB/s".
    #[arg(long, value_name = "RATE", value_parser = crate::store::limit::parse_rate)]
    limit_download: Option<u64>,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits::new(self.limit_upload, self.limit_download, None)
    }
}

/// Opens a repository's store with bandwidth limits (none for commands without the flags).
fn open_store(url: &str, create: bool, limits: &Limits) -> Result<Store> {
    Store::open_with(url, create, &ServerOptions::default(), limits)
}

#[derive(Args)]
struct CacheArg {
    /// Where this machine remembers repositories: the files cache, the audit trail's
    /// memory (so that removed records are noticed), the verify rotation.
    #[arg(long, env = "ARKA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
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
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let out = Output { json: cli.json, progress: !cli.quiet && !cli.json && std::io::stderr().is_terminal() };
    match cli.command {
        Command::Keygen(a) => keys_cmd::keygen(a, &out),
        Command::Init(a) => keys_cmd::init(a, &out).await,
        Command::Backup(a) => backup_cmd::backup(a, &out).await,
        Command::Snapshots(a) => read_cmd::snapshots(a, &out).await,
        Command::Ls(a) => read_cmd::ls(a, &out).await,
        Command::Restore(a) => restore_cmd::restore(a, &out).await,
        Command::Dump(a) => read_cmd::dump(a, &out).await,
        Command::Sync(a) => sync_cmd::sync(a, &out).await,
        Command::Verify(a) => verify_cmd::verify(a, &out).await,
        Command::Forget(a) => forget_cmd::forget(a, &out).await,
        Command::Prune(a) => prune_cmd::prune(a, &out).await,
        Command::Erase(a) => erase_cmd::erase(a, &out).await,
        Command::Repair(a) => repair_cmd::repair(a, &out).await,
        Command::Key(a) => key_cmd::run(a, &out).await,
        Command::Agent(a) => agent_cmd::agent(a).await,
        Command::Audit(a) => audit_cmd::run(a, &out).await,
        Command::Service(a) => service_cmd::service(a).await,
    }
}

/// Opens the repository with whichever key was given.
async fn open_any(
    repo: &str,
    agent_key: Option<&PathBuf>,
    identity: Option<&PathBuf>,
    limits: &Limits,
) -> Result<Repository> {
    let store = open_store(repo, false, limits)?;
    match (identity, agent_key) {
        (Some(id), _) => {
            let ids = load_identities(id, || keys_cmd::passphrase_for("recovery identity", false))?;
            Repository::open_with_identity(store, ids).await
        }
        (None, Some(k)) => Repository::open_with_agent_key(store, load_agent_key(k)?).await,
        (None, None) => Err(Error::Usage("give --agent-key or --identity".into())),
    }
}

/// A session for a person at this terminal, on a repository opened with either key.
async fn session(a: &KeyedRepo, limits: &Limits) -> Result<Session> {
    let opened = open_any(&a.repo.repo, a.keys.agent_key.as_ref(), a.keys.identity.as_ref(), limits).await?;
    Ok(session_on(opened, &a.cache))
}

fn session_on(repo: Repository, cache: &CacheArg) -> Session {
    let cache_dir = cache.cache_dir.clone().unwrap_or_else(crate::engine::backup::default_cache_dir);
    Session::new(Arc::new(repo), Actor::cli(), cache_dir)
}

/// A session that can read file contents: opened with the recovery identity.
async fn reading_session(repo: &RepoArg, identity: &IdentityArg, cache: &CacheArg, limits: &Limits) -> Result<Session> {
    let opened = open_any(&repo.repo, None, Some(&identity.identity), limits).await?;
    Ok(session_on(opened, cache))
}

/// A session with the agent key.
async fn agent_session(
    repo: &RepoArg,
    agent_key: &std::path::Path,
    cache: &CacheArg,
    limits: &Limits,
) -> Result<Session> {
    let store = open_store(&repo.repo, false, limits)?;
    let opened = Repository::open_with_agent_key(store, load_agent_key(agent_key)?).await?;
    Ok(session_on(opened, cache))
}
