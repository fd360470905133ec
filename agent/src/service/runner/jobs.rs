//! The service's jobs, each run through the `Supervisor`: a backup of one source, one copy
//! to a secondary target, and one maintenance run. Each works through an `engine::Session`
//! acting as the service, so its audit record names `service` and the configured host.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Agent;
use crate::engine::backup::{self, BackupOutcome};
use crate::engine::history::Flagged;
use crate::engine::prune::PruneOptions;
use crate::engine::BackupRequest;
use crate::error::{Error, Result};
use crate::service::config::{Source, SourceKind, Target};
use crate::service::notify::{Event, EventKind};
use crate::service::schedule::{FORGET_JOB, PRUNE_JOB};
use crate::service::supervisor::Job;
use crate::store::Store;

pub(super) struct Backup {
    pub agent: Arc<Agent>,
    pub key: arka_proto::AgentKey,
    pub source: Source,
    /// Which `[[target]]` it writes to: 0, the primary, unless it cannot be reached.
    pub target: usize,
}

impl Job for Backup {
    type Output = BackupOutcome;

    async fn run(&self, cancel: CancellationToken) -> Result<BackupOutcome> {
        let session = self.agent.session_on(&self.key, self.target).await?.cancelled_by(cancel.clone());
        let mut excludes = Default::default();
        let (source, timeout) = match &self.source.kind {
            SourceKind::Files { paths, excludes: rules, .. } => {
                excludes = rules.clone();
                (backup::Source::Paths(paths.clone()), None)
            }
            SourceKind::Command { command, dump_name, timeout } => {
                let debug_log = self.agent.cfg.dump_debug_log.clone();
                let source = backup::Source::Command { command: command.clone(), name: dump_name.clone(), debug_log };
                (source, Some(*timeout))
            }
        };
        // A command that outlives its timeout is stopped at a safe point like a shutdown.
        let timer = timeout.map(|t| {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                cancel.cancel();
            })
        });
        let request = BackupRequest {
            source,
            hostname: self.agent.cfg.hostname.clone(),
            tags: self.source.tags.clone(),
            no_cache: false,
            label: Some(self.source.name.clone()),
            check_packs: self.agent.pack_check_due(),
            excludes,
        };
        let result = session.backup(request).await;
        if let Some(timer) = timer {
            timer.abort();
        }
        match result {
            Err(Error::Cancelled) if !self.agent.stopping() => Err(Error::CommandFailed {
                command: self.source.name.clone(),
                reason: "it ran longer than its timeout and was stopped".into(),
            }),
            r => r,
        }
    }
}

/// Brings one secondary target up to date. Copying is safe to abandon at any point (see
/// `engine::sync`), so a stop ends it at once.
pub(super) struct Replicate {
    pub agent: Arc<Agent>,
    pub key: arka_proto::AgentKey,
    pub target: Target,
    /// Its place in the configuration's target list.
    pub index: usize,
}

impl Job for Replicate {
    type Output = ();

    async fn run(&self, cancel: CancellationToken) -> Result<()> {
        tokio::select! {
            r = self.copy() => r,
            _ = cancel.cancelled() => Err(Error::Cancelled),
        }
    }
}

impl Replicate {
    async fn copy(&self) -> Result<()> {
        let session = self.agent.session(&self.key).await?;
        let url = &self.target.url;
        let to = Store::open_with(url, true, &self.target.server, &self.target.limits)?;
        // A target copied to before that has no config now is not a new, empty target but
        // one that is gone (an unmounted share): a full copy would land on the local disk.
        let copied_before =
            self.agent.board.snapshot().targets.get(self.index).is_some_and(|t| t.last_sync_ns.is_some());
        if copied_before && to.get_opt(crate::store::CONFIG_KEY).await?.is_none() {
            return Err(Error::RepositoryGone(to.display.clone()));
        }
        // Before copying, tell the board how far behind the target is.
        let (snapshots, bytes) = crate::engine::sync::backlog(&session.repo().store, &to).await?;
        self.agent.board.update(|st| {
            if let Some(t) = st.targets.iter_mut().find(|t| t.url_display == arka_proto::status::display_url(url)) {
                t.backlog_snapshots = snapshots;
                t.backlog_bytes = bytes;
            }
        });
        let report = session.sync(&to).await?;
        if !report.damaged.is_empty() {
            tracing::warn!(
                "{} objects damaged on the primary were not copied to {}; verify records them and backups heal them",
                report.damaged.len(),
                self.target.name
            );
        }
        super::failover::catch_up(&self.agent, &session, self.index, &to).await
    }
}

