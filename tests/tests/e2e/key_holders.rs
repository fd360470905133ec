//! Issue #17 points 1, 3 and 5: `arka key list|add|remove` with a recovery identity, on a
//! local directory, on Garage S3 and on arka-server. An added holder reads every backup,
//! old and new; a removed one cannot read what is written after, is told so (exit 12), and
//! still reads what was written before (until `arka key rewrap`). The recipients pinned in
//! agent.toml follow the change through `arka agent check`.

use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

use arka_tests::garage::Garage;
use arka_tests::server::{ServerProcess, TokenSpec};
use arka_tests::{assert_same_tree, os_args, Fixture, Run};

use crate::s3::small_tree;

/// `arka ARGS… --repo R --identity ID` with `token` (arka-server) in place of the fixture's.
fn keyed(fx: &Fixture, identity: &Path, token: Option<&Path>, args: Vec<OsString>) -> Run {
    let mut cmd = fx.command();
    if let Some(token) = token {
        cmd.env("ARKA_SERVER_TOKEN_FILE", token);
    }
    cmd.args(args).arg("--repo").arg(&fx.repo).arg("--identity").arg(identity);
    arka_tests::run(cmd)
}

fn last_snapshot(fx: &Fixture) -> String {
    fx.snapshots().last().expect("a snapshot")["id"].as_str().unwrap().to_string()
}

