#!/usr/bin/env bash
# Benchmark (not a test): hourly pg_dumps of a clinic database backed up through stdin by arka,
# restic and borg (if installed), each with encryption on, into a repository of its own.
#
#   tests/perf/hourly-dumps.sh [--scale MIB] [--hours N] [--only arka,restic,borg] [--build]
#                              [--reuse]
#
# tests/perf/clinicdb.py makes the dumps (a seeded clinic database of ~0.2 x MIB, default
# 1024, then N hours of clinic activity, default 6, pg_dump after each); --reuse keeps dumps
# already in $BENCH_DIR/dumps if they were made with the same --scale and --hours.
# Each tool backs up dump 0, then dumps 1..N, from its standard input:
#   arka backup --stdin-from-command 'cat dump_K.sql' --name clinic.sql
#   restic backup --stdin --stdin-filename clinic.sql < dump_K.sql
#   borg create --stdin-name clinic.sql REPO::hK - < dump_K.sql
# and the repository's growth on disk is what that hour stored. "% of compressed dump" divides
# it by `zstd -3` of that hour's dump.
# Results: a Markdown table on stdout, also written to $BENCH_DIR/hourly.md, and the figures
# compare.sh puts in its own table in $BENCH_DIR/hourly.env.
#
# Environment: BENCH_DIR (default /tmp/arka-bench; its dumps/ and hourly/ subdirectories are
# replaced), ARKA (default target/release/arka).
set -euo pipefail

usage() {
    sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

SCALE=1024
HOURS=6
ONLY="arka,restic,borg"
ONLY_GIVEN=0
BUILD=0
REUSE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --scale=*) SCALE=${1#*=}; shift ;;
        --hours) HOURS=${2:?--hours needs a value}; shift 2 ;;
        --hours=*) HOURS=${1#*=}; shift ;;
        --only) ONLY=${2:?--only needs a value}; ONLY_GIVEN=1; shift 2 ;;
        --only=*) ONLY=${1#*=}; ONLY_GIVEN=1; shift ;;
        --build) BUILD=1; shift ;;
        --reuse) REUSE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "hourly-dumps.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/arka-bench}
ARKA=${ARKA:-$REPO_ROOT/target/release/arka}
DUMPS="$BENCH_DIR/dumps"
H="$BENCH_DIR/hourly"
W="$H/work"

log() { echo "hourly-dumps.sh: $*" >&2; }

TOOLS=()
IFS=, read -r -a wanted <<<"$ONLY"
for t in "${wanted[@]}"; do
    case "$t" in
        arka | restic) TOOLS+=("$t") ;;
        borg)
            if command -v borg >/dev/null 2>&1; then TOOLS+=(borg)
            elif [ "$ONLY_GIVEN" = 1 ]; then log "borg requested but not installed"; exit 2; fi ;;
        "") ;;
        *) log "unknown tool in --only: $t (arka, restic, borg)"; exit 2 ;;
    esac
done
[ "${#TOOLS[@]}" -gt 0 ] || { log "no tools selected"; exit 2; }
has_tool() { local t; for t in "${TOOLS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }
command -v zstd >/dev/null 2>&1 || { log "zstd (the command) is needed for the compressed sizes"; exit 2; }

if has_tool arka && { [ "$BUILD" = 1 ] || [ ! -x "$ARKA" ]; }; then
    log "building arka (cargo build --release -p arka-agent)"
    (cd "$REPO_ROOT" && cargo build --release -p arka-agent)
    ARKA="$REPO_ROOT/target/release/arka"
fi

# ---- the dumps ----------------------------------------------------------------------------
made_with() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["dump_mib"], s["hours"])' "$1" 2>/dev/null || true; }
want=$(awk -v s="$SCALE" 'BEGIN {print 0.2 * s}')
if [ "$REUSE" = 1 ] && [ "$(made_with "$DUMPS/clinicdb.json")" = "$(python3 -c "print(float($want), $HOURS)")" ]; then
    log "reusing the dumps in $DUMPS"
else
    log "making the clinic database dumps (clinicdb.py --scale $SCALE --hours $HOURS)"
    rm -rf "$DUMPS"
    python3 "$REPO_ROOT/tests/perf/clinicdb.py" "$DUMPS" --scale "$SCALE" --hours "$HOURS"
fi

rm -rf "$H"
mkdir -p "$H/repos" "$W"
trap 'rm -rf "$H/repos" "$H/cache"' EXIT
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$H/cache/restic"
export BORG_PASSPHRASE=bench BORG_BASE_DIR="$H/cache/borg"
unset ARKA_REPO ARKA_AGENT_KEY ARKA_IDENTITY RESTIC_REPOSITORY BORG_REPO || true

fsize() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}'; }
now() { date +%s.%N; }
declare -A ADDED=() SECS=() FAILED=()
DUMP=() ZST=()
for k in $(seq 0 "$HOURS"); do
    f=$(printf '%s/dump_%02d.sql' "$DUMPS" "$k")
    DUMP[k]=$(stat -c %s "$f")
    ZST[k]=$(zstd -3 -T1 -q -c "$f" | wc -c)
done

init() {
    case "$1" in
        arka)
            "$ARKA" keygen -o "$W/recovery.key" >"$W/arka.keygen.out" 2>&1 &&
                "$ARKA" init --repo "$H/repos/arka" \
                    --recipient "$(grep -o 'age1[0-9a-z]*' "$W/arka.keygen.out" | head -n 1)" \
                    --agent-key-out "$W/agent.key" >"$W/arka.init.out" 2>&1 ;;
        restic) restic init --repo "$H/repos/restic" --repository-version 2 >"$W/restic.init.out" 2>&1 ;;
        borg) borg init --encryption repokey-blake2 "$H/repos/borg" >"$W/borg.init.out" 2>&1 ;;
    esac
}

