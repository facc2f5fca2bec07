#!/usr/bin/env bash
# Builds the rtcam Debian package with dpkg-deb (no debhelper, no debian/ source tree), then runs
# lintian on it when lintian is installed.
#
#   bash board/debian-package/build-deb.sh             # native: builds the release binary first
#   RTCAM_BIN=path/to/rtcam bash board/debian-package/build-deb.sh   # package a binary built elsewhere
#                                                      # (board/arm64/build-arm64.sh does this)
# Environment: RTCAM_VERSION (default 0.1.0), DEB_MAINTAINER, OUT_DIR (default out/), SWIFT,
# RTCAM_SHLIBDEPS_ROOT: a Debian root of the binary's architecture with dpkg-dev and the libraries
# installed (board/arm64's sysroot), where dpkg-shlibdeps runs (under qemu-user for a foreign one)
# to compute Depends for a cross-built binary.
# Needs: dpkg-dev (dpkg-shlibdeps), binutils (strip, readelf); lintian is optional.
#
# The package: /usr/bin/rtcam (Swift standard library linked in statically, stripped; the pages
# are compiled into it), its manual page, /lib/systemd/system/rtcam.service, /etc/rtcam/rtcam.conf (conffile),
# /usr/lib/sysusers.d/rtcam.conf (the "rtcam" user in video and audio), and the README.
# Depends: the C libraries the binary really links (dpkg-shlibdeps), plus systemd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

version=${RTCAM_VERSION:-0.1.0}
maintainer=${DEB_MAINTAINER:-rtcam maintainers <rtcam@example.org>}
out=${OUT_DIR:-$repo/out}
swift=${SWIFT:-swift}

fail() { echo "build-deb: $*" >&2; exit 1; }
for tool in dpkg-deb readelf; do command -v $tool >/dev/null || fail "$tool not found (apt-get install dpkg-dev binutils)"; done

# 1. The binary.
if [ -n "${RTCAM_BIN:-}" ]; then
    binary=$RTCAM_BIN
else
    echo "== swift build -c release --static-swift-stdlib"
    "$swift" build -c release --static-swift-stdlib --product rtcam
    binary=$("$swift" build -c release --static-swift-stdlib --show-bin-path)/rtcam
fi
[ -x "$binary" ] || fail "no rtcam binary at $binary"

# The package architecture follows the binary, not this machine (cross builds).
case $(readelf -h "$binary" | sed -n 's/^ *Machine: *//p') in
    *AArch64*) arch=arm64; gnu_triple=aarch64-linux-gnu ;;
    *X86-64*)  arch=amd64; gnu_triple=x86_64-linux-gnu ;;
    *ARM*)     arch=armhf; gnu_triple=arm-linux-gnueabihf ;;
    *)         fail "unknown machine in $binary: $(readelf -h "$binary" | grep Machine)" ;;
esac
native_arch=$(dpkg --print-architecture)

# 2. The tree.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/rtcam
install -d -m 755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/rtcam" \
    "$root/usr/lib/sysusers.d" "$root/usr/share/doc/rtcam" "$root/usr/share/man/man1"
install -m 755 "$binary" "$root/usr/bin/rtcam"
install -d "$root/usr/lib/rtcam"
install -m 755 "$here/rtcam-boot-setup-code" "$root/usr/lib/rtcam/rtcam-boot-setup-code"
# As dh_strip does. strip from binutils handles this machine's architecture; for another one, the
# cross binutils (binutils-aarch64-linux-gnu) or the Swift toolchain's llvm-objcopy.
strip_flags=(--remove-section=.comment --remove-section=.note --strip-unneeded)
if [ "$arch" = "$native_arch" ] && command -v strip >/dev/null; then
    strip "${strip_flags[@]}" "$root/usr/bin/rtcam"
elif command -v "$gnu_triple-strip" >/dev/null; then
    "$gnu_triple-strip" "${strip_flags[@]}" "$root/usr/bin/rtcam"
elif objcopy=$(dirname "$(readlink -f "$(command -v "$swift")")")/llvm-objcopy && [ -x "$objcopy" ]; then
    "$objcopy" "${strip_flags[@]}" "$root/usr/bin/rtcam"
else
    fail "no strip for $arch (apt-get install binutils-$gnu_triple)"
