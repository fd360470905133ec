//! The agent service when its primary target goes down (#16): a backup asked for with
//! `arka agent run-now` goes to the next target while arka-server on the NAS is dead, the
//! status page says where each source is protected, monitoring survives an agent restart,
//! and once the NAS is back what went offsite is copied back to it.

use serde_json::Value;

use arka_tests::agent::{free_port, AgentProcess};
use arka_tests::server::{ServerProcess, TokenSpec};
use arka_tests::{pseudo_random, write_file, Fixture};

use crate::agent::{status, wait_for};
use crate::server_client::fixture_on;

fn source<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["sources"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

fn target<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()
}

/// The newest snapshot time of the source on `target`, from `/status`.
fn newest_on(st: &Value, name: &str, on: &str) -> Option<i64> {
    source(st, name)["copies"].as_array()?.iter().find(|c| c["target"] == on)?["newest_ns"].as_i64()
}

fn run_now(fx: &Fixture, cfg: &std::path::Path, name: &str) -> arka_tests::Run {
    fx.arka(["agent".as_ref(), "run-now".as_ref(), name.as_ref(), "--config".as_ref(), cfg.as_os_str()])
}

#[test]
fn a_dead_nas_sends_backups_offsite_and_they_come_back_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[TokenSpec::new("reception", "append", &["clinic"])]);
    let mut fx = fixture_on(&server, "clinic", "reception");
    let cli_env = std::mem::take(&mut fx.env);
    let imaging = fx.path("imaging");
    write_file(&imaging.join("study_1/slice_001.dcm"), &pseudo_random(1, 300_000));
    let offsite = fx.path("offsite");
    let port = free_port();
    let config = format!(
        "agent_key = {key:?}\nstate_dir = {state:?}\n\
         [[target]]\nname = \"nas\"\nurl = {url:?}\ntoken_file = {token:?}\n\
         [[target]]\nname = \"offsite\"\nurl = {offsite:?}\n\
         [[source]]\nname = \"imaging\"\nkind = \"files\"\npaths = [{imaging:?}]\nschedule = \"every 1d\"\n\
         [status]\nbind = \"127.0.0.1:{port}\"\n",
        key = fx.agent_key,
        state = fx.path("state"),
        url = server.repo_url("clinic"),
        token = server.secret_file("reception"),
    );
    let cfg = fx.path("agent.toml");
    std::fs::write(&cfg, config).unwrap();
    let agent = AgentProcess::start(&fx, &cfg);

    // The first backup runs at start and is copied offsite.
    let st = wait_for(90, "the first backup on both targets", || {
        let st = status(port)?;
        (newest_on(&st, "imaging", "nas").is_some() && newest_on(&st, "imaging", "offsite").is_some()).then_some(st)
    });
    let first = newest_on(&st, "imaging", "nas").unwrap();

    // The NAS dies; a new study arrives and someone asks for a backup now.
    server.kill9();
    write_file(&imaging.join("study_2/slice_001.dcm"), &pseudo_random(2, 300_000));
    let asked = run_now(&fx, &cfg, "imaging").ok();
    assert!(asked.stdout_text().contains("backing up now: imaging"), "{}", asked.stdout_text());
    let st = wait_for(180, "a backup that went offsite", || {
        let st = status(port)?;
        (newest_on(&st, "imaging", "offsite")? > first).then_some(st)
    });
    assert_eq!(source(&st, "imaging")["state"], "ok", "{st}");
    let nas = target(&st, "nas");
    assert_eq!(nas["reachable"], false, "{nas}");
    assert_eq!(nas["catch_up"][0]["from"], "offsite", "{nas}");
    assert_eq!(newest_on(&st, "imaging", "nas"), Some(first), "the NAS has not got the new backup");
    let page = crate::agent::page(port);
    assert!(page.contains("Protected") && page.contains("on offsite"), "the page says where the data is");
    assert!(page.contains("Catching up"), "the NAS card says what it will take back");

    // The agent restarts meanwhile: what it knew is still there, not "no backup yet".
    assert!(agent.terminate(30).success());
    let agent = AgentProcess::start(&fx, &cfg);
    let st = wait_for(30, "the restarted agent's status", || status(port));
    assert!(newest_on(&st, "imaging", "offsite").is_some_and(|t| t > first), "{st}");
    assert!(source(&st, "imaging")["last_success_ns"].as_i64().is_some(), "{st}");
    assert_eq!(target(&st, "nas")["catch_up"][0]["from"], "offsite", "{st}");

    // The NAS comes back: the next backup goes there, and what went offsite is copied back.
    server.restart();
    run_now(&fx, &cfg, "imaging").ok();
    wait_for(180, "the NAS to catch up", || {
        let st = status(port)?;
        let nas = target(&st, "nas");
        (nas["catch_up"].as_array()?.is_empty() && nas["reachable"] == true).then_some(())
    });
    fx.env = cli_env;
    assert_eq!(fx.snapshots().len(), 3, "the NAS holds the first backup, the one made offsite, and the newest");

    // Asking for a source that does not exist says which ones do.
    run_now(&fx, &cfg, "imagnig").expect_code(2).expect_stderr("the sources are: imaging");
    assert!(agent.terminate(30).success());
}

