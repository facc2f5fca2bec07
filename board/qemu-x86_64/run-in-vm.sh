#!/bin/bash
# Runs a command inside the qemu-x86_64 board (Debian's 6.1 kernel with vivid, vicodec and
# snd-aloop) — or, with --arch arm64, the qemu-aarch64 board (board/qemu-aarch64: the same drivers on
# Debian's arm64 kernel) — and exits with the command's exit status. The guest's console streams to
# stdout.
#
#   board/qemu-x86_64/run-in-vm.sh [options] <host-dir-to-share> <command> [args...]
#   board/qemu-aarch64/run-in-vm.sh [options] <host-dir-to-share> <command> [args...]   (= --arch arm64)
#
# <host-dir-to-share> is mounted read-write at /share (9p) and is the command's working directory.
# <command> is run as root by the guest's busybox sh, not through a shell: wrap it in `sh -c '…'`
# for pipes. Every word of the command naming a host executable (relative: inside the share;
# /share/…; or any absolute host path) gets that executable's shared libraries (ldd on the host),
# the Swift runtime included, at their host paths in the guest, and /usr/share/alsa with alsa-lib.
# On arm64 the command's libraries (and every other file of an aarch64 user land) come from --sysroot
# instead: a Debian arm64 root shared read-only and linked into the guest's root.
#
# options:
#   --arch amd64|arm64  the board (default amd64, or $RTCAM_VM_ARCH)
#   --sysroot DIR       arm64: the aarch64 user land (default $RTCAM_VM_SYSROOT, else board/arm64's
#                       sysroot $RTCAM_CACHE/sysroot-arm64: Debian 13 with rtcam's libraries and the
#                       aarch64 Swift runtime under /usr/lib/swift/linux); with --systemd its /usr,
#                       /etc and /var are the guest's, so it must hold systemd; none: busybox only
#   --cpu MODEL         arm64: QEMU's CPU (default max,pauth-impdef=on, or $RTCAM_VM_CPU)
#   --timeout SECONDS   whole run, boot included (default 300, or $RTCAM_VM_TIMEOUT); exit 124 on expiry
#   --bin PATH          make another host executable (and its libraries) available at PATH (repeatable)
#   --env NAME=VALUE    set in the command's environment (repeatable)
#   --vivid 'PARAMS'    vivid's module parameters (default: one instance, a video capture node with a
#                       webcam input and an HDMI input: n_devs=1 node_types=0x1 num_inputs=2 input_types=0xc)
#   --modprobe NAME     load another module before the command (e.g. snd-dummy) (repeatable)
#   --net               user-mode network: the guest is 10.0.2.15, the host's loopback is 10.0.2.2
#   --hostfwd P:H:G     forward the host's 127.0.0.1:H to the guest's port G, P = tcp|udp (implies --net)
#   --dmesg             print the guest's kernel log (its console, ttyS2) to stderr after the command
#   --memory MB         guest memory (default 1024)   --smp N   guest CPUs (default 2)
#   --quiet             no "rtcam-vm:" progress lines
#   --systemd           boot a Debian system with systemd as PID 1 made of the host's own /usr, /etc and
#                       /var (read-only 9p shares under tmpfs overlays: the guest may dpkg -i, the host
#                       is never written) and run the command as a service once multi-user.target is
#                       up; the host must be merged-/usr with systemd installed (systemd-root.sh)
# exit status: the command's; 124 timeout; 125 the VM ended without a status (panic, no /init, …);
# 126 the board could not be built or QEMU could not start.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${RTCAM_VM_CACHE:-$repo/.build-vm}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 126; }
fail() { echo "run-in-vm: $*" >&2; exit 126; }

timeout_s=${RTCAM_VM_TIMEOUT:-300}
memory=1024
smp=2
quiet=0
net=0
dmesg=0
vivid=""
extra_bins=()
envs=()
modules=()
hostfwds=()
systemd=0
arch=${RTCAM_VM_ARCH:-amd64}
sysroot=${RTCAM_VM_SYSROOT:-${RTCAM_CACHE:-/var/cache/rtcam-arm64}/sysroot-arm64}
# -cpu max with QEMU's own pointer-authentication algorithm: the architected QARMA5 costs TCG dearly.
cpu=${RTCAM_VM_CPU:-max,pauth-impdef=on}
while (($#)); do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --sysroot) sysroot=$2; shift 2 ;;
    --cpu) cpu=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --bin) extra_bins+=("$2"); shift 2 ;;
    --env) [[ $2 == [A-Za-z_]*=* ]] || fail "--env wants NAME=VALUE"; envs+=("$2"); shift 2 ;;
    --vivid) vivid=$2; shift 2 ;;
    --modprobe) modules+=("$2"); shift 2 ;;
    --net) net=1; shift ;;
    --hostfwd)
      [[ $2 =~ ^(tcp|udp):([0-9]+):([0-9]+)$ ]] || fail "--hostfwd wants tcp|udp:HOSTPORT:GUESTPORT"
      hostfwds+=("${BASH_REMATCH[1]}:127.0.0.1:${BASH_REMATCH[2]}-:${BASH_REMATCH[3]}")
      net=1; shift 2 ;;
    --dmesg) dmesg=1; shift ;;
    --memory) memory=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    --systemd) systemd=1; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) fail "unknown option $1 (--help)" ;;
    *) break ;;
  esac
