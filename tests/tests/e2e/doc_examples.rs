//! Every `arka` example of README.md and docs/OPERATIONS.md (their ```sh blocks) runs, in
//! document order, as a reader's shell session would: from an empty scratch folder, the
//! keygen and init examples make the keys and the repository the later ones use, `export`
//! lines of `ARKA_*` variables carry over, and each line must exit 0 (or the code
//! [`EXPECTED_CODES`] documents).
//!
//! The docs' placeholders are replaced as [`Session::placeholders`] lists. Lines this
//! machine cannot run are skipped only through [`SKIPPED`], each with its reason, so a
//! new example fails this test until someone runs it or classifies it. Non-arka lines
//! (cargo, install, systemctl, psql) are not run; for `arka … | reader`, the arka side
//! runs and must write something, the reader is not run (the dump suites and
//! `disaster.rs` load dumps into real databases). `export` lines of other variables
//! (`AWS_*`) belong to skipped S3 examples and are ignored.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arka_tests::agent::{free_port, AgentProcess};
use arka_tests::docs::{replace_placeholders, sh_examples, Example};
use arka_tests::{arka_bin, pseudo_random, run, write_file, Fixture};

const DOCS: [&str; 2] = ["README.md", "docs/OPERATIONS.md"];

/// The agent config's sources, which the `--source` examples name: those of
/// packaging/arka-agent.example.toml, and the Firebird one of OPERATIONS §15 (its command
/// stands in for gbak).
const SOURCES: [&str; 3] = ["imaging", "clinic-db", "clinic-fb"];

/// Examples not run here: a piece of the line, and why.
const SKIPPED: &[(&str, &str)] = &[
    ("arka init --repo s3://", "needs S3 credentials and a bucket; s3.rs runs init and backups against Garage"),
    ("arka sync --repo /mnt/nas/arka --to s3://", "needs S3 credentials and a bucket; s3.rs runs sync to Garage"),
    (
        "arka key remove --repo REPO",
        "would take a holder away from the docs' repository, whose recipients later examples pin; key_rewrap.rs \
         plays key add, remove and rewrap end to end",
    ),
    (
        "arka key rotate-agent --repo REPO",
        "would retire the agent key every later example uses (they would exit 12); key_rotation.rs rotates on a \
         local repository, Garage and arka-server",
    ),
    (
        "arka key rewrap --repo REPO",
        "follows the `key remove` skipped above; key_rewrap.rs runs rewrap with and without a grace period",
    ),
    (
        "after the grace period (1 day)",
        "the runbook's prune waits a day after the rewrap; prune.rs and key_rewrap.rs run prune and the sweep",
    ),
    (
        "arka forget --repo arka+https://localhost:8443/",
        "needs an arka-server with TLS on localhost:8443 and a maintain token; server_client.rs runs forget --prune \
         with append and maintain tokens",
    ),
];

/// Sections whose examples another test plays, and which one.
const PLAYED_ELSEWHERE: &[(&str, &str)] = &[(
    "## 7. Disaster recovery runbook",
    "disaster.rs plays the runbook against an arka-server over TLS with a token and a pin, from a fresh home",
)];

/// Examples whose documented exit code is not 0: a piece of the line, and the code.
const EXPECTED_CODES: &[(&str, i32)] = &[];

/// The reader's scratch world: where each placeholder of the docs points.
struct Session {
    root: PathBuf,
    env: Vec<(String, String)>,
    /// The recipient `arka keygen -o owner.key` printed (`age1owner…`, `age1…`).
    owner_recipient: Option<String>,
    contractor_recipient: String,
    /// Two snapshots for `arka forget 3e92a1c0 77f0`.
    throwaway: Vec<String>,
    repo_ready: bool,
    examples_run: usize,
}

