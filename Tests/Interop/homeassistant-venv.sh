#!/usr/bin/env bash
# The venv of test_home_assistant.py: Home Assistant from PyPI with the integrations README's recipe
# uses (generic, mjpeg, stream with PyAV) and those Home Assistant always loads, at the versions of
# homeassistant-requirements.txt. 2024.3.3 is the last release that installs on Debian 12's Python
# 3.11 (2024.4 needs 3.12). About 750 MB, outside the clone so later runs and CI's fresh clones
# reuse it: $RTCAM_HOME_ASSISTANT_VENV, default /var/cache/rtcam-homeassistant/venv.
#
#   bash Tests/Interop/homeassistant-venv.sh [ensure]  makes or refreshes it, prints its `hass`
#   bash Tests/Interop/homeassistant-venv.sh start     the same in the background (make test starts
#                                                      it before the Swift build; log: install.log)
#   bash Tests/Interop/homeassistant-venv.sh path      prints its `hass` if it is ready, else nothing
#
# One install at a time (flock): `ensure` while a `start` is installing waits for it, then finds
# the venv current. Reinstalled from scratch when the requirements file changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
requirements="$here/homeassistant-requirements.txt"
venv="${RTCAM_HOME_ASSISTANT_VENV:-/var/cache/rtcam-homeassistant/venv}"
cache="$(dirname "$venv")"
stamp="$venv/.rtcam-requirements"

current() {
    [ -x "$venv/bin/hass" ] && [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"
}

ensure() {
    mkdir -p "$cache"
    exec 9>"$cache/.install.lock"
    flock 9
    if ! current; then
        local python=/usr/bin/python3
        [ -x "$python" ] || python="$(command -v python3)"
        echo "Home Assistant venv: installing into $venv ($("$python" --version))" >&2
        local started=$SECONDS
        rm -rf "$venv"
        "$python" -m venv "$venv" >&2
        if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
                -r "$requirements" >&2; then
            rm -rf "$venv"
            echo "Home Assistant venv: pip install failed" >&2
            return 1
        fi
        cp "$requirements" "$stamp"
        echo "Home Assistant venv: installed in $((SECONDS - started)) s" >&2
    fi
    flock -u 9
    echo "$venv/bin/hass"
}

case "${1:-ensure}" in
    ensure) ensure ;;
    start)
        if current; then
            echo "Home Assistant venv: ready in $venv" >&2
            exit 0
        fi
        mkdir -p "$cache"
        echo "Home Assistant venv: installing in the background (log: $cache/install.log)" >&2
        ( ensure > /dev/null 2> "$cache/install.log" ) < /dev/null &
        ;;
    path) if current; then echo "$venv/bin/hass"; fi ;;
    *) echo "usage: homeassistant-venv.sh [ensure|start|path]" >&2; exit 64 ;;
esac
