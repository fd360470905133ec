#!/usr/bin/env bash
# Coverage-guided fuzzing of arka-proto's decoders: everything that parses bytes read from
# storage (fuzz/, a cargo-fuzz project with one libFuzzer target per parser).
#
#   bash scripts/fuzz.sh                    120 s per target (a real session)
#   bash scripts/fuzz.sh --smoke            15 s per target (CI, run by scripts/test.sh)
#   bash scripts/fuzz.sh --seconds N        N s per target
#   bash scripts/fuzz.sh ... pack tree      only the named targets (default: all)
#   bash scripts/fuzz.sh --regen-seeds ...  rewrite fuzz/seeds/ first (after a format change)
#
# Needs the nightly toolchain (`cargo +nightly`); installs cargo-fuzz if missing. Each
# target starts from fuzz/seeds/<target> (committed, small, deterministic: written by
# fuzz/examples/gen_seeds.rs) plus fuzz/corpus/<target> (gitignored, grows across runs).
# Crash reproducers land in fuzz/artifacts/<target>/, libFuzzer logs in fuzz/logs/.
# Replay one: cargo +nightly fuzz run -s none <target> fuzz/artifacts/<target>/<file>
#
# Environment: FUZZ_SANITIZER (default none: the code is safe Rust and this doubles the
# executions per second; `address` for ASan).
# Exits non-zero if the build fails or any target crashes, panics, times out or OOMs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ -n "${CI:-}" ]; then
    export CARGO_TERM_COLOR=never
fi

log() { echo "fuzz: $*" >&2; }
die() { log "$*"; exit 2; }

SECONDS_PER_TARGET=120
REGEN=0
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SECONDS_PER_TARGET=15 ;;
        --seconds)
            [ $# -ge 2 ] || die "--seconds needs a number"
            SECONDS_PER_TARGET=$2
            shift ;;
        --seconds=*) SECONDS_PER_TARGET=${1#--seconds=} ;;
        --regen-seeds) REGEN=1 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) TARGETS+=("$1") ;;
    esac
    shift
done
case "$SECONDS_PER_TARGET" in
    ''|*[!0-9]*|0) die "--seconds wants a positive whole number, got '$SECONDS_PER_TARGET'" ;;
esac
SANITIZER=${FUZZ_SANITIZER:-none}

cargo +nightly --version >/dev/null 2>&1 \
    || die "the nightly toolchain is required: rustup toolchain install nightly"
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ "$REGEN" = 1 ] || [ ! -d fuzz/seeds ]; then
    log "writing seed inputs (fuzz/examples/gen_seeds.rs)"
    cargo +nightly run --quiet --manifest-path fuzz/Cargo.toml --example gen_seeds
fi

log "cargo fuzz build (sanitizer: $SANITIZER)"
cargo +nightly fuzz build --fuzz-dir "$ROOT/fuzz" -s "$SANITIZER"

if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(cargo +nightly fuzz list --fuzz-dir "$ROOT/fuzz")
fi
[ ${#TARGETS[@]} -gt 0 ] || die "no fuzz targets found"

# The number after `name` in the text (last occurrence), or nothing.
field() { grep -oE "$1[[:space:]]*[0-9]+" <<<"$2" | tail -1 | awk '{print $NF}' || true; }

mkdir -p fuzz/logs
SUMMARY=()
FAILED=()
for t in "${TARGETS[@]}"; do
    corpus=$ROOT/fuzz/corpus/$t
    seeds=$ROOT/fuzz/seeds/$t
    logf=$ROOT/fuzz/logs/$t.log
    mkdir -p "$corpus" "$seeds"
    log "$t: fuzzing for ${SECONDS_PER_TARGET}s (log: fuzz/logs/$t.log)"
    status=ok
    if ! cargo +nightly fuzz run --fuzz-dir "$ROOT/fuzz" -s "$SANITIZER" "$t" "$corpus" "$seeds" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$logf" 2>&1; then
        status=FAILED
        FAILED+=("$t")
        # The panic message, the first frames of the backtrace and the reproducer.
        { grep -E -A1 "panicked at" "$logf" | head -n 4
          grep -E "^ *[0-9]+: " "$logf" | head -n 12
          grep -E "ERROR: libFuzzer|^SUMMARY" "$logf" | head -n 2; } >&2 || true
        artifact=$(grep -o "Test unit written to [^ ]*" "$logf" | tail -1 | sed 's/Test unit written to //')
        if [ -n "$artifact" ] && [ -f "$artifact" ]; then
            log "$t: reproducer $artifact ($(wc -c <"$artifact") bytes), hex (first 512 bytes):"
            head -c 512 "$artifact" | od -An -v -tx1 | tr -d ' \n' >&2
            echo >&2
            log "$t: replay: cargo +nightly fuzz run -s $SANITIZER $t $artifact"
        else
            tail -n 30 "$logf" >&2
        fi
    fi
    done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$logf" | tail -1 || true)
    [ -n "$done_line" ] || done_line=$(grep -E "^#[0-9]+[[:space:]]" "$logf" | tail -1 || true)
    runs=$(field "stat::number_of_executed_units:" "$(cat "$logf")")
    eps=$(field "stat::average_exec_per_sec:" "$(cat "$logf")")
    cov=$(field "cov:" "$done_line")
    ft=$(field "ft:" "$done_line")
    corp=$(field "corp:" "$done_line")
    SUMMARY+=("$(printf '%-10s %-7s %12s %10s %6s %7s %7s' "$t" "$status" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
done

echo "==> fuzz summary (${SECONDS_PER_TARGET}s per target, sanitizer $SANITIZER)"
printf '%-10s %-7s %12s %10s %6s %7s %7s\n' target result execs exec/s cov ft corpus
printf '%s\n' "${SUMMARY[@]}"
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${FAILED[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