impl Session {
    fn path(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    /// Placeholder → what it stands for here, longest first where one contains another.
    fn placeholders(&self) -> Vec<(&'static str, String)> {
        let owner = self.owner_recipient.clone().unwrap_or_default();
        let id = |i: usize| self.throwaway.get(i).cloned().unwrap_or_default();
        vec![
            ("/mnt/nas/arka", self.path("nas/arka")),
            ("/etc/arka/agent.key", self.path("etc/agent.key")),
            ("agent.key", self.path("etc/agent.key")),
            ("/media/usb/recovery.key", self.path("owner.key")),
            ("owner-paper.key", self.path("owner-paper.key")),
            ("owner.key", self.path("owner.key")),
            ("age1owner…", owner.clone()),
            ("age1contractor…", self.contractor_recipient.clone()),
            ("age1…", owner),
            ("/srv/imaging", self.path("srv/imaging")),
            ("/srv/documents", self.path("srv/documents")),
            // A fresh folder for each example, as a reader restoring twice would choose.
            ("/srv/restore", self.path(&format!("restore-{}", self.examples_run))),
            ("pg_dump --no-owner clinic", "printf 'CREATE TABLE visits (id int);\\n'".into()),
            ("mysqldump --single-transaction clinic", "printf 'CREATE TABLE visits (id int);\\n'".into()),
            ("2026-05-01 14:00", jiff::Timestamp::now().to_string()),
            ("3e92a1c0", id(0)),
            ("77f0", id(1)),
        ]
    }

    fn substitute(&self, ex: &Example) -> Vec<String> {
        let map = self.placeholders();
        let word = |w: &String| match w.as_str() {
            "REPO" => self.path("nas/arka"),
            _ => replace_placeholders(w, &map),
        };
        ex.words.iter().map(word).collect()
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(arka_bin());
        cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd.env("HOME", self.root.join("home")).env("ARKA_CACHE_DIR", self.root.join("cache"));
        // For `arka keygen --passphrase` (no terminal here) and the identity it makes.
        cmd.env("ARKA_PASSPHRASE", "correct horse battery staple");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v))).current_dir(&self.root);
        cmd
    }

    /// Runs one example; returns its stdout.
    fn run(&mut self, ex: &Example) -> String {
        self.examples_run += 1;
        let words = self.substitute(ex);
        if words[0] == "export" {
            let exported = words[1..].iter().filter_map(|w| w.split_once('='));
            self.env.extend(exported.filter(|(k, _)| k.starts_with("ARKA_")).map(|(k, v)| (k.into(), v.into())));
            return String::new();
        }
        let mut cmd = self.command();
        cmd.args(&words[1..]);
        let out = run(cmd);
        let code = EXPECTED_CODES.iter().find(|(piece, _)| ex.text.contains(piece)).map_or(0, |(_, c)| *c);
        assert_eq!(
            out.code, code,
            "{}: `{}` (run as {words:?}) exited {}:\n{}",
            ex.place, ex.text, out.code, out.stderr
        );
        if let Some(reader) = &ex.piped_into {
            assert!(!out.stdout.is_empty(), "{}: `{}` wrote nothing for `{reader}`", ex.place, ex.text);
        }
        out.stdout_text()
    }

    /// Once the docs' `arka init` made the repository: the agent service backs up the
    /// sources of packaging/arka-agent.example.toml (`imaging`, `clinic-db`), which the
    /// `--source` examples name, and two CLI backups stand in for `3e92a1c0 77f0`.
    fn after_init(&mut self) {
        let srv = self.root.join("srv");
        write_file(&srv.join("imaging/2026/pano.jpg"), &pseudo_random(1, 50_000));
        write_file(&srv.join("imaging/Kowalski_Jan/CBCT.dcm"), &pseudo_random(2, 200_000));
        write_file(&srv.join("imaging/patients/1234/RVG_36.dcm"), &pseudo_random(3, 30_000));
        write_file(&srv.join("documents/consent.pdf"), b"signed");
        self.run_agent();
        for name in ["old-a", "old-b"] {
            write_file(&self.root.join(name).join("note.txt"), name.as_bytes());
            let mut cmd = self.command();
            cmd.args([
                "--json",
                "backup",
                "--repo",
                &self.path("nas/arka"),
                "--agent-key",
                &self.path("etc/agent.key"),
            ]);
            cmd.arg(self.root.join(name));
            self.throwaway.push(run(cmd).ok().json()["snapshot_id"].as_str().unwrap().to_string());
        }
        self.repo_ready = true;
    }

    /// The agent service until both sources have a snapshot. Run again when the docs'
    /// forget examples removed one that a later `--source` example names, as the service
    /// would have made a new one meanwhile.
    fn run_agent(&self) {
        // A fresh state folder: an `every 1h` source then runs at once.
        let config = self.root.join("agent.toml");
        let text = format!(
            "agent_key = {key:?}\nstate_dir = {state:?}\n[[target]]\nurl = {repo:?}\n\
             [[source]]\nname = \"imaging\"\nkind = \"files\"\npaths = [{imaging:?}, {documents:?}]\nschedule = \"every 1h\"\n\
             [[source]]\nname = \"clinic-db\"\nkind = \"command\"\ncommand = \"printf 'CREATE TABLE t (a int);\\\\n'\"\n\
             dump_name = \"clinic.sql\"\nschedule = \"every 1h\"\n\
             [[source]]\nname = \"clinic-fb\"\nkind = \"command\"\ncommand = \"printf gbak-backup\"\n\
             dump_name = \"clinic.fbk\"\nschedule = \"every 1h\"\n[status]\nbind = \"127.0.0.1:{port}\"\n",
            key = self.path("etc/agent.key"),
            state = self.path(&format!("state-{}", self.examples_run)),
            repo = self.path("nas/arka"),
            imaging = self.path("srv/imaging"),
            documents = self.path("srv/documents"),
            port = free_port(),
        );
        std::fs::write(&config, text).unwrap();
        let fx = Fixture::new();
        let agent = AgentProcess::start(&fx, &config);
        let started = Instant::now();
        while !self.has_sources(&SOURCES) {
            assert!(started.elapsed() < Duration::from_secs(60), "the agent made no snapshots:\n{}", agent.log());
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(agent.terminate(15).success());
    }

    fn has_sources(&self, names: &[&str]) -> bool {
        let mut cmd = self.command();
        cmd.args(["--json", "snapshots", "--repo", &self.path("nas/arka"), "--agent-key", &self.path("etc/agent.key")]);
        let listed = run(cmd).ok().json();
        let found: HashSet<&str> =
            listed.as_array().unwrap().iter().filter_map(|s| s["source_name"].as_str()).collect();
        names.iter().all(|n| found.contains(n))
    }
}

