#!/usr/bin/env bash
# Checks systemd/rtcam.service without running it (works where systemd is not PID 1):
#  1. `systemd-analyze verify` reports nothing: no unknown or misspelled directive, no bad value, no
#     missing dependency, and the ExecStart binary exists.
#  2. `systemd-analyze security --offline=yes` rates its exposure 1.5 or lower.
#  3. The settings rtcam relies on are there (Type=notify with a watchdog, the device allow list).
#
# verify checks that ExecStart's /usr/bin/rtcam exists and is executable. Rather than edit the unit
# (it is checked verbatim), it runs with --root= on a temporary root holding the unit in
# /etc/systemd/system, a copy of this machine's unit directory (for network-online.target and
# friends) and /usr/bin/rtcam: a stub script, or the real binary when RTCAM_BIN names one
# (RTCAM_BIN=.build/release/rtcam bash systemd/check-unit.sh). Needs systemd-analyze (package systemd).
set -euo pipefail
cd "$(dirname "$0")/.."
unit=${RTCAM_UNIT:-systemd/rtcam.service}   # another file only to test this script
passed=0

fail() { echo "FAIL: $*"; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (apt-get install systemd)"
echo "($(systemd-analyze --version | head -1))"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/bin" "$root/usr/lib/systemd"
cp "$unit" "$root/etc/systemd/system/rtcam.service"
for units in /usr/lib/systemd/system /lib/systemd/system; do
    if [ -d "$units" ]; then cp -a "$units" "$root/usr/lib/systemd/"; break; fi
done
if [ -n "${RTCAM_BIN:-}" ]; then
    [ -x "$RTCAM_BIN" ] || fail "RTCAM_BIN=$RTCAM_BIN is not an executable"
    cp "$RTCAM_BIN" "$root/usr/bin/rtcam"   # a copy: an absolute symlink would point outside the root
else
    printf '#!/bin/sh\nexit 0\n' > "$root/usr/bin/rtcam"
fi
chmod 755 "$root/usr/bin/rtcam"
# ExecStartPost's helper, as the .deb installs it.
mkdir -p "$root/usr/lib/rtcam"
install -m 755 "$(dirname "$unit")/../board/debian-package/rtcam-boot-setup-code" "$root/usr/lib/rtcam/rtcam-boot-setup-code"

echo "== systemd-analyze verify --root=<temporary root> rtcam.service"
# verify exits 0 on warnings such as "Unknown key": any output at all is a failure.
status=0
output=$(systemd-analyze verify --root="$root" rtcam.service 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$output" ]; then
    echo "$output"
    fail "systemd-analyze verify (exit $status)"
fi
echo "ok: no findings"
passed=$((passed + 1))

echo "== systemd-analyze security --offline=yes --threshold=15 $unit"
# The threshold is on the 0-100 scale behind the printed 0.0-10.0 level: 15 means 1.5.
status=0
report=$(systemd-analyze security --offline=yes --threshold=15 "$unit" 2>&1) || status=$?
score=$(echo "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "$report" | tail -5; fail "no exposure level in the report"; }
echo "$report" | grep -E '^✗' | sed 's/  */ /g' || true
echo "exposure level $score (at most 1.5)"
if [ "$status" -ne 0 ] || ! awk -v s="$score" 'BEGIN { exit !(s <= 1.5) }'; then
    fail "exposure $score is over 1.5"
fi
passed=$((passed + 1))

echo "== settings rtcam relies on"
for line in Type=notify NotifyAccess=main 'WatchdogSec=[1-9]' Restart=on-failure \
            'ExecStart=/usr/bin/rtcam serve' StateDirectory=rtcam \
            DynamicUser=yes 'SupplementaryGroups=video audio' DevicePolicy=closed \
            'DeviceAllow=char-video4linux rw' 'DeviceAllow=char-media rw' 'DeviceAllow=char-alsa rw' \
            'DeviceAllow=char-dma_heap rw' 'CapabilityBoundingSet=$' MemoryDenyWriteExecute=yes \
            'RestrictAddressFamilies=.*AF_UNIX' 'LimitNOFILE=[0-9]' 'MemoryMax=[0-9]' 'TasksMax=[0-9]' \
            'IPAddressDeny=any' 'IPAddressAllow=localhost link-local' \
            'IPAddressAllow=10.0.0.0/8 172.16.0.0/12 192.168.0.0/16' 'IPAddressAllow=fc00::/7 fe80::/10'; do
    grep -Eq "^$line" "$unit" || fail "$unit has no line ^$line"
done
echo "ok"
passed=$((passed + 1))

echo "== LimitNOFILE leaves room above rtcam's own HTTP connection cap (HTTPLimits.maximumConnections)"
nofile="$(sed -n 's/^LimitNOFILE=//p' "$unit")"
cap="$(sed -n 's/^ *var maximumConnections = \([0-9]*\).*/\1/p' Sources/CameraServer/HTTPConnectionGuard.swift)"
[ -n "$cap" ] || fail "no maximumConnections in HTTPConnectionGuard.swift"
[ "$nofile" -ge $((cap + 256)) ] || fail "LimitNOFILE=$nofile is not above the HTTP cap $cap plus 256 for the rest"
echo "ok (LimitNOFILE=$nofile, HTTP cap $cap)"
passed=$((passed + 1))

echo "== the boot-partition copy of the setup code (ExecStartPost=+)"
helper="$(dirname "$unit")/../board/debian-package/rtcam-boot-setup-code"
scratch=$(mktemp -d)
mkdir -p "$scratch/state" "$scratch/boot"
run_helper() { STATE_DIRECTORY="$scratch/state" RTCAM_BOOT_DIRECTORY="$scratch/boot" sh "$helper"; }
printf 'ABCD-EFGH-JKMN\n' > "$scratch/state/setup-code"
run_helper
grep -q "rtcam setup code: ABCD-EFGH-JKMN" "$scratch/boot/rtcam-setup-code" || fail "the setup code was not copied to the boot partition"
rm "$scratch/state/setup-code"
ln -s /etc/shadow "$scratch/state/setup-code"
run_helper
[ ! -e "$scratch/boot/rtcam-setup-code" ] || fail "a symlinked setup code was followed (or the stale copy kept)"
rm "$scratch/state/setup-code"
printf 'not a code; rm -rf /\n' > "$scratch/state/setup-code"
printf 'keep\n' > "$scratch/boot/rtcam-setup-code"
run_helper
grep -qx keep "$scratch/boot/rtcam-setup-code" || fail "a file that is not a setup code reached the boot partition"
rm "$scratch/state/setup-code"
run_helper
[ ! -e "$scratch/boot/rtcam-setup-code" ] || fail "the boot copy stayed after the password was set"
rm -rf "$scratch"
echo "ok"
passed=$((passed + 1))

echo "$passed passed, 0 failed"
