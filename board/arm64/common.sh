# Shared by board/arm64/*.sh (sourced, not run). The build and test roots for aarch64 rtcam live in
# $RTCAM_CACHE (default /var/cache/rtcam-arm64), outside the clone, so a second run reuses them:
#
#   build-amd64/    Debian 13 amd64 + unstable's swiftlang 6.2.3 (and its libc): the compiler host
#   base-arm64/     Debian 13 arm64 minbase, never changed after debootstrap: copied for test roots
#   sysroot-arm64/  Debian 13 arm64 + rtcam's -dev packages + unstable's aarch64 Swift runtime only
#   debs/           unstable's arm64 swiftlang and libswiftlang .debs (the runtime's source)
#   sdk/            the Swift SDK bundle that points swift build at sysroot-arm64
#
# Everything runs as root (debootstrap, chroot, mounts). aarch64 programs run through qemu-user
# (binfmt_misc), which ensure_binfmt sets up.
set -euo pipefail

arm64_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$arm64_here/../.." && pwd)
cache=${RTCAM_CACHE:-/var/cache/rtcam-arm64}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
swift_version=6.2.3-1+b1  # unstable's swiftlang; RTCAM_SWIFTLANG_VERSION overrides
swift_version=${RTCAM_SWIFTLANG_VERSION:-$swift_version}

log() { printf '== [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { echo "arm64: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, chroot and binfmt_misc need it)"

# Runs a command and logs how long it took ("step NAME: N s"); test-arm64.sh's timings come from here.
step_times=()
timed() {
    local name=$1 start=$SECONDS; shift
    "$@"
    step_times+=("$name: $((SECONDS - start)) s")
    log "$name done in $((SECONDS - start)) s"
}
print_step_times() { printf '  %s\n' "${step_times[@]}" >&2; }

apt_host() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 "$@"
}

# Host tools: debootstrap, qemu-user-static (registers qemu-aarch64 with binfmt_misc), binfmt-support.
ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} on the host"
        apt_host update -qq
        apt_host install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# aarch64 ELF files run through qemu-aarch64; the F flag (fix binary) makes that work inside chroots.
ensure_binfmt() {
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || fail "cannot mount binfmt_misc"
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        update-binfmts --enable qemu-aarch64 2>/dev/null || true
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        # No binfmt-support entry: register qemu-user-static by hand (magic and mask of an aarch64 ELF).
        local interpreter=/usr/bin/qemu-aarch64-static
        [ -x "$interpreter" ] || interpreter=/usr/libexec/qemu-binfmt/aarch64-binfmt-P
        echo ":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$interpreter:F" \
            > /proc/sys/fs/binfmt_misc/register
    fi
    grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || fail "qemu-aarch64 is registered without the F flag: chroots cannot use it"
    [ "$(cat /proc/sys/fs/binfmt_misc/qemu-aarch64 | head -n 1)" = enabled ] || echo 1 > /proc/sys/fs/binfmt_misc/qemu-aarch64
}

# debootstrap ARCH DIR: a Debian 13 minbase root, made in DIR.tmp and renamed when complete.
make_debian_root() {
    local arch=$1 dir=$2
    [ -e "$dir/.rtcam-complete" ] && return 0
    unmount_all_under "$dir.tmp"
    rm -rf --one-file-system "$dir.tmp" "$dir"
    log "debootstrap --arch=$arch $suite $dir"
    debootstrap --arch="$arch" --variant=minbase "$suite" "$dir.tmp" "$mirror" > "$cache/logs/debootstrap-$arch.log" 2>&1 ||
        { tail -n 20 "$cache/logs/debootstrap-$arch.log" >&2; fail "debootstrap $arch failed (log: $cache/logs/debootstrap-$arch.log)"; }
    unmount_all_under "$dir.tmp"
    touch "$dir.tmp/.rtcam-complete"
    mv "$dir.tmp" "$dir"
}

