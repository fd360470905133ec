//! How the service runs a job: every backup, maintenance and replication run goes through
//! one `Supervisor`, which gives the job a cancellation token tied to the service's stop
//! signal, retries what `Error::is_retryable` says may succeed later, turns a panic into a
//! failed run instead of a dead task, and at shutdown gives a running job a deadline to
//! reach its next safe point before abandoning it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// One unit of work of the service.
pub trait Job: Send + Sync + 'static {
    type Output: Send + 'static;

    /// Runs once. Stops at its next safe point, with `Error::Cancelled`, when `cancel` is
    /// cancelled.
    fn run(&self, cancel: CancellationToken) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// How a supervised job ended.
#[derive(Debug)]
pub enum Ended<T> {
    Done(T),
    Failed(Error),
    /// The job panicked: a bug, reported as a failed run; the service goes on.
    Panicked(String),
    /// The service is stopping and the job stopped at a safe point.
    Cancelled,
    /// The service is stopping and the job did not stop within the exit deadline.
    Abandoned,
}

impl<T> Ended<T> {
    /// The failure to report, if the run failed (not when it was stopped).
    pub fn failure(&self) -> Option<String> {
        match self {
            Self::Failed(e) => Some(scrub(e)),
            Self::Panicked(msg) => Some(format!("internal error (please report it): {msg}")),
            Self::Done(_) | Self::Cancelled | Self::Abandoned => None,
        }
    }
}

pub struct Supervisor {
    stop: CancellationToken,
    /// Waits before each retry of a retryable failure; empty: no retries.
    retry_delays: Vec<Duration>,
    /// How long a running job may take to stop once the service stops.
    exit_deadline: Duration,
}

impl Supervisor {
    pub fn new(stop: CancellationToken, retry_delays: Vec<Duration>, exit_deadline: Duration) -> Self {
        Self { stop, retry_delays, exit_deadline }
    }

    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Runs `job`, retrying retryable failures after each of the retry delays.
    pub async fn run<J: Job>(&self, job: &Arc<J>) -> Ended<J::Output> {
        let mut delays = self.retry_delays.iter();
        loop {
            let ended = self.attempt(job).await;
            let Ended::Failed(e) = &ended else { return ended };
            let Some(delay) = delays.next().filter(|_| e.is_retryable()) else { return ended };
            tracing::info!("retrying in {} s: {}", delay.as_secs(), scrub(e));
            tokio::select! {
                _ = tokio::time::sleep(*delay) => {}
                _ = self.stop.cancelled() => return Ended::Cancelled,
            }
        }
    }

    async fn attempt<J: Job>(&self, job: &Arc<J>) -> Ended<J::Output> {
        let cancel = self.stop.child_token();
        let (job, token) = (job.clone(), cancel.clone());
        // A task of its own, so that a panic ends this run only.
        let mut handle = tokio::spawn(async move { job.run(token).await });
        tokio::select! {
            joined = &mut handle => return ended(joined),
            _ = self.stop.cancelled() => {}
        }
        // The job saw its token cancelled: give it the deadline to reach a safe point.
        match tokio::time::timeout(self.exit_deadline, &mut handle).await {
            Ok(joined) => ended(joined),
            Err(_) => {
                handle.abort();
                Ended::Abandoned
            }
        }
    }
}

/// An error as the status page and notifications may show it: no file names. I/O errors
/// name a path, so they are reduced to their kind; everything else names storage keys or
/// IDs at most.
pub fn scrub(e: &Error) -> String {
    match e {
        Error::Io { source, .. } => format!("a file or folder could not be read or written: {source}"),
        Error::NoSuchPath(_) => "a configured path does not exist".into(),
        // The command line may hold a database password: name the failure only.
        Error::CommandFailed { reason, .. } => format!("the command failed: {reason}"),
        other => other.to_string(),
    }
}

