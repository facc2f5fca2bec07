#!/bin/bash
# Builds a VM board once and caches it under .build-vm/ at the repo root: qemu-x86_64 (Debian's amd64
# kernel) by default, qemu-aarch64 with RTCAM_VM_ARCH=arm64 (Debian's arm64 kernel of the same
# version, its missing modules cross-compiled with Debian's gcc-aarch64-linux-gnu):
#   kernel-<abi>/vmlinuz            Debian's linux-image-6.1.0-N-<amd64|arm64> (the version the host's
#                                   apt lists name for linux-image-amd64; the arm64 .debs come from a
#                                   private arm64 package list under the cache, apt-arm64/)
#   kernel-<abi>/vmlinux            amd64 only: the same kernel uncompressed, booted through its PVH
#                                   entry (faster); arm64's vmlinuz is an uncompressed Image already
#   kernel-<abi>/modroot/           the guest's modules: their closure from the Debian package plus
#                                   the drivers Debian does not build for that architecture, built out
#                                   of tree from linux-source-6.1 (vicodec.ko; v4l2-mem2mem.ko on amd64;
#                                   snd-dummy.ko on arm64) and v4l2loopback.ko from v4l2loopback-dkms
#   kernel-<abi>/initramfs.cpio     busybox-static of the guest's architecture, init.sh as /init,
#                                   modroot (uncompressed: the guest unpacks it ~0.3 s faster than a
#                                   gzip one under TCG)
# Prints the kernel-<abi> directory on stdout (progress on stderr). A second call with nothing changed
# only checks the stamps. RTCAM_VM_KERNEL=6.1.0-N-<arch> pins the kernel; RTCAM_VM_CACHE moves the cache.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${RTCAM_VM_CACHE:-$repo/.build-vm}
arch=${RTCAM_VM_ARCH:-amd64}
log() { echo "build-vm: $*" >&2; }

# Modules the guest loads (names as modprobe takes them); build-vm.sh adds their dependencies.
guest_modules=(
  virtio_pci 9pnet_virtio 9p          # the host directories (9p over virtio)
  virtio_net                          # --net
  vivid videobuf2_dma_contig          # the camera (vivid's allocators=1 takes dma-contig)
  vicodec                             # the M2M codec (built here)
  v4l2loopback                        # a camera that delivers H.264 (built here; loaded on request)
  snd_aloop snd_dummy                 # the microphone (snd-dummy is loadable, not loaded)
  overlay autofs4                     # --systemd: the host's /usr, /etc, /var under a tmpfs overlay;
                                      # autofs for systemd's automount units
  sch_netem ifb sch_ingress act_mirred cls_matchall
                                      # a lossy, slow link on eth0 (the host's kernel has no netem):
                                      # netem on egress, and on ingress through an ifb device
)
# Drivers built here when the kernel's configuration does not build them:
# "CONFIG_SYMBOL module.o source files (relative to linux-source-6.1/)".
built_here=(
  "CONFIG_V4L2_MEM2MEM_DEV v4l2-mem2mem.o drivers/media/v4l2-core/v4l2-mem2mem.c"
  "CONFIG_VIDEO_VICODEC vicodec.o drivers/media/test-drivers/vicodec/*.[ch]"
  "CONFIG_SND_DUMMY snd-dummy.o sound/drivers/dummy.c"
)
case $arch in
  amd64) make_cross=() ;;
  arm64)
    # -M virt has a single UART (the kernel log): the command's console and exit status are virtio
    # consoles, /dev/hvc0 and /dev/hvc1, which init.sh opens once this module is loaded.
    guest_modules+=(virtio_console)
    make_cross=(CROSS_COMPILE=aarch64-linux-gnu-)   # Debian's headers name $(CROSS_COMPILE)gcc-12
    command -v aarch64-linux-gnu-gcc-12 >/dev/null ||
      { log "aarch64-linux-gnu-gcc-12 is missing: bash board/qemu-aarch64/install-host-packages.sh"; exit 1; } ;;
  *) log "RTCAM_VM_ARCH=$arch: amd64 or arm64"; exit 1 ;;
esac

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # one builder at a time (parallel CI jobs share the cache)

