#!/usr/bin/env python3
"""Generate a clinic-like backup corpus, deterministically, for arka's benchmarks.

    python3 tests/perf/corpus.py DIR [--scale MIB] [--seed S]     # new corpus (default 1024 MiB)
    python3 tests/perf/corpus.py DIR --mutate                     # one hour of clinic activity

Layout of DIR (shares of the volume are approximate):

    imaging/<Last>_<First>_<CBCT|CT>_<date>/slice_0001.dcm   ~50%  DICOM-like 16-bit CT series:
                       512x512 slices, smooth anatomy + per-slice noise, ~2x compressible (zstd)
    photos/<year>/<Last>_<First>/IMG_0001.jpg                ~25%  incompressible JPEG-like photos
    clinic.sql                                                ~15%  pg_dump --inserts style dump of
                       patients, visits, notes, invoices
    notes/<Last>_<First>/<date>_<kind>.txt                    ~10%  many small text notes, 1-20 KiB
    corpus.json                                                     seed, scale, clinic clock

Names use Polish diacritics (e.g. Wiśniewska_Zofia), encoded as UTF-8 (NFC).

--mutate simulates one hour of activity on an existing corpus, seeded by the corpus seed and
the number of earlier mutations (so a sequence of mutations is reproducible too):
  * clinic.sql grows by ~0.5%: new visits, notes, invoices (and a patient or two) are added at
    the end of each table's data, where pg_dump would put them; a few existing lines change in
    place (patients' phone/e-mail, this hour's appointments 'scheduled' -> 'done', sequences);
  * one new small image series (a few slices) and a few new notes are written.

Standard library only; generation is dominated by disk writes (see --help for options).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import re
import shutil
import sys
import time
import unicodedata

MiB = 1 << 20
STATE_FILE = "corpus.json"
CLOCK_START = dt.datetime(2026, 3, 2, 8, 0)  # Monday morning: "now" for a fresh corpus
HISTORY_START = dt.date(2016, 1, 4)

SHARE_DICOM, SHARE_PHOTOS, SHARE_SQL, SHARE_NOTES = 0.50, 0.25, 0.15, 0.10

# ----------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------

LAST_M = [
    "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
    "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur",
    "Kwiatkowski", "Krawczyk", "Piotrowski", "Grabowski", "Nowakowski", "Pawłowski",
    "Michalski", "Król", "Wieczorek", "Jabłoński", "Wróbel", "Majewski", "Olszewski",
    "Stępień", "Malinowski", "Jaworski", "Adamczyk", "Dudek", "Nowicki", "Pietrzak",
    "Górski", "Sikora", "Walczak", "Baran", "Rutkowski", "Michalak", "Szewczyk", "Ostrowski",
    "Tomaszewski", "Pietrzyk", "Zalewski", "Wróblewski", "Jasiński", "Zając", "Chmielewski",
    "Żak", "Sobczak", "Czarnecki", "Sawicki", "Borkowski", "Łukasik", "Ścibor", "Żurawski",
]
FIRST_M = [
    "Jan", "Piotr", "Krzysztof", "Andrzej", "Tomasz", "Paweł", "Michał", "Łukasz", "Marcin",
    "Grzegorz", "Józef", "Jędrzej", "Stanisław", "Mikołaj", "Wojciech", "Zbigniew", "Kacper",
    "Bartłomiej", "Maciej", "Jarosław", "Sławomir", "Przemysław", "Adam", "Rafał",
]
FIRST_F = [
    "Anna", "Maria", "Katarzyna", "Małgorzata", "Agnieszka", "Barbara", "Ewa", "Zofia",
    "Krystyna", "Elżbieta", "Joanna", "Magdalena", "Bożena", "Żaneta", "Jadwiga", "Halina",
    "Grażyna", "Urszula", "Łucja", "Teresa", "Małgosia", "Aleksandra", "Dorota", "Iwona",
]
CITIES = [
    ("Warszawa", "00-950"), ("Kraków", "30-001"), ("Łódź", "90-001"), ("Wrocław", "50-001"),
    ("Poznań", "60-001"), ("Gdańsk", "80-001"), ("Szczecin", "70-001"), ("Białystok", "15-001"),
    ("Rzeszów", "35-001"), ("Toruń", "87-100"), ("Kielce", "25-001"), ("Gdynia", "81-001"),
]
STREETS = [
    "Długa", "Krótka", "Słoneczna", "Kościuszki", "Mickiewicza", "Piłsudskiego", "Żeromskiego",
    "Świętokrzyska", "Grunwaldzka", "Łąkowa", "Wiśniowa", "Ogrodowa", "Leśna", "Polna",
]
DOCTORS = ["lek. dent. Anna Wiśniewska", "lek. dent. Piotr Żak", "lek. dent. Łucja Mazur",
           "dr n. med. Jędrzej Kowalczyk", "hig. stom. Małgorzata Dudek"]
PROCEDURES = [
    ("K01", "Przegląd stomatologiczny", 150), ("K02", "Wypełnienie kompozytowe", 320),
    ("K03", "Leczenie kanałowe", 1200), ("K04", "Ekstrakcja zęba", 350),
    ("K05", "Skaling i piaskowanie", 280), ("K06", "Zdjęcie pantomograficzne", 120),
    ("K07", "Tomografia CBCT", 450), ("K08", "Korona pełnoceramiczna", 2400),
    ("K09", "Implant", 4200), ("K10", "Konsultacja ortodontyczna", 200),
]
NOTE_KINDS = ["wywiad", "opis_rtg", "plan_leczenia", "zgoda", "notatka", "opis_cbct"]
WORDS = """
pacjent pacjentka zgłosiła zgłosił się z powodu bólu zęba dolnego górnego lewego prawego
trzonowego przedtrzonowego siekacza kła próchnica wtórna głęboka powierzchniowa ubytek
klasy wypełnienie kompozytowe glasjonomerowe tymczasowe znieczulenie nasiękowe przewodowe
artykaina lidokaina leczenie kanałowe kanał korzeń opracowanie płukanie podchloryn sodu
wypełniono gutaperką uszczelniacz kontrolne zdjęcie RTG pantomograficzne CBCT zmiana
okołowierzchołkowa przejaśnienie ropień przetoka obrzęk tkliwość opukowa żywotność miazgi
test chlorkiem etylu dodatni ujemny zalecenia higieniczne szczotkowanie nitkowanie irygator
kontrola za tygodnie miesiące plan leczenia protetycznego korona most implant odbudowa
wkład koronowo-korzeniowy kamień nazębny osad piaskowanie fluoryzacja lakowanie bruzd
przyzębie kieszonki dziąsło krwawienie stan zapalny antybiotyk amoksycylina klindamycyna
ibuprofen paracetamol płukanka chlorheksydyna uczulenia brak choroby ogólne nadciśnienie
cukrzyca ciąża leki przyjmowane na stałe zgoda na zabieg podpisana omówiono ryzyko powikłań
i alternatywne metody leczenia zabieg przebiegł bez powikłań pacjent poinformowany o
zaleceniach pozabiegowych nie jeść przez dwie godziny unikać gorących napojów w razie bólu
kontakt z gabinetem ząb 11 12 13 14 15 16 17 18 21 22 23 24 25 26 27 28 31 32 33 34 35 36
37 38 41 42 43 44 45 46 47 48 okluzja zgryz krzyżowy głęboki otwarty aparat stały ruchomy
""".split()


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


class Patient:
    __slots__ = ("pid", "first", "last", "female", "birth", "pesel", "phone", "email", "address",
                 "created")

    def folder(self) -> str:
        return nfc(f"{self.last}_{self.first}")


def ascii_fold(s: str) -> str:
    table = str.maketrans("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")
    return s.translate(table).lower()


def make_patient(rng: random.Random, pid: int) -> Patient:
    p = Patient()
    p.pid = pid
    p.female = rng.random() < 0.55
    last = rng.choice(LAST_M)
    if p.female and last.endswith("ski"):
        last = last[:-3] + "ska"
    elif p.female and last.endswith("cki"):
        last = last[:-3] + "cka"
    elif p.female and last.endswith("dzki"):
        last = last[:-4] + "dzka"
    p.last = last
    p.first = rng.choice(FIRST_F if p.female else FIRST_M)
    p.birth = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 85))
    p.pesel = p.birth.strftime("%y%m%d") + f"{rng.randrange(10**5):05d}"
    p.phone = random_phone(rng)
    p.email = f"{ascii_fold(p.first)}.{ascii_fold(p.last)}{rng.randrange(100)}@example.pl"
    city, code = rng.choice(CITIES)
    p.address = f"ul. {rng.choice(STREETS)} {rng.randrange(1, 120)}/{rng.randrange(1, 40)}, {code} {city}"
    p.created = dt.datetime(2015, 6, 1) + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 365 * 10))
    return p


def random_phone(rng: random.Random) -> str:
    return f"+48 {rng.randrange(500, 900)} {rng.randrange(1000):03d} {rng.randrange(1000):03d}"


_PHRASES: list[str] = []


def words_text(rng: random.Random, nbytes: int, per_line: int = 4) -> str:
    """Roughly nbytes of Polish clinical prose, in lines of per_line three-word phrases."""
    if not _PHRASES:  # drawing whole phrases is 3x faster than drawing words
        prng = random.Random("phrases")
        _PHRASES.extend(" ".join(prng.choices(WORDS, k=3)) for _ in range(8192))
    n = max(2, nbytes // 27)
    w = rng.choices(_PHRASES, k=n)
    return "\n".join(" ".join(w[i:i + per_line]) for i in range(0, n, per_line))


# ----------------------------------------------------------------------------------------------
# DICOM-like CT series
# ----------------------------------------------------------------------------------------------

ROWS = COLS = 512
NPIX = ROWS * COLS


def _elem(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in (b"UI", b"OB", b"OW") else b" "
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return (group.to_bytes(2, "little") + elem.to_bytes(2, "little") + vr + b"\0\0"
                + len(value).to_bytes(4, "little") + value)
    return (group.to_bytes(2, "little") + elem.to_bytes(2, "little") + vr
            + len(value).to_bytes(2, "little") + value)


def dicom_header(p: Patient, modality: str, study_date: dt.date, study_uid: str, n: int,
                 pixel_len: int) -> bytes:
    us = lambda v: v.to_bytes(2, "little")  # noqa: E731
    sop = f"{study_uid}.{n}"
    meta = b"".join([
        _elem(0x0002, 0x0001, b"OB", b"\0\1"),
        _elem(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.2"),
        _elem(0x0002, 0x0003, b"UI", sop.encode()),
        _elem(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1"),
    ])
    body = b"".join([
        _elem(0x0008, 0x0005, b"CS", b"ISO_IR 192"),
        _elem(0x0008, 0x0018, b"UI", sop.encode()),
        _elem(0x0008, 0x0020, b"DA", study_date.strftime("%Y%m%d").encode()),
        _elem(0x0008, 0x0060, b"CS", modality.encode()),
        _elem(0x0008, 0x0080, b"LO", "Gabinet Stomatologiczny Uśmiech".encode()),
        _elem(0x0010, 0x0010, b"PN", f"{p.last}^{p.first}".encode()),
        _elem(0x0010, 0x0020, b"LO", p.pesel.encode()),
        _elem(0x0010, 0x0030, b"DA", p.birth.strftime("%Y%m%d").encode()),
        _elem(0x0020, 0x000D, b"UI", study_uid.encode()),
        _elem(0x0020, 0x0013, b"IS", str(n).encode()),
        _elem(0x0020, 0x1041, b"DS", f"{n * 0.3:.1f}".encode()),
        _elem(0x0028, 0x0010, b"US", us(ROWS)),
        _elem(0x0028, 0x0011, b"US", us(COLS)),
        _elem(0x0028, 0x0100, b"US", us(16)),
        _elem(0x0028, 0x0101, b"US", us(12)),
        _elem(0x0028, 0x0102, b"US", us(11)),
    ])
    group_len = _elem(0x0002, 0x0000, b"UL", len(meta).to_bytes(4, "little"))
    pixel_hdr = (b"\xe0\x7f\x10\x00" + b"OW\0\0" + pixel_len.to_bytes(4, "little"))
    return b"\0" * 128 + b"DICM" + group_len + meta + body + pixel_hdr


class Anatomy:
    """Per-study smooth 'anatomy' for the high bytes and a circular field of view.

    Each pixel is hi*256 + lo: hi comes from a smooth separable pattern inside the circle (0
    outside), lo is noise, 6 bits inside the circle and 3 bits outside. That compresses about
    2x with zstd -3, close to real CT. Slices move through the pattern row by row.
    """

    def __init__(self, rng: random.Random, nslices: int):
        a, b, c = rng.uniform(40, 90), rng.uniform(15, 35), rng.uniform(30, 70)
        fx = bytes(int(4 + 3 * math.sin(x / a) + 2 * math.cos(x / b)) for x in range(COLS))
        self.rows = []
        for y in range(ROWS + nslices // 2 + 2):
            gy = int(3 + 2 * math.sin(y / c))
            self.rows.append(fx.translate(bytes(min(15, v + gy) for v in range(256))))
        inside = bytearray(NPIX)
        r = 240
        for y in range(ROWS):
            dy = y - ROWS // 2
            if abs(dy) < r:
                dx = int(math.sqrt(r * r - dy * dy))
                start = y * COLS + COLS // 2 - dx
                inside[start:start + 2 * dx] = b"\xff" * (2 * dx)
        inside = bytes(inside)
        self.mask_hi = int.from_bytes(inside, "little")
        self.mask_lo = int.from_bytes(inside.translate(bytes([0x07] * 255 + [0x3F])), "little")

    def slice(self, rng: random.Random, k: int) -> bytes:
        hi = b"".join(self.rows[k // 2:k // 2 + ROWS])
        hi = (int.from_bytes(hi, "little") & self.mask_hi).to_bytes(NPIX, "little")
        lo = (int.from_bytes(rng.randbytes(NPIX), "little") & self.mask_lo).to_bytes(NPIX, "little")
        out = bytearray(2 * NPIX)
        out[0::2] = lo
        out[1::2] = hi
        return bytes(out)


def write_series(root: str, rng: random.Random, p: Patient, modality: str, date: dt.date,
                 nslices: int, folder_suffix: str = "") -> tuple[int, int]:
    name = nfc(f"{p.last}_{p.first}_{modality}_{date.isoformat()}{folder_suffix}")
    d = os.path.join(root, "imaging", name)
    i = 2
    while os.path.exists(d):
        d = os.path.join(root, "imaging", f"{name}_{i}")
        i += 1
    os.makedirs(d)
    uid = f"1.2.826.0.1.3680043.8.498.{rng.randrange(10**12)}.{rng.randrange(10**9)}"
    anat = Anatomy(rng, nslices)
    total = 0
    for k in range(nslices):
        pix = anat.slice(rng, k)
        data = dicom_header(p, modality, date, uid, k + 1, len(pix)) + pix
        with open(os.path.join(d, f"slice_{k + 1:04d}.dcm"), "wb") as f:
            f.write(data)
        total += len(data)
    return nslices, total


def gen_dicom(root: str, rng: random.Random, patients: list[Patient], budget: int) -> tuple[int, int]:
    slice_size = 2 * NPIX + 600
    remaining = max(1, budget // slice_size)
    files = total = 0
    while remaining > 0:
        n = min(remaining, rng.randrange(60, 220))
        p = rng.choice(patients)
        modality = "CBCT" if rng.random() < 0.7 else "CT"
        date = HISTORY_START + dt.timedelta(days=rng.randrange((CLOCK_START.date() - HISTORY_START).days))
        f, t = write_series(root, rng, p, modality, date, n)
        files, total, remaining = files + f, total + t, remaining - n
    return files, total


# ----------------------------------------------------------------------------------------------
# Photos
# ----------------------------------------------------------------------------------------------

def jpeg_bytes(rng: random.Random, size: int, comment: str) -> bytes:
    com = comment.encode()
    head = (b"\xff\xd8"                                                   # SOI
            + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x00\x48\x00\x48\x00\x00"  # APP0
            + b"\xff\xfe" + (len(com) + 2).to_bytes(2, "big") + com        # COM
            + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00")   # SOS
    body = max(0, size - len(head) - 2)
    return head + rng.randbytes(body) + b"\xff\xd9"


def gen_photos(root: str, rng: random.Random, patients: list[Patient], budget: int) -> tuple[int, int]:
    files = total = 0
    counters: dict[str, int] = {}
    while total < budget:
        size = min(rng.randrange(2 * MiB, 6 * MiB), max(64 * 1024, budget - total))
        p = rng.choice(patients)
        year = str(rng.randrange(2016, 2027))
        d = os.path.join(root, "photos", year, p.folder())
        os.makedirs(d, exist_ok=True)
        n = counters.get(d, 0) + 1
        counters[d] = n
        data = jpeg_bytes(rng, size, f"{p.last} {p.first} foto wewnątrzustne {n}")
        with open(os.path.join(d, f"IMG_{n:04d}.jpg"), "wb") as f:
            f.write(data)
        files, total = files + 1, total + len(data)
    return files, total


# ----------------------------------------------------------------------------------------------
# Notes (many small files)
# ----------------------------------------------------------------------------------------------

def note_text(rng: random.Random, p: Patient, when: dt.datetime, kind: str, size: int) -> bytes:
    head = (f"Pacjent: {p.first} {p.last} (PESEL {p.pesel})\n"
            f"Data: {when:%Y-%m-%d %H:%M}\nLekarz: {rng.choice(DOCTORS)}\nRodzaj: {kind}\n\n")
    return (head + words_text(rng, max(64, size - len(head))) + "\n").encode()


def write_note(root: str, rng: random.Random, p: Patient, when: dt.datetime) -> int:
    kind = rng.choice(NOTE_KINDS)
    d = os.path.join(root, "notes", p.folder())
    os.makedirs(d, exist_ok=True)
    base = f"{when:%Y-%m-%d_%H%M}_{kind}"
    path = os.path.join(d, base + ".txt")
    i = 2
    while os.path.exists(path):
        path = os.path.join(d, f"{base}_{i}.txt")
        i += 1
    data = note_text(rng, p, when, kind, rng.randrange(1024, 20 * 1024 + 1))
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def gen_notes(root: str, rng: random.Random, patients: list[Patient], budget: int) -> tuple[int, int]:
    files = total = 0
    days = (CLOCK_START.date() - HISTORY_START).days
    while total < budget:
        p = rng.choice(patients)
        day = HISTORY_START + dt.timedelta(days=rng.randrange(days))
        when = dt.datetime.combine(day, dt.time(8)) + dt.timedelta(minutes=rng.randrange(600))
        total += write_note(root, rng, p, when)
        files += 1
    return files, total


# ----------------------------------------------------------------------------------------------
# SQL dump
# ----------------------------------------------------------------------------------------------

SQL_HEADER = """--
-- PostgreSQL database dump
--

