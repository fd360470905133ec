#!/usr/bin/env bash
# Peak memory against backup size: streams N GiB of incompressible data through
# `arka backup --stdin-from-command` for each size given (default 1 and 8) and prints
# the peak RSS of each run. Flat figures mean memory does not grow with the backup.
#   tests/perf/rss.sh [--text] [GiB ...]
# --text streams `seq 1 inf` instead: every chunk is still new, but it compresses about
# 13:1, so a 50 GiB stream fits on a disk with far less free space.
set -euo pipefail
text=0
if [ "${1:-}" = "--text" ]; then text=1; shift; fi
# The command that writes $1 GiB.
stream_command() {
    if [ "$text" = 1 ]; then echo "seq 1 inf | head -c ${1}G"; else echo "head -c ${1}G /dev/urandom"; fi
}
cd "$(dirname "$0")/../.."
[ -x target/release/arka ] || cargo build --release -p arka-agent --quiet
arka=$PWD/target/release/arka
work=$(mktemp -d "${TMPDIR:-/tmp}/arka-rss.XXXXXX")
trap 'rm -rf "$work"' EXIT
recipient=$("$arka" keygen -o "$work/recovery.key")
"$arka" init --repo "$work/repo" --recipient "$recipient" --agent-key-out "$work/agent.key" 2>/dev/null
echo "| streamed | peak RSS | time | throughput |"
echo "|---:|---:|---:|---:|"
for gib in "${@:-1 8}"; do
    for g in $gib; do
        rm -rf "$work/repo/packs" "$work/repo/index" "$work/repo/snapshots"
        /usr/bin/time -f "%M %e" -o "$work/time" "$arka" backup --quiet --repo "$work/repo" --agent-key "$work/agent.key" \
            --stdin-from-command "$(stream_command "$g")" --name "stream-$g" >/dev/null
        read -r kib secs < "$work/time"
        printf '| %s GiB | %s MiB | %s s | %.0f MB/s |\n' "$g" "$((kib / 1024))" "$secs" "$(echo "$g * 1073.741824 / $secs" | bc -l)"
    done
done