done
(($# >= 2)) || usage
share=$(cd "$1" 2>/dev/null && pwd) || fail "no directory $1"
shift
case $arch in
  amd64) board=qemu-x86_64 userland=/ ;;
  arm64) board=qemu-aarch64 userland=
         if [ "$sysroot" != none ]; then
           userland=$(cd "$sysroot" 2>/dev/null && pwd) ||
             fail "no aarch64 user land at $sysroot (make arm64 makes board/arm64's sysroot; --sysroot none: busybox only)"
         fi ;;
  *) fail "--arch amd64 or arm64" ;;
esac
qemu_binary=qemu-system-${board#qemu-}
command -v "$qemu_binary" >/dev/null || fail "$qemu_binary missing: board/$board/install-host-packages.sh"

if ((systemd)); then
  [ -n "$userland" ] || fail "--systemd needs a user land (--sysroot)"
  # The guest's /usr, /etc and /var are the host's (amd64) or the arm64 user land's.
  [ -L "$userland/bin" ] && [ -L "$userland/lib" ] && [ -d "$userland/usr/lib" ] ||
    fail "--systemd needs a merged-/usr user land at $userland (/bin and /lib links into /usr)"
  [ -x "$userland/lib/systemd/systemd" ] || fail "--systemd needs systemd in $userland (apt-get install systemd)"
fi

kdir=$(RTCAM_VM_ARCH=$arch "$here/build-vm.sh") || fail "building the board failed"

mkdir -p "$cache/runs"
run=$(mktemp -d "$cache/runs/run.XXXXXX")
cleanup() { rm -rf "$run"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$run/vm/sysroot"

# --- the host files the command needs, at their host paths under sysroot/ --------------------------
# Hard links where the cache shares a file system with the source (no copy), else copies.
place() {  # host path (file) → sysroot/<same path>
  local src=$1 dst=$run/vm/sysroot$1
  [ -e "$dst" ] && return 0
  mkdir -p "$(dirname "$dst")"
  ln "$(readlink -f "$src")" "$dst" 2>/dev/null || cp -L "$src" "$dst"
}
add_executable() {
  local exe=$1 lib
  [ -f "$exe" ] || fail "no executable $exe on the host"
  [ "$(head -c 4 "$exe")" = $'\x7fELF' ] || return 0   # scripts: their interpreter must be in the guest
  [ "$arch" = amd64 ] || return 0   # aarch64: the libraries are the --sysroot's, all of them
  # ldd prints "name => /path (addr)" and the loader as "/lib64/ld-linux-x86-64.so.2 (addr)";
  # a static executable makes it fail, which leaves nothing to copy.
  while read -r lib; do
    [ -n "$lib" ] && place "$lib"
  done < <(ldd "$exe" 2>/dev/null | sed -n -e 's/^.*=> \(\/[^ ]*\) (.*$/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (.*$/\1/p')
}

# Every word of the command that names an executable file (so `timeout 30 ./rtcam` works too):
# relative to the share (the guest's working directory), under /share, or an absolute host path
# (placed into the guest at the same path).
# (--systemd: the guest's /usr is the host's, every library is already in place.)
((systemd)) || for word in "$@"; do
  case $word in
    /share/*) host=$share/${word#/share/} ;;
    /*) host=$word ;;
    */*) host=$share/$word ;;
    *) continue ;;
  esac
  [ -f "$host" ] && [ -x "$host" ] || continue
  [ "$host" = "$word" ] && place "$host"
  add_executable "$host"
done
for exe in "${extra_bins[@]}"; do
  exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
  place "$exe"
  add_executable "$exe"
done
if ((!systemd)) && [ -n "$(find "$run/vm/sysroot" -name 'libasound.so*' -print -quit)" ] && [ -d /usr/share/alsa ]; then
  mkdir -p "$run/vm/sysroot/usr/share"
  cp -r /usr/share/alsa "$run/vm/sysroot/usr/share/"
fi

