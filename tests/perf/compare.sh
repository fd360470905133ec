#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2016  # functions are called indirectly ("${t}_backup"); bash -c script
# Benchmark (not a test): arka side by side with restic (and borg, if installed) on the
# clinic-like corpus made by tests/perf/corpus.py.
#
#   tests/perf/compare.sh [--scale MIB] [--hours N] [--no-db] [--only arka,restic,borg] [--build]
#                         [--keep]
#
# Phases, each run for every tool in turn on the same data:
#   1. first backup of a fresh corpus (time, MiB/s, repository size, peak RSS)
#   2. unchanged re-backup
#   3. next-hour backup after `corpus.py --mutate` (time, bytes added to the repository)
#   4. restore of the latest snapshot into an empty directory (time, MiB/s, peak RSS),
#      checked to be identical to the corpus (diff -r)
#   5. hourly dumps (tests/perf/hourly-dumps.sh, skipped with --no-db): a seeded clinic
#      PostgreSQL database of ~0.2 x MIB dumped, then N hours of clinic activity (default 6),
#      dumped after each; each dump backed up through stdin; bytes added per hour
# Results: a Markdown table on stdout, also written to $BENCH_DIR/results.md.
#
# Environment: BENCH_DIR (default /tmp/arka-bench; its corpus/, repos/, restore/, work/ and
# cache/ subdirectories are replaced), ARKA (default target/release/arka, built with
# `cargo build --release -p arka-agent` if missing or with --build).
# Each tool runs with its default settings (restic: repository v2, compression auto; borg:
# repokey-blake2, lz4). The page cache cannot be dropped here: every tool reads a warm corpus.
set -euo pipefail

usage() {
    sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

SCALE=1024
HOURS=6
DB=1
ONLY="arka,restic,borg"
ONLY_GIVEN=0
BUILD=0
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --scale=*) SCALE=${1#*=}; shift ;;
        --hours) HOURS=${2:?--hours needs a value}; shift 2 ;;
        --hours=*) HOURS=${1#*=}; shift ;;
        --no-db) DB=0; shift ;;
        --only) ONLY=${2:?--only needs a value}; ONLY_GIVEN=1; shift 2 ;;
        --only=*) ONLY=${1#*=}; ONLY_GIVEN=1; shift ;;
        --build) BUILD=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/arka-bench}
ARKA=${ARKA:-$REPO_ROOT/target/release/arka}
CORPUS_PY="$REPO_ROOT/tests/perf/corpus.py"
TIME=/usr/bin/time

log() { echo "compare.sh: $*" >&2; }

bash "$REPO_ROOT/scripts/install-test-deps.sh"

# ---- which tools --------------------------------------------------------------------------
TOOLS=()
IFS=, read -r -a wanted <<<"$ONLY"
for t in "${wanted[@]}"; do
    case "$t" in
        arka | restic) TOOLS+=("$t") ;;
        borg)
            if command -v borg >/dev/null 2>&1; then
                TOOLS+=(borg)
            elif [ "$ONLY_GIVEN" = 1 ]; then
                log "borg requested but not installed"; exit 2
            fi ;;
        "") ;;
        *) log "unknown tool in --only: $t (arka, restic, borg)"; exit 2 ;;
    esac