/// A NAS share that is not mounted shows its mount point as an empty folder: the agent
/// must not back up into it (onto the clinic server's own disk), but offsite, and bring the
/// backup to the NAS once the share is back.
#[test]
fn an_unmounted_nas_share_is_not_written_to_and_the_backup_goes_offsite() {
    let fx = Fixture::new();
    let imaging = fx.path("imaging");
    write_file(&imaging.join("study_1/slice_001.dcm"), &pseudo_random(3, 200_000));
    let nas = std::path::PathBuf::from(&fx.repo);
    let port = free_port();
    let config = format!(
        "agent_key = {key:?}\nstate_dir = {state:?}\n\
         [[target]]\nname = \"nas\"\nurl = {nas:?}\n\
         [[target]]\nname = \"offsite\"\nurl = {offsite:?}\n\
         [[source]]\nname = \"imaging\"\nkind = \"files\"\npaths = [{imaging:?}]\nschedule = \"every 1d\"\n\
         [status]\nbind = \"127.0.0.1:{port}\"\n",
        key = fx.agent_key,
        state = fx.path("state"),
        offsite = fx.path("offsite"),
    );
    let cfg = fx.path("agent.toml");
    std::fs::write(&cfg, config).unwrap();
    let agent = AgentProcess::start(&fx, &cfg);
    let st = wait_for(60, "the first backup on both targets", || {
        let st = status(port)?;
        (newest_on(&st, "imaging", "nas").is_some() && newest_on(&st, "imaging", "offsite").is_some()).then_some(st)
    });
    let first = newest_on(&st, "imaging", "nas").unwrap();

    // Unmounted: the share's folder is empty.
    let away = fx.path("nas-share");
    std::fs::rename(&nas, &away).unwrap();
    std::fs::create_dir(&nas).unwrap();
    write_file(&imaging.join("study_2/slice_001.dcm"), &pseudo_random(4, 200_000));
    run_now(&fx, &cfg, "imaging").ok();
    let st = wait_for(60, "a backup that went offsite", || {
        let st = status(port)?;
        (newest_on(&st, "imaging", "offsite")? > first).then_some(st)
    });
    assert!(arka_tests::walk_files(&nas).is_empty(), "nothing is written into the empty mount point");
    let nas_card = target(&st, "nas");
    assert_eq!(nas_card["reachable"], false, "{nas_card}");
    assert!(nas_card["last_error"].as_str().unwrap().contains("not mounted"), "{nas_card}");

    // Mounted again: the next backup goes there and the offsite one comes back.
    std::fs::remove_dir(&nas).unwrap();
    std::fs::rename(&away, &nas).unwrap();
    run_now(&fx, &cfg, "imaging").ok();
    wait_for(60, "the NAS to catch up", || {
        let st = status(port)?;
        target(&st, "nas")["catch_up"].as_array()?.is_empty().then_some(())
    });
    assert_eq!(fx.snapshots().len(), 3);

    // The offsite share is unmounted in turn: it was copied to before, so an empty folder
    // is not a new target to fill with a full copy.
    let offsite = fx.path("offsite");
    std::fs::rename(&offsite, fx.path("offsite-share")).unwrap();
    std::fs::create_dir(&offsite).unwrap();
    run_now(&fx, &cfg, "imaging").ok();
    let st = wait_for(60, "the offsite card to say it is gone", || {
        let st = status(port)?;
        target(&st, "offsite")["last_error"].as_str()?.contains("not mounted").then_some(st)
    });
    assert!(arka_tests::walk_files(&offsite).is_empty(), "no copy lands in the empty mount point: {st}");
    assert!(agent.terminate(30).success());
}
