#!/usr/bin/env bash
# Runs the interop tests (real WebRTC peers against the rtcam daemon) inside a fresh network
# namespace that holds only `lo`: nothing in the run can reach, or send to, any other address.
#
#   bash Tests/Interop/run.sh [pytest args…]        e.g.  bash Tests/Interop/run.sh -k chromium
#
# RTCAM_BIN picks the daemon (default .build/debug/rtcam). Needs root (unshare --net).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
python="$(bash "$here/venv.sh")"
# Home Assistant's own venv for test_home_assistant.py, made here while PyPI is still reachable (the
# run below has no network); `make test` started its install in the background long before.
export RTCAM_HASS="$(bash "$here/homeassistant-venv.sh" ensure || true)"

# Browsers come from Debian. Install what is missing (root only; otherwise the tests say what is missing).
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v firefox-esr >/dev/null || missing+=(firefox-esr)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

export RTCAM_BIN="${RTCAM_BIN:-$repo/.build/debug/rtcam}"
export PYTHONDONTWRITEBYTECODE=1

# Inside the namespace: bring `lo` up; give Firefox a route so it gathers its loopback candidate
# (shared/DESIGN.md: without any route it gathers nothing). 8.8.8.8 is routed to `lo` here, inside
# this namespace only, so even that address never leaves the machine.
exec unshare --net bash -c '
    set -e
    ip link set lo up
    ip route add 8.8.8.8/32 dev lo src 127.0.0.1
    exec "$0" -m pytest -v -p no:cacheprovider Tests/Interop "$@"
' "$python" "$@"
