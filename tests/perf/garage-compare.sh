#!/usr/bin/env bash
# shellcheck disable=SC2016  # bash -c scripts
# Benchmark (not a test): backup and restore throughput to an S3 target, arka side by side
# with restic, both writing to the same single-node Garage on loopback.
#
#   tests/perf/garage-compare.sh [--scale MIB] [--keep]
#
# Starts Garage (from PATH or ~/.cargo/bin; scripts/install-test-deps.sh installs it) on free
# loopback ports with a config like the test harness's (tests/src/garage.rs: LMDB, no
# compression, no fsync), makes a key and a bucket, generates the corpus with
# tests/perf/corpus.py (default --scale 512), then for each tool: a first backup to
# s3://bucket/<tool>, and a restore of it into an empty directory, checked with diff -r.
# Results: a Markdown table on stdout, also written to $BENCH_DIR/results.md.
#
# Environment: BENCH_DIR (default /tmp/arka-garage-bench; replaced), ARKA (default
# target/release/arka, built if missing).
set -euo pipefail

usage() { sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

SCALE=512
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --scale=*) SCALE=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "garage-compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/arka-garage-bench}
ARKA=${ARKA:-$REPO_ROOT/target/release/arka}
TIME=/usr/bin/time
log() { echo "garage-compare.sh: $*" >&2; }

bash "$REPO_ROOT/scripts/install-test-deps.sh"
GARAGE=$(command -v garage || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage")
[ -x "$GARAGE" ] || { log "garage not found; run scripts/install-test-deps.sh"; exit 1; }
if [ ! -x "$ARKA" ]; then
    log "building arka (cargo build --release -p arka-agent)"
    (cd "$REPO_ROOT" && cargo build --release -p arka-agent)
fi

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"/{garage,restore,work,cache}
G="$BENCH_DIR/garage"
W="$BENCH_DIR/work"
CORPUS="$BENCH_DIR/corpus"
GARAGE_PID=""
cleanup() {
    [ -n "$GARAGE_PID" ] && kill -9 "$GARAGE_PID" 2>/dev/null && wait "$GARAGE_PID" 2>/dev/null
    if [ "$KEEP" = 0 ]; then rm -rf "$CORPUS" "$G" "$BENCH_DIR/restore" "$BENCH_DIR/cache"; fi
}
trap cleanup EXIT

# ---- Garage -------------------------------------------------------------------------------
read -r S3_PORT RPC_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
cat >"$G/garage.toml" <<EOF
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "lmdb"
lmdb_map_size = "16G"
replication_factor = 1
compression_level = "none"
metadata_fsync = false
data_fsync = false
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"
EOF
g() { RUST_LOG=warn "$GARAGE" -c "$G/garage.toml" "$@"; }
RUST_LOG=garage=info,garage_api_s3=warn "$GARAGE" -c "$G/garage.toml" server >"$G/garage.log" 2>&1 &
GARAGE_PID=$!
for _ in $(seq 1 100); do
    NODE_ID=$(g node id -q 2>/dev/null | cut -d@ -f1) && [ -n "$NODE_ID" ] && break
    kill -0 "$GARAGE_PID" 2>/dev/null || { tail -n 30 "$G/garage.log" >&2; log "garage exited"; exit 1; }
    sleep 0.2
done
[ -n "${NODE_ID:-}" ] || { tail -n 30 "$G/garage.log" >&2; log "garage did not start"; exit 1; }
g layout assign -z dc1 -c 100G "$NODE_ID" >/dev/null
g layout apply --version 1 >/dev/null
KEY_JSON=$(g json-api CreateKey '{"name":"bench"}')
AWS_ACCESS_KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["accessKeyId"])' <<<"$KEY_JSON")
AWS_SECRET_ACCESS_KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secretAccessKey"])' <<<"$KEY_JSON")
g bucket create bench >/dev/null
g bucket allow --read --write --owner bench --key "$AWS_ACCESS_KEY_ID" >/dev/null
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" AWS_REGION=garage AWS_ALLOW_HTTP=true
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$BENCH_DIR/cache/restic" ARKA_CACHE_DIR="$BENCH_DIR/cache/arka"
unset ARKA_REPO ARKA_AGENT_KEY ARKA_IDENTITY RESTIC_REPOSITORY AWS_DEFAULT_REGION AWS_ENDPOINT || true
RESTIC_REPO="s3:http://127.0.0.1:$S3_PORT/bench/restic"
RESTIC=(restic -r "$RESTIC_REPO" -o s3.region=garage)

# Bytes stored in the bucket, as Garage counts them (objects, before its own replication).
bucket_bytes() {
    g json-api GetBucketInfo '{"globalAlias":"bench"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])'
}

