//! `arka service install|uninstall|start|stop`: the agent as a Windows service (see
//! `daemon::windows_service`). On Linux the subcommand exists only to point at the systemd
//! unit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::error::{Error, Result};

#[derive(Args)]
pub(super) struct ServiceArgs {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Register the `arka-agent` service (automatic start, LocalSystem account) to run the
    /// agent with this config; run from an elevated prompt.
    Install(ConfigArg),
    /// Stop the service if it runs and remove it (config, keys, state and log stay).
    Uninstall,
    /// Start the service and wait until it runs.
    Start,
    /// Stop the service; a running backup ends at its next safe point.
    Stop,
    /// What the Windows service manager starts; not for use by hand.
    #[command(hide = true)]
    Run(ConfigArg),
}

#[derive(Args)]
struct ConfigArg {
    /// The agent's configuration (default C:\ProgramData\arka\agent.toml).
    #[arg(long, env = "ARKA_CONFIG")]
    config: Option<PathBuf>,
}

#[cfg(not(windows))]
pub(super) async fn service(a: ServiceArgs) -> Result<ExitCode> {
    let config = match a.command {
        ServiceCommand::Install(c) | ServiceCommand::Run(c) => c.config,
        _ => None,
    };
    let config = config.unwrap_or_else(crate::service::config::default_config_path);
    Err(Error::Usage(format!(
        "`arka service` manages the Windows service. On Linux the agent runs under systemd: install \
         packaging/systemd/arka-agent.service (it runs `arka agent run --config {}`), then \
         `systemctl enable --now arka-agent`; see docs/OPERATIONS.md",
        config.display()
    )))
}

#[cfg(windows)]
pub(super) async fn service(a: ServiceArgs) -> Result<ExitCode> {
    use crate::service::config;
    use crate::service::windows_service as ws;

    let failed = |e: ws::ServiceError| Error::Refused(e.to_string());
    match a.command {
        ServiceCommand::Install(c) => {
            let given = c.config.unwrap_or_else(config::default_config_path);
            let path = std::path::absolute(&given).map_err(|e| Error::io(&given, e))?;
            // A service that cannot start says so only in its log: check the config now.
            let cfg = config::load(&path).map_err(|e| {
                Error::Usage(format!(
                    "{e}\nfix the configuration, then install again (`arka agent check --config FILE`)"
                ))
            })?;
            let (command, warnings) = ws::install(&path).map_err(failed)?;
            say!("installed the {} service ({}), automatic start: {command}", ws::SERVICE_NAME, ws::DISPLAY_NAME);
            for w in warnings {
                eprintln!("arka: warning: {w}");
            }
            say!("start it with `arka service start`; its log is {}", cfg.state_dir.join(ws::LOG_FILE).display());
        }
        ServiceCommand::Uninstall => {
            let done = tokio::task::block_in_place(ws::uninstall).map_err(failed)?;
            if done.was_running {
                say!("stopped the {} service", ws::SERVICE_NAME);
            }
            say!(
                "removed the {} service; the config, keys, state and log in C:\\ProgramData\\arka are kept",
                ws::SERVICE_NAME
            );
        }
        ServiceCommand::Start => {
            let started = tokio::task::block_in_place(ws::start).map_err(failed)?;
            say!("{} {}", ws::SERVICE_NAME, if started { "started" } else { "is already running" });
        }
        ServiceCommand::Stop => {
            let stopped = tokio::task::block_in_place(ws::stop).map_err(failed)?;
            say!("{} {}", ws::SERVICE_NAME, if stopped { "stopped" } else { "was not running" });
        }
        ServiceCommand::Run(c) => {
            let path = c.config.unwrap_or_else(config::default_config_path);
            // The dispatcher holds this thread until the service stops.
            tokio::task::block_in_place(|| ws::run_dispatcher(path)).map_err(failed)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
