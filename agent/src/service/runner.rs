//! `arka agent run`: one task per source (its schedule, its watcher, never two runs of it at
//! once), replication of the primary target to the others in the background, maintenance
//! on its own schedule, an RPO watch that notifies, and the status endpoint.
//!
//! A dead secondary target never fails or delays a backup: backups go to the first target
//! only, and replication is a separate task that catches up when the link is back. The
//! status report is pushed to every arka-server target by tasks of its own (`push`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use arka_proto::status::{AgentStatus, RunOutcome, SourceKind as StatusKind, SourceStatus, TargetRole, TargetStatus};

use super::config::{Config, Source, SourceKind};
use super::monitor;
use super::notify::{Event, EventKind, Notifier};
use super::schedule::{Clock, ScheduleState, FORGET_JOB, PRUNE_JOB, VERIFY_JOB};
use super::status::StatusBoard;
use super::supervisor::{scrub, Ended, Supervisor};
use super::watch::{SourceWatcher, WatchSettings, WatchSignal};
use crate::engine::{Actor, Session};
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::store::{Location, Store};

/// How often replication retries a target that failed, and how often the RPO is checked.
const REPLICATION_RETRY: Duration = Duration::from_secs(300);
const RPO_CHECK: Duration = Duration::from_secs(60);
/// A failed backup runs again this soon, then after twice as long at each further failure
/// (capped by its schedule: `retry_delay`), rather than at its next scheduled time. Its
/// failure is reported at once: each store request has already been retried, and retrying
/// in place would only delay the alert.
const FIRST_RETRY: Duration = Duration::from_secs(60);
/// How often a backup lists the packs to find any gone missing (also the first backup
/// after a start). A listing of a large repository takes many requests, and each source's
/// backup would otherwise make one.
const PACK_CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// How long a running backup may take to reach a safe point once the service stops
/// (systemd's default stop timeout is 90 s; Windows asks for a wait hint).
pub const EXIT_DEADLINE: Duration = Duration::from_secs(60);

/// Shared by every task of the agent.
struct Agent {
    cfg: Config,
    clock: Arc<dyn Clock>,
    tz: TimeZone,
    board: Arc<StatusBoard>,
    notifier: Arc<Notifier>,
    state: Mutex<ScheduleState>,
    /// One backup or maintenance job at a time: the clinic server has other work to do.
    busy: Semaphore,
    /// Cancelled when the agent is told to stop; running jobs stop at a safe point.
    stop: CancellationToken,
    /// Runs backups and maintenance: retries, panics, the exit deadline.
    jobs: Supervisor,
    /// Runs replication, which retries on its own schedule and may be abandoned at once.
    copies: Supervisor,
    /// Signals replication that the primary has new snapshots.
    replicate: watch::Sender<u64>,
    primary: tokio::sync::Mutex<Option<Arc<Repository>>>,
    /// Counts finished runs (backups and maintenance), so status pushes follow each one.
    runs: watch::Sender<u64>,
    /// When a backup last listed the packs to find missing ones (`None`: not since start).
    last_pack_check: Mutex<Option<std::time::Instant>>,
}

