#!/usr/bin/env python3
"""Hourly pg_dumps of a clinic database, deterministically, for arka's benchmarks.

    python3 tests/perf/clinicdb.py DIR [--scale MIB | --dump-mib MIB] [--hours N] [--seed S]

Starts a throwaway PostgreSQL server (the newest /usr/lib/postgresql/N/bin, as
tests/src/databases.rs does: its own temp dir, 127.0.0.1 on a free port, run as `nobody` when
this runs as root, killed with this process), loads a seeded clinic database of years of
history, and writes:

    DIR/dump_00.sql              pg_dump of the loaded database (plain format, COPY data)
    DIR/dump_01.sql .. dump_NN   pg_dump after each of N hours of clinic activity
    DIR/clinicdb.json            parameters, row counts, sizes, what each hour did

The dump is ~0.2 x --scale MiB (the benchmark corpus's scale; default 1024, so ~200 MiB), or
--dump-mib exactly. Tables: patients, appointments, visits, treatments, notes, invoices, with
primary keys, foreign keys and the indexes a practice system would have.

One hour of a 4-chair dental clinic (Monday 2026-03-02 from 08:00), in the proportions such a
clinic sees:
  * this hour's appointments: arrived -> done (two updates each), ~5% no-show, a late
    cancellation now and then; each visit inserts a visit, 1-3 treatments, 1-2 notes and an
    invoice, ~75% paid at the desk (an update);
  * ~8 of tomorrow's appointments confirmed by SMS (updates scattered over recent bookings);
  * ~10 new bookings for the next four weeks, a new patient or two;
  * 1-3 reschedules, 1-2 cancellations, a booking made in error deleted (about every other
    hour), a mistaken note deleted (about every fifth hour);
  * 2-4 patients' phone, e-mail, address or allergies updated (anywhere in the table);
  * 1-4 invoices paid by bank transfer.
Updates move a row in the dump (PostgreSQL writes the new version elsewhere), so an hour's
changes are scattered through the dump as well as appended to each table's data.

Autovacuum is off so the row order in the dumps, and so every byte, depends on the seed only
(with the threshold at 20% of a table's rows it would not run on these tables within a few
hours anyway). Standard library only, plus PostgreSQL's server and client binaries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402  (vocabulary and patients shared with the file corpus)

MiB = 1 << 20
NOBODY = 65534
NOW = dt.datetime(2026, 3, 2, 8, 0)  # Monday morning, as in corpus.py
ROOMS = 4
SLOT = dt.timedelta(minutes=30)
BYTES_PER_APPOINTMENT = 1110  # measured: dump bytes per appointment (past and booked), all tables
REASONS = [p[1] for p in corpus.PROCEDURES] + ["Ból zęba", "Kontrola po leczeniu", "Wizyta adaptacyjna"]
ALLERGIES = ["penicylina", "lateks", "lidokaina", "ibuprofen", "orzechy", "brak"]
METHODS = ["karta", "gotówka", "BLIK", "przelew"]

SCHEMA = """
SET client_min_messages = warning;
CREATE TABLE patients (
    id serial PRIMARY KEY, pesel char(11) NOT NULL, first_name text NOT NULL,
    last_name text NOT NULL, birth_date date NOT NULL, sex char(1) NOT NULL, phone text,
    email text, address text, allergies text, created_at timestamp NOT NULL,
    updated_at timestamp NOT NULL);
CREATE TABLE appointments (
    id serial PRIMARY KEY, patient_id integer NOT NULL, doctor text NOT NULL,
    room smallint NOT NULL, starts_at timestamp NOT NULL, duration_min smallint NOT NULL,
    status text NOT NULL, reason text NOT NULL, booked_at timestamp NOT NULL,
    updated_at timestamp NOT NULL);
CREATE TABLE visits (
    id serial PRIMARY KEY, appointment_id integer NOT NULL, patient_id integer NOT NULL,
    doctor text NOT NULL, started_at timestamp NOT NULL, ended_at timestamp NOT NULL,
    summary text NOT NULL);