done
[ "${#TOOLS[@]}" -gt 0 ] || { log "no tools selected"; exit 2; }
has_tool() { local t; for t in "${TOOLS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

if has_tool arka; then
    if [ "$BUILD" = 1 ] || [ ! -x "$ARKA" ]; then
        if [ "$ARKA" != "$REPO_ROOT/target/release/arka" ] && [ "$BUILD" = 0 ]; then
            log "ARKA=$ARKA is not an executable"; exit 2
        fi
        log "building arka (cargo build --release -p arka-agent)"
        (cd "$REPO_ROOT" && cargo build --release -p arka-agent)
        ARKA="$REPO_ROOT/target/release/arka"
    fi
fi

# ---- work area ----------------------------------------------------------------------------
CORPUS="$BENCH_DIR/corpus"
REPOS="$BENCH_DIR/repos"
RESTORE="$BENCH_DIR/restore"
W="$BENCH_DIR/work"     # keys, per-run stdout/stderr and /usr/bin/time reports
CACHE="$BENCH_DIR/cache"
mkdir -p "$BENCH_DIR"
rm -rf "$CORPUS" "$REPOS" "$RESTORE" "$W" "$CACHE"
mkdir -p "$REPOS" "$RESTORE" "$W" "$CACHE"
cleanup() {
    if [ "$KEEP" = 0 ]; then rm -rf "$CORPUS" "$REPOS" "$RESTORE" "$CACHE" "$BENCH_DIR/dumps"; fi
}
trap cleanup EXIT

export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$CACHE/restic"
export BORG_PASSPHRASE=bench BORG_BASE_DIR="$CACHE/borg"
unset ARKA_REPO ARKA_AGENT_KEY ARKA_IDENTITY RESTIC_REPOSITORY BORG_REPO || true

declare -A T=() RSS=() SIZE=() FAILED=() OK=()
now() { date +%s.%N; }
fsize() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}'; }
nfiles() { find "$1" -type f | wc -l; }

# run_timed TOOL PHASE CMD...: wall time into T[TOOL.PHASE], peak RSS (KiB) into RSS[...].
run_timed() {
    local tool=$1 phase=$2 t0 t1 rc=0
    shift 2
    sync
    t0=$(now)
    "$TIME" -v -o "$W/$tool.$phase.time" "$@" </dev/null >"$W/$tool.$phase.out" 2>"$W/$tool.$phase.err" || rc=$?
    t1=$(now)
    if [ "$rc" -ne 0 ]; then
        log "$tool $phase failed (exit $rc); last lines of its stderr:"
        tail -n 15 "$W/$tool.$phase.err" >&2 || true
        FAILED[$tool]="$phase"
        return 1
    fi
    T[$tool.$phase]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    RSS[$tool.$phase]=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/$tool.$phase.time")
}

# plain run (not measured), output kept in work/
run_quiet() {
    local tool=$1 phase=$2
    shift 2
    if ! "$@" </dev/null >"$W/$tool.$phase.out" 2>"$W/$tool.$phase.err"; then
        log "$tool $phase failed; last lines of its stderr:"
        tail -n 15 "$W/$tool.$phase.err" >&2 || true
        FAILED[$tool]="$phase"
        return 1
    fi
}

# ---- per-tool commands --------------------------------------------------------------------
arka_init() {
    local r
    run_quiet arka keygen "$ARKA" keygen -o "$W/recovery.key" || return 1
    r=$(grep -o 'age1[0-9a-z]*' "$W/arka.keygen.out" | head -n 1)
    [ -n "$r" ] || { log "arka keygen printed no age1… recipient"; FAILED[arka]=keygen; return 1; }
    run_quiet arka init "$ARKA" init --repo "$REPOS/arka" --recipient "$r" \
        --agent-key-out "$W/agent.key"
}
arka_backup() { run_timed arka "$1" "$ARKA" backup --repo "$REPOS/arka" --agent-key "$W/agent.key" "$CORPUS"; }
arka_restore() { run_timed arka restore "$ARKA" restore --repo "$REPOS/arka" --identity "$W/recovery.key" latest --target "$1"; }

restic_init() { run_quiet restic init restic init --repo "$REPOS/restic" --repository-version 2; }
restic_backup() { run_timed restic "$1" restic --repo "$REPOS/restic" backup --host bench "$CORPUS"; }
restic_restore() { run_timed restic restore restic --repo "$REPOS/restic" restore latest --target "$1"; }

