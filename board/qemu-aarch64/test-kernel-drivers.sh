#!/bin/bash
# The kernel-driver suites (Tests/KernelDriverTests) built as aarch64, in the qemu-aarch64 board:
# board/qemu-x86_64/test-kernel-drivers.sh with RTCAM_VM_ARCH=arm64 (its header says more).
RTCAM_VM_ARCH=arm64 exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../qemu-x86_64/test-kernel-drivers.sh" "$@"
