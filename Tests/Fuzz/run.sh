#!/usr/bin/env bash
# Runs every libFuzzer target for FUZZ_SECONDS (default 60) each, from its seed corpus
# (Tests/Fuzz/make-seeds.py, copied into .build/fuzz/corpus/<target>, which keeps what the fuzzer
# finds between runs). Prints one line per target: executions, corpus size, and whether it crashed.
# A crash leaves its input in .build/fuzz/crash-<target>-*; the run fails.
#
#   FUZZ_SECONDS=600 bash Tests/Fuzz/run.sh [target…]
#   FUZZ_RUNS=10000000 FUZZ_SECONDS=3600 bash Tests/Fuzz/run.sh     (stops at N executions or the time)
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stun sdp sdpfrag rtp h264 dtls sctp json icetcp turn http)
bash Tests/Fuzz/build.sh "${targets[@]}" || exit 1
out="$repo/.build/fuzz"
python3 Tests/Fuzz/make-seeds.py "$out/seeds" || exit 1
failed=0
for target in "${targets[@]}"; do
    corpus="$out/corpus/$target"
    mkdir -p "$corpus"
    [ -d "$out/seeds/$target" ] && cp -n "$out/seeds/$target"/* "$corpus/" 2>/dev/null
    log="$out/fuzz-$target.log"
    # -rss_limit_mb: a leak or a runaway allocation is a finding too; ASan reports leaks at exit.
    max_len=4096
    [ "$target" = sdp ] && max_len=16384   # browsers' offers are up to 6 kB
    [ "$target" = http ] && max_len=16384  # and so is a WHEP POST
    runs=()
    [ -n "${FUZZ_RUNS:-}" ] && runs=(-runs="$FUZZ_RUNS")
    "$out/fuzz-$target" -max_total_time="$seconds" "${runs[@]}" -rss_limit_mb=1024 -max_len=$max_len -print_final_stats=1 \
        -artifact_prefix="$out/crash-$target-" "$corpus" >"$log" 2>&1
    status=$?
    executed="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    took="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$seconds")"
    echo "fuzz $target: $executed executions in ${took}s, corpus $(ls "$corpus" | wc -l), exit $status"
    if [ $status -ne 0 ]; then
        failed=1
        grep -m 3 -E 'ERROR|Fatal error|panic|deadly signal' "$log" || true
    fi
done
exit $failed