borg_init() { run_quiet borg init borg init --encryption repokey-blake2 "$REPOS/borg"; }
borg_backup() { run_timed borg "$1" borg create "$REPOS/borg::bench-$1" "$CORPUS"; }
borg_restore() {
    run_timed borg restore bash -c 'cd "$1" && exec borg extract "$2"' _ "$1" "$REPOS/borg::bench-backup3"
}

alive() { [ -z "${FAILED[$1]:-}" ]; }

# ---- the run ------------------------------------------------------------------------------
log "generating corpus: $SCALE MiB in $CORPUS"
t0=$(now)
python3 "$CORPUS_PY" "$CORPUS" --scale "$SCALE" -q
GEN_S=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')
BYTES1=$(fsize "$CORPUS")
FILES1=$(nfiles "$CORPUS")

for t in "${TOOLS[@]}"; do
    "${t}_init" || continue
done

for phase in backup1 backup2; do
    for t in "${TOOLS[@]}"; do
        alive "$t" || continue
        log "$t: $phase"
        "${t}_backup" "$phase" || continue
        SIZE[$t.$phase]=$(fsize "$REPOS/$t")
    done
done

log "simulating an hour of clinic activity (corpus.py --mutate)"
python3 "$CORPUS_PY" "$CORPUS" --mutate -q
BYTES2=$(fsize "$CORPUS")
FILES2=$(nfiles "$CORPUS")

for t in "${TOOLS[@]}"; do
    alive "$t" || continue
    log "$t: backup3 (next hour)"
    "${t}_backup" backup3 || continue
    SIZE[$t.backup3]=$(fsize "$REPOS/$t")
done

for t in "${TOOLS[@]}"; do
    alive "$t" || continue
    target="$RESTORE/$t"
    mkdir -p "$target"
    log "$t: restore"
    "${t}_restore" "$target" || continue
    found=$(find "$target" -name corpus.json -type f -printf '%h\n' -quit)
    if [ -n "$found" ] && diff -r -q "$CORPUS" "$found" >"$W/$t.verify" 2>&1; then
        OK[$t]=yes
    else
        OK[$t]=NO
        log "$t: restored tree differs from the corpus (see $W/$t.verify)"
        head -n 5 "$W/$t.verify" >&2 || true
    fi
    rm -rf "$target"
done

# Phase 5: hourly database dumps, in their own script (also runnable alone).
HOURLY_OK=""
rm -f "$BENCH_DIR/hourly.env" "$BENCH_DIR/hourly.md"
if [ "$DB" = 1 ]; then
    log "hourly dumps of a clinic database (hourly-dumps.sh --scale $SCALE --hours $HOURS)"
    only_list=$(IFS=,; echo "${TOOLS[*]}")
    if BENCH_DIR="$BENCH_DIR" ARKA="$ARKA" bash "$REPO_ROOT/tests/perf/hourly-dumps.sh" --scale "$SCALE" \
        --hours "$HOURS" --only "$only_list" >"$W/hourly.out" 2>"$W/hourly.err"; then
        HOURLY_OK=yes
    else
        HOURLY_OK=NO
        log "hourly-dumps.sh failed; last lines of its stderr:"
        tail -n 15 "$W/hourly.err" >&2 || true
    fi
    # shellcheck disable=SC1091  # written by hourly-dumps.sh
    [ -f "$BENCH_DIR/hourly.env" ] && . "$BENCH_DIR/hourly.env"
fi

