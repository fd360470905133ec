#!/usr/bin/env bash
# The full test command: what CI runs (.ci/run) and what a developer runs before pushing.
#   1. install missing test dependencies (idempotent, quiet on success)
#   2. formatting, 3. clippy with warnings as errors, 4. a 15 s fuzz smoke per proto
#      decoder (scripts/fuzz.sh --smoke), 5. the whole test suite in release
#      mode (the large-file tests are too slow unoptimised), 6. the Windows build, with a
#      backup/restore round trip and the Windows service under Wine (scripts/wine-test.sh).
# Exits non-zero on the first failure; ends with "wine-test: ok".
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${CI:-}" ]; then
    export CARGO_TERM_COLOR=never
fi

step() { echo "==> $*" >&2; }

step "install test dependencies"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "fuzz smoke (scripts/fuzz.sh --smoke)"
bash scripts/fuzz.sh --smoke

step "cargo test --release"
cargo test --workspace --release

step "Windows build and round trip under Wine"
bash scripts/wine-test.sh
