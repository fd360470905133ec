//! Real database dumps through arka. PostgreSQL and MariaDB servers started on loopback hold
//! a small clinic database; `pg_dump` / `mysqldump --single-transaction` is backed up as a
//! command source, backed up again after an hour of clinic work (storing little), and each
//! snapshot, piped from `arka dump` into the database's own client, restores into a scratch
//! database with the same rows. A dump that fails or is cut short leaves no snapshot, and the
//! agent service's `command` source does the same job on its own.
//!
//! The servers come from `scripts/install-test-deps.sh`; without them these tests fail.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use arka_tests::agent::{free_port, AgentProcess};
use arka_tests::databases::{pipe, MariaDb, Postgres, SqlServer};
use arka_tests::{Fixture, Run};
use serde_json::Value;

// ---- the clinic database --------------------------------------------------------------

const PATIENTS: u32 = 5_000;
const VISITS: u32 = 80_000;
const TREATMENTS: u32 = 100_000;
const INVOICES: u32 = 15_000;

/// Each table and its columns (the first is the primary key), for the fingerprints.
const TABLES: [(&str, &[&str]); 4] = [
    ("patients", &["id", "first_name", "last_name", "birth_date", "phone", "notes"]),
    ("visits", &["id", "patient_id", "visited_at", "room", "note"]),
    ("treatments", &["id", "visit_id", "tooth", "code", "price_cents"]),
    ("invoices", &["id", "patient_id", "issued_on", "total_cents", "paid", "nip"]),
];

const FIRST: [&str; 12] = [
    "Anna",
    "Józef",
    "Małgorzata",
    "Łukasz",
    "Zoë",
    "Grzegorz",
    "Żaneta",
    "Seán",
    "Agnieszka",
    "Bjørn",
    "Ewa",
    "Jérôme",
];
const LAST: [&str; 12] = [
    "Kowalska",
    "Wiśniewski",
    "Brzęczyszczykiewicz",
    "Żółkiewski",
    "O'Brien",
    "Łukasiewicz",
    "Dąbrowska",
    "Ørsted",
    "Nowak-Szczęsna",
    "Müller",
    "Gęś",
    "Ćwik",
];
const CODES: [&str; 6] = ["D01", "D12", "E20", "P03", "X-RVG", "CBCT"];

#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    Postgres,
    MariaDb,
}

fn schema(d: Dialect) -> String {
    let ts = if d == Dialect::Postgres { "TIMESTAMP" } else { "DATETIME" };
    format!(
        "CREATE TABLE patients (id INT PRIMARY KEY, first_name VARCHAR(60) NOT NULL, last_name VARCHAR(80) NOT NULL, \
           birth_date DATE, phone VARCHAR(20), notes TEXT);\n\
         CREATE TABLE visits (id INT PRIMARY KEY, patient_id INT NOT NULL, visited_at {ts} NOT NULL, room VARCHAR(10), \
           note TEXT NOT NULL, FOREIGN KEY (patient_id) REFERENCES patients (id));\n\
         CREATE TABLE treatments (id INT PRIMARY KEY, visit_id INT NOT NULL, tooth SMALLINT, code VARCHAR(10) NOT NULL, \
           price_cents INT NOT NULL, FOREIGN KEY (visit_id) REFERENCES visits (id));\n\
         CREATE TABLE invoices (id INT PRIMARY KEY, patient_id INT NOT NULL, issued_on DATE NOT NULL, \
           total_cents BIGINT NOT NULL, paid BOOLEAN NOT NULL, nip VARCHAR(13), \
           FOREIGN KEY (patient_id) REFERENCES patients (id));\n"
    )
}

/// A SQL string literal (no backslashes are ever generated, so both dialects read it alike).
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn opt(s: Option<String>) -> String {
    s.map_or_else(|| "NULL".to_string(), |s| lit(&s))
}

