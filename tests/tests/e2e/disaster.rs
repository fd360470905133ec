//! The disaster recovery runbook (docs/OPERATIONS.md section 7), played end to end: a
//! clinic's agent service backs up its PostgreSQL database and its imaging folder to an
//! arka-server over TLS; then, on a "fresh laptop" (a new HOME and working directory, a
//! clean environment) holding only the recovery identity, the URL, a token and the
//! certificate pin, the runbook's commands run exactly as the document shows them, with
//! its placeholders replaced (the mapping is [`Laptop::placeholders`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arka_proto::ObjectId;
use arka_tests::agent::{free_port, AgentProcess};
use arka_tests::databases::{Postgres, SqlServer};
use arka_tests::docs::{replace_placeholders, sh_examples, Example};
use arka_tests::server::{ServerProcess, TokenSpec};
use arka_tests::{arka_bin, pseudo_random, run, walk_files, write_file, Fixture};

use crate::server_client::{fingerprint, self_signed};

const RUNBOOK: &str = "## 7. Disaster recovery runbook";

/// The clinic's database: patients with Polish names, visits.
fn clinic_sql() -> String {
    let mut sql = String::from(
        "CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL, born date);\n\
         CREATE TABLE visits (id int PRIMARY KEY, patient int REFERENCES patients, note text);\n",
    );
    let names = ["Kowalski Jan", "Wiśniewska Zofia", "Łukasz Żółć", "Nowak Anna", "Dąbrowski Michał"];
    for i in 1..=120 {
        let name = names[i as usize % names.len()];
        sql += &format!("INSERT INTO patients VALUES ({i}, '{name} {i}', DATE '1960-01-01' + {});\n", i * 97);
    }
    for i in 1..=120 {
        sql += &format!("INSERT INTO visits VALUES ({i}, {}, 'ząb {}: wypełnienie');\n", 1 + i % 120, 11 + i % 37);
    }
    sql
}

const ROWS: &str =
    "SELECT p.id, p.name, p.born, v.note FROM patients p JOIN visits v ON v.patient = p.id ORDER BY v.id;";

/// A few MiB of imaging: random (incompressible) files in nested folders.
fn imaging(root: &Path) {
    for (i, rel) in ["2026/05/Kowalski_Jan_CBCT.dcm", "2026/05/Nowak_Anna_pano.jpg", "2026/04/Dąbrowski_RVG_36.dcm"]
        .iter()
        .enumerate()
    {
        write_file(&root.join(rel), &pseudo_random(500 + i as u64, 1_500_000 + i * 333_333));
    }
    write_file(&root.join("photos/intraoral_1.jpg"), &pseudo_random(510, 700_000));
}

/// Every file under `root` by its path relative to it, with its BLAKE3 hash.
fn hashes(root: &Path) -> BTreeMap<PathBuf, ObjectId> {
    walk_files(root)
        .into_iter()
        .map(|p| (p.strip_prefix(root).unwrap().to_path_buf(), ObjectId::of(&std::fs::read(&p).unwrap())))
        .collect()
}

