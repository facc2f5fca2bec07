#!/bin/bash
# The qemu-aarch64 board's runner: board/qemu-x86_64/run-in-vm.sh --arch arm64 (one runner for both
# boards; its --help lists the options). See README.md here.
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../qemu-x86_64/run-in-vm.sh" --arch arm64 "$@"
