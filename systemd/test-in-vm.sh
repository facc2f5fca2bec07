#!/usr/bin/env bash
# The VM test of rtcam.service (systemd/check-unit.sh checks the file; this checks that it runs):
# boots the qemu-x86_64 board with systemd as PID 1 (run-in-vm.sh --systemd: Debian's 6.1 kernel with
# vivid and snd-aloop, and this host's own Debian 12 user land under a throwaway overlay), installs
# the package with dpkg -i inside, and runs systemd/test-service.sh there: active (running) after
# READY=1, STATUS= shown, the viewer page served, its confinement (user, capabilities, read-only
# file system, devices) and the watchdog restarting it when frozen with SIGSTOP.
#
#   bash systemd/test-in-vm.sh [--deb FILE] [--rebuild] [--options 'RTCAM_OPTIONS'] [--dmesg] [--arch arm64]
#
# --arch arm64: the arm64 package (newest out/rtcam_*_arm64.deb, from `make arm64`) in the
# qemu-aarch64 board, whose user land is then an arm64 Debian 13 root with systemd and the package's
# Depends (board/qemu-aarch64/systemd-userland.sh, in $RTCAM_CACHE/systemd-arm64), not this host's.
#
# The package: --deb FILE, else the newest out/rtcam_*_amd64.deb, else (or with --rebuild) one built
# now by board/debian-package/build-deb.sh (a release build). Its dependencies must be installed on
# this host (make deps): the guest's dpkg database is this host's. Installs the board's host packages
# when missing. As root (the board's 9p shares of /usr, /etc, /var are read-only). Exit status 0
# when every check passed; the VM's own failures: 124 timeout, 125 no status, 126 board not built.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
deb=
rebuild=0
options=
vm_options=()
arch=$(dpkg --print-architecture)
while [ $# -gt 0 ]; do
    case $1 in
        --arch) arch=$2; shift ;;
        --deb) deb=$(readlink -f "$2"); shift ;;
        --rebuild) rebuild=1 ;;
        --options) options=$2; shift ;;
        --dmesg) vm_options+=(--dmesg) ;;
        *) echo "usage: $0 [--deb FILE] [--rebuild] [--options 'RTCAM_OPTIONS'] [--dmesg] [--arch arm64]" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "test-in-vm: run as root" >&2; exit 2; }
started=$SECONDS
stamp() { echo "test-in-vm: $* (at $((SECONDS - started)) s)"; }

# Host packages: the board's (QEMU, busybox, kernel build tools), and what the guest runs from this
# host's /usr: systemd, udev (without systemd-udevd /dev/video* and /dev/snd/* stay root's 0600, as
# devtmpfs makes them, and rtcam's groups video and audio cannot open them: it falls back to the
# test pattern), curl, nsenter (util-linux), ps (procps).
board=board/qemu-x86_64
[ "$arch" = arm64 ] && board=board/qemu-aarch64
bash $board/install-host-packages.sh
missing=()
[ "$arch" = arm64 ] || for package in systemd udev curl util-linux procps; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -n "$deb" ] || ((rebuild)) || deb=$(ls -t out/rtcam_*_"$arch".deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ] && [ "$arch" = arm64 ]; then
    echo "test-in-vm: no out/rtcam_*_arm64.deb (make arm64)" >&2; exit 2
elif [ -z "$deb" ]; then
    stamp "building the package (board/debian-package/build-deb.sh)"
    bash board/debian-package/build-deb.sh
    deb=$(ls -t out/rtcam_*_"$arch".deb | head -n 1)
fi
[ -f "$deb" ] || { echo "test-in-vm: no package $deb" >&2; exit 2; }
stamp "package $(basename "$deb") ($(date -r "$deb" '+%F %T'))"

# Built before the clock of the VM run starts, so the two costs show separately.
RTCAM_VM_ARCH=$arch bash board/qemu-x86_64/build-vm.sh >/dev/null
if [ "$arch" = arm64 ]; then
    userland=$(bash board/qemu-aarch64/systemd-userland.sh "$deb")
    vm_options+=(--sysroot "$userland")
fi
stamp "board ready"

mkdir -p .build-vm
share=$(mktemp -d "$repo/.build-vm/systemd-test.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp "$deb" "$share/rtcam.deb"
cp systemd/test-service.sh "$share/"
args=(--deb ./rtcam.deb)
[ -n "$options" ] && args+=(--options "$options")

vm_started=$SECONDS
status=0
timeout_s=${RTCAM_VM_TIMEOUT:-$([ "$arch" = arm64 ] && echo 900 || echo 420)}
board/qemu-x86_64/run-in-vm.sh --arch "$arch" --systemd --timeout "$timeout_s" "${vm_options[@]}" \
    "$share" bash ./test-service.sh "${args[@]}" || status=$?
stamp "VM run $((SECONDS - vm_started)) s, exit $status"
exit "$status"
