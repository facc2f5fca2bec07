#!/usr/bin/env bash
# The running test of rtcam.service: installs the package on a Debian 12 (or Raspberry Pi OS) system
# whose PID 1 is systemd, as root, and checks that the unit really runs as rtcam.service says:
#   - dpkg -i creates the user, enables the unit and starts it (postinst)
#   - Type=notify: active (running) after READY=1, with rtcam's STATUS= line shown by systemd
#   - it serves the viewer page (GET /) and /healthz
#   - identity: user rtcam with groups video and audio, no capabilities, no_new_privs, seccomp
#   - file system: in its mount namespace even root cannot write outside its StateDirectory (/usr,
#     /etc, /var, /run are read-only mounts there), /home and /root are empty, /tmp is its own
#   - devices: a process in its cgroup may open /dev/video* and /dev/snd/* (DeviceAllow=) and not
#     /dev/mem, which root outside opens (DevicePolicy=closed)
#   - watchdog: WATCHDOG=1 pings arrive and keep it alive past WatchdogSec=; frozen with SIGSTOP, it is
#     killed by the watchdog and started again (Restart=on-failure) under a new PID, and serves again
#   - systemctl stop ends it cleanly (exit status 0)
# systemd/test-in-vm.sh runs this in the qemu-x86_64 board booted with systemd; on a real board:
#   scp out/rtcam_*_arm64.deb systemd/test-service.sh pi: && ssh root@pi bash test-service.sh --deb rtcam_0.1.0_arm64.deb
#
#   bash systemd/test-service.sh [--deb FILE] [--port 8080] [--options 'RTCAM_OPTIONS value']
# --options is written to /etc/rtcam/rtcam.conf (then the service restarts). Needs curl, nsenter
# (util-linux), ps (procps). Prints one line per check; exit status 0 when every check passed.
set -uo pipefail
deb=
port=8080
options=
while [ $# -gt 0 ]; do
    case $1 in
        --deb) deb=$2; shift ;;
        --port) port=$2; shift ;;
        --options) options=$2; shift ;;
        *) echo "usage: $0 [--deb FILE] [--port N] [--options 'RTCAM_OPTIONS']"; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "test-service: run as root"; exit 2; }
[ -d /run/systemd/system ] || { echo "test-service: systemd is not PID 1 here"; exit 2; }
for tool in curl nsenter ps; do
    command -v $tool >/dev/null || { echo "test-service: $tool missing (apt-get install curl util-linux procps)"; exit 2; }
done

passed=0
failed=0
ok()   { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi; }
note() { echo "     $*"; }
property() { systemctl show -P "$1" rtcam.service; }
wait_until() {  # wait_until SECONDS COMMAND...: polls every 0.5 s
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.5; done
}
running() { [ "$(property ActiveState)/$(property SubState)" = active/running ]; }
healthy() { curl -fsS --max-time 3 "http://127.0.0.1:$port/healthz" >/dev/null; }
elapsed() { echo "$(($(date +%s%N) / 1000000 - $1))"; }   # ms since a $(date +%s%N)/1000000 stamp
now_ms() { echo "$(($(date +%s%N) / 1000000))"; }
started=$SECONDS

# ---------------------------------------------------------------------------------------------------
if [ -n "$deb" ]; then
    echo "== dpkg -i $(basename "$deb")"
    t=$(now_ms)
    if DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" > /tmp/rtcam-dpkg.log 2>&1; then
        ok "dpkg -i installs it ($(elapsed "$t") ms, the postinst's start included)"
    else
        sed 's/^/     /' /tmp/rtcam-dpkg.log
        fail "dpkg -i (missing dependencies? make deps on the host)"
        echo "$passed passed, $failed failed"; exit 1
    fi
fi
command -v rtcam >/dev/null || { echo "test-service: rtcam is not installed (pass --deb)"; exit 2; }
check "user rtcam exists, in groups video and audio" bash -c 'id -nG rtcam | grep -qw video && id -nG rtcam | grep -qw audio'
check "unit enabled (WantedBy=multi-user.target)" systemctl is-enabled rtcam.service
check "started by the postinst: active (running)" wait_until 40 running
if [ -n "$options" ]; then
    sed -i "s|^RTCAM_OPTIONS=.*|RTCAM_OPTIONS=\"$options\"|" /etc/rtcam/rtcam.conf
    note "RTCAM_OPTIONS=\"$options\" in /etc/rtcam/rtcam.conf; systemctl restart rtcam"
    systemctl restart rtcam.service
    check "restarted with the options (EnvironmentFile=)" bash -c "running && tr '\\0' ' ' < /proc/$(property MainPID)/cmdline | grep -qF -- '$options'"
fi

