#!/usr/bin/env bash
# `make arm64`: the release aarch64 rtcam for Debian 13 / Raspberry Pi OS trixie (arm64) and
# out/rtcam_<version>_arm64.deb, cross-compiled on this (x86-64) machine. Run as root.
#
#   bash board/arm64/build-arm64.sh [--tests]
#
#   --tests   also cross-build the Swift test bundle (debug, $RTCAM_CACHE/scratch/aarch64-unknown-
#             linux-gnu/debug/rtcamPackageTests.xctest) for board/arm64/test-arm64.sh
#
# make-roots.sh makes the compiler root and the arm64 sysroot first (cached in $RTCAM_CACHE). The
# source tree (a copy, see below) is bind-mounted into the build root at /src and built there with
# unstable's Swift 6.2.3 against the sysroot (mbedTLS 3.6, glibc 2.41); the Swift standard library is linked in
# statically, as on amd64. SwiftPM's scratch directory is $RTCAM_CACHE/scratch (at /scratch in the
# build root), outside the clone, and the sources are compiled from a copy in $RTCAM_CACHE/src that
# keeps the times of files that did not change (sync_sources_to_cache): a fresh clone then recompiles
# only the modules its changes touch, not SwiftNIO and not every rtcam module. One build at a time
# ($RTCAM_CACHE/.build.lock): the copy and the scratch directories are shared by every clone.
# Output: out/arm64/rtcam (release, with symbols) and out/rtcam_<version>_arm64.deb (stripped).
source "$(dirname "$0")/make-roots.sh"

build_tests=no
for argument in "$@"; do
    case $argument in
        --tests) build_tests=yes ;;
        *) fail "unknown argument $argument" ;;
    esac
done

make_all_roots

exec 9>"$cache/.build.lock"
flock 9
timed "sources copied to $cache/src" sync_sources_to_cache

build_root=$cache/build-amd64
scratch=$cache/scratch
test_scratch=$cache/scratch-tests
mkdir -p "$scratch" "$test_scratch"
mounts=("$cache/src:/src" "$cache/sysroot-arm64:/sysroot" "$cache/sdk:/sdk" "$scratch:/scratch" "$test_scratch:/scratch-tests")
for dir in $(git_mirror_dirs); do mounts+=("$dir:$dir"); done
trap 'unmount_all_under "$build_root"' EXIT
chroot_mount "$build_root" "${mounts[@]}"
copy_git_config_into "$build_root"

triple=aarch64-unknown-linux-gnu
# pkg-config files of the sysroot's libraries (SwiftPM reads them itself), paths prefixed with /sysroot.
pc_env=(PKG_CONFIG_SYSROOT_DIR=/sysroot
        PKG_CONFIG_PATH=/sysroot/usr/lib/aarch64-linux-gnu/pkgconfig:/sysroot/usr/share/pkgconfig
        PKG_CONFIG_LIBDIR=/sysroot/usr/lib/aarch64-linux-gnu/pkgconfig:/sysroot/usr/share/pkgconfig)
swift_build=(swift build --swift-sdks-path /sdk --swift-sdk rtcam-arm64 --scratch-path /scratch)

cross_build() {
    in_root "$build_root" env "${pc_env[@]}" sh -c "cd /src && $*"
}

timed "swift build -c release (aarch64)" \
    cross_build "${swift_build[*]} -c release --static-swift-stdlib --product rtcam"
[ -x "$scratch/$triple/release/rtcam" ] || fail "no binary at $scratch/$triple/release/rtcam"
mkdir -p "$repo/out/arm64"
binary=$repo/out/arm64/rtcam
cp "$scratch/$triple/release/rtcam" "$binary"

if [ "$build_tests" = yes ]; then
    # The test bundle is optimized (-c release): under qemu-user, debug Swift runs the suite several
    # times slower. @testable imports need -enable-testing. Its own scratch directory: the same
    # release directory with other flags would rebuild the shipped binary's modules every time.
    # Debian's swiftlang 6.2.3 ships the _Testing_Foundation overlay's module but not its library;
    # SwiftPM's generated test runner imports Testing and Foundation, which would pull it in.
    timed "swift build -c release --build-tests (aarch64)" \
        cross_build "swift build --swift-sdks-path /sdk --swift-sdk rtcam-arm64 --scratch-path /scratch-tests" \
            "-c release --build-tests -Xswiftc -enable-testing -Xswiftc -Xfrontend -Xswiftc -disable-cross-import-overlays"
fi
unmount_all_under "$build_root"
trap - EXIT

# The package: Depends from dpkg-shlibdeps run in the arm64 sysroot (Debian 13's shlibs files).
timed "deb (arm64)" env RTCAM_BIN="$binary" RTCAM_SHLIBDEPS_ROOT="$cache/sysroot-arm64" \
    bash "$repo/board/debian-package/build-deb.sh"
print_step_times
