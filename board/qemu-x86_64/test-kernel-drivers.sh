#!/bin/bash
# The kernel-driver stage of rtcam's tests: the KernelDriverTests suites (Tests/KernelDriverTests)
# drive rtcam's own V4L2 and ALSA code against real drivers — vivid (camera), vicodec (M2M encoder),
# snd-aloop (sound loopback) — inside board/qemu-x86_64's VM, in one boot. Prints what ran and how
# long; exit status 0 only when every test ran and passed.
#
#   board/qemu-x86_64/test-kernel-drivers.sh [PATH/TO/Foo.xctest]
#   board/qemu-aarch64/test-kernel-drivers.sh [PATH/TO/Foo.xctest]    (RTCAM_VM_ARCH=arm64)
#
# The test bundle must be built already: amd64 `swift build --build-tests` (default, debug:
# .build/debug/rtcamPackageTests.xctest at the repo root); arm64 `board/arm64/build-arm64.sh --tests`
# (default, optimized: $RTCAM_CACHE/scratch-tests/aarch64-unknown-linux-gnu/release/rtcamPackageTests.xctest, run with
# the aarch64 Swift runtime of board/arm64's sysroot). Host packages come from
# install-host-packages.sh (idempotent). RTCAM_VM_TIMEOUT overrides the VM's time limit (280 s;
# arm64 600 s).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
arch=${RTCAM_VM_ARCH:-amd64}
filter=KernelDriverTests
runner=("$here/run-in-vm.sh" --arch "$arch")
if [ "$arch" = amd64 ]; then
  bundle=${1:-$repo/.build/debug/rtcamPackageTests.xctest}
  board=qemu-x86_64
  timeout_s=${RTCAM_VM_TIMEOUT:-280}
else
  bundle=${1:-${RTCAM_CACHE:-/var/cache/rtcam-arm64}/scratch-tests/aarch64-unknown-linux-gnu/release/rtcamPackageTests.xctest}
  board=qemu-aarch64
  timeout_s=${RTCAM_VM_TIMEOUT:-600}
  # Debian's swiftlang puts the shared runtime (libswiftCore, libTesting ...) outside the loader's path.
  runner+=(--env LD_LIBRARY_PATH=/usr/lib/swift/linux)
fi

if [ ! -x "$bundle" ]; then
  echo "test-kernel-drivers: no test bundle $bundle (build it with 'swift build --build-tests'; arm64: board/arm64/build-arm64.sh --tests)" >&2
  exit 2
fi
bundle=$(cd "$(dirname "$bundle")" && pwd)/$(basename "$bundle")

RTCAM_VM_ARCH=$arch bash "$here/install-host-packages.sh"

log=$(mktemp)
trap 'rm -f "$log" "$log.raw"' EXIT
now() { date +%s%N; }
started=$(now)
echo "test-kernel-drivers: $(basename "$bundle") --testing-library swift-testing --filter $filter"
echo "test-kernel-drivers: in board/$board's VM (TCG, vivid + vicodec + snd-aloop), time limit ${timeout_s} s"
set +e
"${runner[@]}" --timeout "$timeout_s" --env RTCAM_VM=1 --env NO_COLOR=1 "$(dirname "$bundle")" \
  "./$(basename "$bundle")" --testing-library swift-testing --filter "$filter" 2>&1 | tee "$log.raw"
status=${PIPESTATUS[0]}
sed 's/\x1b\[[0-9;]*m//g' "$log.raw" > "$log"   # the guest's console is a terminal: drop colours
set -e
elapsed=$(( ($(now) - started) / 1000000 ))

# Swift Testing's result lines: ✔ passed, ✘ failed, ➜ skipped (one per test or parameterized test;
# "recorded an issue" lines and the per-case lines are details), the run's own line last.
results=$(grep -E '^(✔ Test .* passed after|✘ Test .* failed after|➜ Test .* skipped)' "$log" \
  | grep -v -e 'Test run with' -e '^. Test case ' || true)
passed=$(grep -c '^✔' <<<"$results" || true)
failed=$(grep -c '^✘' <<<"$results" || true)
skipped=$(grep -c '^➜' <<<"$results" || true)
run_line=$(grep -E '^(✔|✘) Test run with' "$log" | tail -n 1 || true)
echo
echo "== test-kernel-drivers: what ran"
[ -n "$results" ] && sed 's/^/  /' <<<"$results"
echo "  ${run_line:-no test run summary (the bundle did not finish)}"
if ((status == 0)) && ((skipped > 0 || passed == 0)); then
  # In the VM nothing may skip: a skip means the suites did not see RTCAM_VM=1 or found no tests.
  echo "test-kernel-drivers: $passed passed but $skipped skipped: the kernel-driver suites did not run" >&2
  status=1
fi
echo "== test-kernel-drivers: exit $status; $passed passed, $failed failed, $skipped skipped; $((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000))) s wall (boot included)"
exit "$status"
