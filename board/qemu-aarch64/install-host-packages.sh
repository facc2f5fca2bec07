#!/bin/bash
# The host packages of the qemu-aarch64 board: board/qemu-x86_64/install-host-packages.sh for arm64.
RTCAM_VM_ARCH=arm64 exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../qemu-x86_64/install-host-packages.sh" "$@"
