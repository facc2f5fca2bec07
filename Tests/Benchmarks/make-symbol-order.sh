#!/usr/bin/env bash
# Regenerates Sources/rtcam/symbol-order.txt (the functions rtcam runs, packed first by the linker:
# Tests/Benchmarks/symbol_order.py says why and how), in a network namespace holding only lo.
# Needs root (unshare --net) and valgrind (installed here if missing). About 3 minutes.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
if ! command -v valgrind >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends valgrind
fi
${SWIFT:-swift} build -c release --static-swift-stdlib
unshare --net bash -c 'ip link set lo up && exec python3 "$0"' "$repo/Tests/Benchmarks/symbol_order.py"
# SwiftPM does not know the list is an input of the link: drop the binary so the next build links again.
rm -f "$repo/.build/release/rtcam"
echo "next: swift build -c release --static-swift-stdlib (links with the new order), then commit the list"
