#!/usr/bin/env bash
# The demo: build arka, make a clinic-like sample folder, back it up to a local repository,
# simulate an hour of clinic work, back up again, then restore as the clinic owner would
# and check the restore is byte-exact. Everything lives in $ARKA_DEMO_DIR (default
# /tmp/arka-demo), which is recreated on each run.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=${ARKA_DEMO_DIR:-/tmp/arka-demo}
scale=${ARKA_DEMO_MIB:-64}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "build (release)"
cargo build --release -p arka-agent --quiet
arka=$PWD/target/release/arka

rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
export ARKA_CACHE_DIR=$demo/cache

say "a sample clinic folder: CBCT series, X-ray photos, an SQL dump, notes ($scale MiB)"
python3 "$OLDPWD/tests/perf/corpus.py" sample --scale "$scale" --quiet
du -sh sample

# The files cache trusts a file's timestamps only once they are 2 s old (a file changed in
# the same instant it was read could otherwise be missed), so let the fresh sample age.
sleep 2

say "the clinic owner's recovery key (stays offline; only it can read backups)"
recipient=$("$arka" keygen -o recovery.key)
echo "recipient: $recipient"

say "a repository on the 'NAS' (here: ./nas), and the agent key for the clinic server"
"$arka" init --repo nas --recipient "$recipient" --agent-key-out agent.key

export ARKA_REPO=$demo/nas ARKA_AGENT_KEY=$demo/agent.key
say "first backup (agent key only: it can write backups, not read them)"
"$arka" backup sample

say "an hour of clinic work, then the next backup (deduplicated, unchanged files not re-read)"
python3 "$OLDPWD/tests/perf/corpus.py" sample --mutate --quiet
"$arka" backup sample

say "a database dump streamed through the same pipeline"
"$arka" backup --stdin-from-command "cat sample/clinic.sql" --name clinic.sql

say "snapshots (visible with the agent key)"
"$arka" snapshots

say "restoring needs the recovery key; the agent key is refused"
if "$arka" restore --identity agent.key latest --target restored 2>&1; then
    echo "unexpected: the agent key restored" >&2
    exit 1
fi

say "restore the files snapshot with the recovery key"
files_snapshot=$("$arka" snapshots --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["source_kind"]=="files"][-1])')
"$arka" restore --identity recovery.key "$files_snapshot" --target restored
diff -r sample restored/sample && echo "restored tree is identical to the sample folder"
"$arka" dump --identity recovery.key latest clinic.sql | cmp - sample/clinic.sql && echo "dumped clinic.sql is identical"

say "done: everything is in $demo"
