#!/usr/bin/env bash
# Cross-compiles rtcam for 64-bit ARM Linux (Raspberry Pi OS Lite 64-bit / Debian 12 arm64) on an
# x86-64 (or any) Linux machine with a Swift SDK for aarch64-unknown-linux-gnu, and optionally
# packages it as rtcam_<version>_arm64.deb.
#
#   bash board/cross-build-aarch64.sh [--fetch-libs] [--deb] [--sdk ID]
#
#   --sdk ID        the Swift SDK to use (default: the one `swift sdk list` shows for aarch64 glibc;
#                   RTCAM_SWIFT_SDK works too)
#   --fetch-libs    put the arm64 C libraries rtcam links (x264, Opus, mbedTLS, libsrtp2 and its NSS,
#                   ALSA, kernel headers) from Debian 12 into the SDK's sysroot, with apt-get using a
#                   private state directory (this machine's apt configuration is not touched)
#   --deb           then build the package: board/debian-package/build-deb.sh with RTCAM_BIN
#
# The SDK. A Debian 12 one matches Raspberry Pi OS bookworm (same glibc 2.36 and C libraries):
#   git clone https://github.com/swiftlang/swift-sdk-generator && cd swift-sdk-generator
#   swift run swift-sdk-generator make-linux-sdk --swift-version <this toolchain, e.g. 6.3.1-RELEASE> \
#       --distribution-name debian --distribution-version 12 --target aarch64-unknown-linux-gnu
#   swift sdk install Bundles/<the bundle it printed>.artifactbundle
# The static Linux SDK (musl) is not enough: rtcam links glibc-built Debian libraries.
#
# Output: .build-aarch64/aarch64-unknown-linux-gnu/release/rtcam (Swift standard library linked
# statically, like the native release build).
set -euo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
triple=aarch64-unknown-linux-gnu
sdk=${RTCAM_SWIFT_SDK:-}
fetch_libs=no
make_deb=no

fail() { echo "cross-build-aarch64: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
        --sdk) sdk=${2:?--sdk needs an id}; shift ;;
        --fetch-libs) fetch_libs=yes ;;
        --deb) make_deb=yes ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) fail "unknown option $1 (see --help)" ;;
    esac
    shift
done

command -v "$swift" >/dev/null || fail "no swift on PATH (install the Swift toolchain, https://swift.org/install)"

# 1. The SDK.
installed=$("$swift" sdk list 2>/dev/null | grep -v '^No Swift SDKs' || true)
if [ -z "$sdk" ]; then
    sdk=$(echo "$installed" | grep -i -E 'aarch64|arm64' | grep -v -i musl | head -1 || true)
fi
if [ -z "$sdk" ] || ! echo "$installed" | grep -qxF "$sdk"; then
    echo "cross-build-aarch64: no Swift SDK for $triple is installed." >&2
    echo "  swift sdk list: ${installed:-(none)}" >&2
    echo "  Build one for Debian 12 with swift-sdk-generator and install it (see the top of $0)," >&2
    echo "  or build on the board itself: see board/README.md, \"Building on the board\"." >&2
    exit 2
fi
echo "== Swift SDK: $sdk"

# Its sysroot, where the C libraries and their pkg-config files must be.
sysroot=$("$swift" sdk configure --show-configuration "$sdk" "$triple" 2>/dev/null |
          sed -n 's/^sdkRootPath: *//p' | head -1 || true)
if [ -z "$sysroot" ] || [ ! -d "$sysroot" ]; then
    bundle_json=$(find "${SWIFTPM_SDKS:-$HOME/.swiftpm/swift-sdks}" -name swift-sdk.json -path "*$sdk*" 2>/dev/null | head -1)
    [ -n "$bundle_json" ] || fail "cannot find the sysroot of $sdk"
    relative=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["targetTriples"][sys.argv[2]]["sdkRootPath"])' \
               "$bundle_json" "$triple")
    sysroot=$(cd "$(dirname "$bundle_json")" && cd "$relative" && pwd)
fi
echo "   sysroot: $sysroot"
multiarch=$sysroot/usr/lib/aarch64-linux-gnu

# 2. The arm64 C libraries in the sysroot.
packages=(libx264-dev libx264-164 libopus-dev libopus0 libmbedtls-dev libmbedtls14 libmbedx509-1
          libmbedcrypto7 libsrtp2-dev libsrtp2-1 libnss3 libnspr4 libasound2-dev libasound2 linux-libc-dev)
if [ "$fetch_libs" = yes ]; then
    echo "== fetching the arm64 C libraries from Debian 12 into the sysroot"
    apt_dir=$(mktemp -d)
    trap 'rm -rf "$apt_dir"' EXIT
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/debs"
    touch "$apt_dir/status"
    echo "deb [arch=arm64] http://deb.debian.org/debian bookworm main" > "$apt_dir/sources.list"
    apt_options=(-q -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
                 -o "Dir::Cache=$apt_dir" -o "Dir::Cache::archives=$apt_dir/archives"
                 -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
                 -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64" -o "Debug::NoLocking=1")
    apt-get "${apt_options[@]}" update >/dev/null
    (cd "$apt_dir/debs" && apt-get "${apt_options[@]}" download "${packages[@]}" >/dev/null)
    for deb in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
fi
missing=()
for file in include/x264.h include/opus/opus.h include/mbedtls/ssl.h include/srtp2/srtp.h \
            include/alsa/asoundlib.h include/linux/videodev2.h; do
    [ -e "$sysroot/usr/$file" ] || missing+=("$file")
done
[ -e "$multiarch/libx264.so" ] || missing+=("libx264.so")
if [ ${#missing[@]} -gt 0 ]; then
    fail "the sysroot lacks ${missing[*]}: run again with --fetch-libs (or extract the arm64 packages ${packages[*]} into $sysroot)"
fi

# 3. Build. SwiftPM reads the .pc files of the sysroot and prefixes their paths with it
# (PKG_CONFIG_SYSROOT_DIR, SwiftPM 6.0+); a separate scratch path keeps the native build intact.
echo "== swift build -c release --static-swift-stdlib --swift-sdk $sdk"
export PKG_CONFIG_SYSROOT_DIR=$sysroot
export PKG_CONFIG_PATH=$multiarch/pkgconfig:$sysroot/usr/share/pkgconfig
"$swift" build -c release --static-swift-stdlib --swift-sdk "$sdk" --scratch-path .build-aarch64 --product rtcam
binary=$("$swift" build -c release --static-swift-stdlib --swift-sdk "$sdk" --scratch-path .build-aarch64 --show-bin-path)/rtcam
machine=$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')
case $machine in *AArch64*) ;; *) fail "$binary is for '$machine', not AArch64" ;; esac
echo "built $binary ($machine)"
# The Pi 5's kernel uses 16 KB pages: LOAD segments aligned to less do not map there.
alignment=$(readelf -lW "$binary" | awk '$1 == "LOAD" { print $NF }' | sort -u | head -1)
if [ $((alignment)) -lt $((0x4000)) ]; then
    fail "LOAD segments aligned to $alignment: will not run on 16 KB-page kernels (Pi 5); link with -Xlinker -z -Xlinker max-page-size=0x10000"
fi
echo "   LOAD alignment $alignment (fine for 4, 16 and 64 KB pages)"
readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/   needs \1/p'

if [ "$make_deb" = yes ]; then
    RTCAM_BIN=$binary bash board/debian-package/build-deb.sh
fi
