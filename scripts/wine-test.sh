#!/usr/bin/env bash
# The Windows build, run under Wine: the CI step "Windows build and round trip under Wine".
#   1. builds arka.exe (scripts/build-windows.sh) and makes a throwaway Wine prefix under /tmp
#      (WINEDEBUG=-all, no Mono/Gecko), with the test-only bcryptprimitives.dll shim
#   2. keygen, init of C:\arka-test\repo, backup of C:\Clinic\Imaging (a drive-letter path)
#      and of the share \\nas\rvg (UNC), restore, byte-exact comparison from Linux; the
#      share \\nas\imaging beside C:\Clinic\Imaging is refused (one folder on restore)
#   3. a repository on a UNC path (\\nas\backup\arka): init, backup, restore, comparison
#   4. `arka agent check` of the default config C:\ProgramData\arka\agent.toml (Windows
#      paths, a UNC share as source and as replica)
#   5. `arka agent run`: the status page read from Linux over loopback, the scheduled backup,
#      a watched-folder backup after a new file, replication to the UNC replica, then
#      Ctrl-C (SIGINT; Wine turns it into a console Ctrl-C event) stops it cleanly
#   6. the Windows service, exe under "C:\Program Files\arka" (a path with a space):
#      `arka service install` (the command line registered), `sc query`, a start refused
#      for a bad config (the log says why), `arka service start`, the status page, a
#      watched-folder backup by the service, `arka service stop`, `net start` / `net stop`,
#      the service log (no file names in it), `arka service uninstall`
# Every wine call is time-bound; the prefix and its wineserver go away at the end, also on
# failure (KEEP_WINEPREFIX=1 keeps the prefix to look at). Prints "wine-test: ok" at the end.
#
# What Wine cannot show (the test does not pretend to):
#   - SMB: Wine has no SMB client; `\\server\share` is the folder
#     $WINEPREFIX/dosdevices/unc/server/share (a symlink here). So UNC *paths* go through
#     arka and object_store's LocalFileSystem exactly as on Windows, but not the network,
#     share permissions, credentials, or the fact that a service does not see a user's
#     mapped drive letters (Wine has no logon sessions).
#   - Accounts: the service runs as the Unix user, not LocalSystem; no ACLs.
#   - Recovery settings: Wine's ChangeServiceConfig2W has no SERVICE_CONFIG_FAILURE_ACTIONS
#     (error 124, "invalid level"), so `service install` warns that restart-on-failure was
#     not set; on Windows it is set (1 min, 1 min, 5 min).
#   - Watching: Wine's ReadDirectoryChangesW with subfolders reports changes in a subfolder
#     only once a Wine process has opened that subfolder in the current Wine session (a
#     backup's walk does). So the foreground test changes a subfolder after the first
#     backup, and the service test changes the watched folder's top; Windows reports both.
#   - Wine's sc.exe has no `qc`; the registered command line is read from the registry.
#   - Start at boot: Wine has no boot; its services.exe starts automatic services when a
#     Wine session begins. The test starts the service itself.
#   - Wine 8 lacks bcryptprimitives.dll's ProcessPrng (imported by Rust's std): the shim
#     that build-windows.sh builds stands in; real Windows 10+ has the genuine DLL.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "wine-test: $*" >&2; }
fail() {
    log "FAILED: $*"
    exit 1
}

exe=$(bash scripts/build-windows.sh)
shim=$PWD/target/windows/wine-shim/bcryptprimitives.dll

# Debian's wine64 package and its libwine: no reliance on the `wine` alternatives in PATH.
wine64=/usr/lib/wine/wine64 wineserver=/usr/lib/wine/wineserver
[ -x "$wine64" ] || fail "$wine64 is missing (apt-get install wine64, or run scripts/install-test-deps.sh)"
command -v curl >/dev/null || fail "curl is missing"

export WINEPREFIX WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
WINEPREFIX=$(mktemp -d /tmp/arka-wine.XXXXXX)
work=$(mktemp -d /tmp/arka-wine-data.XXXXXX)
cleanup() {
    local rc=$?
    timeout 30 "$wineserver" -k >/dev/null 2>&1 || true
    if [ "$rc" != 0 ] && [ -f "$WINEPREFIX/drive_c/ProgramData/arka/state/agent.log" ]; then
        log "the service log:"
        sed 's/^/  /' "$WINEPREFIX/drive_c/ProgramData/arka/state/agent.log" >&2
    fi
    if [ "${KEEP_WINEPREFIX:-}" = 1 ]; then
        log "kept $WINEPREFIX and $work"
    else
        rm -rf "$WINEPREFIX" "$work"
    fi
}
trap cleanup EXIT

