//! `arka agent run|check --config FILE`: the service, in the foreground.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::error::{Error, ErrorKind, Result};
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
    /// Check the configuration file, and each target's keys against the recipients it
    /// pins, and exit.
    Check(CheckArgs),
    /// Ask the running agent to back up a source (or every source) now.
    RunNow(RunNowArgs),
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Accept the repository's new reader key after `arka key remove` when the recipients
    /// are still as pinned (a holder added, then removed again): the agent refuses such a
    /// change until a person confirms it here.
    #[arg(long)]
    accept_key_change: bool,
}

#[derive(Args)]
struct RunNowArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The source to back up (its `name` in the configuration); every source when omitted.
    source: Option<String>,
}

#[derive(Args)]
struct ConfigArg {
    /// The agent's configuration (default /etc/arka/agent.toml, C:\ProgramData\arka\agent.toml).
    #[arg(long, env = "ARKA_CONFIG")]
    config: Option<PathBuf>,
}

pub(super) async fn agent(a: AgentArgs) -> Result<ExitCode> {
    let (run, arg, accept) = match a.command {
        AgentCommand::Run(c) => (true, c, false),
        AgentCommand::Check(c) => (false, c.config, c.accept_key_change),
        AgentCommand::RunNow(r) => return run_now(r).await,
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
        let mut refused = 0;
        for (target, checked) in crate::service::preflight::keys_checked(&cfg, accept).await {
            match checked {
                Ok(None) => {}
                Ok(Some(warning)) => eprintln!("arka: warning: target {target:?}: {warning}"),
                // Refusals and wrong keys fail the check; a target that cannot be opened
                // now (down, not initialised yet) is only reported.
                Err(e) if !matches!(e.kind(), ErrorKind::Failed | ErrorKind::Key) => eprintln!(
                    "arka: warning: target {target:?}: its keys could not be checked: {}",
                    crate::service::supervisor::scrub(&e)
                ),
                Err(e) => {
                    refused += 1;
                    eprintln!("arka: target {target:?}: {}", crate::service::supervisor::scrub(&e));
                }
            }
        }
        if refused > 0 {
            return Err(Error::Config(format!("{}: {refused} targets refused (above)", path.display())));
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

/// Posts to the running agent's status endpoint, as the status page's button does.
async fn run_now(a: RunNowArgs) -> Result<ExitCode> {
    let path = a.config.config.unwrap_or_else(config::default_config_path);
    let cfg = config::load(&path).map_err(|e| Error::Config(e.to_string()))?;
    let mut addr = cfg.status.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/run-now");
    // Plain HTTP on loopback, but reqwest wants a TLS provider to build a client at all.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut request = reqwest::Client::new()
        .post(&url)
        .header(crate::service::status::REQUEST_HEADER, "run-now")
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("source={}", crate::service::status::urlencode(a.source.as_deref().unwrap_or(""))));
    if let Some(token) = &cfg.status.token {
        request = request.bearer_auth(token.expose());
    }
    let response = request.send().await.map_err(|e| {
        Error::Usage(format!(
            "the agent does not answer at {url} ({}): is it running? (`systemctl status arka-agent`; on Windows, \
             `sc query arka-agent`)",
            crate::service::supervisor::scrub(&Error::Usage(e.to_string()))
        ))
    })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        say!("{}", text.trim_end());
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Error::Usage(format!("the agent refused: {}", text.trim_end())))
    }
}