fn date(day: u32) -> String {
    format!("{:04}-{:02}-{:02}", 2020 + day / 336, 1 + (day / 28) % 12, 1 + day % 28)
}

fn patient_name(i: u32) -> (&'static str, &'static str) {
    if i == 1 {
        return ("Zoë", "Łukasiewicz");
    }
    (FIRST[(i as usize * 7) % FIRST.len()], LAST[(i as usize * 5) % LAST.len()])
}

fn patient_birth_date(i: u32) -> Option<String> {
    (i % 17 != 0).then(|| format!("{:04}-{:02}-{:02}", 1940 + i % 70, 1 + i % 12, 1 + i % 28))
}

fn patient_notes(i: u32) -> Option<String> {
    (i % 9 == 0).then(|| format!("Uczulenie na penicylinę (karta {i}); mówi: 'boli ząb 🦷', prosi o wizyty rano."))
}

fn patient_row(i: u32) -> String {
    let (first, last) = patient_name(i);
    let phone = (i % 5 != 0).then(|| format!("+48 {:03} {:03} {:03}", 500 + i % 300, i % 1000, (i * 37) % 1000));
    format!(
        "({i}, {}, {}, {}, {}, {})",
        lit(first),
        lit(last),
        opt(patient_birth_date(i)),
        opt(phone),
        opt(patient_notes(i))
    )
}

fn visit_row(v: u32) -> String {
    // 20 visits a day, every half hour from 08:00.
    let slot = v % 20;
    let at = format!("{} {:02}:{:02}:00", date(v / 20), 8 + slot / 2, (slot % 2) * 30);
    let room = (v % 11 != 0).then(|| format!("G{}", 1 + v % 4));
    let (dr_first, dr_last) = patient_name(v % 97 + 2);
    let note = format!(
        "Wizyta {v}: kontrola, ząb {}, próchnica {}; zalecono nitkowanie i płukankę. Lekarz: {dr_first} {dr_last}.",
        11 + v % 38,
        ["brak", "powierzchowna", "głęboka"][(v % 3) as usize]
    );
    format!("({v}, {}, {}, {}, {})", 1 + (v * 7919) % PATIENTS, lit(&at), opt(room), lit(&note))
}

fn treatment_row(t: u32) -> String {
    let tooth = if t % 6 == 0 { "NULL".to_string() } else { (11 + t % 38).to_string() };
    let code = CODES[(t % CODES.len() as u32) as usize];
    format!("({t}, {}, {tooth}, {}, {})", 1 + (t * 4 / 5) % VISITS, lit(code), 5_000 + (t * 7_331) % 200_000)
}

fn invoice_row(n: u32) -> String {
    let nip = (n % 3 == 0).then(|| format!("PL{:010}", (u64::from(n) * 2_654_435_761) % 10_000_000_000));
    let paid = if n % 4 != 0 { "TRUE" } else { "FALSE" };
    format!(
        "({n}, {}, {}, {}, {paid}, {})",
        1 + (n * 31) % PATIENTS,
        lit(&date(n * 2 / 15)),
        10_000 + (u64::from(n) * 104_729) % 5_000_000,
        opt(nip)
    )
}

/// `INSERT INTO table VALUES …;` for `ids`, 500 rows a statement.
fn inserts(out: &mut String, table: &str, ids: std::ops::RangeInclusive<u32>, row: fn(u32) -> String) {
    let ids: Vec<u32> = ids.collect();
    for batch in ids.chunks(500) {
        let rows: Vec<String> = batch.iter().map(|&i| row(i)).collect();
        let _ = writeln!(out, "INSERT INTO {table} VALUES\n{};", rows.join(",\n"));
    }
}

fn clinic_sql(d: Dialect) -> String {
    let mut sql = schema(d);
    inserts(&mut sql, "patients", 1..=PATIENTS, patient_row);
    inserts(&mut sql, "visits", 1..=VISITS, visit_row);
    inserts(&mut sql, "treatments", 1..=TREATMENTS, treatment_row);
    inserts(&mut sql, "invoices", 1..=INVOICES, invoice_row);
    sql
}

