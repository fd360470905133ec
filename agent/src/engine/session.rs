//! The operation layer: one `Session` per opened repository, through which the CLI and the
//! agent service run every operation alike. A session knows who is acting (for the audit
//! trail), where this machine keeps its local state, the progress counters a terminal or
//! the status page reads, and the cancellation token that stops an operation at its next
//! safe point. Every operation ends with its audit record, success or failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arka_proto::{ObjectId, Snapshot};
use tokio_util::sync::CancellationToken;

use crate::engine::audit::{Actor, Entry, Operation};
use crate::engine::backup::{self, BackupOptions, BackupOutcome, Source};
use crate::engine::erase::{EraseReport, PathPattern};
use crate::engine::forget::ForgetPlan;
use crate::engine::progress::Progress;
use crate::engine::prune::{PruneOptions, PruneReport};
use crate::engine::repair::index::RepairIndexReport;
use crate::engine::repair::packs::RepairPacksReport;
use crate::engine::repair::snapshots::RepairSnapshotsReport;
use crate::engine::repair::ConfigRepair;
use crate::engine::restore::{self, RestoreSummary};
use crate::engine::retention::RetentionPolicy;
use crate::engine::sync::SyncReport;
use crate::engine::verify::{VerifyOptions, VerifyReport};
use crate::engine::{records, repair, sync, verify};
use crate::error::{ErrorKind, Result};
use crate::repo::blob::BlobReader;
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::Repository;
use crate::store::Store;

pub struct Session {
    repo: Arc<Repository>,
    actor: Actor,
    /// This machine's memory of the repository: files cache, audit memory, verify rotation.
    cache_dir: PathBuf,
    progress: Arc<Progress>,
}

/// How a backup is described in its snapshot and record.
pub struct BackupRequest {
    pub source: Source,
    pub hostname: String,
    pub tags: Vec<String>,
    /// Read every file even if the files cache says it is unchanged.
    pub no_cache: bool,
    /// The configured source name (service backups).
    pub label: Option<String>,
    /// List the packs to find any gone missing (always in the CLI; every few hours in the
    /// service, where each source's backup would otherwise list them).
    pub check_packs: bool,
    /// What a files backup leaves out.
    pub excludes: crate::engine::backup::exclude::ExcludeRules,
}

impl Session {
    pub fn new(repo: Arc<Repository>, actor: Actor, cache_dir: PathBuf) -> Self {
        Self { repo, actor, cache_dir, progress: Arc::new(Progress::default()) }
    }

    /// Stops this session's operations when `token` is cancelled (the caller's stop signal).
    pub fn cancelled_by(mut self, token: CancellationToken) -> Self {
        self.progress = Arc::new(Progress { cancel: token, ..Progress::default() });
        self
    }

    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Cancelling it stops the running operation at its next safe point.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.progress.cancel
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Appends `entry` as this session's actor; a failure to write it is only logged.
    async fn record(&self, entry: Entry) {
        entry.by(self.actor.clone()).cache_dir(&self.cache_dir).record(&self.repo).await;
    }

    /// Records a change `arka key` made; `detail` names recipients and key IDs, never a secret.
    pub async fn key_changed(&self, detail: String) {
        self.record(Entry::new(Operation::Key).detail(detail)).await;
    }

    /// Records the creation of the repository and its agent key.
    pub async fn initialised(&self) {
        self.record(records::initialised(&self.repo)).await;
    }

    /// Records the outcome of `operation`: `describe` for a success, the kind of failure
    /// otherwise (see `worth_recording`).
    async fn finish<T>(
        &self,
        operation: Operation,
        result: Result<T>,
        describe: impl FnOnce(&T) -> Entry,
    ) -> Result<T> {
        match &result {
            Ok(value) => self.record(describe(value)).await,
            Err(e) if !worth_recording(e) => {}
            Err(e) => self.record(records::failed(operation, e)).await,
        }
        result
    }

    /// Before a write operation: a repository made before config copies existed gets its
    /// copy now (one listing, once per opened repository). Read-only operations never write
    /// it; a failure is only a warning, since the operation itself matters more.
    async fn heal_config_copy(&self) {
        match self.repo.ensure_config_copy().await {
            Ok(true) => tracing::info!("wrote the config's copy, which this repository lacked"),
            Ok(false) => {}
            Err(e) => tracing::warn!("could not write the config's copy (the next operation tries again): {e}"),
        }
    }

