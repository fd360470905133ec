//! `arka snapshots`, `ls` and `dump`: finding and reading what was backed up (restore is
//! `restore_cmd`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;

use arka_proto::{ObjectId, Snapshot};

use super::output::{human_bytes, local_time, rfc3339, Output};
use super::{reading_session, session, CacheArg, FilterArgs, IdentityArg, KeyedRepo, LimitArgs, RepoArg};
use crate::engine::restore;
use crate::engine::Session;
use crate::error::Result;
use crate::repo::snapshots;
use crate::repo::timeline::TimedSnapshot;
use crate::store::Limits;

#[derive(Args)]
pub(super) struct SnapshotsArgs {
    #[command(flatten)]
    repo: KeyedRepo,
    #[command(flatten)]
    filter: FilterArgs,
    /// Only snapshots of this backed-up path (repeatable; all must be there).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
}

/// A repository opened with the recovery identity, and which snapshot to read.
#[derive(Args)]
struct ReadArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    #[command(flatten)]
    select: Selection,
    #[command(flatten)]
    cache: CacheArg,
}

/// Which snapshot: `latest` or an ID prefix, optionally as of a time.
#[derive(Args)]
struct Selection {
    /// `latest`, or a snapshot ID (prefix).
    snapshot: String,
    /// With `latest`: the newest snapshot at or before this time ("2026-05-01 14:00").
    #[arg(long)]
    at: Option<String>,
    /// `latest` is the newest of these.
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Args)]
pub(super) struct LsArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// A directory or file within the snapshot.
    path: Option<String>,
}

#[derive(Args)]
pub(super) struct DumpArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// The file within the snapshot.
    path: String,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Opens the repository with the recovery identity and finds the selected snapshot.
async fn open_and_pick(a: &ReadArgs, limits: &Limits) -> Result<(Session, (ObjectId, Snapshot))> {
    let session = reading_session(&a.repo, &a.identity, &a.cache, limits).await?;
    let picked = pick(&session, &a.select.snapshot, a.select.at.as_deref(), &a.select.filter).await?;
    Ok((session, picked))
}

/// The snapshot `spec` (`latest` or an ID prefix) names among those `filter` selects, as of
/// `at`; warns on stderr about flagged snapshots passed over or picked.
pub(super) async fn pick(
    session: &Session,
    spec: &str,
    at: Option<&str>,
    filter: &FilterArgs,
) -> Result<(ObjectId, Snapshot)> {
    let at = at.map(snapshots::parse_time).transpose()?;
    let filter = filter.filter(&[]);
    let snaps = filter.apply(session.repo().timeline().await?.objects);
    if snaps.is_empty() && !filter.is_empty() {
        eprintln!("arka: no snapshot has the --source, --host and --tag given; `arka snapshots` shows each one's");
    }
    let picked = snapshots::select(&snaps, spec, at)?;
    if spec == "latest" {
        warn_passed_over(snapshots::passed_over(&snaps, picked, at));
    }
    warn_if_flagged(picked);
    Ok((picked.id, picked.snapshot.clone()))
}

pub(super) fn warn_passed_over<'a>(passed: impl IntoIterator<Item = &'a TimedSnapshot>) {
    for t in passed {
        let why = t.suspicion.as_ref().map(|s| s.describe()).unwrap_or_default();
        eprintln!("arka: passed over the newer snapshot {}, which {why}; give its ID to read it anyway", t.id.short());
    }
}

pub(super) fn warn_if_flagged(picked: &TimedSnapshot) {
    if let Some(why) = &picked.suspicion {
        eprintln!("arka: snapshot {} is flagged: it {}", picked.id.short(), why.describe());
    }
}