/// One forget, prune or verify run. All three are safe to abandon at any point (prune is
/// kill -9 safe), so a stop ends them at once.
pub(super) struct Maintain {
    pub agent: Arc<Agent>,
    pub key: arka_proto::AgentKey,
    pub job: &'static str,
}

/// What a maintenance run found, for the status board: `None` where the run does not look.
#[derive(Default)]
pub(super) struct Maintained {
    /// Damaged objects (verify).
    pub damage: Option<u64>,
    /// Flagged snapshots, "ID: why" (forget and verify).
    pub flagged: Option<Vec<String>>,
    /// Snapshots gone without a forget (verify).
    pub vanished: Option<u64>,
    /// The newest restore or dump in the audit trail (verify).
    pub last_restore_ns: Option<i64>,
}

impl Job for Maintain {
    type Output = Maintained;

    async fn run(&self, cancel: CancellationToken) -> Result<Maintained> {
        tokio::select! {
            r = self.maintain() => r,
            _ = cancel.cancelled() => Err(Error::Cancelled),
        }
    }
}

impl Maintain {
    async fn maintain(&self) -> Result<Maintained> {
        let session = self.agent.session(&self.key).await?;
        let m = &self.agent.cfg.maintenance;
        match self.job {
            FORGET_JOB => {
                let (plan, _) = session.forget(&m.retention, &Default::default(), self.agent.now_ns(), false).await?;
                let flagged = crate::engine::history::flagged(plan.decisions.iter().map(|(_, t)| t));
                Ok(self.flagged(flagged.iter().map(Flagged::line).collect()))
            }
            PRUNE_JOB => {
                session.prune(&PruneOptions { grace: m.prune_grace, ..PruneOptions::default() }).await?;
                Ok(Maintained::default())
            }
            _ => {
                let state_file = self.agent.cfg.state_dir.join("verify-state.cbor");
                let report = session.verify(Some(m.verify_percent as f64), state_file, Default::default()).await?;
                let damage = report.unhealed().count() as u64;
                if damage > 0 {
                    let broken = report.broken_snapshots.len();
                    self.agent.notify(
                        Event::now(EventKind::VerifyDamage, None, format!("verify found {damage} damaged objects"))
                            .with_detail(format!("{broken} snapshots cannot be restored in full")),
                    );
                }
                let vanished = report.vanished.len() as u64;
                if vanished > 0 {
                    let summary = format!("{vanished} backups were deleted from the storage outside arka");
                    self.agent.notify(Event::now(EventKind::SnapshotsVanished, None, summary));
                }
                let flagged = report.flagged.iter().map(Flagged::line).collect();
                // An unreadable trail is verify's own finding; the date is only a courtesy.
                let log = crate::engine::audit::load_all(session.repo()).await.ok();
                let last_restore_ns = log.as_ref().and_then(crate::engine::history::last_restore);
                Ok(Maintained {
                    damage: Some(damage),
                    vanished: Some(vanished),
                    last_restore_ns,
                    ..self.flagged(flagged)
                })
            }
        }
    }

    /// Notifies about flagged snapshots and reports them.
    fn flagged(&self, flagged: Vec<String>) -> Maintained {
        if let Some(first) = flagged.first() {
            let summary = format!("{} suspicious snapshots in the repository", flagged.len());
            self.agent.notify(Event::now(EventKind::SnapshotFlagged, None, summary).with_detail(first.clone()));
        }
        Maintained { flagged: Some(flagged), ..Maintained::default() }
    }
}
