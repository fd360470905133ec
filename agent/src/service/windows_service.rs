//! The agent as a Windows service: the entry point the service manager calls, Stop and
//! Shutdown mapped onto the runner's stop channel, status reports (start pending, running,
//! stop pending, stopped), a log file in the state folder (a service has no console), and
//! install, uninstall, start and stop through the service manager.
//!
//! The log file and the service's command line are plain Rust, built and tested on every
//! platform; what talks to the service manager is Windows-only. On Linux the systemd unit
//! in `packaging/systemd/` does this job.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The service's key name (`sc query arka-agent`, `net start arka-agent`).
pub const SERVICE_NAME: &str = "arka-agent";
/// What the Services console shows.
pub const DISPLAY_NAME: &str = "arka backup agent";
pub const DESCRIPTION: &str =
    "Encrypted, deduplicated backups of this clinic's data: schedules, watched folders, database dumps, status page.";
/// The service's log, in the state folder.
pub const LOG_FILE: &str = "agent.log";
/// Past this size the log moves to `agent.log.1` (replacing the one before), so years of
/// running keep at most twice this on disk.
pub const LOG_MAX_BYTES: u64 = 10 << 20;

/// What follows the executable in the service's command line: the hidden `service run`
/// entry that the service manager starts, and the config as given (make it absolute: a
/// service starts in `C:\Windows\System32`).
pub fn launch_arguments(config: &Path) -> Vec<OsString> {
    vec!["service".into(), "run".into(), "--config".into(), config.as_os_str().to_owned()]
}

/// An append-only log file that moves itself to `NAME.1` once it would pass `max_bytes`.
/// Each `write` is one whole log line from the formatter, so lines are never split between
/// the two files. If the move fails (someone holds the old file open without sharing),
/// logging goes on in the same file and the move is tried again `max_bytes` later.
#[derive(Debug)]
pub struct ServiceLog {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_bytes: u64,
}