/// The whole holder lifecycle on one target; `admin` is the token that may replace the
/// config (arka-server), `None` elsewhere.
fn holders_change(fx: &Fixture, admin: Option<&Path>) {
    let owner = fx.identity.clone();
    let first = fx.path("first");
    small_tree(&first, 1);
    fx.backup(&[&first], &[]).ok();
    let before_add = last_snapshot(fx);
    let contractor = fx.path("contractor.key");
    let contractor_recipient = fx.keygen(&contractor, false);
    keyed(fx, &contractor, None, os_args!["snapshots"]).expect_code(12);

    let added = keyed(
        fx,
        &owner,
        admin,
        os_args!["key", "add", "--recipient", contractor_recipient, "--label", "IT contractor"],
    )
    .ok();
    assert!(added.stdout_text().contains("recipients = ["), "{}", added.stdout_text());
    let listing = keyed(fx, &contractor, None, os_args!["--json", "key", "list"]).ok().json();
    let labels: Vec<&str> =
        listing["holders"].as_array().unwrap().iter().map(|h| h["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["", "IT contractor"], "{listing}");
    let restored = fx.path("by-contractor");
    keyed(fx, &contractor, None, os_args!["restore", before_add, "--target", restored]).ok();
    assert_same_tree(&first, &restored.join("first"));

    keyed(fx, &owner, admin, os_args!["key", "remove", "IT contractor"]).ok();
    let second = fx.path("second");
    small_tree(&second, 2);
    fx.backup(&[&second], &[]).ok();
    let after_remove = last_snapshot(fx);
    keyed(fx, &contractor, None, os_args!["restore", after_remove, "--target", fx.path("denied")])
        .expect_code(12)
        .expect_stderr("removed from the repository's holders");
    let older = fx.path("older-by-contractor");
    keyed(fx, &contractor, None, os_args!["restore", before_add, "--target", older]).ok();
    assert_same_tree(&first, &older.join("first"));
    let by_owner = fx.path("by-owner");
    keyed(fx, &owner, None, os_args!["restore", after_remove, "--target", by_owner]).ok();
    assert_same_tree(&second, &by_owner.join("second"));

    let listing: Value = keyed(fx, &owner, None, os_args!["--json", "key", "list"]).ok().json();
    assert_eq!(listing["holders"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["removed"][0]["label"], "IT contractor");
    assert_eq!(listing["removed"][0]["can_read_older_data"], true);
    assert_eq!(listing["epoch"], 2);
    // The audit trail names both changes.
    let audit = fx.arka(os_args!["--json", "audit", "--repo", fx.repo, "--agent-key", fx.agent_key]).ok().stdout_text();
    assert!(audit.contains("added holder") && audit.contains("removed holder"), "{audit}");
}

#[test]
fn holders_are_added_and_removed_on_a_local_repository_and_the_agent_pin_follows() {
    let fx = Fixture::new();
    let agent_toml = fx.path("agent.toml");
    let write_config = |pinned: &[&str]| {
        let list: Vec<String> = pinned.iter().map(|r| format!("{r:?}")).collect();
        let text = format!(
            "recipients = [{}]\nagent_key = {:?}\nstate_dir = {:?}\n[[target]]\nurl = {:?}\n\
             [[source]]\nname = \"files\"\nkind = \"files\"\npaths = [{:?}]\nschedule = \"daily 03:00\"\n",
            list.join(", "),
            fx.agent_key,
            fx.path("state"),
            fx.repo,
            fx.path("first"),
        );
        std::fs::write(&agent_toml, text).unwrap();
    };
    write_config(&[&fx.recipient]);
    fx.arka(os_args!["agent", "check", "--config", agent_toml]).ok();

    holders_change(&fx, None);

    // After `key add` then `key remove` the recipients are the owner's again, but the
    // reader key changed: the pin still matches, and the check passes.
    fx.arka(os_args!["agent", "check", "--config", agent_toml]).ok();
    // Add a holder: only a warning with the new list to pin.
    let third = fx.path("third.key");
    let third_recipient = fx.keygen(&third, false);
    keyed(&fx, &fx.identity, None, os_args!["key", "add", "--recipient", third_recipient, "--label", "paper"]).ok();
    let warned = fx.arka(os_args!["agent", "check", "--config", agent_toml]).ok();
    assert!(
        warned.stderr.contains(&format!("recipients = [{:?}, {:?}]", fx.recipient, third_recipient)),
        "{}",
        warned.stderr
    );
    // Remove the owner: the pin no longer matches, and the check says what to pin.
    write_config(&[&fx.recipient, &third_recipient]);
    keyed(&fx, &third, None, os_args!["key", "remove", fx.recipient]).ok();
    let refused = fx.arka(os_args!["agent", "check", "--config", agent_toml]);
    let refused = refused.expect_code(2);
    assert!(refused.stderr.contains(&format!("recipients = [{third_recipient:?}]")), "{}", refused.stderr);
    write_config(&[&third_recipient]);
    fx.arka(os_args!["agent", "check", "--config", agent_toml]).ok();
}

#[test]
fn holders_are_added_and_removed_on_garage() {
    let garage = Garage::single();
    let fx = Fixture::at(&garage.url("clinic/keys"), garage.env());
    holders_change(&fx, None);
}

#[test]
fn holders_are_added_and_removed_on_arka_server_with_a_maintain_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = [TokenSpec::new("reception", "append", &["clinic"]), TokenSpec::new("nas", "maintain", &["clinic"])];
    let server = ServerProcess::start(dir.path(), &tokens);
    let fx = crate::server_client::fixture_on(&server, "clinic", "reception");
    // The clinic server's append token may not replace the config: refused, with advice.
    let someone = fx.path("someone.key");
    let recipient = fx.keygen(&someone, false);
    let reception = server.secret_file("reception");
    keyed(&fx, &fx.identity, Some(reception), os_args!["key", "add", "--recipient", recipient, "--label", "x"])
        .expect_code(12)
        .expect_stderr("maintain or admin token");
    let nas = server.secret_file("nas");
    holders_change(&fx, Some(nas));
}

/// A running agent follows key changes without a restart: it opens the repository again
/// when `config` changes, seals the next backup to the new reader key, and refuses a new
/// reader key the pin cannot vouch for until a person confirms it with `arka agent check
/// --accept-key-change`.
#[test]
fn a_running_agent_follows_a_key_change_and_waits_for_a_person_on_a_new_reader_key() {
    use crate::agent::{status, wait_for};
    use arka_tests::agent::{free_port, AgentProcess};

    let fx = Fixture::new();
    let src = fx.path("src");
    arka_tests::write_file(&src.join("a.txt"), b"first");
    let port = free_port();
    let cfg = fx.path("agent.toml");
    let text = format!(
        "recipients = [{:?}]\nagent_key = {:?}\nstate_dir = {:?}\n[[target]]\nurl = {:?}\n\
         [[source]]\nname = \"files\"\nkind = \"files\"\npaths = [{:?}]\nschedule = \"every 1d\"\n\
         [status]\nbind = \"127.0.0.1:{port}\"\n",
        fx.recipient,
        fx.agent_key,
        fx.path("state"),
        fx.repo,
        src,
    );
    std::fs::write(&cfg, text).unwrap();
    let agent = AgentProcess::start(&fx, &cfg);
    let files = |st: &Value| st["sources"].as_array().unwrap().iter().find(|s| s["name"] == "files").unwrap().clone();
    wait_for(60, "the first backup", || (fx.snapshots().len() == 1).then_some(()));
    let run_now = || fx.arka(os_args!["agent", "run-now", "files", "--config", cfg]).ok();

    // A holder is added: only a warning, and the next backup is readable by them.
    let contractor = fx.path("contractor.key");
    let contractor_recipient = fx.keygen(&contractor, false);
    keyed(&fx, &fx.identity, None, os_args!["key", "add", "--recipient", contractor_recipient, "--label", "c"]).ok();
    arka_tests::write_file(&src.join("b.txt"), b"second");
    run_now();
    wait_for(60, "the second backup", || (fx.snapshots().len() == 2).then_some(()));
    let second = last_snapshot(&fx);
    keyed(&fx, &contractor, None, os_args!["restore", second, "--target", fx.path("r2")]).ok();

    // Removed again: the recipients are as pinned, but the reader key is new. The agent
    // writes nothing until a person confirms.
    keyed(&fx, &fx.identity, None, os_args!["key", "remove", "c"]).ok();
    run_now();
    let refused = wait_for(60, "the refusal", || {
        let st = files(&status(port)?);
        st["last_error"].as_str().filter(|e| e.contains("--accept-key-change")).map(str::to_string)
    });
    assert!(refused.contains("reader key"), "{refused}");
    assert_eq!(fx.snapshots().len(), 2);
    let confirmed = fx.arka(os_args!["agent", "check", "--accept-key-change", "--config", cfg]).ok();
    assert!(!confirmed.stderr.contains("refused"), "{}", confirmed.stderr);
    // New data: what deduplicates against older packs stays readable to the removed holder.
    arka_tests::write_file(&src.join("c.txt"), b"third, after the removal");
    run_now();
    wait_for(120, "the backup after the confirmation", || (fx.snapshots().len() == 3).then_some(()));
    let third = last_snapshot(&fx);
    keyed(&fx, &contractor, None, os_args!["restore", third, "--target", fx.path("r3")]).expect_code(12);
    keyed(&fx, &fx.identity, None, os_args!["restore", third, "--target", fx.path("r3o")]).ok();
    assert!(agent.terminate(30).success());
}
