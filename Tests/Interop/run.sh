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
venv="$repo/.venv"
cd "$repo"

# The venv: created on first use, refreshed when requirements.txt is newer than the last install.
stamp="$venv/.interop-requirements"
# Debian's python3 (3.11.2 on bookworm) first: it is what every Debian machine has, and CPython 3.11.7
# has an ast.parse regression ("AST constructor recursion depth mismatch") that crashes pytest's
# traceback formatting.
if [ ! -x "$venv/bin/python" ]; then
    python=/usr/bin/python3
    [ -x "$python" ] || python="$(command -v python3)"
    "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$here/requirements.txt" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    touch "$stamp"
fi

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
' "$venv/bin/python" "$@"
