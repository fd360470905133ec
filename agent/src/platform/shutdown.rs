//! The one stop signal of the process: SIGTERM (systemd, `kill`) or Ctrl-C. The Windows
//! service's Stop and Shutdown controls cancel the same kind of token (see
//! `service::windows_service`), so the CLI, the foreground agent, systemd and the Windows
//! service stop alike: at the next safe point of what is running.

use tokio_util::sync::CancellationToken;

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Cancels `token` when the process is asked to stop (needs a running tokio runtime).
pub fn cancel_on_shutdown(token: CancellationToken) {
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: what runs ends at its next safe point");
        token.cancel();
    });
}