# Every wine call is time-bound.
win() {
    local limit=$1
    shift
    timeout "$limit" "$wine64" "$@"
}
arka() { win 120 'C:\Program Files\arka\arka.exe' "$@"; }
# expect WHAT REGEX COMMAND...: the command succeeds and its output (\r dropped) matches.
expect() {
    local what=$1 pattern=$2 out
    shift 2
    out=$("$@" 2>&1 | tr -d '\r') || fail "$what: $out"
    grep -Eq "$pattern" <<<"$out" || fail "$what: $out"
}

t0=$SECONDS
log "prefix $WINEPREFIX"
win 180 wineboot -i >/dev/null 2>&1 || fail "wineboot could not make the prefix"
# Making a prefix leaves two services.exe running (wineboot restarts it), each with its own
# service list: a service created through one is unknown to the other (error 1060 at
# random). So let that Wine session end, then keep one wineserver, and with it one
# services.exe, for the rest of the test. -p30: it outlives the last Wine process by 30 s
# at most, so a test killed hard leaves nothing running.
timeout 60 "$wineserver" -w || fail "Wine did not settle after wineboot"
timeout 30 "$wineserver" -p30
c=$WINEPREFIX/drive_c
cp "$shim" "$c/windows/system32/"
mkdir -p "$c/Program Files/arka"
cp "$exe" "$c/Program Files/arka/arka.exe"
arka --version >/dev/null || fail "arka.exe --version does not run under Wine"
log "prefix ready in $((SECONDS - t0)) s"

# ---- Data: a clinic folder on C:, a NAS share for imaging, a NAS share for backups ----
imaging=$c/Clinic/Imaging
mkdir -p "$imaging/CBCT/2026-03-14 Kowalski" "$imaging/RVG" "$imaging/empty folder"
head -c 5000000 /dev/urandom >"$imaging/CBCT/2026-03-14 Kowalski/volume.raw"
cp "$imaging/CBCT/2026-03-14 Kowalski/volume.raw" "$imaging/CBCT/copy of volume.raw"
head -c 70000 /dev/urandom >"$imaging/RVG/Zażółć gęślą jaźń.rvg"
printf 'notatka\r\n' >"$imaging/RVG/notatka.txt"
: >"$imaging/RVG/empty.txt"
mkdir -p "$work/nas/rvg/study 7" "$work/nas/backup"
head -c 300000 /dev/urandom >"$work/nas/rvg/study 7/pano.jpg"
mkdir -p "$WINEPREFIX/dosdevices/unc/nas"
ln -s "$work/nas/rvg" "$WINEPREFIX/dosdevices/unc/nas/rvg"
ln -s "$work/nas/rvg" "$WINEPREFIX/dosdevices/unc/nas/imaging"
ln -s "$work/nas/backup" "$WINEPREFIX/dosdevices/unc/nas/backup"

# ---- 2. keygen, init, backup, restore on drive-letter paths and a UNC source ----
mkdir -p "$c/arka-test"
recipient=$(arka keygen -o 'C:\arka-test\owner.key' | tr -d '\r')
case "$recipient" in age1*) ;; *) fail "keygen printed no recipient: $recipient" ;; esac
arka init --repo 'C:\arka-test\repo' --recipient "$recipient" --agent-key-out 'C:\arka-test\agent.key' >/dev/null
# Windows names ignore case: Imaging and imaging would restore into one folder.
rc=0
arka backup --repo 'C:\arka-test\repo' --agent-key 'C:\arka-test\agent.key' 'C:\Clinic\Imaging' '\\nas\imaging' \
    >/dev/null 2>"$work/same.err" || rc=$?
[ "$rc" = 2 ] && grep -q "same name" "$work/same.err" || fail "C:\\Clinic\\Imaging with \\\\nas\\imaging: exit $rc, $(cat "$work/same.err")"
arka backup --repo 'C:\arka-test\repo' --agent-key 'C:\arka-test\agent.key' 'C:\Clinic\Imaging' '\\nas\rvg' >/dev/null
# `arka ls` lines: kind, mode, size, two spaces, the path; top-level paths have no slash.
top=$(arka ls --repo 'C:\arka-test\repo' --identity 'C:\arka-test\owner.key' latest | tr -d '\r' |
    sed -E 's/^[^ ]+ [0-7]+ +[0-9]+  //' | grep -v / | sort | tr '\n' ' ')
