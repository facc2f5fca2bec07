#!/usr/bin/env bash
# Makes (or checks) the roots and the Swift SDK for cross-compiling rtcam to aarch64, in
# $RTCAM_CACHE (default /var/cache/rtcam-arm64; see common.sh for the layout). From nothing this
# debootstraps two Debian 13 roots and downloads unstable's swiftlang for amd64 and arm64 (about
# 1.3 GB); each part that is complete is kept and reused by the next run.
#
#   bash board/arm64/make-roots.sh
#
# Why these pieces (DESIGN.md, "Facts measured on these machines"): Debian 13's own swiftlang is
# 6.0.3, too old for rtcam; unstable's 6.2.3 is new enough. The compiler runs natively (amd64) and
# cross-compiles against an arm64 Debian 13 sysroot holding Debian 13's libc6-dev (glibc 2.41, what
# Raspberry Pi OS trixie has) and rtcam's -dev packages; only the aarch64 Swift runtime comes from
# unstable (its libraries need at most GLIBC_2.38).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The arm64 -dev packages rtcam links against (Package.swift's system libraries) and the C++
# runtime the Swift runtime needs; dpkg-dev for dpkg-shlibdeps (the .deb's Depends).
sysroot_packages=(libc6-dev libstdc++-14-dev linux-libc-dev libmbedtls-dev libsrtp2-dev libx264-dev
                  libopus-dev libspeexdsp-dev libasound2-dev libv4l-dev libturbojpeg0-dev dpkg-dev)
# The sysroot is also where test-arm64.sh runs the aarch64 Swift tests: ffmpeg (ffprobe) for the
# tests that decode the H.264 they encode, as on amd64. Its hundred-odd dependencies take about ten
# minutes of dpkg under qemu on a fresh machine: make test has them added with the roots, in the
# background (roots-in-background.sh), while the amd64 build and tests run.
sysroot_test_packages=(ffmpeg)

make_build_root() {
    local root=$cache/build-amd64 stamp
    make_debian_root amd64 "$root"
    stamp=$root/.rtcam-swiftlang-$swift_version
    [ -e "$stamp" ] && return 0
    log "build root: unstable's swiftlang $swift_version (amd64) and the arm64 package index"
    # unstable, pinned below Debian 13 so nothing else comes from it unless asked for.
    cat > "$root/etc/apt/sources.list.d/unstable.sources" <<EOF
Types: deb
URIs: $mirror
Suites: unstable
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    printf 'Package: *\nPin: release a=unstable\nPin-Priority: 100\n' > "$root/etc/apt/preferences.d/unstable"
    # This archive's unstable Release file can be past its Valid-Until date.
    echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99rtcam-unstable"
    in_root "$root" dpkg --add-architecture arm64
    in_root "$root" apt-get update -qq
    # swiftlang 6.2.3 needs unstable's libc6 (>= 2.42): take its dependencies from unstable too.
    in_root "$root" apt-get install -y -qq --no-install-recommends -t unstable \
        "swiftlang=$swift_version" "libswiftlang=$swift_version" > "$cache/logs/build-root-apt.log" 2>&1 ||
        { tail -n 30 "$cache/logs/build-root-apt.log" >&2; fail "installing swiftlang in the build root failed"; }
    in_root "$root" apt-get install -y -qq --no-install-recommends git ca-certificates pkg-config \
        libc6-dev/unstable libstdc++-14-dev >> "$cache/logs/build-root-apt.log" 2>&1 ||
        { tail -n 30 "$cache/logs/build-root-apt.log" >&2; fail "installing git and pkg-config in the build root failed"; }
    in_root "$root" apt-get clean
    touch "$stamp"
}