# --- settings and the command for /init ----------------------------------------------------------
quote() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
  echo "RTCAM_VM_QUIET=$quiet"
  echo "RTCAM_VM_NET=$net"
  echo "RTCAM_VM_SYSTEMD=$systemd"
  [ -n "$vivid" ] && echo "RTCAM_VM_VIVID=$(quote "$vivid")"
  echo "RTCAM_VM_MODULES=$(quote "${modules[*]}")"
} > "$run/vm/env"
{
  for e in "${envs[@]}"; do echo "export $(quote "$e")"; done
  printf 'exec'
  for a in "$@"; do printf ' %s' "$(quote "$a")"; done
  printf '\n'
} > "$run/vm/run.sh"
((systemd)) && cp "$here/systemd-root.sh" "$run/vm/"

# --- boot ----------------------------------------------------------------------------------------
kernel=$kdir/vmlinux
[ -f "$kernel" ] || kernel=$kdir/vmlinuz
quiet_kernel=$([ "$dmesg" = 1 ] || echo quiet)
if [ "$arch" = amd64 ]; then
  append="console=ttyS2 $quiet_kernel panic=-1 rdinit=/init"
  # SeaBIOS would draw its banner on ttyS0 (there is no VGA): sercon-port 0 keeps it quiet.
  qemu=(qemu-system-x86_64 -machine q35 -accel tcg -cpu max -fw_cfg name=etc/sercon-port,string=0
    -serial stdio -serial "file:$run/status" -serial "file:$run/kernel.log")
else
  # virt's one UART (PL011, ttyAMA0) takes the kernel log; the console and the exit status are
  # virtio consoles (hvc0, hvc1), which init.sh opens after loading virtio_console.
  append="console=ttyAMA0 $quiet_kernel panic=-1 rdinit=/init"
  append+=" rtcam_console=hvc0 rtcam_status=hvc1 rtcam_early=virtio_pci,virtio_console"
  qemu=(qemu-system-aarch64 -machine virt -accel tcg -cpu "$cpu"
    -serial "file:$run/kernel.log"
    -device virtio-serial-pci -chardev stdio,id=console -device virtconsole,chardev=console
    -chardev "file,id=status,path=$run/status" -device virtconsole,chardev=status)
fi
# --systemd: systemd reads the kernel command line too: no getty on the consoles, no first-boot
# questions, straight to multi-user.target.
((systemd)) && append+=" systemd.unit=multi-user.target systemd.getty_auto=0 systemd.firstboot=0"
qemu+=(-m "$memory" -smp "$smp" -nodefaults -nographic -no-reboot
  -kernel "$kernel" -initrd "$kdir/initramfs.cpio"
  -append "$append"
  -fsdev "local,id=vmrun,path=$run/vm,security_model=none,readonly=on,multidevs=remap"
  -device "virtio-9p-pci,fsdev=vmrun,mount_tag=vmrun"
  -fsdev "local,id=share,path=$share,security_model=none,multidevs=remap"
  -device "virtio-9p-pci,fsdev=share,mount_tag=share")
if ((systemd)); then
  # The host's user land (arm64: the --sysroot's), read-only; systemd-root.sh puts a tmpfs overlay on each.
  for dir in usr etc var; do
    qemu+=(-fsdev "local,id=host$dir,path=${userland%/}/$dir,security_model=none,readonly=on,multidevs=remap"
           -device "virtio-9p-pci,fsdev=host$dir,mount_tag=host$dir")
  done
fi
if [ -n "$userland" ] && [ "$arch" != amd64 ] && ((!systemd)); then
  qemu+=(-fsdev "local,id=sysroot,path=$userland,security_model=none,readonly=on,multidevs=remap"
         -device "virtio-9p-pci,fsdev=sysroot,mount_tag=sysroot")
fi
if ((net)); then
  netdev="user,id=net0,net=10.0.2.0/24,host=10.0.2.2"
  for f in "${hostfwds[@]}"; do netdev+=",hostfwd=$f"; done
  qemu+=(-netdev "$netdev" -device "virtio-net-pci,netdev=net0")
fi

((quiet)) || echo "rtcam-vm: booting $(basename "$kdir") (timeout ${timeout_s} s)" >&2
set +e
timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null 2> >(grep -v 'fw_cfg item names should be prefixed' >&2)
qemu_status=$?
set -e
if ((qemu_status == 124 || qemu_status == 137)); then
  echo "run-in-vm: timed out after ${timeout_s} s" >&2
  exit 124
fi
status=$(tr -dc '0-9' < "$run/status" 2>/dev/null || true)
if ((dmesg)); then
  echo "----- guest kernel log -----" >&2
  cat "$run/kernel.log" >&2
fi
if [ -z "$status" ]; then
  echo "run-in-vm: the VM ended without an exit status (QEMU exit $qemu_status); the kernel log ends:" >&2
  ((dmesg)) || tail -n 40 "$run/kernel.log" >&2
  exit 125
fi
exit "$status"
