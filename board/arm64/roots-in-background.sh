#!/usr/bin/env bash
# `make test` starts the arm64 roots (make-roots.sh: two Debian 13 debootstraps, unstable's
# swiftlang, the sysroot with ffmpeg for the aarch64 tests; about 15 minutes on a fresh machine,
# nothing when they are cached) while the amd64 build and unit tests run, and waits for them before
# the timing-sensitive interop tests.
#
#   bash board/arm64/roots-in-background.sh start|wait
source "$(dirname "$0")/make-roots.sh"   # common.sh, and the sysroot package lists

state=$cache/logs/roots-in-background
sysroot_has_packages() {
    local package
    for package in "$@"; do
        dpkg-query --admindir="$cache/sysroot-arm64/var/lib/dpkg" -W -f='${Status}\n' "$package" 2>/dev/null |
            grep -q '^install ok installed' || return 1
    done
}
mkdir -p "$cache/logs"
case ${1:-} in
    start)
        if [ -e "$cache/sysroot-arm64/.rtcam-sysroot-$swift_version" ] && [ -e "$cache/build-amd64/.rtcam-swiftlang-$swift_version" ] &&
            sysroot_has_packages "${sysroot_test_packages[@]}"; then
            echo "arm64 roots: cached in $cache" >&2
            rm -f "$state.pid" "$state.status"
            exit 0
        fi
        echo "arm64 roots: making them in the background (log: $state.log)" >&2
        rm -f "$state.status"
        ( set +e; bash "$arm64_here/make-roots.sh" > "$state.log" 2>&1; echo $? > "$state.status" ) < /dev/null &
        echo $! > "$state.pid"
        ;;
    wait)
        [ -e "$state.pid" ] || exit 0
        start=$SECONDS
        while [ ! -e "$state.status" ]; do sleep 2; done
        rm -f "$state.pid"
        status=$(cat "$state.status")
        echo "arm64 roots: ready (waited $((SECONDS - start)) s); their steps:" >&2
        grep -E '^== ' "$state.log" | tail -n 12 >&2 || true
        [ "$status" = 0 ] || { tail -n 40 "$state.log" >&2; fail "making the arm64 roots failed"; }
        ;;
    *) fail "usage: roots-in-background.sh start|wait" ;;
esac