# Mounts made by chroot_mount, unmounted by unmount_all_under (deepest first).
unmount_all_under() {
    local dir=$1 mounts
    [ -d "$dir" ] || return 0
    dir=$(readlink -f "$dir")
    mounts=$(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r)
    for m in $mounts; do umount -l "$m" 2>/dev/null || true; done
}

# chroot_mount ROOT [SOURCE:TARGET ...]: /proc, /sys, /dev, /dev/pts, /run (tmpfs) and bind mounts of
# host directories at TARGET inside ROOT. Undo with unmount_all_under ROOT (the callers' EXIT traps).
chroot_mount() {
    local root=$1; shift
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    mountpoint -q "$root/sys" || mount -t sysfs sysfs "$root/sys"
    mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
    mountpoint -q "$root/dev/pts" || mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null || true
    mountpoint -q "$root/run" || mount -t tmpfs tmpfs "$root/run"
    local spec source target
    for spec in "$@"; do
        source=${spec%%:*}; target=${spec#*:}
        mkdir -p "$root$target"
        mountpoint -q "$root$target" || mount --bind "$source" "$root$target"
    done
    [ -e "$root/etc/resolv.conf" ] || cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

# with_roots_lock COMMAND...: one process at a time changes the cached roots (two test runs on one
# machine, or make test's background roots and a build, would otherwise meet at apt's lock).
with_roots_lock() {
    if [ -n "${RTCAM_ROOTS_LOCKED:-}" ]; then "$@"; return; fi
    mkdir -p "$cache"
    (
        flock 8
        RTCAM_ROOTS_LOCKED=1 "$@"
    ) 8>"$cache/.roots.lock"
}

in_root() {
    local root=$1; shift
    chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# The host's git url.*.insteadOf rewrites to local directories (a package mirror instead of GitHub):
# "DIR" lines for chroot_mount, and the same rewrites written into ROOT's /etc/gitconfig.
git_mirror_dirs() {
    git config --system --get-regexp '^url\..*\.insteadof$' 2>/dev/null |
        sed -E 's/^url\.(.*)\.insteadof .*$/\1/I' | sort -u | while read -r dir; do
            [ -d "$dir" ] && echo "${dir%/}"
        done
}
copy_git_config_into() {
    local root=$1
    : > "$root/etc/gitconfig"
    git config --system --get-regexp '^url\..*\.insteadof$' 2>/dev/null | while read -r key value; do
        git config --file "$root/etc/gitconfig" --add "$key" "$value"
    done
    git config --file "$root/etc/gitconfig" --add safe.directory '*'
}

# The clone's files (tracked, and untracked ones git does not ignore) copied to $cache/src, which the
# cross-builds compile at /src. A file whose bytes and mode did not change is left as it is, with its
# old time, so SwiftPM's scratch directories in $cache rebuild only what changed since the last build
# from any clone; a fresh clone's own files all have new times and would rebuild every rtcam module
# (10 minutes for the test bundle). Files gone from the clone are removed (not SwiftPM's own
# Package.resolved, which the builds write there).
sync_sources_to_cache() {
    local destination=$cache/src file changed=0 removed=0 list
    mkdir -p "$destination"
    list=$(mktemp)
    (cd "$repo" && git ls-files -co --exclude-standard) | sort > "$list"
    while IFS= read -r file; do
        [ -f "$repo/$file" ] || continue
        if [ -f "$destination/$file" ] && cmp -s "$repo/$file" "$destination/$file" &&
            [ "$(stat -c %a "$repo/$file")" = "$(stat -c %a "$destination/$file")" ]; then
            continue
        fi
        mkdir -p "$(dirname "$destination/$file")"
        rm -f "$destination/$file"
        cp "$repo/$file" "$destination/$file"
        changed=$((changed + 1))
    done < "$list"
    while IFS= read -r file; do
        rm -f "$destination/$file"
        removed=$((removed + 1))
    done < <(cd "$destination" && find . -type f ! -path './.build/*' ! -path './.swiftpm/*' ! -name Package.resolved |
                 sed 's|^\./||' | sort | comm -23 - "$list")
    rm -f "$list"
    log "sources: $changed files new or changed since the last aarch64 build, $removed removed ($destination)"
}
