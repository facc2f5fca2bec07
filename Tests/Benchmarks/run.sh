#!/usr/bin/env bash
# Runs the benchmarks (Tests/Benchmarks/bench.py) inside a fresh network namespace that holds only
# `lo`, with the interop tests' Python venv (aiortc, PyAV) and Debian's python3-gi for GStreamer.
#
#   bash Tests/Benchmarks/run.sh [all|overhead|fanout|footprint|latency|firstframe|peers|shaped|lossy|srtp|tls|datachannel|ecosystem|soak|churn|cpuadapt] [options]
#
# RTCAM_BIN / RTCAM_BENCH_BIN pick the binaries (default .build/release/); JSON goes to out/bench/.
# Needs root (unshare --net). Benchmarks are not tests: nothing here fails on a slow number.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv"
cd "$repo"

# The interop venv (aiortc, av, numpy): created/refreshed the way Tests/Interop/run.sh does it.
stamp="$venv/.interop-requirements"
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$repo/Tests/Interop/requirements.txt" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/Tests/Interop/requirements.txt"
    touch "$stamp"
fi

export RTCAM_BIN="${RTCAM_BIN:-$repo/.build/release/rtcam}"
export RTCAM_BENCH_BIN="${RTCAM_BENCH_BIN:-$repo/.build/release/rtcam-bench}"
export PYTHONDONTWRITEBYTECODE=1
[ $# -gt 0 ] || set -- all

exec unshare --net bash -c '
    set -e
    ip link set lo up
    exec "$0" "$1/bench.py" "${@:2}"
' "$venv/bin/python" "$here" "$@"