/// An hour at the clinic: a few patients' details change, today's appointments get notes,
/// new visits, treatments and invoices are added, and some invoices are paid.
fn hour_of_changes() -> String {
    let mut sql = String::from(
        "UPDATE patients SET phone = '+48 600 100 200' WHERE id IN (7, 2500, 4999);\n\
         UPDATE patients SET notes = CONCAT(COALESCE(notes, ''), ' Nowy adres: ul. Źródlana 5.') WHERE id = 1;\n",
    );
    let _ = writeln!(sql, "UPDATE visits SET note = CONCAT(note, ' Pacjent odwołał.') WHERE id > {};", VISITS - 40);
    let _ = writeln!(sql, "UPDATE invoices SET paid = TRUE WHERE id > {};", INVOICES - 25);
    inserts(&mut sql, "visits", VISITS + 1..=VISITS + 60, visit_row);
    inserts(&mut sql, "treatments", TREATMENTS + 1..=TREATMENTS + 80, treatment_row);
    inserts(&mut sql, "invoices", INVOICES + 1..=INVOICES + 30, invoice_row);
    sql
}

/// A fingerprint of every table of `db`: row count and an MD5 of all rows in key order.
fn fingerprints(server: &impl SqlServer, d: Dialect, db: &str) -> Vec<String> {
    let mut sql = String::new();
    if d == Dialect::MariaDb {
        sql.push_str("SET SESSION group_concat_max_len = 1073741824;\n");
    }
    for (table, columns) in TABLES {
        let _ = match d {
            Dialect::Postgres => writeln!(
                sql,
                "SELECT '{table} ' || count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY id)), '-') \
                 FROM {table} t;"
            ),
            Dialect::MariaDb => writeln!(
                sql,
                "SELECT CONCAT('{table} ', COUNT(*), ' ', COALESCE(MD5(GROUP_CONCAT(JSON_ARRAY({}) ORDER BY id \
                 SEPARATOR '\\n')), '-')) FROM {table};",
                columns.join(", ")
            ),
        };
    }
    let out = server.sql(db, &sql);
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), TABLES.len(), "fingerprint query printed {out}");
    lines
}

/// Checks of content against the values the test generated, not only against the source
/// database: non-ASCII names and four-byte characters survive as characters, NULLs stay NULL.
fn assert_clinic_content(server: &impl SqlServer, db: &str) {
    let name = server.sql(db, "SELECT first_name, last_name FROM patients WHERE id = 1;");
    assert_eq!(name.trim_end(), "Zoë\tŁukasiewicz", "{} {db}: patient 1", server.kind());
    let notes = server.sql(db, "SELECT notes FROM patients WHERE id = 9;");
    assert_eq!(notes.trim_end(), patient_notes(9).unwrap(), "{} {db}: patient 9's notes", server.kind());
    let nulls = server.sql(db, "SELECT COUNT(*) FROM patients WHERE birth_date IS NULL;");
    let expected = (1..=PATIENTS).filter(|&i| patient_birth_date(i).is_none()).count();
    assert_eq!(nulls.trim(), expected.to_string(), "{} {db}: NULL birth dates", server.kind());
}

// ---- arka ------------------------------------------------------------------------------

/// `arka --json backup --stdin-from-command COMMAND --name clinic.sql`.
fn backup_dump(fx: &Fixture, command: &str) -> Run {
    let mut args: Vec<OsString> = vec!["--json".into(), "backup".into()];
    args.extend(fx.agent_args());
    args.extend(["--stdin-from-command".into(), command.into(), "--name".into(), "clinic.sql".into()]);
    fx.arka(args)
}