# unstable's arm64 swiftlang (compiler and runtime; only the runtime is used) and libswiftlang.
download_swift_arm64() {
    local root=$cache/build-amd64 package
    mkdir -p "$cache/debs"
    for package in swiftlang libswiftlang; do
        local deb=$cache/debs/${package}_${swift_version/:/%3a}_arm64.deb
        [ -s "$deb" ] && continue
        log "downloading $package:arm64 $swift_version"
        rm -rf "$root/tmp/rtcam-debs" && mkdir -p "$root/tmp/rtcam-debs" && chmod 777 "$root/tmp/rtcam-debs"
        in_root "$root" sh -c "cd /tmp/rtcam-debs && apt-get download -q $package:arm64=$swift_version" > /dev/null 2>&1 ||
            fail "apt-get download $package:arm64=$swift_version failed"
        mv "$root"/tmp/rtcam-debs/*.deb "$deb.part" && mv "$deb.part" "$deb"
    done
}

# The plain root's package lists, read once here (apt under qemu takes a minute): each test root
# copied from it installs the .deb without an apt-get update of its own.
update_base_lists() {
    local root=$cache/base-arm64
    [ -e "$root/.rtcam-apt-lists" ] && return 0
    chroot_mount "$root"
    in_root "$root" apt-get update -qq > "$cache/logs/base-apt-update.log" 2>&1 ||
        { unmount_all_under "$root"; tail -n 20 "$cache/logs/base-apt-update.log" >&2; fail "apt-get update in the plain arm64 root failed"; }
    unmount_all_under "$root"
    touch "$root/.rtcam-apt-lists"
}

# add_missing_sysroot_packages ROOT PACKAGE...: what is not installed yet (a cached sysroot made
# before a package joined the list; the test packages), installed with apt under qemu.
add_missing_sysroot_packages() {
    local root=$1 package missing=()
    shift
    for package in "$@"; do
        dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed' ||
            missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "sysroot: adding ${missing[*]}"
    chroot_mount "$root"
    { in_root "$root" apt-get update -qq &&
      in_root "$root" apt-get install -y -qq --no-install-recommends "${missing[@]}" &&
      in_root "$root" apt-get clean; } > "$cache/logs/sysroot-add.log" 2>&1 ||
        { unmount_all_under "$root"; tail -n 30 "$cache/logs/sysroot-add.log" >&2; fail "adding ${missing[*]} to the sysroot failed"; }
    unmount_all_under "$root"
}

make_sysroot() {
    local root=$cache/sysroot-arm64 tmp=$cache/sysroot-arm64.tmp stamp_name=.rtcam-sysroot-$swift_version
    if [ -e "$root/$stamp_name" ]; then
        add_missing_sysroot_packages "$root" "${sysroot_packages[@]}"
        return 0
    fi
    make_debian_root arm64 "$cache/base-arm64"
    unmount_all_under "$tmp"
    rm -rf --one-file-system "$tmp" "$root"
    log "sysroot: Debian 13 arm64 with ${sysroot_packages[*]} (apt runs under qemu: minutes)"
    cp -a "$cache/base-arm64" "$tmp"
    chroot_mount "$tmp"
    trap 'unmount_all_under "$cache/sysroot-arm64.tmp"' EXIT
    { in_root "$tmp" apt-get update -qq &&
      in_root "$tmp" apt-get install -y -qq --no-install-recommends "${sysroot_packages[@]}" &&
      in_root "$tmp" apt-get clean; } > "$cache/logs/sysroot-apt.log" 2>&1 ||
        { tail -n 30 "$cache/logs/sysroot-apt.log" >&2; fail "installing the -dev packages in the sysroot failed"; }
    unmount_all_under "$tmp"
    trap - EXIT

    log "sysroot: the aarch64 Swift runtime from unstable's swiftlang $swift_version"
    local unpacked=$cache/swift-arm64
    rm -rf "$unpacked" && mkdir -p "$unpacked"
    dpkg-deb --fsys-tarfile "$cache/debs/swiftlang_${swift_version/:/%3a}_arm64.deb" |
        tar -x -C "$unpacked" ./usr/libexec/swift/lib/swift ./usr/libexec/swift/lib/swift_static ./usr/libexec/swift/lib/clang
    dpkg-deb --fsys-tarfile "$cache/debs/libswiftlang_${swift_version/:/%3a}_arm64.deb" | tar -x -C "$unpacked"
    mkdir -p "$tmp/usr/libexec/swift/lib"
    cp -a "$unpacked/usr/libexec/swift/lib/." "$tmp/usr/libexec/swift/lib/"
    rm -rf "$unpacked"
    # The driver looks for the runtime (swiftrt.o, the modules) under usr/lib/swift{,_static} of the SDK.
    ln -sfn ../libexec/swift/lib/swift "$tmp/usr/lib/swift"
    ln -sfn ../libexec/swift/lib/swift_static "$tmp/usr/lib/swift_static"
    touch "$tmp/$stamp_name"
    mv "$tmp" "$root"
}

# The Swift SDK bundle (SE-0387): paths as the build root sees them (sysroot bind-mounted at /sysroot).
make_sdk() {
    local bundle=$cache/sdk/rtcam-arm64.artifactbundle
    mkdir -p "$bundle/rtcam-arm64"
    cat > "$bundle/info.json" <<'EOF'
{
  "schemaVersion": "1.0",
  "artifacts": {
    "rtcam-arm64": {
      "type": "swiftSDK",
      "version": "1",
      "variants": [{ "path": "rtcam-arm64", "supportedTriples": ["x86_64-unknown-linux-gnu", "x86_64-pc-linux-gnu"] }]
    }
  }
}
EOF
    cat > "$bundle/rtcam-arm64/swift-sdk.json" <<'EOF'
{
  "schemaVersion": "4.0",
  "targetTriples": {
    "aarch64-unknown-linux-gnu": {
      "sdkRootPath": "/sysroot",
      "swiftResourcesPath": "/sysroot/usr/lib/swift",
      "swiftStaticResourcesPath": "/sysroot/usr/lib/swift_static",
      "toolsetPaths": ["toolset.json"]
    }
  }
}
EOF
    cat > "$bundle/rtcam-arm64/toolset.json" <<'EOF'
{
  "schemaVersion": "1.0",
  "rootPath": "/usr/libexec/swift/bin",
  "linker": { "path": "/usr/libexec/swift/bin/ld.lld" },
  "swiftCompiler": { "extraCLIOptions": ["-use-ld=lld"] }
}
EOF
}

make_all_roots() {
    with_roots_lock make_all_roots_locked
}

make_all_roots_locked() {
    mkdir -p "$cache/logs"
    timed "host tools" ensure_host_tools
    timed "binfmt" ensure_binfmt
    # The arm64 debootstrap (minutes: its second stage runs under qemu) beside the build root's.
    local base_pid
    ( make_debian_root arm64 "$cache/base-arm64" ) & base_pid=$!
    timed "build root (amd64, swiftlang $swift_version)" make_build_root
    timed "swiftlang arm64 download" download_swift_arm64
    timed "debootstrap arm64 (waited for)" wait "$base_pid" || true
    [ -e "$cache/base-arm64/.rtcam-complete" ] || fail "debootstrap arm64 failed (log: $cache/logs/debootstrap-arm64.log)"
    timed "apt lists of the plain arm64 root" update_base_lists
    timed "sysroot (arm64)" make_sysroot
    timed "sysroot test packages (${sysroot_test_packages[*]})" add_missing_sysroot_packages "$cache/sysroot-arm64" "${sysroot_test_packages[@]}"
    make_sdk
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    make_all_roots_and_print() { make_all_roots_locked; print_step_times; }
    with_roots_lock make_all_roots_and_print
fi
