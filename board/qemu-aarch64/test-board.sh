#!/bin/bash
# The qemu-aarch64 stage (issue 23, `make test-arm64-vm`): rtcam built as aarch64 on Debian's arm64
# kernel with the real vivid, vicodec and snd-aloop drivers, in one command:
#   1. board/arm64/build-arm64.sh --tests: the release aarch64 rtcam, its .deb and the optimized
#      test bundle, cross-compiled (cached in $RTCAM_CACHE, default /var/cache/rtcam-arm64);
#   2. the KernelDriverTests suites of that bundle in the VM (test-kernel-drivers.sh);
#   3. the release aarch64 daemon in the VM streaming vivid (x264) and snd-aloop (Opus) to aiortc on
#      the host through QEMU's user network, with its resident set measured (test-daemon-in-vm.sh);
#      the camera-H.264 passthrough run too when the sysroot has FFmpeg (make test adds it);
#   4. with --systemd: the arm64 .deb installed and run by systemd in the VM (systemd/test-in-vm.sh
#      --arch arm64; makes an arm64 user land with systemd in $RTCAM_CACHE/systemd-arm64 first).
# Prints each part's exit status and time; fails if any part fails. Run as root.
#
#   bash board/qemu-aarch64/test-board.sh [--skip-build] [--systemd]
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${RTCAM_CACHE:-/var/cache/rtcam-arm64}

build=1
systemd=0
for argument in "$@"; do
  case $argument in
    --skip-build) build=0 ;;
    --systemd) systemd=1 ;;
    *) echo "usage: $0 [--skip-build] [--systemd]" >&2; exit 2 ;;
  esac
done

started=$SECONDS
results=()
failed=0
part() {  # part NAME COMMAND...: runs it, records its exit status and time
  local name=$1 start=$SECONDS status
  shift
  echo "== qemu-aarch64: $name"
  "$@"
  status=$?
  results+=("$name: exit $status ($((SECONDS - start)) s)")
  ((status == 0)) || failed=1
  return "$status"
}

bash "$here/install-host-packages.sh" || exit 1
if ((build)); then
  part "build-arm64.sh --tests" bash "$repo/board/arm64/build-arm64.sh" --tests || { printf '  %s\n' "${results[@]}"; exit 1; }
fi
part "kernel-driver suites (aarch64)" bash "$here/test-kernel-drivers.sh"
part "daemon -> aiortc, vivid + x264 (aarch64)" bash "$here/test-daemon-in-vm.sh"
if [ -x "$cache/sysroot-arm64/usr/bin/ffmpeg" ]; then
  part "daemon -> aiortc, camera H.264 passthrough (aarch64)" bash "$here/test-daemon-in-vm.sh" --passthrough
else
  results+=("camera H.264 passthrough: not run (no FFmpeg in $cache/sysroot-arm64; make test and make test-arm64 install it)")
fi
if ((systemd)); then
  part "rtcam.service from the arm64 .deb under systemd" bash "$repo/systemd/test-in-vm.sh" --arch arm64
fi

echo "== qemu-aarch64 stage: $((SECONDS - started)) s in all"
printf '  %s\n' "${results[@]}"
((failed == 0))