CREATE TABLE treatments (
    id serial PRIMARY KEY, visit_id integer NOT NULL, tooth smallint, procedure_code text NOT NULL,
    description text NOT NULL, price numeric(10,2) NOT NULL);
CREATE TABLE notes (
    id serial PRIMARY KEY, patient_id integer NOT NULL, visit_id integer, author text NOT NULL,
    kind text NOT NULL, created_at timestamp NOT NULL, body text NOT NULL);
CREATE TABLE invoices (
    id serial PRIMARY KEY, patient_id integer NOT NULL, visit_id integer NOT NULL,
    number text NOT NULL, issued_at timestamp NOT NULL, net numeric(10,2) NOT NULL,
    vat numeric(10,2) NOT NULL, gross numeric(10,2) NOT NULL, status text NOT NULL,
    paid_at timestamp, method text);
"""

CONSTRAINTS = """
SET client_min_messages = warning;
ALTER TABLE appointments ADD FOREIGN KEY (patient_id) REFERENCES patients (id);
ALTER TABLE visits ADD FOREIGN KEY (appointment_id) REFERENCES appointments (id);
ALTER TABLE visits ADD FOREIGN KEY (patient_id) REFERENCES patients (id);
ALTER TABLE treatments ADD FOREIGN KEY (visit_id) REFERENCES visits (id);
ALTER TABLE notes ADD FOREIGN KEY (patient_id) REFERENCES patients (id);
ALTER TABLE notes ADD FOREIGN KEY (visit_id) REFERENCES visits (id);
ALTER TABLE invoices ADD FOREIGN KEY (patient_id) REFERENCES patients (id);
ALTER TABLE invoices ADD FOREIGN KEY (visit_id) REFERENCES visits (id);
CREATE INDEX appointments_starts_at ON appointments (starts_at);
CREATE INDEX appointments_patient ON appointments (patient_id);
CREATE INDEX visits_patient ON visits (patient_id);
CREATE INDEX notes_patient ON notes (patient_id);
CREATE INDEX invoices_status ON invoices (status) WHERE status <> 'paid';
CREATE UNIQUE INDEX invoices_number ON invoices (number);
"""

TABLES = ("patients", "appointments", "visits", "treatments", "notes", "invoices")


def log(msg: str) -> None:
    print(f"clinicdb.py: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# The throwaway server
# ----------------------------------------------------------------------------------------------

def postgres_bin() -> str:
    found = []
    for v in os.listdir("/usr/lib/postgresql") if os.path.isdir("/usr/lib/postgresql") else []:
        b = os.path.join("/usr/lib/postgresql", v, "bin")
        if v.isdigit() and os.path.isfile(os.path.join(b, "initdb")) and os.path.isfile(os.path.join(b, "postgres")):
            found.append((int(v), b))
    if not found:
        raise SystemExit("clinicdb.py: no PostgreSQL server under /usr/lib/postgresql/*/bin: "
                         "run `bash scripts/install-test-deps.sh`")
    return max(found)[1]


def unprivileged(argv: list[str]) -> list[str]:
    """argv run as nobody when we are root, and killed if this process dies."""
    pre = ["setpriv"]
    if os.geteuid() == 0:
        pre += [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return pre + ["--pdeathsig", "KILL"] + argv


def has_restrict_key(bin_dir: str) -> bool:
    out = subprocess.run([f"{bin_dir}/pg_dump", "--help"], capture_output=True, text=True).stdout
    return "--restrict-key" in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A PostgreSQL server in its own temp dir on 127.0.0.1; `stop()` removes it all."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.proc: subprocess.Popen | None = None
        self.dir = ""
        for _ in range(3):  # another process may take the free port before the server does
            self.dir = tempfile.mkdtemp(prefix="arka-bench-pg-")
            if os.geteuid() == 0:
                os.chown(self.dir, NOBODY, NOBODY)
            env = dict(os.environ, HOME="/tmp")
            data = os.path.join(self.dir, "data")
            subprocess.run(unprivileged([f"{self.bin}/initdb", "-D", data, "-U", "postgres",
                                         "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
                                         "--no-sync"]),
                           check=True, env=env, stdout=subprocess.DEVNULL, cwd="/tmp")
            self.port = free_port()
            argv = [f"{self.bin}/postgres", "-D", data, "-k", self.dir, "-p", str(self.port)]
            for s in ("listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off",
                      "full_page_writes=off", "autovacuum=off", "max_wal_size=1GB"):
                argv += ["-c", s]
            logf = open(os.path.join(self.dir, "server.log"), "wb")
            self.proc = subprocess.Popen(unprivileged(argv), env=env, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, cwd="/tmp")
            logf.close()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                ok = subprocess.run([f"{self.bin}/pg_isready", "-q", "-h", "127.0.0.1", "-p",
                                     str(self.port), "-U", "postgres", "-t", "1"])
                if ok.returncode == 0:
                    return
                time.sleep(0.1)
            log("the server did not start; its log:\n" + self.log_tail())
            self.stop()
        raise SystemExit("clinicdb.py: PostgreSQL did not start (3 attempts)")

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "server.log"), encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: releases shared memory
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def conn(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]

    def psql(self, sql: str, db: str = "clinic") -> str:
        """Runs sql (stopping at the first error); returns bare tab-separated rows."""
        r = subprocess.run([f"{self.bin}/psql", "-X", "-A", "-t", "-q", "-F", "\t", "-v",
                            "ON_ERROR_STOP=1", *self.conn(), "-d", db],
                           input=sql.encode(), capture_output=True,
                           env=dict(os.environ, PGCLIENTENCODING="UTF8"))
        if r.returncode != 0:
            raise SystemExit(f"clinicdb.py: psql failed: {r.stderr.decode(errors='replace')}\n"
                             f"--- SQL (start):\n{sql[:1500]}")
        return r.stdout.decode()

    def copy_in(self, table: str, path: str) -> None:
        with open(path, "rb") as f:
            r = subprocess.run([f"{self.bin}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *self.conn(),
                                "-d", "clinic", "-c", f"COPY {table} FROM STDIN"],
                               stdin=f, capture_output=True)
        if r.returncode != 0:
            raise SystemExit(f"clinicdb.py: COPY {table} failed: {r.stderr.decode(errors='replace')}")

    def dump(self, path: str, restrict_key: str) -> int:
        # pg_dump >= 15.14 brackets the dump with a random `\restrict` key; a fixed one per
        # dump keeps the bytes reproducible (and still differs from hour to hour, as real ones do).
        key = ["--restrict-key", restrict_key] if has_restrict_key(self.bin) else []
        with open(path, "wb") as f:
            subprocess.run([f"{self.bin}/pg_dump", "--no-owner", *key, *self.conn(), "clinic"],
                           stdout=f, check=True)
        return os.path.getsize(path)


# ----------------------------------------------------------------------------------------------
# History: years of appointments and what followed them
# ----------------------------------------------------------------------------------------------

def esc(v) -> str:
    """A value in COPY text format."""
    if v is None:
        return "\\N"
    s = str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def row(*vals) -> str:
    return "\t".join(esc(v) for v in vals) + "\n"


def sq(v) -> str:
    """A SQL literal."""
    if v is None:
        return "NULL"
    return "'" + str(v).replace("'", "''") + "'"


def ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def day_slots(day: dt.date) -> int:
    """Half-hour slots a chair has on this day: 08-18 on weekdays, 08-13 on Saturdays."""
    return {5: 10, 6: 0}.get(day.weekday(), 20)


def patient_values(p: corpus.Patient, rng: random.Random, created: dt.datetime) -> tuple:
    allergies = rng.choice(ALLERGIES) if rng.random() < 0.3 else None
    return (p.pid, p.pesel, p.first, p.last, p.birth, "K" if p.female else "M", p.phone, p.email,
            p.address, allergies, ts(created), ts(created))


def visit_rows(rng: random.Random, ids: dict, appt: tuple, out: dict) -> None:
    """The visit, treatments, notes and invoice of one appointment that took place."""
    aid, pid, doctor, room, start, dur = appt
    ids["visits"] += 1
    vid = ids["visits"]
    end = start + dt.timedelta(minutes=dur)
    summary = corpus.words_text(rng, rng.randrange(60, 160), per_line=10_000)
    out["visits"].write(row(vid, aid, pid, doctor, ts(start), ts(end), summary))
    total = 0.0
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        code, name, price = rng.choice(corpus.PROCEDURES)
        price = round(price * rng.uniform(0.9, 1.2), 2)
        total += price
        ids["treatments"] += 1
        tooth = rng.choice((11, 16, 21, 26, 36, 46, 37, 47, 14, 24)) if rng.random() < 0.8 else None
        out["treatments"].write(row(ids["treatments"], vid, tooth, code, name, f"{price:.2f}"))
    for _ in range(1 if rng.random() < 0.7 else 2):
        ids["notes"] += 1
        body = corpus.words_text(rng, rng.randrange(200, 1400), per_line=6)
        out["notes"].write(row(ids["notes"], pid, vid, doctor, rng.choice(corpus.NOTE_KINDS),
                               ts(end - dt.timedelta(minutes=3)), body))
    ids["invoices"] += 1
    iid = ids["invoices"]
    vat = 0.0 if rng.random() < 0.85 else round(total * 0.23, 2)
    old = start < NOW - dt.timedelta(days=30)
    paid = old and rng.random() < 0.99 or (not old and rng.random() < 0.85)
    paid_at = end + dt.timedelta(minutes=5) if rng.random() < 0.8 else end + dt.timedelta(days=rng.randrange(1, 14))
    out["invoices"].write(row(iid, pid, vid, f"FV/{start:%Y/%m}/{iid:07d}", ts(end), f"{total:.2f}",
                              f"{vat:.2f}", f"{total + vat:.2f}", "paid" if paid else "issued",
                              ts(paid_at) if paid else None, rng.choice(METHODS) if paid else None))


def load_history(pg: Postgres, work: str, rng: random.Random, dump_bytes: int) -> dict:
    """Generates and loads the clinic's history; returns the row counts."""
    n_appts = max(2000, dump_bytes // BYTES_PER_APPOINTMENT)
    n_patients = max(300, n_appts // 8)
    # Working days back from NOW until the chairs (72% booked) have held n_appts appointments.
    days, held = [], 0
    d = NOW.date() - dt.timedelta(days=1)
    while held < n_appts:
        if day_slots(d):
            days.append(d)
            held += int(day_slots(d) * ROOMS * 0.72)
        d -= dt.timedelta(days=1)
    days.reverse()
    first_day = days[0]
    span = (NOW - dt.datetime.combine(first_day, dt.time())).total_seconds()

    # Patients: registered evenly over the history.
    prng = random.Random(rng.random())
    patients = []
    for i in range(n_patients):
        p = corpus.make_patient(prng, i + 1)
        created = dt.datetime.combine(first_day, dt.time(8)) + dt.timedelta(seconds=span * i / n_patients)
        patients.append(patient_values(p, prng, created))

    def pick_patient(when: dt.datetime) -> int:
        known = max(1, int(n_patients * (when - dt.datetime.combine(first_day, dt.time())).total_seconds() / span))
        return rng.randrange(1, min(known, n_patients) + 1)

    # Appointments: past days at 72% of the slots, then the next four weeks filling up less
    # the further ahead they are. Each was booked some days before it takes place.
    appts = []  # (booked_at, starts_at, patient, doctor, room, duration, status, reason)
    future_days = [NOW.date() + dt.timedelta(days=k) for k in range(28)]
    for day in days + future_days:
        ahead = (day - NOW.date()).days
        fill = 0.72 if ahead < 0 else max(0.15, 0.9 - 0.03 * ahead)
        for room in range(1, ROOMS + 1):
            slot = 0
            while slot < day_slots(day):
                length = 2 if rng.random() < 0.25 else 1
                if rng.random() < fill:
                    start = dt.datetime.combine(day, dt.time(8)) + slot * SLOT
                    booked = start - dt.timedelta(days=rng.expovariate(1 / 9) + 0.05)
                    if booked > NOW:
                        booked = NOW - dt.timedelta(hours=rng.uniform(1, 72))
                    if ahead < 0:
                        r = rng.random()
                        status = "done" if r < 0.88 else ("cancelled" if r < 0.95 else "no_show")
                    else:
                        status = "confirmed" if ahead <= 1 and rng.random() < 0.6 else "scheduled"
                    appts.append((booked, start, pick_patient(booked), rng.choice(corpus.DOCTORS), room,
                                  30 * length, status, rng.choice(REASONS)))
                slot += length
    appts.sort(key=lambda a: (a[0], a[1], a[4]))

    os.makedirs(work, exist_ok=True)
    out = {t: open(os.path.join(work, t + ".copy"), "w", encoding="utf-8") for t in TABLES}
    out["patients"].writelines(row(*p) for p in patients)
    order = []
    for aid, (booked, start, pid, doctor, room, dur, status, reason) in enumerate(appts, 1):
        updated = start + dt.timedelta(minutes=dur) if status != "scheduled" and start < NOW else booked
        out["appointments"].write(row(aid, pid, doctor, room, ts(start), dur, status, reason,
                                      ts(booked), ts(updated)))
        if status == "done":
            order.append((start, room, aid, pid, doctor, dur))
    order.sort()
    ids = {t: 0 for t in TABLES}
    for start, room, aid, pid, doctor, dur in order:
        visit_rows(rng, ids, (aid, pid, doctor, room, start, dur), out)
    for f in out.values():
        f.close()

    pg.psql(SCHEMA)
    for t in TABLES:
        pg.copy_in(t, os.path.join(work, t + ".copy"))
        os.remove(os.path.join(work, t + ".copy"))
    pg.psql(CONSTRAINTS + "".join(
        f"SELECT setval('{t}_id_seq', (SELECT max(id) FROM {t}));\n" for t in TABLES) + "ANALYZE;\n")
    counts = pg.psql(";\n".join(f"SELECT '{t}', count(*) FROM {t}" for t in TABLES) + ";\n")
    return {line.split("\t")[0]: int(line.split("\t")[1]) for line in counts.splitlines() if line}


# ----------------------------------------------------------------------------------------------
# An hour at the clinic
# ----------------------------------------------------------------------------------------------

def ids_of(pg: Postgres, sql: str) -> list[list[str]]:
    return [line.split("\t") for line in pg.psql(sql).splitlines() if line]


def hour(pg: Postgres, rng: random.Random, h: int) -> dict:
    """Hour h (1-based) of Monday's work; returns what it did."""
    t0 = NOW + dt.timedelta(hours=h - 1)
    t1 = t0 + dt.timedelta(hours=1)
    n = {k: 0 for k in ("visits", "treatments", "notes", "invoices", "no_shows", "confirmed", "booked",
                        "new_patients", "rescheduled", "cancelled", "deleted", "patients_updated",
                        "invoices_paid")}
    sql = ["BEGIN;"]

    def at(minutes: float) -> str:
        return sq(ts(t0 + dt.timedelta(minutes=minutes)))

    # This hour's appointments.
    due = ids_of(pg, f"SELECT id, patient_id, doctor, starts_at, duration_min FROM appointments "
                     f"WHERE starts_at >= {sq(ts(t0))} AND starts_at < {sq(ts(t1))} "
                     f"AND status IN ('scheduled', 'confirmed') ORDER BY starts_at, id;")
    for aid, pid, doctor, starts, dur in due:
        start = dt.datetime.fromisoformat(starts)
        m = (start - t0).total_seconds() / 60
        r = rng.random()
        if r < 0.05:
            sql.append(f"UPDATE appointments SET status = 'no_show', updated_at = {at(m + 15)} WHERE id = {aid};")
            n["no_shows"] += 1
            continue
        if r < 0.07:
            sql.append(f"UPDATE appointments SET status = 'cancelled', updated_at = {at(max(0, m - 20))} "
                       f"WHERE id = {aid};")
            n["cancelled"] += 1
            continue
        end = m + int(dur)
        sql.append(f"UPDATE appointments SET status = 'arrived', updated_at = {at(m - 5)} WHERE id = {aid};")
        summary = corpus.words_text(rng, rng.randrange(60, 160), per_line=10_000)
        sql.append(f"INSERT INTO visits (appointment_id, patient_id, doctor, started_at, ended_at, summary) "
                   f"VALUES ({aid}, {pid}, {sq(doctor)}, {at(m)}, {at(end)}, {sq(summary)});")
        n["visits"] += 1
        total = 0.0
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            code, name, price = rng.choice(corpus.PROCEDURES)
            price = round(price * rng.uniform(0.9, 1.2), 2)
            total += price
            tooth = rng.choice((11, 16, 21, 26, 36, 46, 37, 47, 14, 24)) if rng.random() < 0.8 else None
            sql.append(f"INSERT INTO treatments (visit_id, tooth, procedure_code, description, price) VALUES "
                       f"(currval('visits_id_seq'), {tooth if tooth else 'NULL'}, {sq(code)}, {sq(name)}, "
                       f"{price:.2f});")
            n["treatments"] += 1
        for _ in range(1 if rng.random() < 0.7 else 2):
            body = corpus.words_text(rng, rng.randrange(200, 1400), per_line=6)
            sql.append(f"INSERT INTO notes (patient_id, visit_id, author, kind, created_at, body) VALUES "
                       f"({pid}, currval('visits_id_seq'), {sq(doctor)}, {sq(rng.choice(corpus.NOTE_KINDS))}, "
                       f"{at(end - 3)}, {sq(body)});")
            n["notes"] += 1
        sql.append(f"UPDATE appointments SET status = 'done', updated_at = {at(end)} WHERE id = {aid};")
        vat = 0.0 if rng.random() < 0.85 else round(total * 0.23, 2)
        # psql's \\gset keeps the invoice's id for its number and for the payment below.
        sql.append("SELECT nextval('invoices_id_seq') AS iid \\gset")
        sql.append(f"INSERT INTO invoices (id, patient_id, visit_id, number, issued_at, net, vat, gross, status) "
                   f"VALUES (:iid, {pid}, currval('visits_id_seq'), 'FV/{start:%Y/%m}/' || lpad(:'iid', 7, '0'), "
                   f"{at(end)}, {total:.2f}, {vat:.2f}, {total + vat:.2f}, 'issued');")
        n["invoices"] += 1
        if rng.random() < 0.75:
            sql.append(f"UPDATE invoices SET status = 'paid', paid_at = {at(end + 4)}, "
                       f"method = {sq(rng.choice(METHODS))} WHERE id = :iid;")
            n["invoices_paid"] += 1

    # Tomorrow's appointments confirmed by SMS.
    tomorrow = dt.datetime.combine(t0.date() + dt.timedelta(days=1), dt.time())
    unconfirmed = ids_of(pg, f"SELECT id FROM appointments WHERE starts_at >= {sq(ts(tomorrow))} AND "
                             f"starts_at < {sq(ts(tomorrow + dt.timedelta(days=1)))} AND status = 'scheduled' "
                             f"ORDER BY id;")
    for (aid,) in rng.sample(unconfirmed, min(len(unconfirmed), rng.randrange(5, 12))):
        sql.append(f"UPDATE appointments SET status = 'confirmed', updated_at = {at(rng.uniform(0, 60))} "
                   f"WHERE id = {aid};")
        n["confirmed"] += 1

    # New patients and new bookings.
    max_pid = int(pg.psql("SELECT max(id) FROM patients;").strip())
    new_pids = []
    for _ in range(rng.choice((0, 1, 1, 2))):
        max_pid += 1
        p = corpus.make_patient(rng, max_pid)
        v = patient_values(p, rng, t0 + dt.timedelta(minutes=rng.uniform(0, 60)))
        sql.append("INSERT INTO patients VALUES (" + ", ".join(sq(x) for x in v) + ");")
        new_pids.append(max_pid)
        n["new_patients"] += 1
    for _ in range(rng.randrange(7, 14)):
        pid = new_pids.pop() if new_pids else rng.randrange(1, max_pid + 1)
        day = t0.date() + dt.timedelta(days=rng.randrange(1, 29))
        while not day_slots(day):
            day += dt.timedelta(days=1)
        start = dt.datetime.combine(day, dt.time(8)) + rng.randrange(day_slots(day)) * SLOT
        when = at(rng.uniform(0, 60))
        sql.append(f"INSERT INTO appointments (patient_id, doctor, room, starts_at, duration_min, status, reason, "
                   f"booked_at, updated_at) VALUES ({pid}, {sq(rng.choice(corpus.DOCTORS))}, "
                   f"{rng.randrange(1, ROOMS + 1)}, {sq(ts(start))}, {rng.choice((30, 30, 30, 60))}, 'scheduled', "
                   f"{sq(rng.choice(REASONS))}, {when}, {when});")
        n["booked"] += 1

    # Reschedules, cancellations and a booking made in error, among future appointments.
    future = ids_of(pg, f"SELECT id, starts_at FROM appointments WHERE starts_at >= {sq(ts(t1))} AND "
                        f"status IN ('scheduled', 'confirmed') ORDER BY id;")
    picks = rng.sample(future, min(len(future), 6))
    for aid, starts in picks[:rng.randrange(1, 4)]:
        moved = dt.datetime.fromisoformat(starts) + dt.timedelta(days=rng.choice((1, 2, 7)), minutes=rng.choice((0, 30, -30)))
        sql.append(f"UPDATE appointments SET starts_at = {sq(ts(moved))}, status = 'scheduled', "
                   f"updated_at = {at(rng.uniform(0, 60))} WHERE id = {aid};")
        n["rescheduled"] += 1
    for aid, _ in picks[3:3 + rng.randrange(1, 3)]:
        sql.append(f"UPDATE appointments SET status = 'cancelled', updated_at = {at(rng.uniform(0, 60))} "
                   f"WHERE id = {aid};")
        n["cancelled"] += 1
    if rng.random() < 0.5 and len(picks) == 6:
        sql.append(f"DELETE FROM appointments WHERE id = {picks[5][0]};")
        n["deleted"] += 1
    if rng.random() < 0.2:
        # A note written to the wrong patient's chart, removed (one from the last month).
        recent = ids_of(pg, f"SELECT id FROM notes WHERE created_at >= {sq(ts(t0 - dt.timedelta(days=30)))} "
                            f"ORDER BY id LIMIT 2000;")
        if recent:
            sql.append(f"DELETE FROM notes WHERE id = {rng.choice(recent)[0]};")
            n["deleted"] += 1

    # Patients' details.
    for _ in range(rng.randrange(2, 5)):
        pid = rng.randrange(1, max_pid - len(new_pids) + 1)
        what = rng.random()
        if what < 0.4:
            change = f"phone = {sq(corpus.random_phone(rng))}"
        elif what < 0.6:
            change = f"email = 'p{pid}.{rng.randrange(1000)}@example.pl'"
        elif what < 0.8:
            city, code = rng.choice(corpus.CITIES)
            change = (f"address = {sq(f'ul. {rng.choice(corpus.STREETS)} {rng.randrange(1, 120)}, {code} {city}')}")
        else:
            change = f"allergies = {sq(rng.choice(ALLERGIES))}"
        sql.append(f"UPDATE patients SET {change}, updated_at = {at(rng.uniform(0, 60))} WHERE id = {pid};")
        n["patients_updated"] += 1

    # Bank transfers for invoices issued earlier.
    unpaid = ids_of(pg, "SELECT id FROM invoices WHERE status = 'issued' ORDER BY id;")
    for (iid,) in rng.sample(unpaid, min(len(unpaid), rng.randrange(1, 5))):
        sql.append(f"UPDATE invoices SET status = 'paid', paid_at = {at(rng.uniform(0, 60))}, method = 'przelew' "
                   f"WHERE id = {iid};")
        n["invoices_paid"] += 1

    sql.append("COMMIT;")
    pg.psql("\n".join(sql) + "\n")
    return n


# ----------------------------------------------------------------------------------------------

def restrict_key(seed: str, h: int) -> str:
    return hashlib.sha256(f"{seed}/restrict/{h}".encode()).hexdigest()[:40]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("dir", help="output directory (its dump_*.sql and clinicdb.json are replaced)")
    ap.add_argument("--scale", type=float, default=1024,
                    help="benchmark corpus scale in MiB; the dump is ~0.2x this (default 1024)")
    ap.add_argument("--dump-mib", type=float, help="size of the first dump in MiB (overrides --scale)")
    ap.add_argument("--hours", type=int, default=6, help="hours of clinic activity (default 6)")
    ap.add_argument("--seed", default="arka", help="seed (default 'arka')")
    a = ap.parse_args()
    dump_mib = a.dump_mib if a.dump_mib else 0.2 * a.scale
    if dump_mib <= 0 or a.hours < 1 or a.hours > 10:
        print("clinicdb.py: the dump size must be positive and --hours 1..10 (a clinic day)", file=sys.stderr)
        return 2
    os.makedirs(a.dir, exist_ok=True)
    for f in os.listdir(a.dir):
        if f.startswith("dump_") and f.endswith(".sql") or f == "clinicdb.json":
            os.remove(os.path.join(a.dir, f))

    t_start = time.monotonic()
    pg = Postgres()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        pg.psql("CREATE DATABASE clinic ENCODING 'UTF8' TEMPLATE template0;", db="postgres")
        rng = random.Random(f"{a.seed}/clinicdb")
        log(f"loading ~{dump_mib:.0f} MiB of clinic history into PostgreSQL on 127.0.0.1:{pg.port}")
        rows = load_history(pg, os.path.join(a.dir, ".load"), rng, int(dump_mib * MiB))
        shutil.rmtree(os.path.join(a.dir, ".load"), ignore_errors=True)
        t_loaded = time.monotonic()
        sizes = [pg.dump(os.path.join(a.dir, "dump_00.sql"), restrict_key(a.seed, 0))]
        hours = []
        for h in range(1, a.hours + 1):
            hours.append(hour(pg, rng, h))
            sizes.append(pg.dump(os.path.join(a.dir, f"dump_{h:02d}.sql"), restrict_key(a.seed, h)))
            log(f"hour {h}: {json.dumps(hours[-1])}; dump {sizes[-1] / MiB:.1f} MiB")
        pg_version = pg.psql("SHOW server_version;").strip()
    finally:
        pg.stop()
    state = {"seed": a.seed, "dump_mib": dump_mib, "hours": a.hours, "postgresql": pg_version,
             "rows": rows, "dump_bytes": sizes, "activity": hours,
             "seconds": {"load": round(t_loaded - t_start, 1), "total": round(time.monotonic() - t_start, 1)}}
    with open(os.path.join(a.dir, "clinicdb.json"), "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False, indent=1)
    log(f"{a.hours + 1} dumps in {a.dir} ({sizes[0] / MiB:.1f} MiB first) in {state['seconds']['total']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
