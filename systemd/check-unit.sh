#!/usr/bin/env bash
# Checks systemd/rtcam.service: `systemd-analyze verify` passes and the offline security exposure
# is at most 2.0. verify needs the ExecStart binary to exist, so a copy of the unit points at the
# binary just built (RTCAM_BIN, default .build/debug/rtcam) instead of /usr/bin/rtcam.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=systemd/rtcam.service
binary=$(readlink -f "${RTCAM_BIN:-.build/debug/rtcam}")
[ -x "$binary" ] || { echo "check-unit: no rtcam binary at $binary (build first)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=/usr/bin/rtcam|ExecStart=$binary|" "$unit" > "$work/rtcam.service"

echo "== systemd-analyze verify"
if ! output=$(systemd-analyze verify "$work/rtcam.service" 2>&1); then
    echo "$output"; echo "FAIL: systemd-analyze verify"; exit 1
fi
# verify exits 0 on some warnings; treat any line about our unit as a failure.
if echo "$output" | grep -q "rtcam.service"; then
    echo "$output"; echo "FAIL: systemd-analyze verify reported problems"; exit 1
fi
echo "ok"

echo "== systemd-analyze security --offline=yes"
report=$(systemd-analyze security --offline=yes "$unit" 2>&1 || true)
score=$(echo "$report" | sed -n 's/.*Overall exposure level for rtcam.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "$report" | tail -5; echo "FAIL: no exposure score"; exit 1; }
echo "exposure $score (goal <= 2.0)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "$report" | grep -E '^✗' | head -20; echo "FAIL: exposure $score > 2.0"; exit 1; }
echo "2 passed, 0 failed"