pub(super) async fn snapshots(a: SnapshotsArgs, out: &Output) -> Result<ExitCode> {
    let session = session(&a.repo, &Limits::default()).await?;
    let snaps = a.filter.filter(&a.paths).apply(session.repo().timeline().await?.objects);
    if out.json {
        let list: Vec<_> = snaps.iter().map(snapshot_json).collect();
        say!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    say!("{:<8}  {:<19}  {:<16}  {:<7}  {:>8}  {:>10}  source", "ID", "time", "host", "kind", "files", "size");
    for t in &snaps {
        let s = &t.snapshot;
        say!(
            "{:<8}  {:<19}  {:<16}  {:<7}  {:>8}  {:>10}  {}{}",
            t.id.short(),
            local_time(t.effective_ns),
            s.hostname,
            s.source_kind,
            s.stats.files,
            human_bytes(s.stats.bytes),
            match &s.source_name {
                Some(name) => format!("{name}: {}", s.source.join(" ")),
                None => s.source.join(" "),
            },
            remarks(t)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshot_json(t: &TimedSnapshot) -> serde_json::Value {
    let s = &t.snapshot;
    serde_json::json!({
        "id": t.id.to_hex(),
        "time": rfc3339(s.time_ns),
        "time_unix_ns": s.time_ns,
        "effective_time": rfc3339(t.effective_ns),
        "stored_time": (t.stored_at_ns != i64::MAX).then(|| rfc3339(t.stored_at_ns)),
        "suspicion": t.suspicion,
        "hostname": s.hostname,
        "source_kind": s.source_kind,
        "source": s.source,
        "source_name": s.source_name,
        "tags": s.tags,
        "partial": s.partial,
        "stats": s.stats,
        "program": s.program,
        "repaired_from": s.repaired_from.map(|id| id.to_hex()),
        "lost_files": s.lost_files,
    })
}

/// What the table says after the source: repairs, partial runs, tags, changes while read, flags.
fn remarks(t: &TimedSnapshot) -> String {
    let s = &t.snapshot;
    let mut out = match (s.partial, s.lost_files) {
        (_, n) if n > 0 => format!("  (repaired: {n} files lost)"),
        (true, _) => "  (partial)".into(),
        _ => String::new(),
    };
    if !s.tags.is_empty() {
        out += &format!("  [{}]", s.tags.join(", "));
    }
    if s.stats.changed_while_read > 0 {
        out += &format!("  ({} changed while read)", s.stats.changed_while_read);
    }
    if let Some(why) = &t.suspicion {
        out += &format!("  (FLAGGED: {})", why.describe());
    }
    out
}

pub(super) async fn ls(a: LsArgs, out: &Output) -> Result<ExitCode> {
    let (session, (_, snap)) = open_and_pick(&a.read, &Limits::default()).await?;
    let reader = session.reader().await?;
    let walked = restore::walk_around_damage(&reader, &snap, a.path.as_deref()).await?;
    for e in &walked.entries {
        let n = &e.node;
        if out.json {
            let v = serde_json::json!({
                "path": e.display_path(), "kind": n.kind, "size": n.size, "mode": n.mode, "mtime_ns": n.mtime_ns,
                "lost": n.lost,
            });
            say!("{v}");
        } else {
            let kind = match n.kind {
                arka_proto::NodeKind::Dir => 'd',
                arka_proto::NodeKind::Symlink => 'l',
                arka_proto::NodeKind::File => '-',
            };
            let lost = if n.lost { "  (LOST: its data was lost from the repository)" } else { "" };
            say!("{kind} {:04o} {:>12}  {}{lost}", n.mode.unwrap_or(0), n.size, e.display_path());
        }
    }
    // Names go to the operator's own terminal only.
    for (folder, e) in &walked.damaged {
        eprintln!("arka: the listing of {folder} is damaged, its contents are not shown: {e}");
    }
    Ok(if walked.damaged.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

pub(super) async fn dump(a: DumpArgs, out: &Output) -> Result<ExitCode> {
    let (session, (id, snap)) = open_and_pick(&a.read, &a.limits.limits()).await?;
    // Progress on stderr only while the file goes somewhere other than this terminal.
    let shown = Output { json: out.json, progress: out.progress && !std::io::stdout().is_terminal() };
    let guard = shown.progress_bar(session.progress(), "dumped");
    let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    session.dump((id, &snap), &a.path, &mut stdout).await?;
    drop(guard);
    Ok(ExitCode::SUCCESS)
}