/// Runs the agent until `stop` is cancelled. Returns an error only for what makes running
/// impossible (the agent key, the status address); storage problems are reported and retried.
pub async fn run(cfg: Config, clock: Arc<dyn Clock>, stop: CancellationToken) -> Result<()> {
    let key = crate::repo::keys::load_agent_key(&cfg.agent_key)?;
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| Error::io(&cfg.state_dir, e))?;
    let notifier = notifier_from(&cfg)?;
    let now_ns = clock.now().as_nanosecond() as i64;
    let mut status = initial_status(&cfg, now_ns);
    if let Some(saved) = monitor::load(&cfg.state_dir) {
        monitor::carry_over(&mut status, saved);
    }
    monitor::begin_monitoring(&mut status, now_ns);
    let mut state = ScheduleState::load(&cfg.state_dir);
    state.retain_jobs(cfg.sources.iter().map(|s| s.name.as_str()).chain([FORGET_JOB, PRUNE_JOB, VERIFY_JOB]));
    for s in &mut status.sources {
        // An agent from before the report was kept knows the last success from here.
        if s.last_success_ns.is_none() {
            s.last_success_ns = state.job(&s.name).last_success.map(|t| t.as_nanosecond() as i64);
        }
    }
    let board = Arc::new(StatusBoard::new(status));
    let (replicate, replicate_rx) = watch::channel(0u64);
    let agent = Arc::new(Agent {
        tz: TimeZone::system(),
        board: board.clone(),
        notifier: Arc::new(notifier),
        state: Mutex::new(state),
        busy: Semaphore::new(1),
        jobs: Supervisor::new(stop.clone(), Vec::new(), EXIT_DEADLINE),
        copies: Supervisor::new(stop.clone(), Vec::new(), Duration::ZERO),
        stop: stop.clone(),
        replicate,
        primary: tokio::sync::Mutex::new(None),
        runs: watch::Sender::new(0),
        last_pack_check: Mutex::new(None),
        clock,
        cfg,
    });
    // Report a primary that cannot be opened at start, in the log and on its card (a
    // refusal such as a recipient pin mismatch would otherwise show only at the next
    // run); not fatal, the jobs retry.
    if let Err(e) = agent.primary(&key).await {
        let why = scrub(&e);
        tracing::warn!("the primary target cannot be opened yet: {why}");
        let unreachable = e.kind() == crate::error::ErrorKind::Unreachable;
        agent.board.update(|st| {
            if let Some(t) = st.target_mut(&agent.cfg.targets[0].name) {
                t.reachable = !unreachable;
                t.last_error = Some(why.clone());
            }
        });
    }

    let token = agent.cfg.status.token.as_ref().map(|t| t.expose().to_string());
    let listener = tokio::net::TcpListener::bind(agent.cfg.status.bind)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {} for the status page: {e}", agent.cfg.status.bind)))?;
    let mut tasks = tokio::task::JoinSet::new();
    let stop_server = stop.clone();
    tasks.spawn(async move {
        let shutdown = async move { stop_server.cancelled().await };
        if let Err(e) = super::status::serve_on(listener, board, token, shutdown).await {
            tracing::error!("the status endpoint stopped: {e}");
        }
    });
    for (i, _) in agent.cfg.sources.iter().enumerate() {
        tasks.spawn(source_loop(agent.clone(), key.clone(), i));
    }
    for (i, _) in agent.cfg.targets.iter().enumerate().skip(1) {
        tasks.spawn(replication_loop(agent.clone(), key.clone(), i, replicate_rx.clone()));
    }
    for (i, t) in agent.cfg.targets.iter().enumerate() {
        if let Location::Server { .. } = t.location {
            tasks.spawn(push::push_loop(agent.clone(), i, agent.runs.subscribe()));
        }
    }
    tasks.spawn(monitor::keep_saved(agent.board.clone(), agent.cfg.state_dir.clone(), stop.clone()));
    tasks.spawn(maintenance_loop(agent.clone(), key.clone()));
    tasks.spawn(rpo_loop(agent.clone()));
    while tasks.join_next().await.is_some() {}
    Ok(())
}

impl Agent {
    /// The primary target's repository, opened once and opened again whenever its `config`
    /// changed (`arka key` replaced it): a backup must never be sealed to a reader key the
    /// repository has moved on from. A missing `config` is an unmounted NAS share, say:
    /// nothing is written into the empty folder.
    async fn primary(&self, key: &arka_proto::AgentKey) -> Result<Arc<Repository>> {
        let mut primary = self.primary.lock().await;
        if let Some(repo) = primary.as_ref() {
            match repo.store.get_opt(crate::store::CONFIG_KEY).await? {
                None => return Err(Error::RepositoryGone(repo.store.display.clone())),
                Some(bytes) if bytes == *repo.config_bytes() => return Ok(repo.clone()),
                Some(_) => tracing::info!("the primary target's config changed; opening it again"),
            }
        }
        let repo = Arc::new(self.open_target(key, 0).await?);
        *primary = Some(repo.clone());
        Ok(repo)
    }

    /// Opens the `index`th target with the agent key and checks its keys against the pin.
    async fn open_target(&self, key: &arka_proto::AgentKey, index: usize) -> Result<Repository> {
        let target = &self.cfg.targets[index];
        let store = Store::open_with(&target.url, false, &target.server, &target.limits)?;
        let repo = Repository::open_with_agent_key(store, key.clone()).await?;
        let pinned = self.cfg.recipients.as_deref();
        if let Some(warning) =
            crate::service::recipients_pin::check_and_remember(pinned, &repo.config, &self.cfg.state_dir, false)?
        {
            tracing::warn!("target {:?}: {warning}", target.name);
        }
        Ok(repo)
    }

    fn now_ns(&self) -> i64 {
        self.clock.now().as_nanosecond() as i64
    }

