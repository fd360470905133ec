#!/usr/bin/env bash
# The demo: build arka, make a clinic-like sample folder, and run the agent service on it
# with a demo config: the folder (watched) and a database dump backed up to a local
# repository, the status page on http://127.0.0.1:8765/. Once the first backups are in, the
# recovery key restores them and the restore is checked byte for byte; then the agent keeps
# running (change files in the sample folder and watch a new backup appear) until Ctrl-C,
# or for $ARKA_DEMO_SECONDS. Everything lives in $ARKA_DEMO_DIR (default /tmp/arka-demo).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=${ARKA_DEMO_DIR:-/tmp/arka-demo}
scale=${ARKA_DEMO_MIB:-64}
bind=${ARKA_DEMO_BIND:-127.0.0.1:8765}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "build (release)"
cargo build --release -p arka-agent --quiet
arka=$PWD/target/release/arka
root=$PWD

rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
export ARKA_CACHE_DIR=$demo/cache

say "a sample clinic folder: CBCT series, X-ray photos, an SQL dump, notes ($scale MiB)"
python3 "$root/tests/perf/corpus.py" sample --scale "$scale" --quiet
du -sh sample

say "the clinic owner's recovery key (stays offline; only it can read backups)"
recipient=$("$arka" keygen -o recovery.key)
echo "recipient: $recipient"

say "a repository on the 'NAS' (here: ./nas), and the agent key for the clinic server"
"$arka" init --repo nas --recipient "$recipient" --agent-key-out agent.key

cat > agent.toml <<TOML
# The demo agent: see packaging/arka-agent.example.toml for a full clinic configuration.
agent_key = "$demo/agent.key"
state_dir = "$demo/state"

[[target]]
name = "nas"
url = "$demo/nas"

[[source]]
name = "imaging"
kind = "files"
paths = ["$demo/sample"]
schedule = "every 1h"
watch = true
quiet_period = "5s"

[[source]]
name = "clinic-db"
kind = "command"
command = "cat $demo/sample/clinic.sql"
dump_name = "clinic.sql"
schedule = "every 1h"

[status]
bind = "$bind"
TOML

say "the agent service: arka agent run --config agent.toml"
"$arka" agent check --config agent.toml
"$arka" agent run --config agent.toml &
agent=$!
trap 'kill -TERM $agent 2>/dev/null; wait $agent 2>/dev/null || true' EXIT
# Wait until every source has its first backup.
first_backups_done() {
    curl -fsS "http://$bind/status" 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(0 if all(s["state"]=="ok" for s in json.load(sys.stdin)["sources"]) else 1)'
}
for _ in $(seq 1 600); do
    first_backups_done && break
    sleep 1
done
first_backups_done || { echo "the first backups did not finish; see the agent's messages above" >&2; exit 1; }
curl -fsS "http://$bind/healthz" && echo
echo "status page: http://$bind/   (JSON: /status, Prometheus: /metrics)"

export ARKA_REPO=$demo/nas
say "snapshots (visible with the agent key)"
"$arka" snapshots --agent-key agent.key

say "restoring needs the recovery key; the agent key is refused"
if "$arka" restore --identity agent.key latest --target restored 2>&1; then
    echo "unexpected: the agent key restored" >&2
    exit 1
fi

say "restore the folder snapshot with the recovery key, and check it"
files_snapshot=$("$arka" snapshots --agent-key agent.key --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["source_kind"]=="files"][-1])')
"$arka" restore --identity recovery.key "$files_snapshot" --target restored
diff -r sample restored/sample
echo "restored tree is identical to the sample folder"
db_snapshot=$("$arka" snapshots --agent-key agent.key --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["source_kind"]=="command"][-1])')
"$arka" dump --identity recovery.key "$db_snapshot" clinic.sql | cmp - sample/clinic.sql
echo "dumped clinic.sql is identical"

say "the agent keeps running: change files in $demo/sample to see a new backup; Ctrl-C stops it"
if [ -n "${ARKA_DEMO_SECONDS:-}" ]; then
    sleep "$ARKA_DEMO_SECONDS"
else
    wait $agent
fi
