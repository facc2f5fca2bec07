#!/usr/bin/env bash
# The daemon's size, checked on every `make test` (after `make deb` built the release binary): the
# stripped binary stays within issue 6's 14 MB, and none of the modules that once made it 18.8 MB
# comes back unnoticed. A size is not a timing: this cannot flake.
#   FoundationEssentials (+ _FoundationCollections): swift-argument-parser 1.8 imports it; rtcam has
#     its own command line (Sources/RTCamCommandLine) and no Foundation (README.md, "Facts measured here").
#   _StringProcessing + _RegexParser: linked whole by a single `"a".contains("b")` or
#     `firstRange(of:)` in any module; use RTCBase's containsText(_:) instead.
# Usage: bash Tests/check-footprint.sh [BINARY]   (default .build/release/rtcam)
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
binary=${1:-.build/release/rtcam}
limit=14000000
[ -x "$binary" ] || { echo "check-footprint: $binary not built (swift build -c release --static-swift-stdlib)" >&2; exit 1; }
# The module and symbol-order checks read the symbol table: an already stripped binary would pass them.
readelf -S "$binary" | grep -q '\.symtab' || { echo "check-footprint: $binary has no symbol table (give the unstripped build)" >&2; exit 1; }

failed=0
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
strip --remove-section=.comment --remove-section=.note --strip-unneeded -o "$stripped" "$binary"
size=$(stat -c %s "$stripped")
if [ "$size" -le "$limit" ]; then
    echo "ok    stripped binary $size bytes (limit $limit)"
else
    echo "FAIL  stripped binary $size bytes, over the limit of $limit"; failed=1
fi

# Mangled module names: 20FoundationEssentials, 10Foundation, 17_StringProcessing, 12_RegexParser.
for module in 20FoundationEssentials 22_FoundationCollections 10Foundation 17_StringProcessing 12_RegexParser; do
    count=$(nm "$binary" | grep -c "$module" || true)
    if [ "$count" -eq 0 ]; then
        echo "ok    no ${module#[0-9][0-9]} symbols"
    else
        echo "FAIL  $count ${module#[0-9][0-9]} symbols linked in; who pulled it in:"
        { nm -A .build/release/*.build/*.o 2>/dev/null | grep " U .*$module" | cut -d: -f1 | sort -u | sed 's/^/        /' | head -n 10; } || true
        echo "        (none of rtcam's own objects: another library linked it; lld --why-extract=FILE says which)"
        failed=1
    fi
done
# The list of functions packed first (Sources/rtcam/symbol-order.txt, lld --symbol-ordering-file)
# names functions by their mangled names, which drift as code changes; the idle RSS it buys (about
# 2 MiB) fades as names go missing. Half gone: time to regenerate it.
order=Sources/rtcam/symbol-order.txt
listed=$(grep -v '^#' "$order" | grep -c . || true)
present=$(nm --defined-only "$binary" | awk '{print $NF}' | sort -u | comm -12 - <(grep -v '^#' "$order" | sort -u) | wc -l)
if [ "$listed" -gt 1000 ] && [ $((present * 100)) -ge $((listed * 50)) ]; then
    echo "ok    $present of the $listed functions of $order are in the binary"
else
    echo "FAIL  only $present of the $listed functions of $order are in the binary:"
    echo "      regenerate it with bash Tests/Benchmarks/make-symbol-order.sh"
    failed=1
fi
# libstdc++ is linked in statically (Package.swift: Sources/rtcam/static-libstdc++): the shared one
# costs ~1 MiB resident (issue 23).
if readelf -d "$binary" | grep -q 'NEEDED.*libstdc++'; then
    echo "FAIL  $binary needs libstdc++.so: the -L of Sources/rtcam/static-libstdc++ no longer comes first"; failed=1
else
    echo "ok    libstdc++ linked in statically"
fi
exit $failed