    pub async fn backup(&self, request: BackupRequest) -> Result<BackupOutcome> {
        self.heal_config_copy().await;
        let opts = BackupOptions {
            hostname: request.hostname,
            tags: request.tags,
            cache_dir: (!request.no_cache).then(|| self.cache_dir.clone()),
            progress: self.progress.clone(),
            check_packs: request.check_packs,
            excludes: request.excludes,
            source_name: request.label.clone(),
        };
        let result = backup::run(self.repo.clone(), request.source, opts).await;
        let label = request.label;
        self.finish(Operation::Backup, result, |o| records::backed_up(o, label.as_deref())).await
    }

    /// A reader of file contents (needs a recovery identity for data, not for structure).
    pub async fn reader(&self) -> Result<Arc<BlobReader>> {
        let index = Arc::new(self.repo.load_index_for_reading().await?);
        Ok(Arc::new(BlobReader::new(self.repo.clone(), index)))
    }

    pub async fn restore(
        &self,
        (id, snapshot): (ObjectId, &Snapshot),
        path: Option<&str>,
        target: &Path,
        ownership: crate::platform::Ownership,
    ) -> Result<RestoreSummary> {
        let result = async {
            let reader = self.reader().await?;
            let summary =
                restore::restore(reader.clone(), snapshot, path, target, self.progress.clone(), ownership).await;
            self.record_damage_found(&reader, "restore").await;
            summary
        }
        .await;
        self.finish(Operation::Restore, result, |s| records::restored(id, s, path.is_some())).await
    }

    /// Writes one file of a snapshot to `out`; returns its length.
    pub async fn dump(
        &self,
        (id, snapshot): (ObjectId, &Snapshot),
        path: &str,
        out: &mut (impl Write + Send),
    ) -> Result<u64> {
        let result = async {
            let reader = self.reader().await?;
            let entry = restore::find(&reader, snapshot, path).await?;
            let dumped = restore::dump(&reader, &entry.node, out, &self.progress).await;
            self.record_damage_found(&reader, "restore").await;
            dumped
        }
        .await;
        self.finish(Operation::Dump, result, |bytes| records::dumped(id, *bytes)).await
    }

    /// Writes a damage report of the copies `reader` found damaged, so the next backup
    /// stores their data again. Best effort: the operation has its own result to give.
    async fn record_damage_found(&self, reader: &BlobReader, found_by: &str) {
        let found = reader.damage_found();
        if found.is_empty() {
            return;
        }
        let recorded = match self.repo.load_damage().await {
            Ok(known) => self.repo.record_damage(found_by, &found, &known).await,
            Err(e) => Err(e),
        };
        match recorded {
            Ok(n) if n > 0 => tracing::warn!("recorded {n} damaged copies: the next backup stores their data again"),
            Ok(_) => {}
            Err(e) => tracing::warn!("could not record the damage found, so backups cannot heal it yet: {e}"),
        }
    }

    /// `state_file`: where the rotation of partial `--read-data` runs is remembered;
    /// `filter`: which snapshots to check (empty: all).
    pub async fn verify(
        &self,
        read_data_percent: Option<f64>,
        state_file: PathBuf,
        filter: SnapshotFilter,
    ) -> Result<VerifyReport> {
        let opts = VerifyOptions { read_data_percent, state_file: Some(state_file), filter };
        let result = verify::verify(self.repo.clone(), &opts).await;
        self.finish(Operation::Verify, result, |r| records::verified(r, read_data_percent)).await
    }

    /// The verify rotation's state file a CLI user's cache directory holds for this repository.
    pub fn verify_state_file(&self) -> PathBuf {
        self.cache_dir.join(self.repo.config.repo_id.to_hex()).join("verify-state.cbor")
    }

    /// Decides which snapshots `policy` keeps at `now_ns` and, unless `dry_run`, removes the
    /// others; returns the plan and how many were removed.
    pub async fn forget(
        &self,
        policy: &RetentionPolicy,
        filter: &SnapshotFilter,
        now_ns: i64,
        dry_run: bool,
    ) -> Result<(ForgetPlan, usize)> {
        let plan = crate::engine::forget::plan(&self.repo, policy, filter, now_ns).await?;
        let detail = format!("policy {}", serde_json::to_string(policy).expect("a policy serializes"));
        self.execute_forget(plan, detail, dry_run).await
    }