    /// Whether this backup should list the packs; if so, the next one need not for a while.
    fn pack_check_due(&self) -> bool {
        let mut last = self.last_pack_check.lock().expect("no panics while locked");
        let due = last.is_none_or(|t| t.elapsed() >= PACK_CHECK_EVERY);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// A session on the primary target, recorded in the audit trail as the service.
    async fn session(&self, key: &arka_proto::AgentKey) -> Result<Session> {
        self.session_on(key, 0).await
    }

    /// A session on the `index`th target: the primary, or a failover target opened afresh
    /// (rare, and a target that was down must be looked at anew), with the same recipient
    /// pin check.
    async fn session_on(&self, key: &arka_proto::AgentKey, index: usize) -> Result<Session> {
        let repo = if index == 0 { self.primary(key).await? } else { Arc::new(self.open_target(key, index).await?) };
        Ok(Session::new(repo, Actor::service(&self.cfg.hostname), self.cfg.state_dir.join("cache")))
    }

    /// Today's date in the agent's time zone, the key of a source's day record.
    fn today(&self) -> String {
        self.clock.now().to_zoned(self.tz.clone()).date().to_string()
    }

    /// Sends a notification without making the caller wait for slow receivers.
    fn notify(&self, event: Event) {
        let notifier = self.notifier.clone();
        tokio::spawn(async move {
            for e in notifier.notify(event).await {
                tracing::warn!("notification not delivered: {e}");
            }
        });
    }

    fn record(&self, job: &str, started: jiff::Timestamp, ok: bool) {
        let mut state = self.state.lock().expect("no panics while locked");
        state.record(job, started, ok);
        if let Err(e) = state.save(&self.cfg.state_dir) {
            tracing::warn!("could not save the schedule state: {e}");
        }
    }

    fn next_run(&self, job: &str, schedule: &super::schedule::Schedule) -> jiff::Timestamp {
        let last = self.state.lock().expect("no panics while locked").job(job).last_run;
        schedule.next_run(last, self.clock.now(), &self.tz)
    }

    /// Sleeps until `until`, returning early (false) when the agent stops.
    async fn sleep_until(&self, until: jiff::Timestamp) -> bool {
        tokio::select! {
            _ = self.clock.sleep_until(until) => true,
            _ = self.stop.cancelled() => false,
        }
    }
}

fn notifier_from(cfg: &Config) -> Result<Notifier> {
    let notify = &cfg.notify;
    Notifier::new(notify.webhook.clone(), notify.email.clone()).map_err(|e| Error::Config(format!("[notify]: {e}")))
}

fn initial_status(cfg: &Config, now_ns: i64) -> AgentStatus {
    let mut st = AgentStatus::new(env!("CARGO_PKG_VERSION"), cfg.hostname.clone(), now_ns);
    for s in &cfg.sources {
        let kind = match s.kind {
            SourceKind::Files { .. } => StatusKind::Files,
            SourceKind::Command { .. } => StatusKind::Command,
        };
        st.sources.push(SourceStatus::new(s.name.clone(), kind, s.schedule.to_string(), s.rpo.as_secs()));
    }
    for (i, t) in cfg.targets.iter().enumerate() {
        let role = if i == 0 { TargetRole::Primary } else { TargetRole::Replica };
        st.targets.push(TargetStatus::new(t.name.clone(), &t.url, role));
    }
    st
}

/// A source's schedule and watcher; runs of one source never overlap.
async fn source_loop(agent: Arc<Agent>, key: arka_proto::AgentKey, index: usize) {
    let source = agent.cfg.sources[index].clone();
    let mut watcher = match &source.kind {
        SourceKind::Files { paths, watch: Some(quiet), excludes, .. } => {
            let settings = WatchSettings {
                quiet_period: *quiet,
                ignore: vec![agent.cfg.state_dir.clone()],
                excludes: excludes.clone(),
                ..WatchSettings::default()
            };
            let (name, paths) = (source.name.clone(), paths.clone());
            match tokio::task::spawn_blocking(move || SourceWatcher::new(&name, &paths, settings)).await {
                Ok(Ok(w)) => Some(w),
                Ok(Err(e)) => {
                    tracing::warn!("source {}: not watched, the schedule alone applies: {e}", source.name);
                    None
                }
                Err(_) => None,
            }
        }
        _ => None,
    };
    let trigger = agent.board.run_now().register(&source.name);
    let mut retry_at: Option<jiff::Timestamp> = None;
    loop {
        let scheduled = agent.next_run(&source.name, &source.schedule);
        let due = retry_at.map_or(scheduled, |r| r.min(scheduled));
        let due_ns = due.as_nanosecond() as i64;
        agent.board.update(|st| {
            if let Some(s) = st.source_mut(&source.name) {
                s.next_run_ns = Some(due_ns);
            }
        });
        let watched = async {
            match watcher.as_mut() {
                Some(w) => loop {
                    match w.next().await {
                        WatchSignal::Settled => break,
                        WatchSignal::Degraded(e) => tracing::warn!("source {}: {e}", source.name),
                    }
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = agent.clock.sleep_until(due) => {}
            _ = watched => {}
            _ = trigger.notified() => tracing::info!("source {}: backup asked for (run now)", source.name),
            _ = agent.stop.cancelled() => return,
        }
        let Ok(_permit) = agent.busy.acquire().await else { return };
        if agent.stopping() {
            return;
        }
        let failures = run_source(&agent, &key, &source).await;
        retry_at = failures.map(|n| agent.clock.now() + retry_delay(n, &source.schedule));
    }
}

/// How long after its `failures`th failure in a row a source is tried again: 1, 2, 4 …
/// minutes, never longer than its schedule's interval (a retry should never come later
/// than the next scheduled run would).
fn retry_delay(failures: u32, schedule: &super::schedule::Schedule) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(schedule.nominal_interval()).max(Duration::from_secs(1))
}

/// One backup of a source (on the primary, or failed over to another target): status,
/// schedule state and notifications (the session writes the audit record). Returns the
/// number of failures in a row when it failed, for the retry backoff.
async fn run_source(agent: &Arc<Agent>, key: &arka_proto::AgentKey, source: &Source) -> Option<u32> {
    let started = agent.clock.now();
    let started_ns = started.as_nanosecond() as i64;
    agent.board.update(|st| {
        if let Some(s) = st.source_mut(&source.name) {
            s.started(started_ns);
        }
    });
    let t0 = std::time::Instant::now();
    let (ended, target) = failover::backup(agent, key, source).await;
    let ms = t0.elapsed().as_millis() as u64;
    let now_ns = agent.now_ns();
    let today = agent.today();
    let mut failures = None;
    match ended {
        Ended::Done(outcome) => {
            let st = &outcome.snapshot.stats;
            let run = RunOutcome {
                snapshot: outcome.id.short(),
                duration_ms: ms,
                bytes: st.bytes,
                bytes_new: st.bytes_new,
                files: st.files,
                unreadable: st.unreadable,
                changed_while_read: st.changed_while_read,
            };
            let target_name = &agent.cfg.targets[target].name;
            agent.board.update(|s| {
                if let Some(t) = s.target_mut(target_name) {
                    t.last_sync_ns = Some(now_ns);
                }
                if let Some(s) = s.source_mut(&source.name) {
                    s.succeeded(now_ns, run);
                    s.copied_to(target_name, started_ns);
                    let day = s.day_mut(&today);
                    (day.ok, day.added_bytes, day.size_bytes) =
                        (day.ok + 1, day.added_bytes + st.bytes_new, Some(st.bytes));
                }
            });
            agent.record(&source.name, started, true);
            agent.replicate.send_modify(|n| *n += 1);
            agent.notify(backed_up_event(&source.name, st));
            report_healing(agent, source, &outcome);
        }
        Ended::Cancelled | Ended::Abandoned => {
            tracing::info!("source {}: backup stopped by shutdown; the next run resumes", source.name);
            agent.board.update(|s| {
                if let Some(s) = s.source_mut(&source.name) {
                    s.stopped();
                }
            });
        }
        failed => {
            let why = failed.failure().unwrap_or_default();
            tracing::warn!("source {}: backup failed: {why}", source.name);
            agent.board.update(|s| {
                if let Some(s) = s.source_mut(&source.name) {
                    s.failed(why.clone(), ms);
                    s.day_mut(&today).failed += 1;
                    failures = Some(s.failures_in_row);
                }
            });
            agent.record(&source.name, started, false);
            agent.notify(
                Event::now(EventKind::BackupFailed, Some(&source.name), format!("backup of {} failed", source.name))
                    .with_detail(why),
            );
        }
    }
    agent.runs.send_modify(|n| *n += 1);
    failures
}

/// What a successful backup tells the notification channels: recovered when it is whole;
/// otherwise, counts of what it left out or may hold inconsistent (never which files), and
/// no "recovered", since it did not fully succeed. The same counts go to the log.
fn backed_up_event(name: &str, st: &arka_proto::SnapshotStats) -> Event {
    if st.unreadable == 0 && st.changed_while_read == 0 {
        return Event::now(EventKind::Recovered, Some(name), format!("{name} is backed up again"));
    }
    let mut event = Event::now(EventKind::BackupIncomplete, Some(name), format!("backup of {name} is incomplete"));
    if st.unreadable > 0 {
        let line = format!("{} files could not be read and are not in the backup", st.unreadable);
        tracing::warn!("source {name}: {line}");
        event = event.with_detail(line);
    }
    if st.changed_while_read > 0 {
        let line = crate::engine::backup::changed_advice(st.changed_while_read);
        tracing::warn!("source {name}: {line}");
        event = event.with_detail(line);
    }
    event
}

/// Says on the status page, and in a notification, what a backup did about known damage.
fn report_healing(agent: &Agent, source: &Source, outcome: &crate::engine::backup::BackupOutcome) {
    let Some(note) = crate::engine::backup::healing_note(&outcome.healing, &outcome.id.short()) else { return };
    tracing::warn!("source {}: {note}", source.name);
    agent.board.update(|st| st.maintenance.damage_note = Some(note.clone()));
    let kind = if outcome.healing.not_healable() == 0 { EventKind::DamageHealed } else { EventKind::VerifyDamage };
    agent.notify(Event::now(kind, Some(&source.name), note));
}

/// Copies the primary to one secondary target after each backup, and retries a failing
/// link every few minutes. Reports the backlog on the status board.
async fn replication_loop(agent: Arc<Agent>, key: arka_proto::AgentKey, index: usize, mut wake: watch::Receiver<u64>) {
    let target = agent.cfg.targets[index].clone();
    let job = Arc::new(jobs::Replicate { agent: agent.clone(), key, target: target.clone(), index });
    let primary = agent.cfg.targets[0].name.clone();
    loop {
        // What the primary holds now is on this target once the copy succeeds.
        let on_primary: Vec<(String, i64)> = agent
            .board
            .snapshot()
            .sources
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.copies.iter().find(|c| c.target == primary)?.newest_ns)))
            .collect();
        let result = match agent.copies.run(&job).await {
            Ended::Done(()) => Ok(()),
            Ended::Cancelled | Ended::Abandoned => return,
            failed => Err(failed.failure().unwrap_or_default()),
        };
        let now_ns = agent.now_ns();
        agent.board.update(|st| {
            if let Some(t) = st.target_mut(&target.name) {
                t.reachable = result.is_ok();
                match &result {
                    Ok(()) => {
                        t.last_sync_ns = Some(now_ns);
                        (t.backlog_snapshots, t.backlog_bytes) = (0, 0);
                        t.last_error = None;
                    }
                    Err(why) => t.last_error = Some(why.clone()),
                }
            }
            if result.is_ok() {
                for (name, newest_ns) in &on_primary {
                    if let Some(s) = st.source_mut(name) {
                        s.copied_to(&target.name, *newest_ns);
                    }
                }
            }
        });
        match &result {
            Err(why) => {
                tracing::warn!("replication to {} failed: {why}", target.name);
                let event = Event::now(
                    EventKind::ReplicationFailing,
                    Some(&target.name),
                    format!("copying to {} fails", target.name),
                );
                agent.notify(event.with_detail(why.clone()));
            }
            Ok(()) => agent.notify(Event::now(
                EventKind::Recovered,
                Some(&target.name),
                format!("{} is reachable again", target.name),
            )),
        }
        let retry = tokio::time::sleep(if result.is_ok() { Duration::from_secs(3600) } else { REPLICATION_RETRY });
        tokio::select! {
            _ = retry => {}
            r = wake.changed() => if r.is_err() { return },
            _ = agent.stop.cancelled() => return,
        }
    }
}