# ---- corpus and tools ---------------------------------------------------------------------
log "generating corpus: $SCALE MiB in $CORPUS"
python3 "$REPO_ROOT/tests/perf/corpus.py" "$CORPUS" --scale "$SCALE" -q
BYTES=$(find "$CORPUS" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
FILES=$(find "$CORPUS" -type f | wc -l)

# The first S3 request right after `layout apply` can race the new layout: retry init.
recipient=$("$ARKA" keygen -o "$W/recovery.key")
for i in $(seq 1 30); do
    "$ARKA" init --repo s3://bench/arka --recipient "$recipient" --agent-key-out "$W/agent.key" \
        >"$W/arka.init.out" 2>"$W/arka.init.err" && break
    [ "$i" = 30 ] && { cat "$W/arka.init.err" >&2; log "arka init on Garage failed"; exit 1; }
    rm -f "$W/agent.key"
    sleep 1
done
"${RESTIC[@]}" init >"$W/restic.init.out" 2>"$W/restic.init.err" ||
    { cat "$W/restic.init.err" >&2; log "restic init on Garage failed"; exit 1; }

declare -A T=() RSS=() STORED=() OK=()
now() { date +%s.%N; }
run_timed() { # run_timed KEY CMD...
    local key=$1 t0 t1
    shift
    sync
    t0=$(now)
    if ! "$TIME" -v -o "$W/$key.time" "$@" </dev/null >"$W/$key.out" 2>"$W/$key.err"; then
        tail -n 15 "$W/$key.err" >&2
        log "$key failed"
        exit 1
    fi
    t1=$(now)
    T[$key]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
    RSS[$key]=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$W/$key.time")
}

before=$(bucket_bytes)
log "arka: backup"
run_timed arka.backup "$ARKA" backup --quiet --repo s3://bench/arka --agent-key "$W/agent.key" "$CORPUS"
sleep 2 # Garage updates bucket counters asynchronously
mid=$(bucket_bytes)
STORED[arka]=$((mid - before))
log "restic: backup"
run_timed restic.backup "${RESTIC[@]}" backup --host bench "$CORPUS"
sleep 2
STORED[restic]=$(($(bucket_bytes) - mid))

for t in arka restic; do
    target="$BENCH_DIR/restore/$t"
    mkdir -p "$target"
    log "$t: restore"
    if [ "$t" = arka ]; then
        run_timed arka.restore "$ARKA" restore --quiet --repo s3://bench/arka --identity "$W/recovery.key" \
            latest --target "$target"
    else
        run_timed restic.restore "${RESTIC[@]}" restore latest --target "$target"
    fi
    found=$(find "$target" -name corpus.json -type f -printf '%h\n' -quit)
    if [ -n "$found" ] && diff -r -q "$CORPUS" "$found" >"$W/$t.verify" 2>&1; then OK[$t]=yes; else
        OK[$t]=NO
        log "$t: restored tree differs from the corpus (see $W/$t.verify)"
    fi
    rm -rf "$target"
done

# ---- report -------------------------------------------------------------------------------
mibs() { awk -v b="$BYTES" -v s="$1" 'BEGIN {printf "%.1f", b / 1048576 / s}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
faster() { awk -v a="$1" -v r="$2" 'BEGIN { x = r / a; if (x >= 1) printf "%.2f× faster", x; else printf "%.2f× slower", 1 / x }'; }
report() {
    echo "## arka vs restic to Garage (S3 on loopback) — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), shared; Garage, arka and restic on the same cores"
    echo "- tools: $("$ARKA" --version | head -n 1); $(restic version | cut -d' ' -f1-2); $("$GARAGE" --version 2>/dev/null | head -n 1) (single node, LMDB, no compression, no fsync)"
    echo "- corpus: \`tests/perf/corpus.py --scale $SCALE\`: $FILES files, $(mib "$BYTES") MiB"
    echo "- command: \`tests/perf/garage-compare.sh --scale $SCALE\`"
    echo
    echo "| metric | arka | restic | arka vs restic |"
    echo "|---|---:|---:|---|"
    echo "| first backup, s | ${T[arka.backup]} | ${T[restic.backup]} | $(faster "${T[arka.backup]}" "${T[restic.backup]}") |"
    echo "| first backup, MiB/s | $(mibs "${T[arka.backup]}") | $(mibs "${T[restic.backup]}") | |"
    echo "| stored in the bucket, MiB | $(mib "${STORED[arka]}") | $(mib "${STORED[restic]}") | $(awk -v a="${STORED[arka]}" -v r="${STORED[restic]}" 'BEGIN {printf "%.2f×", a / r}') |"
    echo "| restore, s | ${T[arka.restore]} | ${T[restic.restore]} | $(faster "${T[arka.restore]}" "${T[restic.restore]}") |"
    echo "| restore, MiB/s | $(mibs "${T[arka.restore]}") | $(mibs "${T[restic.restore]}") | |"
    echo "| peak RSS backup / restore, MiB | ${RSS[arka.backup]} / ${RSS[arka.restore]} | ${RSS[restic.backup]} / ${RSS[restic.restore]} | |"
    echo "| restore identical to source | ${OK[arka]} | ${OK[restic]} | |"
}
report | tee "$BENCH_DIR/results.md"
log "results written to $BENCH_DIR/results.md"
[ "${OK[arka]}" = yes ] && [ "${OK[restic]}" = yes ]