    /// Removes the snapshots named by ID (or unique ID prefix) unless `dry_run`.
    pub async fn forget_named(&self, specs: &[String], dry_run: bool) -> Result<(ForgetPlan, usize)> {
        let plan = crate::engine::forget::plan_named(&self.repo, specs).await?;
        self.execute_forget(plan, "named by ID".into(), dry_run).await
    }

    async fn execute_forget(&self, plan: ForgetPlan, detail: String, dry_run: bool) -> Result<(ForgetPlan, usize)> {
        if dry_run {
            return Ok((plan, 0));
        }
        self.heal_config_copy().await;
        let result = crate::engine::forget::execute(&self.repo, &plan).await.map(|deleted| (plan, deleted));
        self.finish(Operation::Forget, result, |(plan, deleted)| records::forgot(plan, *deleted, detail)).await
    }

    pub async fn prune(&self, opts: &PruneOptions) -> Result<PruneReport> {
        if !opts.dry_run {
            self.heal_config_copy().await;
        }
        let result = crate::engine::prune::prune(&self.repo, opts).await;
        if opts.dry_run {
            return result;
        }
        self.finish(Operation::Prune, result, records::pruned).await
    }

    /// Removes paths matching `patterns` from every snapshot (recovery identity), then
    /// prunes with `prune` unless `dry_run`.
    pub async fn erase(&self, patterns: &[PathPattern], dry_run: bool, prune: PruneOptions) -> Result<EraseReport> {
        if !dry_run {
            self.heal_config_copy().await;
        }
        let result = crate::engine::erase::erase(self.repo.clone(), patterns, dry_run, Some(prune)).await;
        if dry_run {
            return result;
        }
        self.finish(Operation::Erase, result, |r| records::erased(&self.repo, patterns, r)).await
    }

    /// Indexes anew the packs no intact index segment names (agent key).
    pub async fn repair_index(&self, dry_run: bool) -> Result<RepairIndexReport> {
        let result = repair::index::repair_index(&self.repo, dry_run).await;
        if dry_run {
            return result;
        }
        self.finish(Operation::Repair, result, records::repaired_index).await
    }

    /// Writes new snapshots in place of those that reference lost data (recovery identity).
    pub async fn repair_snapshots(&self, dry_run: bool) -> Result<RepairSnapshotsReport> {
        let result = repair::snapshots::repair_snapshots(self.repo.clone(), dry_run).await;
        if dry_run {
            return result;
        }
        self.finish(Operation::Repair, result, records::repaired_snapshots).await
    }

    /// Copies the intact blobs of damaged packs into new packs.
    pub async fn repair_packs(&self, dry_run: bool) -> Result<RepairPacksReport> {
        let result = repair::packs::repair_packs(&self.repo, dry_run).await;
        if dry_run {
            return result;
        }
        self.finish(Operation::Repair, result, records::repaired_packs).await
    }

    /// Copies what `to` lacks of this repository. The record goes to this repository; the
    /// next sync carries it to `to`.
    pub async fn sync(&self, to: &Store) -> Result<SyncReport> {
        // Before copying, so that the copy travels too.
        self.heal_config_copy().await;
        let result = sync::sync(&self.repo.store, to, &self.progress).await;
        self.finish(Operation::Sync, result, |r| records::synced(r, &to.display)).await
    }

    /// Writes `config` back from its copy when it is missing or damaged, and the copy from
    /// `config` when the copy is missing; `dry_run` says what it would do and writes nothing.
    pub async fn repair_config(&self, dry_run: bool) -> Result<ConfigRepair> {
        let result = crate::engine::repair::config::repair(&self.repo, dry_run).await;
        if dry_run {
            return result;
        }
        self.finish(Operation::Repair, result, records::repaired_config).await
    }
}

/// Whether a failure gets an audit record: not when nothing happened (cancelled), nor when
/// the store would not take the record either (unreachable, busy, refusing the key or token).
fn worth_recording(e: &crate::error::Error) -> bool {
    !matches!(e.kind(), ErrorKind::Unreachable | ErrorKind::Busy | ErrorKind::Key | ErrorKind::Cancelled)
}