/// The clinic server's agent service, until both sources have a snapshot on the server.
fn clinic_backs_up(fx: &Fixture, server: &ServerProcess, pg: &Postgres, imaging: &Path, pin: &str) {
    let config = fx.path("agent.toml");
    let text = format!(
        "agent_key = {key:?}\nstate_dir = {state:?}\n\
         [[target]]\nurl = {url:?}\ntoken_file = {token:?}\ncert_sha256 = {pin:?}\n\
         [[source]]\nname = \"imaging\"\nkind = \"files\"\npaths = [{imaging:?}]\nschedule = \"every 1h\"\n\
         [[source]]\nname = \"clinic-db\"\nkind = \"command\"\ncommand = {command:?}\ndump_name = \"clinic.sql\"\n\
         schedule = \"every 1h\"\ntimeout = \"5m\"\n[status]\nbind = \"127.0.0.1:{port}\"\n",
        key = fx.agent_key,
        state = fx.path("state"),
        url = server.repo_url("reception"),
        token = server.secret_file("reception"),
        imaging = imaging,
        command = pg.dump_command("clinic"),
        port = free_port(),
    );
    std::fs::write(&config, text).unwrap();
    let agent = AgentProcess::start(fx, &config);
    let started = Instant::now();
    loop {
        let names: Vec<String> =
            fx.snapshots().iter().filter_map(|s| s["source_name"].as_str().map(str::to_string)).collect();
        if names.iter().any(|n| n == "imaging") && names.iter().any(|n| n == "clinic-db") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "no snapshot of both sources in 90 s:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(agent.terminate(15).success());
}

/// The contractor's laptop: a fresh home and working directory, and a USB stick with the
/// recovery identity and a token file.
struct Laptop {
    home: PathBuf,
    work: PathBuf,
    usb: PathBuf,
    /// The runbook's exports so far.
    env: Vec<(String, String)>,
}

impl Laptop {
    fn new(root: &Path, identity: &Path, token_file: &Path) -> Self {
        let (home, work, usb) = (root.join("home"), root.join("work"), root.join("usb"));
        for d in [&home, &work, &usb] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::copy(identity, usb.join("recovery.key")).unwrap();
        std::fs::copy(token_file, usb.join("reception.token")).unwrap();
        Self { home, work, usb, env: Vec::new() }
    }

    /// The runbook's placeholders and what stands for them here.
    fn placeholders(&self, url: &str, pin: &str, now: &str) -> Vec<(&'static str, String)> {
        let usb = |f: &str| self.usb.join(f).display().to_string();
        vec![
            ("/media/usb/recovery.key", usb("recovery.key")),
            ("/media/usb/reception.token", usb("reception.token")),
            ("arka+https://nas.clinic.lan:8443/reception", url.to_string()),
            ("AB:CD:EF:01:23:45:67:89", pin.to_string()),
            ("2026-05-01 14:00", now.to_string()),
            ("/srv/recovered", self.work.join("recovered").display().to_string()),
        ]
    }

    /// Runs one line of the runbook in a clean environment: PATH (PostgreSQL's tools
    /// first), the fresh HOME, the server's address for psql, and the runbook's exports.
    fn run(&mut self, ex: &Example, words: Vec<String>, pg: &Postgres) {
        if words[0] == "export" {
            for w in &words[1..] {
                let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{}: not VAR=value: {w}", ex.place));
                self.env.push((k.to_string(), v.to_string()));
            }
            return;
        }
        assert!(ex.piped_into.is_none(), "{}: the runbook pipes; teach this test to run it", ex.place);
        let program = match words[0].as_str() {
            "arka" => arka_bin().to_path_buf(),
            "createdb" | "psql" => pg.tool(&words[0]),
            other => panic!("{}: the runbook runs {other:?}; teach this test to run it: {}", ex.place, ex.text),
        };
        let mut cmd = Command::new(program);
        cmd.args(&words[1..]).current_dir(&self.work).env_clear();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("HOME", &self.home);
        cmd.envs([("PGHOST", "127.0.0.1".to_string()), ("PGPORT", pg.port().to_string())]);
        cmd.envs([("PGUSER", "postgres"), ("PGCLIENTENCODING", "UTF8")]);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let out = run(cmd);
        assert_eq!(out.code, 0, "{}: `{}` failed:\n{}", ex.place, ex.text, out.stderr);
        println!("{}: {}\n{}{}", ex.place, ex.text, out.stdout_text(), out.stderr);
    }
}

#[test]
fn the_runbook_recovers_a_clinic_from_its_arka_server_on_a_fresh_laptop() {
    let dir = tempfile::Builder::new().prefix("arka-disaster-").tempdir().unwrap();
    // The NAS: arka-server over TLS with a self-signed certificate; a token for the clinic
    // server and one the administrator makes for the contractor on the day.
    let (cert, key) = self_signed(dir.path());
    let tls = format!("[tls]\ncert = {:?}\nkey = {:?}\n", cert.display().to_string(), key.display().to_string());
    let tokens =
        [TokenSpec::new("reception", "append", &["reception"]), TokenSpec::new("contractor", "append", &["reception"])];
    let server = ServerProcess::start_with(&dir.path().join("nas"), &tokens, &tls, &[]);
    let (url, pin) = (server.repo_url("reception"), fingerprint(&cert));

    // The clinic: its database, its imaging folder, its agent.
    let pg = Postgres::start();
    pg.create_database("clinic");
    pg.sql("clinic", &clinic_sql());
    let rows = pg.sql("clinic", ROWS);
    let env = vec![
        ("ARKA_SERVER_TOKEN_FILE".to_string(), server.secret_file("reception").display().to_string()),
        ("ARKA_SERVER_CERT_SHA256".to_string(), pin.clone()),
    ];
    let fx = Fixture::at(&url, env);
    let imaging_dir = fx.path("imaging");
    imaging(&imaging_dir);
    clinic_backs_up(&fx, &server, &pg, &imaging_dir, &pin);

    // The clinic server is lost. On the laptop: the runbook, as written.
    let mut laptop = Laptop::new(&dir.path().join("laptop"), &fx.identity, server.secret_file("contractor"));
    let now = jiff::Timestamp::now().to_string();
    let placeholders = laptop.placeholders(&url, &pin, &now);
    let runbook: Vec<Example> =
        sh_examples("docs/OPERATIONS.md").into_iter().filter(|e| e.section.starts_with(RUNBOOK)).collect();
    assert!(runbook.iter().any(|e| e.is_arka()), "no arka command under {RUNBOOK:?} in docs/OPERATIONS.md");
    for ex in &runbook {
        let words = ex.words.iter().map(|w| replace_placeholders(w, &placeholders)).collect();
        laptop.run(ex, words, &pg);
    }

    // The dump went into clinic_restore with every row; the imaging folder is identical.
    assert_eq!(pg.sql("clinic_restore", ROWS), rows, "the restored database differs from the clinic's");
    let recovered = laptop.work.join("recovered");
    assert_eq!(hashes(&recovered.join("imaging/imaging")), hashes(&imaging_dir), "the imaging folder differs");
    assert!(recovered.join("clinic-db/clinic.sql").is_file());
    assert_eq!(std::fs::read_dir(&recovered).unwrap().count(), 2, "restored something besides the two sources");
}
