//! `arka keygen` and `arka init`: the owner's recovery identity (as a file, or on paper:
//! `paper_cmd`), and a repository with its agent key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::output::Output;
use super::paper_cmd;
use super::RepoArg;
use crate::engine::{Actor, Session};
use crate::error::{Error, Result};
use crate::repo::keys::write_secret_file;
use crate::repo::Repository;
use crate::store::Store;

#[derive(Args)]
pub(super) struct KeygenArgs {
    /// Write the identity here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Protect the identity file with a passphrase (ARKA_PASSPHRASE or a prompt).
    #[arg(long)]
    passphrase: bool,
    /// Print the identity as a paper key: lines with checksums to type back with
    /// `--identity -`, and a QR code. With -o the file is written too.
    #[arg(long)]
    paper: bool,
    /// Write a printable paper-key sheet to FILE: one HTML page (no scripts, nothing
    /// fetched) with the lines, the QR code and the public recipient, mode 600.
    #[arg(long, value_name = "FILE")]
    paper_html: Option<PathBuf>,
    /// The repository ID to print on the sheet (default: a blank to write it on).
    #[arg(long, value_name = "ID", requires = "paper_html", value_parser = super::paper_cmd::repo_id_arg)]
    repo_id: Option<String>,
}

#[derive(Args)]
pub(super) struct InitArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Recovery recipient (age1…); repeat for several people.
    #[arg(long = "recipient", required = true)]
    recipients: Vec<String>,
    /// Where to write the agent key (default: print it).
    #[arg(long)]
    agent_key_out: Option<PathBuf>,
    /// Target pack size in MiB.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=512))]
    pack_size_mib: Option<u32>,
}

pub(super) fn keygen(a: KeygenArgs, out: &Output) -> Result<ExitCode> {
    if a.passphrase && a.output.is_none() {
        return Err(Error::Usage("--passphrase needs -o FILE: the result is binary".into()));
    }
    paper_cmd::refuse_existing(&[a.output.as_deref(), a.paper_html.as_deref()])?;
    let id = arka_proto::RecoveryIdentities::generate();
    let recipient = id.recipients().remove(0);
    if let Some(path) = &a.output {
        let mut text = zeroize::Zeroizing::new(id.to_file_text().into_bytes());
        if a.passphrase {
            let pass = passphrase_for("new recovery identity", true)?;
            text = zeroize::Zeroizing::new(arka_proto::crypto::seal_with_passphrase(&text, &pass));
        }
        write_secret_file(path, &text)?;
    }
    let paper = (a.paper || a.paper_html.is_some()).then(|| paper_cmd::Paper::of(&id));
    if let (Some(paper), Some(path)) = (&paper, &a.paper_html) {
        paper.write_sheet(path, a.repo_id.as_deref())?;
    }
    // The secret goes to stdout only if asked for there: as paper, or with nowhere else to go.
    let secret_on_stdout = a.paper || (a.output.is_none() && a.paper_html.is_none());
    match &paper {
        _ if out.json => {}
        Some(paper) if a.paper => say!("{}", paper.text().trim_end()),
        _ if secret_on_stdout => say!("{}", id.to_file_text().trim_end()),
        _ => {}
    }
    if out.json {
        let mut json = serde_json::json!({ "recipient": recipient });
        if let (Some(paper), true) = (&paper, a.paper) {
            json["paper"] = serde_json::json!(paper.lines());
        } else if secret_on_stdout {
            json["identity"] = serde_json::json!(id.to_file_text());
        }
        say!("{json}");
    } else if secret_on_stdout {
        eprintln!("public recipient: {recipient}");
    } else {
        say!("{recipient}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a passphrase from `ARKA_PASSPHRASE` or the terminal.
pub(super) fn passphrase_for(what: &str, confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("ARKA_PASSPHRASE") {
        return Ok(p);
    }
    let p = rpassword::prompt_password(format!("passphrase for the {what}: "))
        .map_err(|e| Error::Usage(format!("cannot read a passphrase (set ARKA_PASSPHRASE): {e}")))?;
    if p.is_empty() {
        return Err(Error::Usage("empty passphrase".into()));
    }
    if confirm && rpassword::prompt_password("again: ").map_err(|e| Error::Usage(e.to_string()))? != p {
        return Err(Error::Usage("the passphrases differ".into()));
    }
    Ok(p)
}

pub(super) async fn init(a: InitArgs, out: &Output) -> Result<ExitCode> {
    let store = Store::open(&a.repo.repo, true)?;
    // Refuse before touching the repository if the key file cannot be written.
    if let Some(p) = &a.agent_key_out {
        if p.exists() {
            return Err(Error::Usage(format!("{} already exists; refusing to overwrite a key", p.display())));
        }
    }
    let (repo, key) = Repository::init(store, &a.recipients, a.pack_size_mib.map(|m| m << 20)).await?;
    match &a.agent_key_out {
        Some(p) => write_secret_file(p, key.to_file_text().as_bytes())?,
        None => say!("{}", key.to_file_text().trim_end()),
    }
    let session = Session::new(Arc::new(repo), Actor::cli(), crate::engine::backup::default_cache_dir());
    session.initialised().await;
    let repo = session.repo();
    let id = repo.config.repo_id.to_hex();
    if out.json {
        say!("{}", serde_json::json!({ "repo_id": id, "recipients": repo.config.recipients }));
    } else {
        eprintln!("created repository {} at {}", &id[..8], repo.store.display);
        let pin: Vec<String> = repo.config.recipients.iter().map(|r| format!("{r:?}")).collect();
        eprintln!(
            "pin its recipients in agent.toml, so that a replaced config is refused:
    recipients = [{}]",
            pin.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