# The host's apt lists are amd64 (and all) only: Debian's arm64 packages come from a package list of
# their own, kept under the cache. apt_arm64 COMMAND ARGS... runs an apt command with it.
apt_arm64() {
  local dir=$cache/apt-arm64
  if [ ! -f "$dir/apt.conf" ]; then
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    : > "$dir/status"
    # The host's Debian suites (e.g. bookworm, bookworm-updates, bookworm-security), arm64 only.
    grep -rhE '^(deb |URIs:|Suites:)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
      awk '/^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i, $(i + 1); break } }
           /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) print uri, $i }' |
      grep -E '/debian(-security)?/? ' | sort -u |
      sed 's|^\([^ ]*\) \(.*\)$|deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \1 \2 main|' \
      > "$dir/sources.list"
    [ -s "$dir/sources.list" ] || { log "no Debian suite in the host's apt sources"; return 1; }
    printf '%s\n' "Dir::State \"$dir\";" "Dir::State::lists \"$dir/lists\";" "Dir::State::status \"$dir/status\";" \
      "Dir::Cache \"$dir\";" "Dir::Cache::archives \"$dir/archives\";" "Dir::Etc::SourceList \"$dir/sources.list\";" \
      'Dir::Etc::SourceParts "/nonexistent";' 'APT::Architecture "arm64";' 'APT::Architectures { "arm64"; };' \
      > "$dir/apt.conf"
  fi
  APT_CONFIG=$dir/apt.conf "$@"
}

# --- 1. which kernel -----------------------------------------------------------------------------
# The kernel version linux-image-amd64 names in the host's lists, on both architectures: the host's
# linux-kbuild-6.1 (the build tools) and linux-source-6.1 then match it.
abi=${RTCAM_VM_KERNEL:-}
if [ -z "$abi" ]; then
  # apt-cache takes ~1.5 s here (no pkgcache.bin): remember its answer until the lists change.
  lists_key=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -printf '%T@ %p\n' 2>/dev/null | sort | md5sum)
  known_key= known_abi=
  [ -f "$cache/.kernel-for-lists" ] && read -r known_key known_abi < "$cache/.kernel-for-lists"
  if [ "${known_key:-}" = "${lists_key%% *}" ] && [ -n "${known_abi:-}" ]; then
    abi=$known_abi
  else
    abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
          sed -n 's/^ *Depends: linux-image-\(6\.1\.0-[0-9][0-9]*-amd64\)$/\1/p' | head -n 1)
    [ -z "$abi" ] || echo "${lists_key%% *} $abi" > "$cache/.kernel-for-lists"
  fi
  [ -z "$abi" ] || abi=${abi%-amd64}-$arch
fi
if [ -z "$abi" ]; then
  # Offline or no package lists: the newest kernel already in the cache, if any.
  abi=$(find "$cache" -maxdepth 1 -name "kernel-*-$arch" -printf '%f\n' 2>/dev/null | sed 's/^kernel-//' | sort -V | tail -n 1)
  [ -n "$abi" ] || { log "no linux-image-6.1.0-N-amd64 in the apt lists: run board/qemu-x86_64/install-host-packages.sh"; exit 1; }
  log "apt lists name no kernel; using the cached $abi"
fi
[[ $abi == *-"$arch" ]] || { log "kernel $abi is not an $arch kernel"; exit 1; }
kdir=$cache/kernel-$abi