# ---- report -------------------------------------------------------------------------------
# val TOOL KEY: the figure, or empty if the tool did not produce it.
val() {
    local t=$1 k=$2
    case "$k" in
        t1) echo "${T[$t.backup1]:-}" ;;
        t2) echo "${T[$t.backup2]:-}" ;;
        t3) echo "${T[$t.backup3]:-}" ;;
        tr) echo "${T[$t.restore]:-}" ;;
        mbs1) [ -n "${T[$t.backup1]:-}" ] && awk -v b="$BYTES1" -v s="${T[$t.backup1]}" 'BEGIN {printf "%.1f", b / 1048576 / s}' ;;
        mbsr) [ -n "${T[$t.restore]:-}" ] && awk -v b="$BYTES2" -v s="${T[$t.restore]}" 'BEGIN {printf "%.1f", b / 1048576 / s}' ;;
        size) [ -n "${SIZE[$t.backup1]:-}" ] && awk -v b="${SIZE[$t.backup1]}" 'BEGIN {printf "%.1f", b / 1048576}' ;;
        added) [ -n "${SIZE[$t.backup3]:-}" ] && [ -n "${SIZE[$t.backup2]:-}" ] &&
            awk -v a="${SIZE[$t.backup3]}" -v b="${SIZE[$t.backup2]}" 'BEGIN {printf "%.2f", (a - b) / 1048576}' ;;
        rssb) local m="" p
            for p in backup1 backup2 backup3; do
                [ -n "${RSS[$t.$p]:-}" ] && { [ -z "$m" ] || [ "${RSS[$t.$p]}" -gt "$m" ]; } && m=${RSS[$t.$p]}
            done
            [ -n "$m" ] && awk -v k="$m" 'BEGIN {printf "%.1f", k / 1024}' ;;
        rssr) [ -n "${RSS[$t.restore]:-}" ] && awk -v k="${RSS[$t.restore]}" 'BEGIN {printf "%.1f", k / 1024}' ;;
        ok) echo "${OK[$t]:-}" ;;
        hourly) local v="HOURLY_ADDED_$t"
            [ -n "${!v:-}" ] && awk -v b="${!v}" 'BEGIN {printf "%.0f", b / 1024}' ;;
        hpct) local v="HOURLY_ADDED_$t"
            [ -n "${!v:-}" ] && [ -n "${HOURLY_ZST:-}" ] && awk -v b="${!v}" -v z="$HOURLY_ZST" 'BEGIN {printf "%.2f%%", 100 * b / z}' ;;
    esac
    return 0
}

# ratio KIND A R: arka vs restic. KIND time: speed-up (R/A); KIND amount: A/R.
ratio() {
    local kind=$1 a=$2 r=$3
    if [ -z "$a" ] || [ -z "$r" ]; then echo "—"; return; fi
    case "$kind" in
        time) awk -v a="$a" -v r="$r" 'BEGIN {
                if (a <= 0) { print "—"; exit }
                x = r / a
                if (x >= 1) printf "%.2f× faster", x; else printf "%.2f× slower", 1 / x }' ;;
        amount) awk -v a="$a" -v r="$r" 'BEGIN { if (r <= 0) print "—"; else printf "%.2f×", a / r }' ;;
        *) echo "—" ;;
    esac
}

# met KIND A R LIMIT: does arka meet the QUALITY.md target (speed-up >= LIMIT, or amount ratio <= LIMIT)?
met() {
    local kind=$1 a=$2 r=$3 lim=$4
    if [ -z "$a" ] || [ -z "$r" ]; then echo "—"; return; fi
    awk -v k="$kind" -v a="$a" -v r="$r" -v l="$lim" 'BEGIN {
        if (k == "time") ok = (a > 0 && r / a >= l); else ok = (r > 0 ? a / r <= l : a <= 0)
        print ok ? "yes" : "**no**" }'
}

cell() { local v; v=$(val "$1" "$2"); echo "${v:-—}"; }

row() { # row LABEL KEY KIND TARGET_TEXT LIMIT
    local label=$1 key=$2 kind=$3 target=$4 lim=$5 line a r t
    line="| $label |"
    for t in arka restic borg; do
        if has_tool "$t"; then line+=" $(cell "$t" "$key") |"; else line+=" — |"; fi
    done
    a=$(val arka "$key"); r=$(val restic "$key")
    if has_tool arka && has_tool restic && [ "$kind" != none ]; then
        line+=" $(ratio "$kind" "$a" "$r") | $target | $(met "$kind" "$a" "$r" "$lim") |"
    else
        line+=" — | $target | — |"
    fi
    echo "$line"
}