echo "== Type=notify: READY=1 and STATUS="
check "Type=notify" test "$(property Type)" = notify
check "active (running) only after READY=1" \
    test "$(property ActiveEnterTimestampMonotonic)" -gt "$(property ExecMainStartTimestampMonotonic)"
ready_ms=$((($(property ActiveEnterTimestampMonotonic) - $(property ExecMainStartTimestampMonotonic)) / 1000))
note "READY=1 came $ready_ms ms after the process started"
check "StatusText set from rtcam's STATUS=" test -n "$(property StatusText)"
note "StatusText: $(property StatusText)"

echo "== serving on port $port"
check "GET /healthz" wait_until 10 healthy
page=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/" 2>/dev/null)
check "GET / serves the viewer page (<video>, WHEP)" bash -c 'grep -qi "<video" <<<"$1" && grep -qi whep <<<"$1"' _ "$page"
# A still under the unit's sandbox (issue 21): libjpeg-turbo is opened with dlopen at the first one.
# Viewing is open on a fresh install (no password yet), so no credential is needed.
check "GET /snapshot.jpg is a JPEG (libjpeg-turbo loads in the sandbox)" \
    bash -c "curl -fsS --max-time 10 http://127.0.0.1:$port/snapshot.jpg | head -c 2 | od -An -tx1 | grep -q 'ff d8'"
# RTSP for NVRs on its default port (unless the options moved it): OPTIONS answered 200 under the
# unit's sandbox (as user rtcam: a socket option only root may set once reset every connection here).
if [[ "$options" != *--rtsp-port* ]]; then
    check "RTSP answers OPTIONS on 8554" /usr/bin/python3 -c "
import socket
with socket.create_connection(('127.0.0.1', 8554), timeout=5) as connection:
    connection.sendall(b'OPTIONS * RTSP/1.0\\r\\nCSeq: 1\\r\\n\\r\\n')
    assert connection.recv(200).startswith(b'RTSP/1.0 200 OK')
"
fi
note "viewer page: ${#page} bytes"

pid=$(property MainPID)
echo "== identity and privileges of PID $pid"
uid=$(id -u rtcam)
check "runs as user rtcam (uid $uid), not root" test "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" = "$uid"
groups=" $(ps -o supgrp= -p "$pid" | tr ',' ' ') "
check "supplementary groups video and audio (SupplementaryGroups=)" bash -c "grep -q ' video ' <<<'$groups' && grep -q ' audio ' <<<'$groups'"
for set in CapInh CapPrm CapEff CapBnd CapAmb; do
    check "$set empty (CapabilityBoundingSet= AmbientCapabilities=)" grep -Eq "^$set:\s+0+$" "/proc/$pid/status"
done
check "no_new_privs (NoNewPrivileges=yes)" grep -Eq '^NoNewPrivs:\s+1$' "/proc/$pid/status"
check "seccomp filter (SystemCallFilter=)" grep -Eq '^Seccomp:\s+2$' "/proc/$pid/status"

echo "== file system, probed as root inside its mount namespace"
in_ns() { nsenter -t "$pid" -m "$@"; }
for dir in / /usr/bin /etc /etc/rtcam /var/lib /var/log; do
    error=$(in_ns sh -c "touch '$dir/.rtcam-write-probe' && rm -f '$dir/.rtcam-write-probe'" 2>&1)
    if [ $? -ne 0 ] && grep -q 'Read-only file system' <<<"$error"; then
        ok "cannot write $dir (read-only file system)"
    else
        fail "cannot write $dir  (got: ${error:-success})"
    fi
done
# As rtcam itself (its uid and groups, in its namespace): where it may write, nothing else.
as_rtcam() { nsenter -t "$pid" -m setpriv --reuid="$uid" --regid="$(id -g rtcam)" --init-groups "$@"; }
check "user rtcam can write its StateDirectory /var/lib/rtcam" as_rtcam sh -c 'touch /var/lib/rtcam/.probe && rm /var/lib/rtcam/.probe'
for dir in /run /var/lib /home; do
    check "user rtcam cannot write $dir" as_rtcam sh -c "! touch '$dir/.rtcam-write-probe' 2>/dev/null"
done
for dir in /dev/shm /run/lock; do
    check "user rtcam cannot write the world-writable $dir (TemporaryFileSystem=…:ro)" \
        as_rtcam sh -c "! touch '$dir/.rtcam-write-probe' 2>/dev/null"
done
check "rtcam keeps its state there (dtls-certificate.pem, owner rtcam)" \
    test "$(stat -L -c %U /var/lib/rtcam/dtls-certificate.pem 2>/dev/null)" = rtcam