/// `arka dump SNAPSHOT clinic.sql | CLIENT db`: the restore the runbook describes.
fn restore_dump(fx: &Fixture, snapshot: &str, server: &impl SqlServer, db: &str) {
    server.create_database(db);
    let mut dump = fx.command();
    dump.arg("dump").args(fx.reader_args()).args([snapshot, "clinic.sql"]);
    let (dumped, restored) = pipe(dump, server.client(db));
    assert!(dumped.status.success(), "arka dump failed: {}", String::from_utf8_lossy(&dumped.stderr));
    assert!(
        restored.status.success(),
        "restoring snapshot {snapshot} into {} {db} failed: {}",
        server.kind(),
        String::from_utf8_lossy(&restored.stderr)
    );
}

fn stat(summary: &Value, key: &str) -> u64 {
    summary["stats"][key].as_u64().unwrap_or_else(|| panic!("no stats.{key} in {summary}"))
}

/// The whole round trip for one server: load, back up, change, back up again (little is
/// new), restore both snapshots into scratch databases and compare every row.
fn dump_backup_restore(server: &impl SqlServer, d: Dialect) {
    let started = Instant::now();
    server.create_database("clinic");
    server.sql("clinic", &clinic_sql(d));
    let before = fingerprints(server, d, "clinic");
    let loaded = started.elapsed();

    let fx = Fixture::new();
    let dump = server.dump_command("clinic");
    let first = backup_dump(&fx, &dump).ok().json();
    let first_id = first["snapshot_id"].as_str().expect("snapshot_id").to_string();
    let dumped = fx.dump(&first_id, "clinic.sql").ok();
    assert!(dumped.stdout.len() as u64 == stat(&first, "bytes") && dumped.stdout.len() > 4 << 20, "{first}");
    assert!(arka_tests::contains(&dumped.stdout, "Łukasiewicz".as_bytes()), "the dump lost the UTF-8 names");

    server.sql("clinic", &hour_of_changes());
    let after = fingerprints(server, d, "clinic");
    assert!(TABLES.iter().enumerate().all(|(i, _)| before[i] != after[i]), "every table changed: {after:?}");
    let second = backup_dump(&fx, &dump).ok().json();
    let (new1, new2) = (stat(&first, "bytes_new"), stat(&second, "bytes_new"));
    println!(
        "{}: dump {} bytes; first backup stored {new1} new bytes, the next hour's {new2} ({:.1}%)",
        server.kind(),
        stat(&second, "bytes"),
        100.0 * new2 as f64 / new1 as f64
    );
    assert!(new2 * 3 < new1, "an hour of changes stored {new2} new bytes, the first dump {new1}: dedup failed");

    restore_dump(&fx, &first_id, server, "scratch_first");
    assert_eq!(fingerprints(server, d, "scratch_first"), before, "the first snapshot restores the original rows");
    assert_clinic_content(server, "scratch_first");
    restore_dump(&fx, "latest", server, "scratch_latest");
    assert_eq!(fingerprints(server, d, "scratch_latest"), after, "the latest snapshot restores the changed rows");
    println!(
        "{}: loaded in {:.1} s, whole round trip {:.1} s",
        server.kind(),
        loaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

// ---- the tests -------------------------------------------------------------------------

#[test]
fn a_pg_dump_restores_into_a_scratch_database_with_the_same_rows_and_the_next_hour_stores_little() {
    let pg = Postgres::start();
    dump_backup_restore(&pg, Dialect::Postgres);
}

#[test]
fn a_mysqldump_restores_into_a_scratch_database_with_the_same_rows_and_the_next_hour_stores_little() {
    let db = MariaDb::start();
    dump_backup_restore(&db, Dialect::MariaDb);

    // A dump of a database that does not exist fails and leaves no snapshot.
    let fx = Fixture::new();
    let out = backup_dump(&fx, &db.dump_command("no_such_clinic")).expect_code(1);
    out.expect_stderr("Unknown database").expect_stderr("no snapshot");
    assert_eq!(fx.snapshots().len(), 0);
}

#[test]
fn a_failing_or_cut_short_pg_dump_leaves_no_snapshot() {
    let pg = Postgres::start();
    pg.create_database("clinic");
    pg.sql("clinic", &clinic_sql(Dialect::Postgres));
    let fx = Fixture::new();
    let good = backup_dump(&fx, &pg.dump_command("clinic")).ok().json();
    assert!(stat(&good, "bytes") > 1_000_000, "{good}");

    // The clinic's database renamed, the dump command not: pg_dump exits 1 at once.
    let out = backup_dump(&fx, &pg.dump_command("clinic_old")).expect_code(1);
    let out = out.expect_stderr("status 1").expect_stderr("no snapshot");
    out.expect_stderr(r#"database "clinic_old" does not exist"#);
    assert_eq!(fx.snapshots().len(), 1, "a failed dump must not leave a snapshot");

    // Piped through another command, the failure shows only with pipefail, which
    // docs/OPERATIONS.md says to use (/bin/sh reports the status of the pipe's last command).
    let piped = format!("bash -o pipefail -c \"{} | cat\"", pg.dump_command("clinic_old"));
    backup_dump(&fx, &piped).expect_code(1).expect_stderr("status 1");
    assert_eq!(fx.snapshots().len(), 1, "a failed dump must not leave a snapshot");

    // The dump is killed after its first 300 kB (what the OOM killer or a reboot does).
    let cut = format!("{} | {{ head -c 300000; kill -9 $$; }}", pg.dump_command("clinic"));
    backup_dump(&fx, &cut).expect_code(1).expect_stderr("killed");
    assert_eq!(fx.snapshots().len(), 1, "a dump cut short must not leave a snapshot");

    // `latest` is still the whole dump.
    let latest = fx.dump("latest", "clinic.sql").ok().stdout_text();
    assert!(latest.contains("-- PostgreSQL database dump complete"), "latest dump is not whole");
}

/// `arka agent run` with a `kind = "command"` source running pg_dump: its snapshot
/// restores like a hand-made one.
#[test]
fn the_agent_backs_up_a_pg_dump_source_that_restores_with_the_same_rows() {
    let pg = Postgres::start();
    pg.create_database("clinic");
    pg.sql("clinic", &clinic_sql(Dialect::Postgres));
    let expected = fingerprints(&pg, Dialect::Postgres, "clinic");

    let fx = Fixture::new();
    let config = fx.path("agent.toml");
    let text = format!(
        "agent_key = {key:?}\nstate_dir = {state:?}\n[[target]]\nurl = {repo:?}\n\
         [[source]]\nname = \"clinic-db\"\nkind = \"command\"\ncommand = {command:?}\ndump_name = \"clinic.sql\"\n\
         schedule = \"every 1h\"\ntimeout = \"5m\"\n[status]\nbind = \"127.0.0.1:{port}\"\n",
        key = fx.agent_key,
        state = fx.path("state"),
        repo = fx.repo,
        command = pg.dump_command("clinic"),
        port = free_port(),
    );
    std::fs::write(&config, text).unwrap();
    let agent = AgentProcess::start(&fx, &config);

    // An `every` source runs as soon as the agent starts.
    let started = Instant::now();
    let snapshot = loop {
        let snaps = fx.snapshots();
        if let Some(s) = snaps.iter().find(|s| s["source_kind"] == "command" && s["source"][0] == "clinic.sql") {
            break s["id"].as_str().expect("snapshot id").to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no snapshot of clinic-db within 60 s:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(300));
    };
    println!("the agent's pg_dump snapshot after {:.1} s", started.elapsed().as_secs_f64());
    let exit = agent.terminate(15);
    assert!(exit.success(), "the agent exited with {exit} on SIGTERM");

    restore_dump(&fx, &snapshot, &pg, "scratch");
    assert_eq!(fingerprints(&pg, Dialect::Postgres, "scratch"), expected);
    assert_clinic_content(&pg, "scratch");
}