# --- 2. kernel + modules (keyed on the kernel and this script) -----------------------------------
stage_a_key="$abi $(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
if [ "$(cat "$kdir/.stage-a" 2>/dev/null)" != "$stage_a_key" ]; then
  started=$SECONDS
  version=$(apt-cache show "linux-image-${abi%-"$arch"}-amd64" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n 1)
  [ -n "$version" ] || { log "linux-image-${abi%-"$arch"}-amd64 is not in the apt lists (apt-get update?)"; exit 1; }
  log "kernel $abi ($version): downloading the image, headers and sources"
  rm -rf "$kdir"
  work=$kdir/work
  mkdir -p "$work/debs" "$work/image" "$work/headers" "$work/mod"
  quiet_download() { grep -v '^W: Download is performed unsandboxed' >&2; }
  common=("linux-headers-${abi%-"$arch"}-common=$version" "linux-kbuild-6.1=$version" "linux-source-6.1=$version" v4l2loopback-dkms)
  if [ "$arch" = amd64 ]; then
    (cd "$work/debs" && apt-get download "linux-image-$abi=$version" "linux-headers-$abi=$version" "${common[@]}" \
       2> >(quiet_download) >/dev/null)
  else
    # The image and its headers are arm64 packages; the build tools (linux-kbuild-6.1) run on the host.
    (cd "$work/debs" && apt-get download "${common[@]}" 2> >(quiet_download) >/dev/null)
    apt_arm64 apt-cache show "linux-image-$abi=$version" >/dev/null 2>&1 || apt_arm64 apt-get update -qq >&2
    (cd "$work/debs" && apt_arm64 apt-get download "linux-image-$abi=$version" "linux-headers-$abi=$version" \
       2> >(quiet_download) >/dev/null)
    # The guest's user land before the command's: busybox for arm64 (Debian's static build).
    (cd "$work/debs" && apt_arm64 apt-get download busybox-static 2> >(quiet_download) >/dev/null)
  fi

  log "unpacking"
  dpkg-deb --fsys-tarfile "$work"/debs/linux-image-"$abi"_*.deb | tar -x -C "$work/image" ./boot ./lib/modules
  for deb in "$work"/debs/linux-headers-*.deb "$work"/debs/linux-kbuild-*.deb; do dpkg -x "$deb" "$work/headers"; done
  # Debian's headers Makefile includes the -common tree by its absolute /usr/src path: point it here.
  kbuild=$work/headers/usr/src/linux-headers-$abi
  echo "include $work/headers/usr/src/linux-headers-${abi%-"$arch"}-common/Makefile" > "$kbuild/Makefile"
  config=$work/image/boot/config-$abi

  # The drivers the configuration lacks, from the 140 MB source tarball (only their files leave it).
  # amd64 (Debian): no CONFIG_V4L2_MEM2MEM_DEV (nothing it builds selects it), no CONFIG_VIDEO_VICODEC.
  # arm64 (Debian): M2M is there (hardware codecs select it), vicodec and snd-dummy are not.
  # vicodec's Kconfig selects V4L2_MEM2MEM_DEV, VIDEOBUF2_VMALLOC, MEDIA_CONTROLLER and its request
  # API, which Debian has (=m / =y) on both.
  objects=() sources=() built=()
  for entry in "${built_here[@]}"; do
    read -r symbol object files <<<"$entry"
    grep -qE "^$symbol=[ym]" "$config" && continue
    objects+=("$object")
    set -f; sources+=($files); set +f   # the patterns are tar's and cp's, not this shell's
    built+=("${object%.o}.ko")
  done
  dpkg-deb --fsys-tarfile "$work"/debs/linux-source-6.1_*.deb |
    tar -xO ./usr/src/linux-source-6.1.tar.xz |
    tar -xJ -C "$work" --wildcards "${sources[@]/#/linux-source-6.1/}"
  for file in "${sources[@]}"; do cp "$work"/linux-source-6.1/$file "$work/mod/"; done
  {
    echo "obj-m := ${objects[*]}"
    echo 'vicodec-y := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o'
    echo 'snd-dummy-y := dummy.o'
  } > "$work/mod/Kbuild"
  log "building ${built[*]} against linux-headers-$abi"
  make -s -C "$kbuild" M="$work/mod" "${make_cross[@]}" -j"$(nproc)" modules >&2 2> >(grep -v 'Skipping BTF generation' >&2)

  # v4l2loopback: what is written to its OUTPUT side comes out of its CAPTURE side, H.264 included,
  # so the camera-encodes-H.264 path (passthrough) runs against a real V4L2 driver.
  mkdir -p "$work/loop"
  dpkg-deb --fsys-tarfile "$work"/debs/v4l2loopback-dkms_*.deb | tar -x -C "$work/loop" --wildcards './usr/src/*'
  cp "$work"/loop/usr/src/v4l2loopback-*/v4l2loopback*.[ch] "$work/loop/"
  echo 'obj-m := v4l2loopback.o' > "$work/loop/Kbuild"
  log "building v4l2loopback.ko ($(basename "$work"/loop/usr/src/v4l2loopback-*))"
  make -s -C "$kbuild" M="$work/loop" "${make_cross[@]}" -j"$(nproc)" modules >&2 2> >(grep -v 'Skipping BTF generation' >&2)

  moddir=$work/image/lib/modules/$abi
  mkdir -p "$moddir/extra"
  for ko in "${built[@]}"; do cp "$work/mod/$ko" "$moddir/extra/"; done
  cp "$work/loop/v4l2loopback.ko" "$moddir/extra/"
  depmod -b "$work/image" "$abi"

  # The closure: every wanted module and what modules.dep says it needs (already transitive).
  declare -A want=()
  for m in "${guest_modules[@]}"; do
    line=$(awk -v name="${m//-/_}" -F: '{
             base = $1; sub(/.*\//, "", base); sub(/\.ko$/, "", base); gsub(/-/, "_", base)
             if (base == name) { print; exit } }' "$moddir/modules.dep")
    [ -n "$line" ] || { log "module $m is not in linux-image-$abi"; exit 1; }
    for f in ${line/:/ }; do want[$f]=1; done
  done
  out=$kdir/modroot/lib/modules/$abi
  mkdir -p "$out"
  for f in "${!want[@]}"; do
    mkdir -p "$out/$(dirname "$f")"
    cp "$moddir/$f" "$out/$f"
  done
  cp "$moddir"/modules.order "$moddir"/modules.builtin "$moddir"/modules.builtin.modinfo "$out/"
  depmod -b "$kdir/modroot" "$abi"
  cp "$work/image/boot/vmlinuz-$abi" "$kdir/vmlinuz"
  # QEMU boots the uncompressed ELF through its PVH entry (CONFIG_PVH=y): under TCG that saves the
  # ~3 s the bzImage spends in real-mode setup and unpacking its xz payload.
  xz_at=$(LC_ALL=C grep -m 1 -obUaP '\xfd7zXZ\x00' "$kdir/vmlinuz" | awk -F: 'NR == 1 { print $1 }')
  if [ "$arch" = amd64 ] && [ -n "$xz_at" ] && grep -q '^CONFIG_PVH=y' "$config"; then
    # xz stops at the end of its stream and complains about the bytes after it: only the ELF counts.
    tail -c +$((xz_at + 1)) "$kdir/vmlinuz" | xz -dc > "$kdir/vmlinux" 2>/dev/null || true
    [ "$(head -c 4 "$kdir/vmlinux")" = $'\x7fELF' ] || rm -f "$kdir/vmlinux"
  fi
  if [ "$arch" != amd64 ]; then
    dpkg-deb --fsys-tarfile "$work"/debs/busybox-static_*.deb | tar -xO ./bin/busybox > "$kdir/busybox"
    chmod 755 "$kdir/busybox"
  fi
  cp "$config" "$kdir/config"
  echo "$version" > "$kdir/version"
  rm -rf "$work"
  echo "$stage_a_key" > "$kdir/.stage-a"
  log "kernel and ${#want[@]} modules ready in $((SECONDS - started)) s"
fi

# --- 3. initramfs (keyed on the kernel stage, init.sh and busybox) -------------------------------
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 ||
  { log "a static busybox is needed: apt-get install busybox-static"; exit 1; }
# The applet list comes from the host's busybox (the same Debian version and configuration); the
# binary is the guest's architecture's.
applets=$("$busybox" --list)
[ "$arch" = amd64 ] || busybox=$kdir/busybox
stage_b_key="$stage_a_key $(cat "$here/init.sh" "$busybox" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$kdir/.stage-b" 2>/dev/null)" != "$stage_b_key" ]; then
  root=$kdir/initramfs-root
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,share,vm,root,usr/bin,usr/sbin,lib}
  cp "$busybox" "$root/bin/busybox"
  for applet in $applets; do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  cp "$here/init.sh" "$root/init"
  chmod 755 "$root/init"
  cp -a "$kdir/modroot/lib/modules" "$root/lib/"
  # The little an ordinary program looks up: users and groups (rtcam's unit uses video and audio),
  # localhost, and no login shell (PID 1 runs the command).
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nvideo:x:44:\naudio:x:29:\nnogroup:x:65534:\n' > "$root/etc/group"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$root/etc/hosts"
  echo rtcam-vm > "$root/etc/hostname"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$kdir/initramfs.cpio.new"
  mv "$kdir/initramfs.cpio.new" "$kdir/initramfs.cpio"
  rm -rf "$root"
  echo "$stage_b_key" > "$kdir/.stage-b"
  log "initramfs ready ($(du -k "$kdir/initramfs.cpio" | cut -f1) KiB)"
fi

echo "$kdir"