-- Dumped from database version 15.6 (Debian 15.6-0+deb12u1)
-- Dumped by pg_dump version 15.6 (Debian 15.6-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET client_min_messages = warning;

CREATE TABLE public.patients (
    id integer NOT NULL,
    pesel character(11) NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    birth_date date NOT NULL,
    phone text,
    email text,
    address text,
    created_at timestamp without time zone NOT NULL
);

CREATE TABLE public.visits (
    id integer NOT NULL,
    patient_id integer NOT NULL,
    doctor text NOT NULL,
    starts_at timestamp without time zone NOT NULL,
    duration_min integer NOT NULL,
    room integer NOT NULL,
    procedure_code text NOT NULL,
    status text NOT NULL
);

CREATE TABLE public.notes (
    id integer NOT NULL,
    visit_id integer NOT NULL,
    author text NOT NULL,
    created_at timestamp without time zone NOT NULL,
    body text NOT NULL
);

CREATE TABLE public.invoices (
    id integer NOT NULL,
    patient_id integer NOT NULL,
    visit_id integer NOT NULL,
    number text NOT NULL,
    issued_at timestamp without time zone NOT NULL,
    net numeric(10,2) NOT NULL,
    vat numeric(10,2) NOT NULL,
    gross numeric(10,2) NOT NULL,
    status text NOT NULL
);

"""

TABLES = ("patients", "visits", "notes", "invoices")


def section_marker(table: str) -> str:
    return f"--\n-- Data for Name: {table}; Type: TABLE DATA; Schema: public; Owner: clinic\n--\n\n"


def sql_footer(maxids: dict[str, int]) -> str:
    lines = ["--\n-- Sequence values\n--\n\n"]
    for t in TABLES:
        lines.append(f"SELECT pg_catalog.setval('public.{t}_id_seq', {maxids[t]}, true);\n")
    lines.append("\n")
    for t in TABLES:
        lines.append(f"ALTER TABLE ONLY public.{t}\n    ADD CONSTRAINT {t}_pkey PRIMARY KEY (id);\n\n")
    lines.append("--\n-- PostgreSQL database dump complete\n--\n\n")
    return "".join(lines)


def sq(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def patient_row(p: Patient) -> str:
    return (f"INSERT INTO public.patients (id, pesel, first_name, last_name, birth_date, phone, "
            f"email, address, created_at) VALUES ({p.pid}, '{p.pesel}', {sq(p.first)}, "
            f"{sq(p.last)}, '{p.birth}', '{p.phone}', '{p.email}', {sq(p.address)}, "
            f"'{p.created:%Y-%m-%d %H:%M:%S}');\n")


def visit_row(vid: int, pid: int, doctor: str, when: dt.datetime, dur: int, room: int, code: str,
              status: str) -> str:
    return (f"INSERT INTO public.visits (id, patient_id, doctor, starts_at, duration_min, room, "
            f"procedure_code, status) VALUES ({vid}, {pid}, {sq(doctor)}, "
            f"'{when}', {dur}, {room}, '{code}', '{status}');\n")


def note_row(rng: random.Random, nid: int, vid: int, when: dt.datetime) -> str:
    body = words_text(rng, rng.randrange(100, 900), per_line=10_000)
    return (f"INSERT INTO public.notes (id, visit_id, author, created_at, body) VALUES ({nid}, "
            f"{vid}, {sq(rng.choice(DOCTORS))}, '{when}', {sq(body)});\n")


def invoice_row(rng: random.Random, iid: int, pid: int, vid: int, when: dt.datetime, price: int,
                status: str) -> str:
    net = price * rng.uniform(0.9, 1.1)
    vat = 0.0 if rng.random() < 0.8 else net * 0.23
    return (f"INSERT INTO public.invoices (id, patient_id, visit_id, number, issued_at, net, vat, "
            f"gross, status) VALUES ({iid}, {pid}, {vid}, 'FV/{when:%Y/%m}/{iid:06d}', "
            f"'{when}', {net:.2f}, {vat:.2f}, {net + vat:.2f}, '{status}');\n")


def slot_time(rng: random.Random, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(8)) + dt.timedelta(minutes=30 * rng.randrange(20))


def gen_sql(root: str, rng: random.Random, patients: list[Patient], budget: int) -> tuple[int, int]:
    # The dump holds ~6.4 KB per patient across its tables; the shared patient pool (used for
    # file names) is extended with further patients to reach the budget.
    per_patient = 6400
    npat = max(len(patients), budget // per_patient)
    allp = list(patients) + [make_patient(rng, i + 1) for i in range(len(patients), npat)]
    nvisits = npat * 6
    days = (CLOCK_START.date() - HISTORY_START).days
    # Visits: chronological; the last ~2% are booked in the future ("scheduled").
    future = max(20, nvisits // 50)
    past = nvisits - future
    nid = iid = 0
    day_offsets = sorted(rng.randrange(days) for _ in range(past))
    path = os.path.join(root, "clinic.sql")
    # Rows are written as they are made (visits straight into the dump, notes and invoices into
    # side files appended afterwards) so memory stays small at any scale.
    with open(path, "w", encoding="utf-8") as out, \
            open(path + ".notes", "w+", encoding="utf-8") as out_n, \
            open(path + ".invoices", "w+", encoding="utf-8") as out_i:
        out.write(SQL_HEADER + section_marker("patients"))
        out.writelines(patient_row(p) for p in allp)
        out.write("\n" + section_marker("visits"))
        for k in range(nvisits):
            vid = k + 1
            p = rng.choice(allp)
            if k < past:
                when = slot_time(rng, HISTORY_START + dt.timedelta(days=day_offsets[k]))
                status = "done" if rng.random() < 0.93 else rng.choice(["cancelled", "no_show"])
            else:
                s = k - past  # booked chronologically from now on: 4 rooms x 20 slots a day
                when = (CLOCK_START + dt.timedelta(days=s // 80)
                        + dt.timedelta(minutes=30 * ((s // 4) % 20)))
                status = "scheduled"
            code, _, price = rng.choice(PROCEDURES)
            doctor = rng.choice(DOCTORS)
            out.write(visit_row(vid, p.pid, doctor, when, rng.choice((30, 30, 60, 90)),
                                rng.randrange(1, 5), code, status))
            if status == "done":
                for _ in range(1 if rng.random() < 0.8 else 2):
                    nid += 1
                    out_n.write(note_row(rng, nid, vid, when + dt.timedelta(minutes=25)))
                iid += 1
                out_i.write(invoice_row(rng, iid, p.pid, vid, when + dt.timedelta(minutes=40),
                                        price, "paid" if rng.random() < 0.97 else "unpaid"))
        for table, side in (("notes", out_n), ("invoices", out_i)):
            out.write("\n" + section_marker(table))
            side.seek(0)
            shutil.copyfileobj(side, out, 1 << 20)
        out.write("\n" + sql_footer({"patients": npat, "visits": nvisits, "notes": nid,
                                     "invoices": iid}))
    os.remove(path + ".notes")
    os.remove(path + ".invoices")
    return 1, os.path.getsize(path)


# ----------------------------------------------------------------------------------------------
# Generate
# ----------------------------------------------------------------------------------------------

def generate(root: str, scale_mib: float, seed: str) -> dict:
    total = int(scale_mib * MiB)
    os.makedirs(root, exist_ok=True)
    prng = random.Random(f"{seed}/patients")
    patients = [make_patient(prng, i + 1) for i in range(max(50, int(scale_mib * 2)))]
    # Make sure the documented example names are among them.
    for i, (last, first, female) in enumerate([("Kowalski", "Jan", False),
                                               ("Wiśniewska", "Zofia", True),
                                               ("Żurawska", "Łucja", True)]):
        patients[i].last, patients[i].first, patients[i].female = last, first, female
    stats = {}
    for name, share, fn in [("dicom", SHARE_DICOM, gen_dicom), ("photos", SHARE_PHOTOS, gen_photos),
                            ("sql", SHARE_SQL, gen_sql), ("notes", SHARE_NOTES, gen_notes)]:
        t0 = time.monotonic()
        files, nbytes = fn(root, random.Random(f"{seed}/{name}"), patients, int(total * share))
        stats[name] = {"files": files, "bytes": nbytes, "seconds": round(time.monotonic() - t0, 2)}
    state = {"version": 1, "seed": seed, "scale_mib": scale_mib, "mutations": 0,
             "clock": CLOCK_START.isoformat(), "patients": len(patients)}
    write_state(root, state)
    return stats


def write_state(root: str, state: dict) -> None:
    tmp = os.path.join(root, STATE_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, os.path.join(root, STATE_FILE))


# ----------------------------------------------------------------------------------------------
# Mutate: one hour of clinic activity
# ----------------------------------------------------------------------------------------------

INSERT_RE = {t: f"INSERT INTO public.{t} (".encode() for t in TABLES}


def _block_bounds(data: bytes, table: str) -> tuple[int, int]:
    """(start, end) of the INSERT lines of table's data section; end is just past the last one."""
    m = section_marker(table).encode()
    start = data.find(m)
    if start < 0:
        raise SystemExit(f"clinic.sql: no data section for {table}")
    start += len(m)
    nxt = data.find(b"\n--\n", start)
    nxt = len(data) if nxt < 0 else nxt
    last = data.rfind(INSERT_RE[table], start, nxt)
    end = start if last < 0 else data.index(b"\n", last) + 1
    return start, end


def _last_id(data: bytes, table: str, start: int, end: int) -> int:
    last = data.rfind(INSERT_RE[table], start, end)
    if last < 0:
        return 0
    m = re.search(rb"VALUES \((\d+),", data[last:data.index(b"\n", last)])
    return int(m.group(1)) if m else 0


def _parse_patient(line: str) -> Patient:
    m = re.search(r"VALUES \((\d+), '(\d+)', '([^']*)', '([^']*)', '([\d-]+)'", line)
    p = Patient()
    p.pid, p.pesel, p.first, p.last = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    p.birth = dt.date.fromisoformat(m.group(5))
    return p


def mutate(root: str) -> dict:
    with open(os.path.join(root, STATE_FILE)) as f:
        state = json.load(f)
    seed, n = state["seed"], state["mutations"]
    clock = dt.datetime.fromisoformat(state["clock"])
    rng = random.Random(f"{seed}/mutate/{n}")
    sql_path = os.path.join(root, "clinic.sql")
    with open(sql_path, "rb") as f:
        data = f.read()
    old_size = len(data)
    target = max(4096, int(old_size * 0.005))

    bounds = {t: _block_bounds(data, t) for t in TABLES}
    ids = {t: _last_id(data, t, *bounds[t]) for t in TABLES}

    # --- in-place edits -------------------------------------------------------------------
    edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement), non-overlapping
    ps, pe = bounds["patients"]
    touched = set()
    for _ in range(rng.randrange(2, 6)):  # a few patients change phone / e-mail
        pos = rng.randrange(ps, pe)
        ls = data.rfind(b"\n", ps - 1, pos) + 1
        le = data.index(b"\n", ls) + 1
        if ls in touched:
            continue
        touched.add(ls)
        line = data[ls:le].decode()
        line = re.sub(r"'\+48 \d+ \d+ \d+'", "'" + random_phone(rng) + "'", line, count=1)
        if rng.random() < 0.3:
            line = re.sub(r"'([a-z.]+)(\d*)@example\.pl'",
                          lambda m: f"'{m.group(1)}{rng.randrange(100)}@example.pl'", line, count=1)
        edits.append((ls, le, line.encode()))
    # This hour's appointments: the earliest still-'scheduled' visits are now done.
    vs, ve = bounds["visits"]
    done_visits = []  # (vid, pid, when, code)
    pos = vs
    for _ in range(rng.randrange(3, 8)):
        hit = data.find(b", 'scheduled');\n", pos, ve)
        if hit < 0:
            break
        ls = data.rfind(b"\n", vs - 1, hit) + 1
        le = hit + len(b", 'scheduled');\n")
        line = data[ls:le].decode()
        m = re.search(r"VALUES \((\d+), (\d+), '[^']*', '([^']*)', \d+, \d+, '(\w+)'", line)
        done_visits.append((int(m.group(1)), int(m.group(2)),
                            dt.datetime.fromisoformat(m.group(3)), m.group(4)))
        status = "done" if rng.random() < 0.9 else "no_show"
        edits.append((ls, le, line.replace("'scheduled'", f"'{status}'").encode()))
        pos = le

    # --- new rows -------------------------------------------------------------------------
    new = {t: [] for t in TABLES}
    added = 0
    prices = {c: pr for c, _, pr in PROCEDURES}
    npat_new = rng.randrange(0, 3)
    for _ in range(npat_new):
        ids["patients"] += 1
        p = make_patient(rng, ids["patients"])
        p.created = clock + dt.timedelta(minutes=rng.randrange(60))
        row = patient_row(p)
        new["patients"].append(row)
        added += len(row.encode())
    queue = list(done_visits)
    while added < target:
        if queue:
            vid, pid, when, code = queue.pop()
        else:  # walk-ins and follow-ups done this hour
            ids["visits"] += 1
            vid, pid = ids["visits"], rng.randrange(1, ids["patients"] + 1)
            when = clock + dt.timedelta(minutes=rng.randrange(0, 60, 10))
            code = rng.choice(PROCEDURES)[0]
            row = visit_row(vid, pid, rng.choice(DOCTORS), when, 30, rng.randrange(1, 5), code, "done")
            new["visits"].append(row)
            added += len(row.encode())
        ids["notes"] += 1
        row = note_row(rng, ids["notes"], vid, when + dt.timedelta(minutes=25))
        new["notes"].append(row)
        added += len(row.encode())
        ids["invoices"] += 1
        row = invoice_row(rng, ids["invoices"], pid, vid, when + dt.timedelta(minutes=40),
                          prices.get(code, 200), "paid")
        new["invoices"].append(row)
        added += len(row.encode())
        # ... and a booking for a future visit
        ids["visits"] += 1
        future = clock + dt.timedelta(days=rng.randrange(14, 28))
        row = visit_row(ids["visits"], pid, rng.choice(DOCTORS), slot_time(rng, future.date()),
                        rng.choice((30, 60)), rng.randrange(1, 5), rng.choice(PROCEDURES)[0],
                        "scheduled")
        new["visits"].append(row)
        added += len(row.encode())
    for t in TABLES:
        end = bounds[t][1]
        if new[t]:
            edits.append((end, end, "".join(new[t]).encode()))
    # Sequence values in the footer.
    for t in TABLES:
        m = re.search(rf"SELECT pg_catalog\.setval\('public\.{t}_id_seq', (\d+), true\);\n".encode(),
                      data)
        if m:
            edits.append((m.start(), m.end(),
                          f"SELECT pg_catalog.setval('public.{t}_id_seq', {ids[t]}, true);\n".encode()))
    edits.sort(key=lambda e: (e[0], e[1]))
    out, prev = [], 0
    for s, e, rep in edits:
        out += [data[prev:s], rep]
        prev = e
    out.append(data[prev:])
    tmp = sql_path + ".tmp"
    with open(tmp, "wb") as f:
        for piece in out:
            f.write(piece)
    os.replace(tmp, sql_path)
    new_size = os.path.getsize(sql_path)

    # --- new files: a small image series and a few notes ------------------------------------
    pids = [p for p in (rng.randrange(1, state["patients"] + 1) for _ in range(8))]
    prng = random.Random(f"{seed}/patients")
    pool = [make_patient(prng, i + 1) for i in range(state["patients"])]
    for i, (last, first) in enumerate([("Kowalski", "Jan"), ("Wiśniewska", "Zofia"),
                                       ("Żurawska", "Łucja")]):
        pool[i].last, pool[i].first = last, first
    nslices = max(2, min(16, int(state["scale_mib"] // 128)))
    sp = pool[pids[0] - 1]
    series_files, series_bytes = write_series(root, rng, sp, "CBCT", clock.date(), nslices,
                                              folder_suffix=f"_{clock:%H}h")
    note_bytes = 0
    nnotes = rng.randrange(3, 7)
    for k in range(nnotes):
        p = pool[pids[1 + k] - 1] if 1 + k < len(pids) else rng.choice(pool)
        note_bytes += write_note(root, rng, p, clock + dt.timedelta(minutes=rng.randrange(60)))

    state["mutations"] = n + 1
    state["clock"] = (clock + dt.timedelta(hours=1)).isoformat()
    write_state(root, state)
    return {"sql_bytes_before": old_size, "sql_bytes_after": new_size,
            "sql_growth_pct": round(100 * (new_size - old_size) / old_size, 3),
            "sql_lines_edited": sum(1 for s, e, _ in edits if e > s),
            "series_slices": series_files, "series_bytes": series_bytes,
            "notes": nnotes, "note_bytes": note_bytes, "clock": state["clock"]}


# ----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("dir", help="corpus directory")
    ap.add_argument("--scale", type=float, default=1024, help="corpus size in MiB (default 1024)")
    ap.add_argument("--seed", default="arka", help="seed (default 'arka')")
    ap.add_argument("--mutate", action="store_true",
                    help="simulate one hour of clinic activity on an existing corpus")
    ap.add_argument("--force", action="store_true",
                    help="replace an existing corpus in DIR (only if it has corpus.json)")
    ap.add_argument("--quiet", "-q", action="store_true")
    a = ap.parse_args()
    t0 = time.monotonic()
    if a.mutate:
        if not os.path.exists(os.path.join(a.dir, STATE_FILE)):
            print(f"corpus.py: {a.dir}: no {STATE_FILE}; generate a corpus first", file=sys.stderr)
            return 2
        stats = mutate(a.dir)
    else:
        if os.path.isdir(a.dir) and os.listdir(a.dir):
            if not os.path.exists(os.path.join(a.dir, STATE_FILE)):
                print(f"corpus.py: {a.dir} is not empty and is not a corpus; refusing",
                      file=sys.stderr)
                return 2
            if not a.force:
                print(f"corpus.py: {a.dir} already holds a corpus; use --force to replace it",
                      file=sys.stderr)
                return 2
            shutil.rmtree(a.dir)
        if a.scale <= 0:
            print("corpus.py: --scale must be positive", file=sys.stderr)
            return 2
        stats = generate(a.dir, a.scale, a.seed)
    stats["seconds"] = round(time.monotonic() - t0, 2)
    if not a.quiet:
        print(json.dumps(stats, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