versions() {
    local v
    if has_tool arka; then v=$("$ARKA" --version 2>/dev/null | head -n 1) || v="arka (no --version)"; echo -n "${v:-arka}; "; fi
    echo -n "$(restic version | head -n 1 | cut -d' ' -f1-2)"
    if has_tool borg; then echo -n "; $(borg --version)"; fi
    echo
}

report() {
    echo "## arka vs restic$(has_tool borg && echo " vs borg") — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
    echo "- tools: $(versions)"
    echo "- corpus: \`tests/perf/corpus.py --scale $SCALE\`: $FILES1 files, $(awk -v b="$BYTES1" 'BEGIN {printf "%.1f MiB", b / 1048576}') (generated in ${GEN_S}s); after \`--mutate\` (one clinic hour): $FILES2 files, $(awk -v b="$BYTES2" 'BEGIN {printf "%.1f MiB", b / 1048576}')"
    if [ -n "$HOURLY_OK" ]; then
        echo "- database: \`tests/perf/clinicdb.py --scale $SCALE --hours $HOURS\`: a first pg_dump of $(awk -v b="${HOURLY_DUMP0:-0}" 'BEGIN {printf "%.1f MiB", b / 1048576}') ($(awk -v b="${HOURLY_ZST:-0}" 'BEGIN {printf "%.1f MiB", b / 1048576}') with zstd -3), then $HOURS hours of clinic activity, dumped after each"
    fi
    echo "- command: \`tests/perf/compare.sh --scale $SCALE$( [ "$HOURS" != 6 ] && echo " --hours $HOURS")$( [ "$DB" = 0 ] && echo " --no-db")$( [ "$ONLY_GIVEN" = 1 ] && echo " --only $ONLY")\`"
    echo
    echo "| metric | arka | restic | borg | arka vs restic | target | met |"
    echo "|---|---:|---:|---:|---:|---|---|"
    row "first backup, s" t1 time "≥ 3× faster" 3
    row "first backup, MiB/s" mbs1 none "" 0
    row "repository size after first backup, MiB" size amount "≤ 1×" 1
    row "unchanged re-backup, s" t2 time "≥ 4× faster" 4
    row "next-hour backup, s" t3 time "≥ 2.5× faster" 2.5
    row "next-hour backup, MiB added to repository" added amount "≤ 1×" 1
    row "restore, s" tr time "≥ 3× faster" 3
    row "restore, MiB/s" mbsr none "" 0
    row "peak RSS, backup, MiB" rssb amount "≤ 1×" 1
    row "peak RSS, restore, MiB" rssr amount "≤ 1×" 1
    row "restore identical to source" ok none "" 0
    if [ -n "$HOURLY_OK" ]; then
        row "hourly dumps, KiB added per hour (mean of $HOURS)" hourly amount "≤ 0.5×" 0.5
        row "hourly dumps, added per hour as % of zstd dump" hpct none "" 0
    fi
    if [ "${#FAILED[@]}" -gt 0 ]; then
        echo
        for t in "${!FAILED[@]}"; do echo "- **$t failed** at ${FAILED[$t]} (see $W/$t.${FAILED[$t]}.err)"; done
    fi
    if [ "$HOURLY_OK" = NO ]; then echo; echo "- **hourly dumps failed** (see $W/hourly.err)"; fi
    if [ -f "$BENCH_DIR/hourly.md" ]; then echo; sed 's/^### /#### /' "$BENCH_DIR/hourly.md"; fi
}

report | tee "$BENCH_DIR/results.md"
log "results written to $BENCH_DIR/results.md"

bad=0
[ "$HOURLY_OK" = NO ] && bad=1
for t in "${TOOLS[@]}"; do
    alive "$t" || bad=1
    [ "${OK[$t]:-}" = yes ] || bad=1
done
exit "$bad"