fn ended<T>(joined: std::result::Result<Result<T>, tokio::task::JoinError>) -> Ended<T> {
    match joined {
        Ok(Ok(value)) => Ended::Done(value),
        Ok(Err(Error::Cancelled)) => Ended::Cancelled,
        Ok(Err(e)) => Ended::Failed(e),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Ended::Panicked(msg)
        }
        Err(_) => Ended::Abandoned,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A job that fails `failures` times with `error`, then succeeds; or waits for its
    /// token (`obeys_cancel`) or ignores it.
    struct Scripted {
        runs: AtomicU32,
        failures: u32,
        error: fn() -> Error,
        behaviour: Behaviour,
    }

    #[derive(Clone, Copy)]
    enum Behaviour {
        Finish,
        WaitForCancel,
        IgnoreCancel,
        Panic,
    }

    impl Scripted {
        fn new(failures: u32, error: fn() -> Error, behaviour: Behaviour) -> Arc<Self> {
            Arc::new(Self { runs: AtomicU32::new(0), failures, error, behaviour })
        }
    }

    impl Job for Scripted {
        type Output = u32;

        async fn run(&self, cancel: CancellationToken) -> Result<u32> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run <= self.failures {
                return Err((self.error)());
            }
            match self.behaviour {
                Behaviour::Finish => Ok(run),
                Behaviour::WaitForCancel => {
                    cancel.cancelled().await;
                    Err(Error::Cancelled)
                }
                Behaviour::IgnoreCancel => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(run)
                }
                Behaviour::Panic => panic!("the job broke"),
            }
        }
    }

    fn unreachable_store() -> Error {
        let source = object_store::Error::Generic { store: "S3", source: "error sending request".into() };
        Error::Store { op: "put", key: "k".into(), source: Box::new(source), advice: None }
    }

    fn bad_key() -> Error {
        Error::Key("not this repository's agent key".into())
    }

    /// Stops the supervisor's service after `secs` of (paused) time.
    fn stop_after(stop: &CancellationToken, secs: u64) {
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stopper.cancel();
        });
    }

    fn supervisor(stop: &CancellationToken) -> Supervisor {
        Supervisor::new(stop.clone(), vec![Duration::from_secs(30), Duration::from_secs(120)], Duration::from_secs(5))
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_failure_is_retried_after_each_delay_then_reported() {
        let stop = CancellationToken::new();
        let job = Scripted::new(2, unreachable_store, Behaviour::Finish);
        let started = tokio::time::Instant::now();
        assert!(matches!(supervisor(&stop).run(&job).await, Ended::Done(3)));
        assert_eq!(started.elapsed(), Duration::from_secs(150), "waited 30 s, then 120 s");

        let always = Scripted::new(10, unreachable_store, Behaviour::Finish);
        let ended = supervisor(&stop).run(&always).await;
        assert!(matches!(ended, Ended::Failed(_)), "{ended:?}");
        assert_eq!(always.runs.load(Ordering::SeqCst), 3, "one run and two retries");
        assert!(ended.failure().unwrap().contains("error sending request"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_a_retry_cannot_fix_is_reported_at_once() {
        let stop = CancellationToken::new();
        let job = Scripted::new(1, bad_key, Behaviour::Finish);
        let ended = supervisor(&stop).run(&job).await;
        assert!(matches!(ended, Ended::Failed(Error::Key(_))), "{ended:?}");
        assert_eq!(job.runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_cancels_the_job_which_ends_at_its_safe_point() {
        let stop = CancellationToken::new();
        let job = Scripted::new(0, bad_key, Behaviour::WaitForCancel);
        let sup = supervisor(&stop);
        stop_after(&stop, 1);
        assert!(matches!(sup.run(&job).await, Ended::Cancelled));
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_ignores_the_stop_is_abandoned_at_the_deadline() {
        let stop = CancellationToken::new();
        let job = Scripted::new(0, bad_key, Behaviour::IgnoreCancel);
        let sup = supervisor(&stop);
        stop_after(&stop, 1);
        let started = tokio::time::Instant::now();
        assert!(matches!(sup.run(&job).await, Ended::Abandoned));
        assert_eq!(started.elapsed(), Duration::from_secs(6), "1 s until the stop, then the 5 s deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_during_the_retry_wait_ends_the_wait() {
        let stop = CancellationToken::new();
        let job = Scripted::new(5, unreachable_store, Behaviour::Finish);
        let sup = supervisor(&stop);
        stop_after(&stop, 10);
        assert!(matches!(sup.run(&job).await, Ended::Cancelled));
        assert_eq!(job.runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panic_is_a_failed_run_and_the_supervisor_goes_on() {
        let stop = CancellationToken::new();
        let job = Scripted::new(0, bad_key, Behaviour::Panic);
        let sup = Supervisor::new(stop.clone(), vec![], Duration::from_secs(5));
        let ended = sup.run(&job).await;
        assert!(matches!(&ended, Ended::Panicked(m) if m == "the job broke"), "{ended:?}");
        assert!(ended.failure().unwrap().contains("internal error"));
        let fine = Scripted::new(0, bad_key, Behaviour::Finish);
        assert!(matches!(sup.run(&fine).await, Ended::Done(1)));
    }
}