check "state directory mode 0700 (StateDirectoryMode=)" test "$(stat -L -c %a /var/lib/rtcam)" = 700
touch /root/.rtcam-probe
check "/root is empty for it (ProtectHome=yes)" in_ns sh -c '! ls -A /root 2>/dev/null | grep -q .'
rm -f /root/.rtcam-probe
check "its /tmp is private (PrivateTmp=yes)" in_ns sh -c 'touch /tmp/.rtcam-private-probe'
check "  and not this system's /tmp" test ! -e /tmp/.rtcam-private-probe

echo "== devices (DevicePolicy=closed + DeviceAllow=)"
held=$(ls -l "/proc/$pid/fd" 2>/dev/null | sed -n 's|.* -> \(/dev/[^ ]*\)$|\1|p' | grep -E '^/dev/(video|media|snd|dma_heap)' | sort -u | paste -sd' ')
if ls /dev/video* >/dev/null 2>&1; then
    # udev gives camera nodes to group video (devtmpfs alone leaves them root's, mode 0600).
    check "udev made /dev/video0 group video's (rw)" bash -c '[ "$(stat -c %G /dev/video0)" = video ] && [ "$(stat -c %a /dev/video0)" = 660 ]'
    ls -l /dev/video* | while read -r line; do note "$line"; done
    check "rtcam itself holds a camera open (/dev/video*)" grep -q /dev/video <<<"$held"
fi
[ -n "$held" ] && note "rtcam holds open: $held"
cgroup=/sys/fs/cgroup$(property ControlGroup)
in_cgroup() {  # in_cgroup DEVICE: open it for reading from a root shell moved into rtcam's cgroup
    bash -c 'echo $$ > "$1/cgroup.procs" && exec 3< "$2"' _ "$cgroup" "$1"
}
for device in /dev/video0 /dev/snd/controlC0; do
    [ -e "$device" ] && check "its cgroup may open $device" in_cgroup "$device"
done
if bash -c 'exec 3< /dev/mem' 2>/dev/null; then
    error=$(in_cgroup /dev/mem 2>&1)
    if [ $? -ne 0 ] && grep -q 'Operation not permitted' <<<"$error"; then
        ok "its cgroup may not open /dev/mem, even as root (root outside may)"
    else
        fail "its cgroup may not open /dev/mem  (got: ${error:-success})"
    fi
fi
live=$(timeout 60 systemd-analyze security --no-pager rtcam.service 2>/dev/null |
       sed -n 's/.*Overall exposure level for rtcam.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security (running unit): ${live:-?} <= 2.0" awk -v s="${live:-99}" 'BEGIN { exit !(s <= 2.0) }'

echo "== watchdog (WatchdogSec=$(property WatchdogUSec))"
restarts=$(property NRestarts)
ping1=$(property WatchdogTimestampMonotonic)
check "WATCHDOG=1 pings arrive" wait_until 12 bash -c "[ \$(systemctl show -P WatchdogTimestampMonotonic rtcam.service) -gt $ping1 ]"
watchdog_s=$(property WatchdogUSec | sed -n 's/^\([0-9]*\)s$/\1/p')
watchdog_s=${watchdog_s:-10}
# Alive past WatchdogSec= since it became active: the pings, not luck, keep it.
active_since_s=$(($(cut -d. -f1 /proc/uptime) - $(property ActiveEnterTimestampMonotonic) / 1000000))
[ "$active_since_s" -le "$watchdog_s" ] && sleep $((watchdog_s - active_since_s + 1))
check "alive past WatchdogSec= without a restart" test "$(property MainPID)/$(property NRestarts)" = "$pid/$restarts"
kill -STOP "$pid"
t=$(now_ms)
note "froze PID $pid with SIGSTOP"
if wait_until 60 bash -c "[ \$(systemctl show -P NRestarts rtcam.service) -gt $restarts ]"; then
    ok "the watchdog killed it and systemd restarted it ($(elapsed "$t") ms after SIGSTOP)"
else
    fail "the watchdog killed it and systemd restarted it (no restart within 60 s)"
fi
check "active (running) again" wait_until 40 running
note "active again $(elapsed "$t") ms after SIGSTOP"
check "under a new PID" test "$(property MainPID)" != "$pid"
check "the journal says: watchdog timeout" bash -c "journalctl -b -u rtcam.service --no-pager | grep -qi 'watchdog timeout'"
journalctl -b -u rtcam.service --no-pager | grep -iE 'watchdog|SIGABRT|Scheduled restart' | sed 's/^/     /' | tail -4
check "serves again" wait_until 15 healthy

echo "== stop"
systemctl stop rtcam.service
check "inactive after systemctl stop" bash -c '! systemctl is-active rtcam.service'
check "exited cleanly on SIGTERM (status 0, Result=success)" \
    test "$(property ExecMainStatus)/$(property Result)" = 0/success

echo "$passed passed, $failed failed ($((SECONDS - started)) s)"
[ "$failed" = 0 ]