fn skip_reason(ex: &Example) -> Option<&'static str> {
    let played = PLAYED_ELSEWHERE.iter().find(|(section, _)| ex.section.starts_with(section)).map(|(_, why)| *why);
    played.or_else(|| SKIPPED.iter().find(|(piece, _)| ex.text.contains(piece)).map(|(_, why)| *why))
}

#[test]
fn every_arka_example_in_the_docs_runs() {
    let dir = tempfile::Builder::new().prefix("arka-docs-").tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let mut session = Session {
        root: root.clone(),
        env: Vec::new(),
        owner_recipient: None,
        contractor_recipient: String::new(),
        throwaway: Vec::new(),
        repo_ready: false,
        examples_run: 0,
    };
    let mut keygen = session.command();
    keygen.args(["keygen", "-o"]).arg(root.join("contractor.key"));
    session.contractor_recipient = run(keygen).ok().stdout_text().trim().to_string();

    let examples: Vec<Example> = DOCS.iter().flat_map(|f| sh_examples(f)).collect();
    let (mut ran, mut skipped) = (0, Vec::new());
    let mut used_skips = HashSet::new();
    for ex in examples.iter().filter(|e| e.is_arka() || e.words.first().is_some_and(|w| w == "export")) {
        if let Some(why) = skip_reason(ex) {
            used_skips.insert(why);
            skipped.push(format!("{}: {} ({why})", ex.place, ex.text));
            continue;
        }
        if session.repo_ready
            && SOURCES.iter().any(|s| ex.text.contains(&format!("--source {s}")))
            && !session.has_sources(&SOURCES)
        {
            session.run_agent();
        }
        let out = session.run(ex);
        ran += usize::from(ex.is_arka());
        if ex.words.get(1).is_some_and(|w| w == "keygen") && ex.text.contains("owner.key") && !ex.text.contains("paper")
        {
            session.owner_recipient = Some(out.trim().to_string());
        }
        if ex.words.get(1).is_some_and(|w| w == "init")
            && !session.repo_ready
            && Path::new(&session.path("nas/arka")).is_dir()
        {
            session.after_init();
        }
    }
    println!("ran {ran} examples; skipped:\n{}", skipped.join("\n"));
    for (piece, why) in SKIPPED.iter().chain(PLAYED_ELSEWHERE) {
        assert!(used_skips.contains(why), "the skip for {piece:?} matches no example any more: remove it");
    }
    assert!(ran >= 30, "only {ran} examples ran: did the docs lose their ```sh blocks?");
}