[ "$top" = "Imaging rvg " ] || fail "top-level names are '$top', expected 'Imaging rvg ' (a UNC root is named after its share)"
arka restore --repo 'C:\arka-test\repo' --identity 'C:\arka-test\owner.key' latest --target 'C:\arka-test\restored' >/dev/null
diff -r "$imaging" "$c/arka-test/restored/Imaging" || fail "C:\\Clinic\\Imaging restored differently"
diff -r "$work/nas/rvg" "$c/arka-test/restored/rvg" || fail "\\\\nas\\rvg restored differently"
[ -d "$c/arka-test/restored/Imaging/empty folder" ] || fail "the empty folder was not restored"
log "drive-letter and UNC sources: backup, restore, byte-exact"

# ---- 3. a repository on a UNC path ----
arka init --repo '\\nas\backup\arka' --recipient "$recipient" --agent-key-out 'C:\arka-test\nas-agent.key' >/dev/null
[ -f "$work/nas/backup/arka/config" ] || fail "init on \\\\nas\\backup\\arka wrote nothing there"
arka backup --repo '\\nas\backup\arka' --agent-key 'C:\arka-test\nas-agent.key' '\\?\UNC\nas\rvg' >/dev/null
arka restore --repo '\\nas\backup\arka' --identity 'C:\arka-test\owner.key' latest --target '\\nas\backup\restored' >/dev/null
diff -r "$work/nas/rvg" "$work/nas/backup/restored/rvg" || fail "the UNC repository restored differently"
log "UNC repository (\\\\nas\\backup\\arka): init, backup, restore, byte-exact"

# ---- 4. the agent's config at its default place ----
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
pd=$c/ProgramData/arka
mkdir -p "$pd"
cp "$c/arka-test/agent.key" "$pd/agent.key"
cat >"$pd/agent.toml" <<EOF
agent_key = 'C:\ProgramData\arka\agent.key'
state_dir = 'C:\ProgramData\arka\state'

[[target]]
url = 'C:\arka-test\repo'

[[target]]
url = '\\\\nas\backup\replica'

[[source]]
name = "imaging"
kind = "files"
paths = ['C:\Clinic\Imaging', '\\\\nas\rvg']
schedule = "every 1h"
watch = true
quiet_period = "2s"

[status]
bind = "127.0.0.1:$port"
EOF
check=$(arka agent check | tr -d '\r')
case "$check" in *"1 sources, 2 targets"*) ;; *) fail "agent check: $check" ;; esac
log "agent check (default config C:\\ProgramData\\arka\\agent.toml): $check"

# ---- 5. the agent in the foreground ----
status() { curl -sf --max-time 5 "http://127.0.0.1:$port/$1"; }
# Waits up to $1 seconds for status JSON that matches the python expression $2 (on `s`).
wait_status() {
    local limit=$1 expr=$2 end=$((SECONDS + $1))
    while [ "$SECONDS" -lt "$end" ]; do
        if status status 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($expr) else 1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}
snapshots_of() { python3 -c "import json,sys; print(json.load(sys.stdin)['sources'][0]['last_snapshot'] or '')"; }

# timeout itself, not through `win`: SIGINT must reach timeout (which passes it on), not a
# subshell running the function (background subshells ignore SIGINT).
timeout 300 "$wine64" 'C:\Program Files\arka\arka.exe' agent run >"$work/agent.out" 2>&1 &
agent=$!
wait_status 60 "s['sources'][0]['last_snapshot'] is not None" || fail "no scheduled backup within 60 s: $(cat "$work/agent.out")"
first=$(status status | snapshots_of)
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ] || fail "/healthz is not 200"
# (Read whole before grep: grep -q stops early and curl's broken pipe would fail the pipe.)
metrics=$(status metrics) && grep -q '^arka_' <<<"$metrics" || fail "/metrics has no arka_ metrics"
page=$(status "") && grep -q '<html' <<<"$page" || fail "/ is not the HTML page"
# A new study in a subfolder of the watched folder (walked by the first backup): backed up
# once it has been quiet for 2 s.
head -c 100000 /dev/urandom >"$imaging/RVG/new study.rvg"
wait_status 60 "s['sources'][0]['last_snapshot'] not in (None, '$first')" || fail "the watched folder's change was not backed up within 60 s"
wait_status 60 "s['targets'][1]['last_sync_ns'] is not None and s['targets'][1]['backlog_snapshots'] == 0" ||
    fail "the UNC replica was not brought up to date"