fi
install -m 644 systemd/rtcam.service "$root/lib/systemd/system/rtcam.service"
install -m 644 "$here/rtcam.conf" "$root/etc/rtcam/rtcam.conf"
install -m 644 "$here/rtcam.sysusers" "$root/usr/lib/sysusers.d/rtcam.conf"
# mDNS/DNS-SD (issue 21): avahi-daemon announces HTTP, HTTPS and RTSP; a conffile (ports may change).
install -d "$root/etc/avahi/services"
install -m 644 "$here/rtcam.avahi-service" "$root/etc/avahi/services/rtcam.service"
install -m 644 README.md "$root/usr/share/doc/rtcam/README.md"
gzip -9n < "$here/rtcam.1" > "$root/usr/share/man/man1/rtcam.1.gz"
chmod 644 "$root/usr/share/man/man1/rtcam.1.gz"
install -m 644 "$here/copyright" "$root/usr/share/doc/rtcam/copyright"
# A native package (no Debian revision): the changelog is changelog.gz.
{
    printf 'rtcam (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Release %s of rtcam, packaged with board/debian-package/build-deb.sh.\n\n' "$version"
    printf ' -- %s  %s\n' "$maintainer" "$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")"
} | gzip -9n > "$root/usr/share/doc/rtcam/changelog.gz"
chmod 644 "$root/usr/share/doc/rtcam/changelog.gz"
for script in postinst prerm postrm; do install -m 755 "$here/$script" "$root/DEBIAN/$script"; done
printf '%s\n' /etc/rtcam/rtcam.conf /etc/avahi/services/rtcam.service > "$root/DEBIAN/conffiles"

# 3. Depends: what the binary links, with the minimum versions from the libraries' shlibs/symbols
# files (dpkg-shlibdeps wants a debian/control to read, so it gets a two-line one). For a foreign
# architecture whose libraries dpkg does not know, the NEEDED entries map to Debian 12 packages.
shlib_depends=
if [ -n "${RTCAM_SHLIBDEPS_ROOT:-}" ]; then
    # The target's own dpkg database and shlibs/symbols files: the real minimum versions.
    [ -x "$RTCAM_SHLIBDEPS_ROOT/usr/bin/dpkg-shlibdeps" ] || fail "no dpkg-shlibdeps in $RTCAM_SHLIBDEPS_ROOT"
    # dpkg-shlibdeps under qemu takes a minute or two; its inputs are the libraries the binary needs,
    # the versioned symbols it imports and the root's packages, so the answer is kept for those.
    key=$( { readelf -d "$binary" | grep NEEDED; readelf --dyn-syms -W "$binary" | awk '$7 == "UND" { print $8 }' | sort -u
             cat "$RTCAM_SHLIBDEPS_ROOT/var/lib/dpkg/status"; } | sha256sum | cut -c1-32)
    memo=$RTCAM_SHLIBDEPS_ROOT/var/cache/rtcam-shlibdeps/$key
    if [ -s "$memo" ]; then
        shlib_depends=$(cat "$memo")
    else
        work=$(mktemp -d "$RTCAM_SHLIBDEPS_ROOT/tmp/rtcam-shlibdeps.XXXXXX")
        mkdir -p "$work/debian" "$work/bin"
        printf 'Source: rtcam\n\nPackage: rtcam\nArchitecture: any\n' > "$work/debian/control"
        cp "$root/usr/bin/rtcam" "$work/bin/rtcam"
        # Its warnings about $ORIGIN in RUNPATH and usrmerge diversions do not change the result.
        shlib_depends=$(chroot "$RTCAM_SHLIBDEPS_ROOT" sh -c "cd /tmp/${work##*/} && dpkg-shlibdeps -O -ebin/rtcam 2>/dev/null" |
                        sed -n 's/^shlibs:Depends=//p') || { rm -rf "$work"; fail "dpkg-shlibdeps failed in $RTCAM_SHLIBDEPS_ROOT"; }
        rm -rf "$work"
        [ -n "$shlib_depends" ] || fail "dpkg-shlibdeps in $RTCAM_SHLIBDEPS_ROOT gave no Depends"
        mkdir -p "${memo%/*}" && printf '%s\n' "$shlib_depends" > "$memo"
    fi
