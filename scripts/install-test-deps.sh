#!/usr/bin/env bash
# Install what arka's tests and benchmarks need on a fresh Debian bookworm machine.
#
# Idempotent: checks each component first and installs only what is missing; runs
# `apt-get update` only when something has to be installed. Quiet on success.
#
# To add a component: apt packages go in the APT_WANTED map; things built another way
# (e.g. Garage via `cargo install`) get their own install_<name> function below.
set -euo pipefail

log() { echo "install-test-deps: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "not root and no sudo; cannot install packages"; fi
fi
export DEBIAN_FRONTEND=noninteractive

# --------------------------------------------------------------------------------------
# Debian packages: "command (or absolute path) to probe" -> "package that provides it".
# --------------------------------------------------------------------------------------
declare -A APT_WANTED=(
    [python3]=python3              # tests/perf/corpus.py (standard library only)
    [curl]=curl                    # scripts/wine-test.sh reads the status page
    [restic]=restic                # benchmark peer (Debian: 0.14)
    [borg]=borgbackup              # benchmark peer (Debian: 1.2)
    [/usr/bin/time]=time           # peak RSS in tests/perf/compare.sh (`time -v`)
    [/usr/bin/chromium]=chromium   # tests/tests/status_page.rs: the status page, headless
    # A font the status page screenshots can render text with (Chromium does not pull one
    # in without recommends).
    [/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf]=fonts-dejavu-core
    # Real databases for the dump suites (tests/src/databases.rs starts throwaway servers on
    # loopback; it finds PostgreSQL under /usr/lib/postgresql/*/bin, 15 on bookworm).
    [/usr/lib/postgresql/15/bin/initdb]=postgresql     # server: initdb, postgres
    [/usr/lib/postgresql/15/bin/pg_dump]=postgresql-client
    [psql]=postgresql-client
    [/usr/sbin/mariadbd]=mariadb-server                # server; mariadb-install-db
    [mariadb]=mariadb-client                           # client and mariadb-dump (mysqldump)
    [mariadb-dump]=mariadb-client
)

have() {
    case "$1" in
        /*) [ -e "$1" ] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

# The Windows cross-build and its Wine test (scripts/build-windows.sh, scripts/wine-test.sh):
# Debian's newer Rust with its std sources (for -Zbuild-std), the mingw-w64 linker, and
# Wine. Checked by package name: a probe by file would take bookworm's older rustc, or a
# rustup toolchain earlier on PATH, for the ones needed.
WINDOWS_PACKAGES=(rustc-web cargo-web rust-web-src binutils-mingw-w64-x86-64 gcc-mingw-w64-x86-64 wine64)
have_package() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_missing=()
for probe in "${!APT_WANTED[@]}"; do
    have "$probe" || apt_missing+=("${APT_WANTED[$probe]}")
done
for p in "${WINDOWS_PACKAGES[@]}"; do
    have_package "$p" || apt_missing+=("$p")
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
# Components not from apt (keep each idempotent and quiet on success).
# --------------------------------------------------------------------------------------
# Garage: the S3-compatible store the S3 suites start on loopback (tests/src/garage.rs) and
# tests/perf/garage-compare.sh uses. Built from crates.io (~15 min on 2 cores, once), then
# cached in ~/.cargo/bin. LMDB is the metadata engine the tests configure.
CARGO_BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"
have_garage() { have garage || [ -x "$CARGO_BIN_DIR/garage" ]; }
install_garage() {
    have_garage && return 0
    if ! have cargo; then
        log "cargo is needed to build garage (install Rust, then rerun)"
        exit 1
    fi
    local garage_log
    garage_log=$(mktemp)
    log "installing garage with cargo install (about 15 minutes on 2 cores; log: $garage_log)"
    if ! cargo install garage --locked --no-default-features --features bundled-libs,lmdb,sqlite \
            >"$garage_log" 2>&1; then
        tail -n 40 "$garage_log" >&2
        log "cargo install garage failed (full log: $garage_log)"
        exit 1
    fi
    rm -f "$garage_log"
}
install_garage

# --------------------------------------------------------------------------------------
# Final check: everything that must be there is there.
# --------------------------------------------------------------------------------------
for probe in "${!APT_WANTED[@]}"; do
    if ! have "$probe"; then
        log "still missing after install: $probe (${APT_WANTED[$probe]})"
        exit 1
    fi
done
for p in "${WINDOWS_PACKAGES[@]}"; do
    if ! have_package "$p"; then
        log "still missing after install: $p"
        exit 1
    fi
done
if ! have_garage; then
    log "still missing after install: garage"
    exit 1
fi