/// Forget, prune and verify, each on its own schedule when configured.
async fn maintenance_loop(agent: Arc<Agent>, key: arka_proto::AgentKey) {
    let m = agent.cfg.maintenance.clone();
    let mut jobs: Vec<(&'static str, super::schedule::Schedule)> =
        [(FORGET_JOB, m.forget.clone()), (PRUNE_JOB, m.prune.clone()), (VERIFY_JOB, m.verify.clone())]
            .into_iter()
            .filter_map(|(name, s)| s.map(|s| (name, s)))
            .collect();
    // Whether the storage lets forget and prune delete: asked at start, and again before a
    // deleting job for as long as the target could not be reached to answer.
    let mut may_delete = deletion_allowed(&agent).await;
    loop {
        if may_delete == Some(false) {
            jobs.retain(|(job, _)| *job == VERIFY_JOB);
        }
        let mut next: Option<(&'static str, jiff::Timestamp)> = None;
        for (j, s) in &jobs {
            let t = agent.next_run(j, s);
            if next.is_none_or(|(_, best)| t < best) {
                next = Some((*j, t));
            }
        }
        let Some((job, due)) = next else { return };
        if !agent.sleep_until(due).await {
            return;
        }
        if job != VERIFY_JOB && may_delete.is_none() {
            may_delete = deletion_allowed(&agent).await;
            if may_delete == Some(false) {
                continue;
            }
        }
        if job == PRUNE_JOB && failover::catch_up_pending(&agent) {
            tracing::warn!(
                "prune waits: the primary still lacks backups that went to another target while it was down"
            );
            agent.record(job, agent.clock.now(), false);
            continue;
        }
        let Ok(_permit) = agent.busy.acquire().await else { return };
        let started = agent.clock.now();
        let run = Arc::new(jobs::Maintain { agent: agent.clone(), key: key.clone(), job });
        let ended = agent.jobs.run(&run).await;
        if matches!(ended, Ended::Cancelled | Ended::Abandoned) {
            return;
        }
        agent.record(job, started, matches!(ended, Ended::Done(_)));
        let now_ns = agent.now_ns();
        let failure = ended.failure();
        agent.board.update(|st| {
            let m = &mut st.maintenance;
            match job {
                FORGET_JOB => m.last_forget_ns = Some(now_ns),
                PRUNE_JOB => m.last_prune_ns = Some(now_ns),
                _ => m.last_verify_ns = Some(now_ns),
            }
            m.last_error = failure.clone();
            if let Ended::Done(found) = &ended {
                if let Some(damage) = found.damage {
                    m.verify_damage = damage;
                }
                if let Some(vanished) = found.vanished {
                    m.vanished_snapshots = vanished;
                }
                m.last_restore_ns = found.last_restore_ns.or(m.last_restore_ns);
                if let Some(flagged) = &found.flagged {
                    m.flagged_snapshots = flagged.clone();
                }
            }
        });
        if let Some(why) = &failure {
            tracing::warn!("maintenance {job} failed: {why}");
        }
        agent.runs.send_modify(|n| *n += 1);
    }
}

/// Whether the primary target's storage lets forget and prune delete (`Some(false)` for an
/// arka-server append token; `None` when it cannot be reached to say). A refusal is said
/// once, in the log and on the status page, rather than by a failure of every run; the
/// deleting jobs are then not run.
async fn deletion_allowed(agent: &Agent) -> Option<bool> {
    match super::preflight::deletion_refused(&agent.cfg).await {
        Ok(None) => {
            agent.board.update(|st| st.maintenance.deletion_refused = None);
            Some(true)
        }
        Ok(Some(why)) => {
            tracing::error!("{why}; forget and prune will not run");
            let note = format!("{why}; forget and prune do not run");
            agent.board.update(|st| st.maintenance.deletion_refused = Some(note));
            Some(false)
        }
        Err(e) => {
            // Asked again before the next forget or prune, which meanwhile run and report
            // their own errors if the target stays unreachable.
            tracing::warn!("could not ask the primary target whether its token may delete: {}", scrub(&e));
            None
        }
    }
}

/// Notifies when a source is past its RPO (the notifier sends each alert once per period).
async fn rpo_loop(agent: Arc<Agent>) {
    loop {
        let status = agent.board.snapshot();
        let late: Vec<&str> = status
            .sources
            .iter()
            .filter(|s| s.past_rpo(status.now_ns, status.started_ns))
            .map(|s| s.name.as_str())
            .collect();
        if !late.is_empty() {
            let today = agent.today();
            agent.board.update(|st| {
                for name in &late {
                    if let Some(s) = st.source_mut(name) {
                        s.day_mut(&today).late = true;
                    }
                }
            });
        }
        for s in &status.sources {
            if s.past_rpo(status.now_ns, status.started_ns) {
                agent.notify(Event::now(
                    EventKind::RpoMissed,
                    Some(&s.name),
                    format!("{} has not been backed up within its RPO", s.name),
                ));
            }
        }
        if !agent.sleep_until(agent.clock.now() + RPO_CHECK).await {
            return;
        }
    }
}

mod failover;
mod jobs;
mod push;
#[cfg(test)]
mod tests;
