#!/bin/bash
# The aarch64 daemon (out/arm64/rtcam, `make arm64`) in the qemu-aarch64 board, streaming vivid to
# aiortc on the host: board/qemu-x86_64/test-daemon-in-vm.sh with RTCAM_VM_ARCH=arm64.
RTCAM_VM_ARCH=arm64 exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../qemu-x86_64/test-daemon-in-vm.sh" "$@"
