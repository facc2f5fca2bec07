#!/bin/sh
# /init of the qemu-x86_64 and qemu-aarch64 boards: busybox ash as PID 1 in the initramfs
# (build-vm.sh puts it there).
#
# 1. mounts /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /tmp, /run
# 2. loads virtio + 9p and mounts the runner's directory (9p tag "vmrun", read-only) at /vm and the
#    caller's directory (tag "share") at /share, and an aarch64 user land (tag "sysroot", read-only)
#    at /sysroot when the runner shares one; reads /vm/env (settings written by run-in-vm.sh)
# 3. loads the drivers: vivid (camera), vicodec (M2M codec), snd-aloop (sound card "Loopback")
# 4. links /vm/sysroot (the host libraries the command needs) and /sysroot into the root file system
#    (with --systemd: switches to the host's user land under systemd instead, see systemd-root.sh)
# 5. runs /vm/run.sh in /share, writes its exit status to the status port (a host file), and powers
#    the machine off.
# The console (the runner's stdout) is ttyS0 and the status port ttyS1 on x86_64; the kernel command
# line can name others: rtcam_console=hvc0 rtcam_status=hvc1 rtcam_early=virtio_pci,virtio_console
# (aarch64's virt machine has one UART, the kernel log; the modules named first give the two virtio
# consoles). Nothing here stays resident: PID 1 ends in poweroff.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root

# The kernel hands the command line's unknown name=value words to init as its environment.
RTCAM_VM_CONSOLE=/dev/${rtcam_console:-ttyS0}   # the runner's stdout (the kernel logs elsewhere)
RTCAM_VM_STATUS=/dev/${rtcam_status:-ttyS1}     # the exit status
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in $(echo "${rtcam_early:-}" | tr ',' ' '); do modprobe "$m"; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -c "$RTCAM_VM_CONSOLE" ] && break; sleep 0.1; done
exec </dev/null >"$RTCAM_VM_CONSOLE" 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
stty -F "$RTCAM_VM_CONSOLE" -onlcr 2>/dev/null   # the host gets "\n", not "\r\n"
hostname -F /etc/hostname

RTCAM_VM_QUIET=0
say() { [ "$RTCAM_VM_QUIET" = 1 ] || echo "rtcam-vm: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# The exit status goes to the status port (run-in-vm.sh reads it from a file); then power off. With
# -no-reboot, a panic or an init that dies also ends QEMU, without a status: the runner says so.
finish() {
  echo "$1" > "$RTCAM_VM_STATUS"
  sync
  poweroff -f
  sleep 10
}

load() {
  # modprobe resolves dependencies from /lib/modules/<release>/modules.dep (depmod on the host)
  modprobe "$@" || { say "modprobe $* failed"; return 1; }
}

load virtio_pci
load 9pnet_virtio
load 9p
# Mount tags appear under the virtio devices once 9pnet_virtio binds them.
tags=$(cat /sys/bus/virtio/drivers/9pnet_virtio/virtio*/mount_tag 2>/dev/null | tr '\0' ' ')
ninep="trans=virtio,version=9p2000.L,msize=512000"
for tag in $tags; do
  case $tag in
    vmrun) mount -t 9p -o "$ninep,ro,cache=loose" vmrun /vm || say "cannot mount /vm" ;;
    share) mount -t 9p -o "$ninep,cache=mmap" share /share || say "cannot mount /share" ;;
    sysroot) mkdir -p /sysroot && mount -t 9p -o "$ninep,ro,cache=loose" sysroot /sysroot || say "cannot mount /sysroot" ;;
  esac
done
[ -f /vm/run.sh ] || { say "no /vm/run.sh: nothing to run"; finish 125; }

# Settings from run-in-vm.sh (defaults here for a hand-made /vm).
RTCAM_VM_VIVID="n_devs=1 node_types=0x1 num_inputs=2 input_types=0xc"
RTCAM_VM_MODULES=""
RTCAM_VM_NET=0
[ -f /vm/env ] && . /vm/env

# shellcheck disable=SC2086  # the parameters are a word list on purpose
load vivid $RTCAM_VM_VIVID
load vicodec
load snd_aloop
for m in $RTCAM_VM_MODULES; do load "$m"; done

ip link set lo up
if [ "$RTCAM_VM_NET" = 1 ]; then
  # QEMU user-mode network: the guest is 10.0.2.15, the host's loopback is 10.0.2.2.
  load virtio_net
  ip link set eth0 up
  ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2
fi

# run-in-vm.sh --systemd: boot the host's Debian user land with systemd as PID 1 instead; the command
# then runs as a service (systemd-root.sh, from the runner's directory, ends in switch_root).
if [ "${RTCAM_VM_SYSTEMD:-0}" = 1 ]; then
  . /vm/systemd-root.sh
  say "could not switch to systemd"
  finish 125
fi

# Link the host files the command needs (libraries at their host paths, /usr/share/alsa, …) into
# the root: a missing entry becomes a symbolic link into /vm/sysroot, an existing directory is
# merged one level down.
merge() {
  local entry name
  for entry in "$1"/* "$1"/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=${entry##*/}
    if [ -d "$2/$name" ] && [ ! -L "$2/$name" ] && [ -d "$entry" ]; then
      merge "$entry" "$2/$name"
    elif [ ! -e "$2/$name" ] && [ ! -L "$2/$name" ]; then
      ln -s "$entry" "$2/$name"
    fi
  done
}
[ -d /vm/sysroot ] && merge /vm/sysroot ""
# An aarch64 user land (Debian's libraries, the Swift runtime, /usr/share/alsa ...): /usr's trees
# but bin and sbin, /lib and /etc merged in (not /proc, /dev ...: a root in use as a chroot on the
# host has them mounted); its programs by PATH, after busybox's (one link each costs ~30 ms here).
if grep -q ' /sysroot ' /proc/mounts; then
  for tree in /sysroot/usr/*; do
    case ${tree##*/} in bin|sbin) ;; *) [ -e "/usr/${tree##*/}" ] || ln -s "$tree" "/usr/${tree##*/}" ;; esac
  done
  merge /sysroot/lib /lib
  merge /sysroot/etc /etc
  export PATH=$PATH:/sysroot/usr/bin:/sysroot/usr/sbin
fi

cd /share 2>/dev/null || cd /
say "up in $(uptime_s) s ($(uname -r)); running the command"
sh /vm/run.sh </dev/null
status=$?
say "command exited with $status at $(uptime_s) s"
finish "$status"
