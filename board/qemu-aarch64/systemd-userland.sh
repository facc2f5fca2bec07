#!/usr/bin/env bash
# The arm64 user land for `run-in-vm.sh --systemd` on the qemu-aarch64 board (systemd/test-in-vm.sh
# --arch arm64): a copy of board/arm64's plain Debian 13 arm64 root with systemd, udev, what
# systemd/test-service.sh calls (curl, nsenter, ps, python3) and the Depends of the .deb to test, so
# that `dpkg -i` in the guest finds them (the guest's dpkg database is this root's, under a tmpfs
# overlay: the root itself is never written by the VM). Kept in $RTCAM_CACHE/systemd-arm64; packages
# missing from it are added with apt under qemu-user (minutes the first time). Prints its path.
#
#   bash board/qemu-aarch64/systemd-userland.sh PACKAGE.deb
source "$(dirname "${BASH_SOURCE[0]}")/../arm64/make-roots.sh"   # common.sh, add_missing_sysroot_packages

deb=${1:-}
[ -f "$deb" ] || fail "usage: systemd-userland.sh PACKAGE.deb"
root=$cache/systemd-arm64

make_systemd_userland() {
    ensure_host_tools
    ensure_binfmt
    make_debian_root arm64 "$cache/base-arm64"
    if [ ! -e "$root/.rtcam-complete" ]; then
        rm -rf --one-file-system "$root.tmp" "$root"
        cp -a "$cache/base-arm64" "$root.tmp"
        mv "$root.tmp" "$root"
    fi
    # The package's Depends, alternatives and version constraints dropped (Debian 13 satisfies them).
    local depends
    depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' | grep -v '^$')
    # shellcheck disable=SC2086  # one package a word
    add_missing_sysroot_packages "$root" systemd systemd-sysv udev curl util-linux procps python3-minimal $depends
}
with_roots_lock make_systemd_userland
echo "$root"
