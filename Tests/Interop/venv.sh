#!/usr/bin/env bash
# Makes (or refreshes) the Python venv of the interop tests and prints its python's path:
#   python="$(bash Tests/Interop/venv.sh)"
# Created on first use; reinstalled when requirements.txt is newer than the last install.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$(cd "$here/../.." && pwd)/.venv"
stamp="$venv/.interop-requirements"
# Debian's python3 (3.11.2 on bookworm) first: it is what every Debian machine has, and CPython 3.11.7
# has an ast.parse regression ("AST constructor recursion depth mismatch") that crashes pytest's
# traceback formatting.
if [ ! -x "$venv/bin/python" ]; then
    python=/usr/bin/python3
    [ -x "$python" ] || python="$(command -v python3)"
    "$python" -m venv "$venv" >&2
fi
if [ ! -f "$stamp" ] || [ "$here/requirements.txt" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
    touch "$stamp"
fi
echo "$venv/bin/python"
