//! `arka key list|add|remove`: who can read the repository (docs/OPERATIONS.md, "Keys over
//! the years"). Run with a holder's recovery identity.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::output::Output;
use super::{reading_session, CacheArg, IdentityArg, LimitArgs, RepoArg};
use crate::engine::keys::{self, Committed, KeyListing};
use crate::engine::Session;
use crate::error::Result;

#[derive(Args)]
pub(super) struct KeyArgs {
    #[command(subcommand)]
    what: KeyCommand,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List who holds the repository (recipients, with labels and when added), who was
    /// removed and whether they can still read older data, and the agent keys.
    List(KeyedArgs),
    /// Add a recipient (age1…) who can then read every backup, old and new. Nothing is
    /// re-uploaded: the keyring is sealed to one more recipient.
    Add(AddArgs),
    /// Remove a holder (recipient, its first 12+ characters, or its label). Data written
    /// from now on is sealed to a new reader key the removed holder never sees; what was
    /// written before stays readable by them until `arka key rewrap`.
    Remove(RemoveArgs),
    /// Re-encrypt every pack a removed holder could still read under the current reader
    /// key, have the old packs deleted, then drop the older reader keys.
    Rewrap(super::key_rewrap_cmd::RewrapArgs),
    /// Make a new agent key, when the old one may have leaked: the old key can then add
    /// nothing the repository accepts and cannot read what is written from now on.
    /// Deduplication goes on. Writes the new key to --agent-key-out.
    RotateAgent(super::key_rotate_cmd::RotateArgs),
}

#[derive(Args)]
struct KeyedArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    #[command(flatten)]
    cache: CacheArg,
    #[command(flatten)]
    limits: LimitArgs,
}

impl KeyedArgs {
    async fn session(&self) -> Result<Session> {
        reading_session(&self.repo, &self.identity, &self.cache, &self.limits.limits()).await
    }
}

#[derive(Args)]
struct AddArgs {
    #[command(flatten)]
    keyed: KeyedArgs,
    /// The new holder's public recipient, as `arka keygen` printed it.
    #[arg(long)]
    recipient: String,
    /// Who holds it, shown by `arka key list` ("owner's paper key", "IT contractor 2027").
    #[arg(long)]
    label: String,
}

#[derive(Args)]
struct RemoveArgs {
    #[command(flatten)]
    keyed: KeyedArgs,
    /// The holder to remove.
    id: String,
}

pub(super) async fn run(a: KeyArgs, out: &Output) -> Result<ExitCode> {
    match a.what {
        KeyCommand::Rewrap(a) => return super::key_rewrap_cmd::run(a, out).await,
        KeyCommand::RotateAgent(a) => return super::key_rotate_cmd::run(a, out).await,
        KeyCommand::List(a) => {
            let session = a.session().await?;
            print_listing(&keys::list(session.repo()).await?, out);
        }
        KeyCommand::Add(a) => {
            let session = a.keyed.session().await?;
            let progress = out.progress_bar(session.progress(), "reading pack keys");
            let done = keys::add(session.repo(), &a.recipient, &a.label, session.progress()).await;
            drop(progress);
            let done = done?;
            let added = keys::holder_id(&a.recipient);
            session.key_changed(format!("added holder {added}")).await;
            print_change(&done, &format!("added {added} ({})", a.label), out);
        }
        KeyCommand::Remove(a) => {
            let session = a.keyed.session().await?;
            let progress = out.progress_bar(session.progress(), "reading pack keys");
            let done = keys::remove(session.repo(), &a.id, session.progress()).await;
            drop(progress);
            let (done, removed) = done?;
            let id = keys::holder_id(&removed.holder.recipient);
            session.key_changed(format!("removed holder {id}; new reader key")).await;
            print_change(&done, &format!("removed {id} ({})", removed.holder.label), out);
            if !out.json {
                say!(
                    "{id} cannot read what is written from now on. It can still read what was written before, \
                     until `arka key rewrap` re-encrypts it; and older copies of the config carry the agent key \
                     sealed to it: if it may still reach the storage, also run `arka key rotate-agent`."
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_change(done: &Committed, what: &str, out: &Output) {
    if out.json {
        say!(
            "{}",
            serde_json::json!({
                "changed": what,
                "generation": done.config.generation,
                "keyring": done.keyring.to_hex(),
                "recipients": done.config.recipients,
            })
        );
        return;
    }
    let pin: Vec<String> = done.config.recipients.iter().map(|r| format!("{r:?}")).collect();
    say!("{what}; the repository's keys are now at generation {}.", done.config.generation);
    say!(
        "On each agent that pins the recipients, put the new list in agent.toml and run `arka agent check`:\n    \
         recipients = [{}]",
        pin.join(", ")
    );
}

fn print_listing(l: &KeyListing, out: &Output) {
    if out.json {
        say!("{}", serde_json::to_string_pretty(l).expect("serialisable"));
        return;
    }
    let day =
        |secs: i64| jiff::Timestamp::from_second(secs).map(|t| t.strftime("%Y-%m-%d").to_string()).unwrap_or_default();
    let label = |l: &str| if l.is_empty() { "(no label)".to_string() } else { l.to_string() };
    say!("repository {} (keys generation {}, reader epoch {})", &l.repo_id[..8], l.generation, l.epoch);
    say!("holders (can read every backup):");
    for h in &l.holders {
        say!("  {}  added {}  {}\n      {}", h.id, day(h.added), label(&h.label), h.recipient);
    }
    if !l.removed.is_empty() {
        say!("removed:");
    }
    for r in &l.removed {
        let note = if r.can_read_older_data {
            "can still read data written before its removal: run `arka key rewrap`"
        } else {
            "cannot read any backup"
        };
        say!("  {}  removed {}  {}  {note}", r.holder.id, day(r.removed), label(&r.holder.label));
    }
    say!("agent keys:");
    for k in &l.agent_keys {
        match k.retired {
            Some(at) => say!("  {}  retired {}", k.id, day(at)),
            None => say!("  {}  {}", k.id, k.state),
        }
    }
}
