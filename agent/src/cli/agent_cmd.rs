//! `arka agent run|check --config FILE`: the service, in the foreground.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::error::{Error, Result};
use crate::service::config;
use crate::service::schedule::SystemClock;

#[derive(Args)]
pub(super) struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Run the scheduled backups, replication, maintenance and the status page until stopped.
    Run(ConfigArg),
    /// Check the configuration file and exit.
    Check(ConfigArg),
}

#[derive(Args)]
struct ConfigArg {
    /// The agent's configuration (default /etc/arka/agent.toml, C:\ProgramData\arka\agent.toml).
    #[arg(long, env = "ARKA_CONFIG")]
    config: Option<PathBuf>,
}

pub(super) async fn agent(a: AgentArgs) -> Result<ExitCode> {
    let (run, arg) = match a.command {
        AgentCommand::Run(c) => (true, c),
        AgentCommand::Check(c) => (false, c),
    };
    let path = arg.config.unwrap_or_else(config::default_config_path);
    let cfg = config::load(&path).map_err(|e| Error::Config(e.to_string()))?;
    if !run {
        match crate::service::preflight::deletion_refused(&cfg).await {
            Ok(None) => {}
            Ok(Some(why)) => return Err(Error::Config(format!("{}: {why}", path.display()))),
            Err(e) => eprintln!(
                "arka: warning: could not ask the primary target whether its token may delete (the agent asks \
                 again before its first forget or prune): {}",
                crate::service::supervisor::scrub(&e)
            ),
        }
        say!(
            "{}: {} sources, {} targets, status page on http://{}/",
            path.display(),
            cfg.sources.len(),
            cfg.targets.len(),
            cfg.status.bind
        );
        return Ok(ExitCode::SUCCESS);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    crate::platform::shutdown::cancel_on_shutdown(stop.clone());
    eprintln!("arka agent: {} sources, status page on http://{}/", cfg.sources.len(), cfg.status.bind);
    crate::service::runner::run(cfg, Arc::new(SystemClock), stop).await?;
    Ok(ExitCode::SUCCESS)
}