elif [ "$arch" = "$native_arch" ]; then
    mkdir -p "$stage/source/debian"
    printf 'Source: rtcam\n\nPackage: rtcam\nArchitecture: any\n' > "$stage/source/debian/control"
    shlib_depends=$(cd "$stage/source" && dpkg-shlibdeps -O -e"$root/usr/bin/rtcam" 2>/dev/null |
                    sed -n 's/^shlibs:Depends=//p') || shlib_depends=
fi
if [ -z "$shlib_depends" ]; then
    packages=()
    for soname in $(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
        case $soname in
            libc.so.6|libm.so.6|ld-linux*) packages+=("libc6 (>= 2.34)") ;;
            libgcc_s.so.1)      packages+=("libgcc-s1 (>= 3.0)") ;;
            libstdc++.so.6)     packages+=("libstdc++6 (>= 12)") ;;
            libx264.so.164)     packages+=("libx264-164 (>= 2:0.164.3095)") ;;
            libopus.so.0)       packages+=("libopus0 (>= 1.1)") ;;
            libspeexdsp.so.1)   packages+=("libspeexdsp1 (>= 1.2)") ;;
            libmbedtls.so.14)   packages+=("libmbedtls14 (>= 2.28)") ;;
            libmbedx509.so.1)   packages+=("libmbedx509-1 (>= 2.28)") ;;
            libmbedcrypto.so.7) packages+=("libmbedcrypto7 (>= 2.28)") ;;
            libsrtp2.so.1)      packages+=("libsrtp2-1 (>= 2.4)") ;;
            libasound.so.2)     packages+=("libasound2 (>= 1.0.16)") ;;
            libv4l2.so.0)       packages+=("libv4l-0 (>= 0.8.9)") ;;
            *) fail "no Debian package known for $soname: add it to build-deb.sh" ;;
        esac
    done
    shlib_depends=$(printf '%s\n' "${packages[@]}" | sort -u | paste -sd, | sed 's/,/, /g')
fi
# The binary's relative relocations are packed as DT_RELR (Package.swift: -z pack-relative-relocs),
# which glibc loads from 2.36 on; dpkg-shlibdeps does not know that version node. Raise, never lower.
if readelf -V "$binary" | grep -q GLIBC_ABI_DT_RELR; then
    libc_minimum=$(sed -nE 's/.*libc6 \(>= ([0-9.]+)\).*/\1/p' <<<"$shlib_depends")
    if [ -n "$libc_minimum" ] && dpkg --compare-versions "$libc_minimum" lt 2.36; then
        shlib_depends=$(sed -E 's/libc6 \(>= [0-9.]+\)/libc6 (>= 2.36)/' <<<"$shlib_depends")
    fi
fi
# libjpeg-turbo is opened with dlopen (snapshots, MJPEG: CTurboJPEG/turbojpeg_loader.c), so no NEEDED entry names it.
depends="$shlib_depends, libturbojpeg0 (>= 1:2.0), systemd (>= 247), init-system-helpers (>= 1.54)"

# 4. Control file and checksums.
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: rtcam
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Recommends: avahi-daemon
Suggests: libcamera-v4l2
Section: video
Priority: optional
Description: camera daemon streaming live video and audio to browsers (WebRTC)
 rtcam captures a V4L2 camera and an ALSA microphone, encodes H.264 and Opus
 once and streams them to every viewer over WebRTC, with WHEP signaling and
 its own small stack (ICE-lite, DTLS, SRTP, RTP with NACK and RTX). Open
 http://<camera>:8080/ in any current browser: no app, no cloud, no media
 server. The first visit of /settings asks for the password to use and for
 the one-time setup code rtcam writes to the journal.
 .
 The service runs as the unprivileged user "rtcam" (groups video and audio),
 confined by systemd, and keeps its settings in /var/lib/rtcam.
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's|  \./|  |') \
    > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

# 5. The package.
mkdir -p "$out"
deb=$out/rtcam_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "built $deb ($(du -h "$deb" | cut -f1)), Depends: $depends"

if command -v lintian >/dev/null; then
    echo "== lintian"
    lintian --fail-on error "$deb" || fail "lintian found errors"
    echo "lintian: no errors"
else
    echo "(lintian not installed: apt-get install lintian)"
fi