[ -f "$work/nas/backup/replica/config" ] || fail "nothing replicated to \\\\nas\\backup\\replica"
kill -INT "$agent"
rc=0
wait "$agent" || rc=$?
[ "$rc" = 0 ] || fail "arka agent run exited $rc after Ctrl-C: $(cat "$work/agent.out")"
status healthz >/dev/null 2>&1 && fail "the status page still answers after the agent stopped"
log "agent run: scheduled backup, watched-folder backup, UNC replica, status page from Linux, Ctrl-C stop"

# ---- 6. the Windows service ----
installed=$(arka service install --config 'C:\ProgramData\arka\agent.toml' 2>"$work/install.err" | tr -d '\r')
case "$installed" in *"installed the arka-agent service"*) ;; *) fail "service install: $installed $(cat "$work/install.err")" ;; esac
grep -v "restart after a failure was not set up" "$work/install.err" >&2 || true
image=$(win 30 reg query 'HKLM\System\CurrentControlSet\Services\arka-agent' /v ImagePath | tr -d '\r' | grep ImagePath)
case "$image" in
    *'"C:\Program Files\arka\arka.exe" service run --config C:\ProgramData\arka\agent.toml'*) ;;
    *) fail "the registered command line is $image" ;;
esac
expect "sc query after install" "STOPPED" win 30 sc query arka-agent
# A config the service cannot run with: start fails and points to the log, which says why.
cp "$pd/agent.toml" "$work/agent.toml.good"
echo 'shedule = "every 1h"' >>"$pd/agent.toml"
rc=0
out=$(arka service start 2>&1 | tr -d '\r') || rc=$?
[ "$rc" != 0 ] && grep -q "the configuration is not valid" <<<"$out" || fail "start with a bad config: exit $rc, $out"
grep -q 'unknown key "shedule"' "$pd/state/agent.log" || fail "the service log does not say what is wrong with the config"
cp "$work/agent.toml.good" "$pd/agent.toml"
expect "service start" "arka-agent started" arka service start
expect "sc query after start" RUNNING win 30 sc query arka-agent
wait_status 60 "True" || fail "the service's status page does not answer"
# The service backs up: a new file in the watched folder, at its top (see "Watching" above).
# The status page may answer before the folder is watched; a file landing before that
# waits for the schedule, so another one follows every 10 s.
backed_up=0
for i in 1 2 3 4 5 6; do
    head -c 100000 /dev/urandom >"$imaging/study $i from the service.rvg"
    if wait_status 10 "s['sources'][0]['last_snapshot'] is not None"; then
        backed_up=1
        break
    fi
done
[ "$backed_up" = 1 ] || fail "the service made no backup of new files in the watched folder"
expect "service stop" "stopped" arka service stop
expect "sc query after stop" STOPPED win 30 sc query arka-agent
status healthz >/dev/null 2>&1 && fail "the status page still answers after the service stopped"
expect "service start after stop" "arka-agent started" arka service start
wait_status 60 "True" || fail "the status page does not answer after the second start"
win 60 net stop arka-agent >/dev/null || fail "net stop arka-agent"
win 60 net start arka-agent >/dev/null || fail "net start arka-agent"
wait_status 60 "True" || fail "the status page does not answer after net start"
service_log=$pd/state/agent.log
starts=$(grep -c "service started" "$service_log" || true)
stops=$(grep -c "service stopped" "$service_log" || true)
expect "service uninstall" "removed the arka-agent service" arka service uninstall
win 30 sc query arka-agent >/dev/null 2>&1 && fail "sc query still finds arka-agent after uninstall"
[ "$starts" -ge 3 ] && [ "$stops" -ge 2 ] || fail "the service log has $starts starts and $stops stops"
# The log never names the clinic's files.
if grep -Eq "Kowalski|volume|Zażółć|notatka|study|pano" "$service_log"; then
    fail "the service log names files"
fi
log "service: install, sc query, bad config refused, start, status page, backup, stop, net start/stop, log, uninstall"
log "ok in $((SECONDS - t0)) s (after the build)"
echo "wine-test: ok"