# backup TOOL K: dump K into the tool's repository, from stdin.
backup() {
    local t=$1 k=$2 f
    f=$(printf '%s/dump_%02d.sql' "$DUMPS" "$k")
    case "$t" in
        arka) "$ARKA" backup --repo "$H/repos/arka" --agent-key "$W/agent.key" --host bench -q \
            --stdin-from-command "cat $(printf '%q' "$f")" --name clinic.sql </dev/null ;;
        restic) restic --repo "$H/repos/restic" backup --host bench --stdin --stdin-filename clinic.sql <"$f" ;;
        borg) borg create --stdin-name clinic.sql "$H/repos/borg::h$k" - <"$f" ;;
    esac
}

for t in "${TOOLS[@]}"; do
    if ! init "$t"; then
        log "$t: init failed"; tail -n 5 "$W/$t".*.out >&2 || true; FAILED[$t]=init; continue
    fi
    prev=$(fsize "$H/repos/$t")
    for k in $(seq 0 "$HOURS"); do
        log "$t: dump $k"
        t0=$(now)
        if ! backup "$t" "$k" >"$W/$t.$k.out" 2>"$W/$t.$k.err"; then
            log "$t: backup of dump $k failed; its stderr:"; tail -n 10 "$W/$t.$k.err" >&2 || true
            FAILED[$t]="dump $k"; break
        fi
        SECS[$t.$k]=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')
        cur=$(fsize "$H/repos/$t")
        ADDED[$t.$k]=$((cur - prev))
        prev=$cur
    done
done

# ---- report -------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
kib() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1024}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", 100 * a / b}'; }
# mean_added TOOL: mean bytes added over hours 1..N (empty if any hour is missing).
mean_added() {
    local t=$1 k s=0
    for k in $(seq 1 "$HOURS"); do
        [ -n "${ADDED[$t.$k]:-}" ] || return 0
        s=$((s + ADDED[$t.$k]))
    done
    echo $((s / HOURS))
}
zst_mean=0
for k in $(seq 1 "$HOURS"); do zst_mean=$((zst_mean + ZST[k])); done
zst_mean=$((zst_mean / HOURS))

report() {
    local t k line m r
    echo "### Hourly dumps of a clinic database — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- dumps: \`tests/perf/clinicdb.py --scale $SCALE --hours $HOURS\` ($(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("PostgreSQL", s["postgresql"].split()[0] + ";", ", ".join(f"{v} {k}" for k, v in s["rows"].items()))' "$DUMPS/clinicdb.json"))"
    echo "- dump 0: $(mib "${DUMP[0]}") MiB, $(mib "${ZST[0]}") MiB with \`zstd -3\`; dump $HOURS: $(mib "${DUMP[$HOURS]}") MiB"
    echo "- command: \`tests/perf/hourly-dumps.sh --scale $SCALE --hours $HOURS$( [ "$ONLY_GIVEN" = 1 ] && echo " --only $ONLY")\`"
    echo
    line="| backup | dump MiB | zstd MiB |"
    for t in "${TOOLS[@]}"; do line+=" $t KiB added (% of zstd) | $t s |"; done
    echo "$line"
    line="|---|---:|---:|"
    for _ in "${TOOLS[@]}"; do line+="---:|---:|"; done
    echo "$line"
    for k in $(seq 0 "$HOURS"); do
        if [ "$k" = 0 ]; then line="| dump 0 (first) |"; else line="| hour $k |"; fi
        line+=" $(mib "${DUMP[k]}") | $(mib "${ZST[k]}") |"
        for t in "${TOOLS[@]}"; do
            if [ -n "${ADDED[$t.$k]:-}" ]; then
                line+=" $(kib "${ADDED[$t.$k]}") ($(pct "${ADDED[$t.$k]}" "${ZST[k]}")%) | ${SECS[$t.$k]} |"
            else
                line+=" — | — |"
            fi
        done
        echo "$line"
    done
    line="| **mean of hours 1–$HOURS** | | $(mib "$zst_mean") |"
    for t in "${TOOLS[@]}"; do
        m=$(mean_added "$t")
        if [ -n "$m" ]; then line+=" **$(kib "$m") ($(pct "$m" "$zst_mean")%)** | |"; else line+=" — | |"; fi
    done
    echo "$line"
    echo
    for r in restic borg; do
        if ! has_tool arka || ! has_tool "$r"; then continue; fi
        m=$(mean_added arka); r_m=$(mean_added "$r")
        if [ -z "$m" ] || [ -z "$r_m" ] || [ "$r_m" -le 0 ]; then continue; fi
        echo "- arka stores $(awk -v a="$m" -v b="$r_m" 'BEGIN {printf "%.2f×", a / b}') of what $r stores per hour$( [ "$r" = restic ] && echo " (target ≤ 0.5×)")"
    done
    for t in "${!FAILED[@]}"; do echo "- **$t failed** at ${FAILED[$t]} (see $W)"; done
}

report | tee "$BENCH_DIR/hourly.md"
{
    for t in "${TOOLS[@]}"; do
        m=$(mean_added "$t")
        [ -n "$m" ] && echo "HOURLY_ADDED_$t=$m"
    done
    echo "HOURLY_ZST=$zst_mean"
    echo "HOURLY_HOURS=$HOURS"
    echo "HOURLY_DUMP0=${DUMP[0]}"
} >"$BENCH_DIR/hourly.env"
[ "${#FAILED[@]}" -eq 0 ]