impl ServiceLog {
    /// Opens the log for appending, creating it and its folder.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let written = file.metadata()?.len();
        Ok(Self { path: path.to_path_buf(), file: Some(file), written, max_bytes })
    }

    /// Where the previous log goes.
    pub fn rotated_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        p.into()
    }

    fn rotate(&mut self) {
        self.file = None;
        let _ = std::fs::rename(&self.path, self.rotated_path());
        self.file = append(&self.path).ok();
        self.written = 0;
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for ServiceLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(buf)?;
            self.written += buf.len() as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

#[cfg(windows)]
pub use scm::{install, run_dispatcher, start, stop, uninstall, ServiceError, Uninstalled};

#[cfg(windows)]
mod scm {
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use windows_service::service::{
        Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
        ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo,
        ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
    use windows_service::service_dispatcher;
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

    use super::{launch_arguments, ServiceLog, DESCRIPTION, DISPLAY_NAME, LOG_FILE, LOG_MAX_BYTES, SERVICE_NAME};
    use crate::service::config;
    use crate::service::schedule::SystemClock;

    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;
    const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
    const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
    const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
    const ERROR_SERVICE_MARKED_FOR_DELETE: i32 = 1072;
    const ERROR_SERVICE_EXISTS: i32 = 1073;

    /// Service-specific exit codes reported to the service manager (`sc query` shows them).
    const EXIT_BAD_CONFIG: u32 = 1;
    const EXIT_RUN_FAILED: u32 = 2;

    /// How long the service manager is told to wait between our progress reports.
    const WAIT_HINT: Duration = Duration::from_secs(30);
    /// How long `arka service start` and `stop` wait for the state to change.
    const START_WAIT: Duration = Duration::from_secs(60);
    const STOP_WAIT: Duration = Duration::from_secs(180);

    #[derive(Debug, thiserror::Error)]
    pub enum ServiceError {
        #[error("cannot {action} the arka-agent service: {}", describe(source))]
        Manager { action: &'static str, source: windows_service::Error },
        #[error(
            "`arka service run` is started by the Windows service manager, not by hand; to run the agent in this \
             console use `arka agent run --config FILE`"
        )]
        NotFromServiceManager,
        #[error(
            "the arka-agent service stopped while starting ({exit}); the reason is in {LOG_FILE} in the state \
             folder (default C:\\ProgramData\\arka\\state)"
        )]
        StoppedWhileStarting { exit: String },
        #[error(
            "the arka-agent service did not become {state} within {} s; see `sc query arka-agent` and {LOG_FILE} \
             in the state folder",
            waited.as_secs()
        )]
        Timeout { state: &'static str, waited: Duration },
    }

    fn describe(e: &windows_service::Error) -> String {
        let windows_service::Error::Winapi(io) = e else { return e.to_string() };
        let hint = match io.raw_os_error() {
            Some(ERROR_ACCESS_DENIED) => " (run it from an elevated prompt: right-click, Run as administrator)",
            Some(ERROR_SERVICE_DOES_NOT_EXIST) => " (it is not installed: `arka service install --config FILE`)",
            Some(ERROR_SERVICE_EXISTS) => " (it is already installed: `arka service uninstall` first to change it)",
            Some(ERROR_SERVICE_MARKED_FOR_DELETE) => {
                " (it is being removed: close the Services console and Event Viewer, then try again)"
            }
            _ => "",
        };
        format!("{io}{hint}")
    }

    fn os_error(e: &windows_service::Error) -> Option<i32> {
        match e {
            windows_service::Error::Winapi(io) => io.raw_os_error(),
            _ => None,
        }
    }

    fn manager_error(action: &'static str) -> impl FnOnce(windows_service::Error) -> ServiceError {
        move |source| ServiceError::Manager { action, source }
    }

    fn open(access: ServiceAccess, action: &'static str) -> Result<Service, ServiceError> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
            .map_err(manager_error(action))?;
        manager.open_service(SERVICE_NAME, access).map_err(manager_error(action))
    }

    // ---- Managing the service (run from an elevated prompt) ----

    /// Registers the service: automatic start as LocalSystem, running `"<this exe>" service
    /// run --config <config>`, restarted by the service manager after a failure. Returns
    /// the command line registered and warnings for settings that could not be applied
    /// (the service works without them).
    pub fn install(config: &Path) -> Result<(String, Vec<String>), ServiceError> {
        let exe = std::env::current_exe()
            .map_err(|e| ServiceError::Manager { action: "install", source: windows_service::Error::Winapi(e) })?;
        let manager = ServiceManager::local_computer(
            None::<&str>,
            ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
        )
        .map_err(manager_error("install"))?;
        let info = ServiceInfo {
            name: SERVICE_NAME.into(),
            display_name: DISPLAY_NAME.into(),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: exe,
            launch_arguments: launch_arguments(config),
            dependencies: vec![],
            account_name: None,
            account_password: None,
        };
        let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_CONFIG | ServiceAccess::START;
        let service = manager.create_service(&info, access).map_err(manager_error("install"))?;
        let mut warnings = Vec::new();
        if let Err(e) = service.set_description(DESCRIPTION) {
            warnings.push(format!("the description was not set: {}", describe(&e)));
        }
        // A crash or a failed start (a NAS share not up yet at boot) is retried: after 1
        // minute twice, then every 5 minutes; the count resets after a day without failure.
        let restart =
            |secs| ServiceAction { action_type: ServiceActionType::Restart, delay: Duration::from_secs(secs) };
        let actions = ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(60), restart(60), restart(300)]),
        };
        let recovery = service
            .update_failure_actions(actions)
            .and_then(|()| service.set_failure_actions_on_non_crash_failures(true));
        if let Err(e) = recovery {
            warnings.push(format!(
                "restart after a failure was not set up ({}); set it in the Services console, Recovery tab",
                describe(&e)
            ));
        }
        let command = match service.query_config() {
            Ok(c) => c.executable_path.display().to_string(),
            Err(_) => String::new(),
        };
        Ok((command, warnings))
    }

    /// Starts the service and waits until it runs. `Ok(false)`: it was already running.
    pub fn start() -> Result<bool, ServiceError> {
        let service = open(ServiceAccess::START | ServiceAccess::QUERY_STATUS, "start")?;
        match service.start::<&OsStr>(&[]) {
            Ok(()) => {}
            Err(e) if os_error(&e) == Some(ERROR_SERVICE_ALREADY_RUNNING) => return Ok(false),
            Err(e) => return Err(manager_error("start")(e)),
        }
        let status = wait_for(&service, ServiceState::Running, START_WAIT)?;
        if status.current_state == ServiceState::Stopped {
            let exit = match status.exit_code {
                ServiceExitCode::ServiceSpecific(EXIT_BAD_CONFIG) => "the configuration is not valid".to_string(),
                ServiceExitCode::ServiceSpecific(n) => format!("exit code {n}"),
                ServiceExitCode::Win32(n) => format!("Windows error {n}"),
            };
            return Err(ServiceError::StoppedWhileStarting { exit });
        }
        Ok(true)
    }

    /// Stops the service and waits until it has stopped: a running backup ends at its next
    /// safe point (no partial snapshot). `Ok(false)`: it was not running.
    pub fn stop() -> Result<bool, ServiceError> {
        let service = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS, "stop")?;
        stop_service(&service, "stop")
    }

    fn stop_service(service: &Service, action: &'static str) -> Result<bool, ServiceError> {
        match service.stop() {
            Ok(_) => {}
            Err(e) if os_error(&e) == Some(ERROR_SERVICE_NOT_ACTIVE) => return Ok(false),
            Err(e) => return Err(manager_error(action)(e)),
        }
        wait_for(service, ServiceState::Stopped, STOP_WAIT)?;
        Ok(true)
    }

    /// What `uninstall` did.
    pub struct Uninstalled {
        pub was_running: bool,
    }

    /// Stops the service if it runs, then removes it. The service manager forgets it once
    /// nothing holds it open any more (the Services console may, until closed).
    pub fn uninstall() -> Result<Uninstalled, ServiceError> {
        let service = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE, "remove")?;
        let running = service.query_status().map_err(manager_error("remove"))?.current_state != ServiceState::Stopped;
        let was_running = running && stop_service(&service, "remove")?;
        service.delete().map_err(manager_error("remove"))?;
        Ok(Uninstalled { was_running })
    }

    /// Polls until the service is in `want` (or, waiting for Running, has stopped instead).
    fn wait_for(service: &Service, want: ServiceState, limit: Duration) -> Result<ServiceStatus, ServiceError> {
        let t0 = Instant::now();
        loop {
            let status = service.query_status().map_err(manager_error("query"))?;
            let s = status.current_state;
            if s == want || (want == ServiceState::Running && s == ServiceState::Stopped) {
                return Ok(status);
            }
            if t0.elapsed() > limit {
                let state = if want == ServiceState::Running { "running" } else { "stopped" };
                return Err(ServiceError::Timeout { state, waited: limit });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // ---- Being the service ----

    /// The config the service manager's command line named, for `service_main`.
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();

    windows_service::define_windows_service!(ffi_service_main, service_main);

    /// `arka service run --config FILE`: hands this thread to the service dispatcher, which
    /// runs `service_main` on a thread of its own and returns once the service has stopped.
    pub fn run_dispatcher(config: PathBuf) -> Result<(), ServiceError> {
        let _ = CONFIG.set(config);
        service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|e| {
            if os_error(&e) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
                ServiceError::NotFromServiceManager
            } else {
                manager_error("run")(e)
            }
        })
    }

    /// Reports the service's state to the service manager. Failures cannot be reported
    /// anywhere but the log.
    #[derive(Clone, Copy)]
    struct Reporter {
        handle: ServiceStatusHandle,
    }

    impl Reporter {
        fn set(&self, state: ServiceState, exit: ServiceExitCode, checkpoint: u32) {
            let accepted = if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            } else {
                ServiceControlAccept::empty()
            };
            let pending = matches!(state, ServiceState::StartPending | ServiceState::StopPending);
            let status = ServiceStatus {
                service_type: ServiceType::OWN_PROCESS,
                current_state: state,
                controls_accepted: accepted,
                exit_code: exit,
                checkpoint,
                wait_hint: if pending { WAIT_HINT } else { Duration::ZERO },
                process_id: None,
            };
            if let Err(e) = self.handle.set_service_status(status) {
                tracing::warn!("could not report the service state to Windows: {}", describe(&e));
            }
        }
    }

    fn service_main(_arguments: Vec<std::ffi::OsString>) {
        let config_path = CONFIG.get().cloned().unwrap_or_else(config::default_config_path);
        // Stop and Shutdown become the same stop signal as Ctrl-C or SIGTERM in a console.
        let stop = tokio_util::sync::CancellationToken::new();
        let stop_tx = stop.clone();
        let handler = move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                stop_tx.cancel();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let Ok(handle) = service_control_handler::register(SERVICE_NAME, handler) else { return };
        let reporter = Reporter { handle };
        reporter.set(ServiceState::StartPending, ServiceExitCode::Win32(0), 1);
        let exit = run_service(&config_path, reporter, stop);
        reporter.set(ServiceState::Stopped, exit, 0);
    }

    /// Loads the config, sets up the log, runs the agent until stopped. Returns the exit
    /// code for the service manager.
    fn run_service(
        config_path: &Path,
        reporter: Reporter,
        stop: tokio_util::sync::CancellationToken,
    ) -> ServiceExitCode {
        let loaded = config::load(config_path);
        let state_dir = loaded.as_ref().map_or_else(|_| config::default_state_dir(), |c| c.state_dir.clone());
        let log = ServiceLog::open(&state_dir.join(LOG_FILE), LOG_MAX_BYTES);
        let dispatch = log_dispatch(log.ok());
        let _guard = tracing::dispatcher::set_default(&dispatch);
        std::panic::set_hook(Box::new(|info| tracing::error!("internal error (please report it): {info}")));
        let cfg = match loaded {
            Ok(c) => c,
            Err(e) => {
                // Config errors name the config file and its lines, never the clinic's data.
                tracing::error!("the service cannot start: {e}");
                return ServiceExitCode::ServiceSpecific(EXIT_BAD_CONFIG);
            }
        };
        let runtime_dispatch = dispatch.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(4)
            // The CLI's global logger writes to stderr, which a service does not have: every
            // thread of the agent's runtime logs to the file instead (the guard lives as long
            // as the thread).
            .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&runtime_dispatch)))
            .build();
        let runtime = match runtime {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("the service cannot start: no async runtime: {e}");
                return ServiceExitCode::ServiceSpecific(EXIT_RUN_FAILED);
            }
        };
        tracing::info!(
            "arka {} service started: {} sources, {} targets, status page on http://{}/",
            env!("CARGO_PKG_VERSION"),
            cfg.sources.len(),
            cfg.targets.len(),
            cfg.status.bind
        );
        reporter.set(ServiceState::Running, ServiceExitCode::Win32(0), 0);
        let result = runtime.block_on(async move {
            // While the runner winds down, tell the service manager it is still making
            // progress, so a backup reaching its safe point is not mistaken for a hang.
            let stopping = stop.clone();
            let progress = tokio::spawn(async move {
                stopping.cancelled().await;
                tracing::info!("stopping: running backups end at their next safe point");
                for checkpoint in 1.. {
                    reporter.set(ServiceState::StopPending, ServiceExitCode::Win32(0), checkpoint);
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
            let result = crate::service::runner::run(cfg, Arc::new(SystemClock), stop).await;
            progress.abort();
            result
        });
        runtime.shutdown_timeout(Duration::from_secs(10));
        match result {
            Ok(()) => {
                tracing::info!("service stopped");
                ServiceExitCode::Win32(0)
            }
            Err(e) => {
                tracing::error!("the service stopped: {}", crate::service::supervisor::scrub(&e));
                ServiceExitCode::ServiceSpecific(EXIT_RUN_FAILED)
            }
        }
    }

    /// The service's logger: lines to the log file (nowhere if it cannot be opened), at
    /// `info` unless `ARKA_LOG` says otherwise.
    fn log_dispatch(log: Option<ServiceLog>) -> tracing::Dispatch {
        let filter = tracing_subscriber::EnvFilter::try_from_env("ARKA_LOG").unwrap_or_else(|_| "info".into());
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false);
        match log {
            Some(log) => tracing::Dispatch::new(builder.with_writer(Mutex::new(log)).finish()),
            None => tracing::Dispatch::new(builder.with_writer(std::io::sink).finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_command_line_runs_the_hidden_entry_with_the_config() {
        let args = launch_arguments(Path::new(r"C:\ProgramData\arka\agent.toml"));
        assert_eq!(args, ["service", "run", "--config", r"C:\ProgramData\arka\agent.toml"]);
    }

    #[test]
    fn the_log_appends_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(LOG_FILE);
        ServiceLog::open(&path, 1000).unwrap().write_all(b"first\n").unwrap();
        ServiceLog::open(&path, 1000).unwrap().write_all(b"second\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
    }

    #[test]
    fn the_log_moves_aside_when_full_and_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let mut log = ServiceLog::open(&path, 100).unwrap();
        let line = |i: usize| format!("line {i:02} {}\n", "x".repeat(21)); // 30 bytes
        for i in 0..3 {
            log.write_all(line(i).as_bytes()).unwrap();
        }
        assert!(!log.rotated_path().exists(), "90 bytes fit");
        log.write_all(line(3).as_bytes()).unwrap();
        let old = std::fs::read_to_string(log.rotated_path()).unwrap();
        assert_eq!(old, (0..3).map(line).collect::<String>(), "whole lines moved");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), line(3));
        for i in 4..8 {
            log.write_all(line(i).as_bytes()).unwrap();
        }
        assert_eq!(std::fs::read_to_string(log.rotated_path()).unwrap(), (3..6).map(line).collect::<String>());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), (6..8).map(line).collect::<String>());
    }

    #[test]
    fn a_line_longer_than_the_limit_is_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let mut log = ServiceLog::open(&path, 10).unwrap();
        log.write_all(b"a long first line\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a long first line\n");
    }
}
