#!/usr/bin/env bash
# Install what arka's tests and benchmarks need on a fresh Debian bookworm machine.
#
# Idempotent: checks each component first and installs only what is missing; runs
# `apt-get update` only when something has to be installed. Quiet on success.
#
# To add a component: write a `need_<name>` check below and list it in COMPONENTS
# (apt packages go in the APT_WANTED map; things built another way, e.g. Garage via
# `cargo install`, get their own install_<name> function, see the placeholders).
set -euo pipefail

log() { echo "install-test-deps: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "not root and no sudo; cannot install packages"; fi
fi
export DEBIAN_FRONTEND=noninteractive

# --------------------------------------------------------------------------------------
# Debian packages: "command to probe" -> "package that provides it".
# --------------------------------------------------------------------------------------
declare -A APT_WANTED=(
    [python3]=python3              # tests/perf/corpus.py (standard library only)
    [restic]=restic                # benchmark peer (Debian: 0.14)
    [borg]=borgbackup              # benchmark peer (Debian: 1.2)
    [/usr/bin/time]=time           # peak RSS in tests/perf/compare.sh (`time -v`)
    # --- later work (not installed yet) ---
    # [psql]=postgresql            # `command` sources: pg_dump, pgbench (pg_ctlcluster 15 main start)
    # [mariadb]=mariadb-server     # `command` sources: mariadb-dump
    # [chromium]=chromium          # status page and fleet dashboard, headless
)

have() {
    case "$1" in
        /*) [ -x "$1" ] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

apt_missing=()
for probe in "${!APT_WANTED[@]}"; do
    have "$probe" || apt_missing+=("${APT_WANTED[$probe]}")
done

if [ "${#apt_missing[@]}" -gt 0 ]; then
    log "installing: ${apt_missing[*]}"
    apt_log=$(mktemp)
    trap 'rm -f "$apt_log"' EXIT
    # Output is kept and shown only if apt fails, so success stays quiet.
    if ! { $SUDO apt-get update -qq &&
           $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"; } \
           >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        log "apt-get failed"
        exit 1
    fi
fi

# --------------------------------------------------------------------------------------
# Components not from apt (later work; keep each idempotent and quiet on success).
# --------------------------------------------------------------------------------------
# install_garage() {
#     # S3-compatible store for tests: `cargo install garage --locked` (~12 min on 2 cores),
#     # cached in ~/.cargo/bin afterwards.
#     have garage || cargo install garage --locked --quiet
# }
# install_garage

# --------------------------------------------------------------------------------------
# Final check: everything that must be there is there.
# --------------------------------------------------------------------------------------
for probe in "${!APT_WANTED[@]}"; do
    if ! have "$probe"; then
        log "still missing after install: $probe (${APT_WANTED[$probe]})"
        exit 1
    fi
done
