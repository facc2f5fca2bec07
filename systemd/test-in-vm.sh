#!/usr/bin/env bash
# The VM test of rtcam.service: run INSIDE a booted Debian 12 (or Raspberry Pi OS) guest whose
# PID 1 is systemd, as root. systemd/check-unit.sh checks the unit file without running it; this
# checks that the unit really runs:
#   - installs the package (when --deb is given), which creates the user and enables the service
#   - Type=notify: the service becomes active only after READY=1, and shows rtcam's STATUS= line
#   - it serves (GET /healthz), as user rtcam with groups video and audio
#   - confinement is in force: no capabilities, no_new_privs, seccomp, read-only /usr
#   - WATCHDOG=1 arrives: no restart over longer than WatchdogSec=
#   - a hung process (SIGSTOP) is killed by the watchdog and restarted (Restart=on-failure)
#   - systemctl stop ends it cleanly
#
#   bash systemd/test-in-vm.sh [--deb /path/rtcam_<version>_<arch>.deb] [--port 8080]
# From the host, e.g.:  scp out/rtcam_*_amd64.deb systemd/test-in-vm.sh guest:/tmp/ &&
#                       ssh root@guest bash /tmp/test-in-vm.sh --deb /tmp/rtcam_0.1.0_amd64.deb
# The guest needs the package's dependencies installable (network or a local mirror) and curl.
# Exit status 0 when every check passed. Takes about a minute (two watchdog periods).
set -uo pipefail
deb=
port=8080
while [ $# -gt 0 ]; do
    case $1 in
        --deb) deb=$2; shift ;;
        --port) port=$2; shift ;;
        *) echo "usage: $0 [--deb FILE] [--port N]"; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "test-in-vm: run as root"; exit 2; }
[ -d /run/systemd/system ] || { echo "test-in-vm: systemd is not PID 1 here (this test is for a booted VM)"; exit 2; }

passed=0
failed=0
ok()   { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi; }
property() { systemctl show -P "$1" rtcam.service; }
wait_until() {  # wait_until SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $deadline ] && return 1; sleep 1; done
}
healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" | grep -q ok; }

if [ -n "$deb" ]; then
    echo "== installing $deb"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$(readlink -f "$deb")" || { echo "FAIL install"; exit 1; }
fi
command -v rtcam >/dev/null || { echo "test-in-vm: rtcam is not installed (pass --deb)"; exit 2; }
systemctl daemon-reload

echo "== start"
check "unit enabled by the package" systemctl is-enabled rtcam.service
systemctl restart rtcam.service
check "active after READY=1 (Type=notify)" wait_until 30 systemctl is-active rtcam.service
check "STATUS= shown by systemd" test -n "$(property StatusText)"
echo "     StatusText: $(property StatusText)"
check "serves GET /healthz" wait_until 10 healthy
pid=$(property MainPID)
check "main process runs" test "$pid" -gt 0

echo "== identity and confinement of PID $pid"
check "runs as user rtcam" test "$(ps -o user= -p "$pid")" = rtcam
groups=" $(ps -o supgrp= -p "$pid" | tr ',' ' ') "
check "in group video" grep -q " video " <<<"$groups"
check "in group audio" grep -q " audio " <<<"$groups"
status=/proc/$pid/status
check "no effective capabilities" grep -Eq '^CapEff:\s+0+$' "$status"
check "empty capability bounding set" grep -Eq '^CapBnd:\s+0+$' "$status"
check "no_new_privs set" grep -Eq '^NoNewPrivs:\s+1$' "$status"
check "seccomp filter on" grep -Eq '^Seccomp:\s+2$' "$status"
check "/usr read-only for it" bash -c "! nsenter -t $pid -m touch /usr/.rtcam-write-test"
check "state directory in place" test -d /var/lib/rtcam
check "DevicePolicy=closed" test "$(property DevicePolicy)" = closed
echo "     systemd-analyze security (live): $(systemd-analyze security rtcam.service 2>/dev/null | sed -n 's/.*Overall exposure level for rtcam.service: //p')"

echo "== watchdog"
watchdog_usec=$(property WatchdogUSec)
echo "     WatchdogSec: $watchdog_usec"
restarts=$(property NRestarts)
sleep 15   # longer than WatchdogSec=10s: without WATCHDOG=1 pings systemd would have killed it
check "pings keep it alive past WatchdogSec" test "$(property MainPID)" = "$pid" -a "$(property NRestarts)" = "$restarts"
kill -STOP "$pid"
echo "     froze PID $pid (SIGSTOP): waiting for the watchdog"
check "watchdog kills a hung rtcam and it restarts" \
    wait_until 60 bash -c "[ \"\$(systemctl show -P NRestarts rtcam.service)\" -gt $restarts ] && systemctl is-active rtcam.service"
check "restarted under a new PID" test "$(property MainPID)" != "$pid"
check "the journal names the watchdog" bash -c "journalctl -u rtcam.service --since '-2min' | grep -qi watchdog"
check "serves again after the restart" wait_until 15 healthy

echo "== stop"
systemctl stop rtcam.service
check "inactive after stop" bash -c "! systemctl is-active rtcam.service"
check "stopped cleanly (rtcam logged 'stopped')" bash -c "journalctl -u rtcam.service --since '-1min' | grep -q 'CameraServer\] stopped'"
systemctl start rtcam.service   # leave it as the package set it up

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
