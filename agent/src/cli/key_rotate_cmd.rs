//! `arka key rotate-agent`: a new agent key when the old one may have leaked
//! (docs/OPERATIONS.md, "Rotating a leaked agent key"). Run with a recovery identity.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::output::Output;
use super::{reading_session, CacheArg, IdentityArg, LimitArgs, RepoArg};
use crate::engine::keys::rotate::{rotate_agent, Rotated};
use crate::engine::{Actor, Session};
use crate::error::{Error, Result};
use crate::repo::keys::write_secret_file;
use crate::repo::Repository;

#[derive(Args)]
pub(super) struct RotateArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// Where to write the new agent key (a new file, readable by its owner only).
    #[arg(long)]
    agent_key_out: PathBuf,
    #[command(flatten)]
    cache: CacheArg,
    #[command(flatten)]
    limits: LimitArgs,
}

pub(super) async fn run(a: RotateArgs, out: &Output) -> Result<ExitCode> {
    // Refuse before touching the repository if the key file cannot be written.
    if a.agent_key_out.exists() {
        return Err(Error::Usage(format!("{} already exists; refusing to overwrite a key", a.agent_key_out.display())));
    }
    let session = reading_session(&a.repo, &a.identity, &a.cache, &a.limits.limits()).await?;
    let repo = session.repo();
    let done = rotate_agent(repo, |key| write_secret_file(&a.agent_key_out, key.to_file_text().as_bytes())).await?;
    // Audited under the new key: the old one can no longer open the repository.
    let reopened = Repository::open_with_agent_key(repo.store.clone(), done.new.clone()).await?;
    let audit = Session::new(Arc::new(reopened), Actor::cli(), session.cache_dir().to_path_buf());
    audit.key_changed(format!("rotated agent key {} -> {}", done.old_id, done.new.id())).await;
    print(&done, &a.agent_key_out, out);
    Ok(ExitCode::SUCCESS)
}

fn print(done: &Rotated, path: &std::path::Path, out: &Output) {
    let new_id = done.new.id();
    if out.json {
        say!(
            "{}",
            serde_json::json!({
                "retired": done.old_id,
                "retired_at": done.retired,
                "agent_key": new_id,
                "agent_key_file": path.display().to_string(),
                "generation": done.config.generation,
            })
        );
        return;
    }
    say!("rotated the agent key: {} is retired, {new_id} is current (written to {}).", done.old_id, path.display());
    say!(
        "On every agent that uses this repository: replace the agent key file (agent.toml `agent_key`) with \
         this one, and restart the service. The old key can no longer open the repository, and what it \
         writes from now on is refused."
    );
    say!(
        "If the repository is on arka-server: make a new token (`arka-server token new FILE`), put it in \
         server.toml in place of the old token's secret_file, give it to the agents, and restart \
         arka-server, so that the old token, which may sit beside the leaked key, is refused."
    );
}
