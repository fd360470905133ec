//! `arka-server --config FILE`, `arka-server check --config FILE`, `arka-server token new FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use arka_server::config::Config;

#[derive(Parser)]
#[command(
    name = "arka-server",
    version,
    about = "arka's append-only repository server",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// The server's TOML config.
    #[arg(long, env = "ARKA_SERVER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Checks the config and the files it names, then exits.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Token secrets.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Writes a new random secret to FILE (mode 600), for a [[token]]'s secret_file and
    /// the agent's token file. Never overwrites.
    New { file: PathBuf },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ARKA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match (cli.command, cli.config) {
        (Some(Command::Token { command: TokenCommand::New { file } }), _) => new_token(&file),
        (Some(Command::Check { config }), _) => Config::load(&config)
            .and_then(|c| arka_server::build_state(c).map(|_| ()))
            .map(|()| println!("{}: ok", config.display())),
        (None, Some(config)) => run(&config),
        (None, None) => Err("give the config: arka-server --config /etc/arka-server/server.toml".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arka-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn new_token(file: &Path) -> Result<(), String> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(file).map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    writeln!(f, "{}", arka_server::auth::new_secret()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    println!(
        "wrote a new secret to {}: name it in a [[token]]'s secret_file, and copy it to the agent's token_file",
        file.display()
    );
    Ok(())
}

fn run(path: &Path) -> Result<(), String> {
    let config = Config::load(path)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start: {e}"))?;
    runtime.block_on(async move {
        let tls = config.tls.as_ref().map(arka_server::serve::tls_acceptor).transpose()?;
        let listen = config.listen;
        let state = arka_server::build_state(config)?;
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!("listening on {scheme}://{}", listener.local_addr().map_err(|e| e.to_string())?);
        arka_server::spawn_usage_scan(state.clone());
        arka_server::serve::serve(listener, tls, state, shutdown_signal()).await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
