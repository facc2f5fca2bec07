# Sourced by init.sh (busybox sh, PID 1 of the initramfs) when run-in-vm.sh --systemd asked for it;
# uses init.sh's load, say and finish, and $ninep. It turns the guest into a small Debian 12 system
# booted by systemd, made of the HOST's own user land, and does not return (switch_root):
#
#   /usr /etc /var   overlays: the host's directory (9p tags hostusr, hostetc, hostvar, read-only)
#                    as the lower layer, a tmpfs as the upper one; writes (dpkg -i, useradd …) stay
#                    in the guest's memory and vanish at power-off
#   /bin /sbin /lib /lib64   symbolic links into /usr (the host is merged-/usr, run-in-vm.sh checks)
#   /usr/lib/modules/<release>   the board's modules (the host's would not fit this kernel)
#   /vm /share       moved from the initramfs as they are
#
# The host's own enablement (every link in /etc/systemd/system/*.wants/) is deleted in the overlay:
# the guest boots what Debian's packages make static (journald, udev, tmpfiles …) plus the units
# the command installs and enables, not the host's postgresql or avahi. The command runs as the
# service rtcam-vm-command.service once multi-user.target is reached; its output goes to the console
# (ttyS0; hvc0 on arm64), its exit status to the status port (ttyS1; hvc1), and then the machine
# powers off (SuccessAction=/FailureAction=).

new=/newroot
load overlay || finish 125
load autofs4   # optional: systemd's automount units want it

mkdir -p "$new"
mount -t tmpfs -o mode=0755 tmpfs "$new" || finish 125
mkdir -p "$new/.host" "$new/.rw"
chmod 700 "$new/.host" "$new/.rw"
for dir in usr etc var; do
  mkdir -p "$new/.host/$dir" "$new/.rw/$dir/upper" "$new/.rw/$dir/work" "$new/$dir"
  mount -t 9p -o "$ninep,ro,cache=loose" "host$dir" "$new/.host/$dir" ||
    { say "cannot mount the host's /$dir (9p tag host$dir)"; finish 125; }
  mount -t overlay overlay \
    -o "lowerdir=$new/.host/$dir,upperdir=$new/.rw/$dir/upper,workdir=$new/.rw/$dir/work" "$new/$dir" ||
    { say "cannot mount the overlay on /$dir"; finish 125; }
done
for link in bin sbin lib lib64; do ln -s "usr/$link" "$new/$link"; done
mkdir -p "$new/proc" "$new/sys" "$new/dev" "$new/run" "$new/tmp" "$new/root" "$new/home" \
         "$new/mnt" "$new/srv" "$new/opt" "$new/media" "$new/boot" "$new/vm" "$new/share"
chmod 1777 "$new/tmp"
chmod 700 "$new/root"
mkdir -p "$new/usr/lib/modules"
cp -a "/lib/modules/$(uname -r)" "$new/usr/lib/modules/"

# This machine's identity, not the host's.
cat /proc/sys/kernel/random/uuid | tr -d '-' > "$new/etc/machine-id"
cp /etc/hostname "$new/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost\n' "$(cat /etc/hostname)" > "$new/etc/hosts"
echo '# rtcam-vm: no file systems beyond those set up by its init' > "$new/etc/fstab"
rm -f "$new"/etc/systemd/system/*.wants/* "$new/etc/systemd/system/default.target"
# A lean boot, measured under TCG (every process costs): no generators (the fstab is empty, there
# are no disks, no getty, no SysV scripts, no postgresql clusters to find), and masked: what this
# kernel cannot do (binfmt_misc, the modules modprobe@ would load are not in the board) or what a
# test run has no use for (persistent journal, utmp, random seed, logind and the D-Bus it starts,
# debug/trace/huge page/mqueue mounts, ALSA mixer restore, boot-time sysusers).
mkdir -p "$new/etc/systemd/system-generators"
for generator in "$new"/usr/lib/systemd/system-generators/*; do
  ln -sf /dev/null "$new/etc/systemd/system-generators/${generator##*/}"
done
for unit in proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount systemd-binfmt.service \
            modprobe@.service systemd-journal-flush.service systemd-update-utmp.service \
            systemd-update-utmp-runlevel.service systemd-random-seed.service systemd-logind.service \
            systemd-user-sessions.service sys-kernel-debug.mount sys-kernel-tracing.mount \
            dev-hugepages.mount dev-mqueue.mount alsa-restore.service alsa-state.service \
            systemd-sysusers.service; do
  ln -sf /dev/null "$new/etc/systemd/system/$unit"
done
rm -rf "$new/var/log/journal"   # the journal stays in /run (volatile)
# A container host's policy-rc.d forbids starting services (exit 101): a booted system has none. And
# no man-db index rebuild after each dpkg run (minutes over 9p under TCG).
rm -f "$new/usr/sbin/policy-rc.d" "$new/var/lib/man-db/auto-update"

# The command as a service, after the rest of the system is up.
mkdir -p "$new/etc/rtcam-vm"
cat > "$new/etc/rtcam-vm/command.sh" <<EOF
#!/bin/sh
# run-in-vm.sh's command inside the systemd guest (rtcam-vm-command.service runs this).
stty -onlcr 2>/dev/null
[ "$RTCAM_VM_QUIET" = 1 ] || echo "rtcam-vm: systemd up in \$(cut -d' ' -f1 /proc/uptime) s (\$(systemctl is-system-running)); running the command"
cd /share 2>/dev/null || cd /
sh /vm/run.sh </dev/null
status=\$?
[ "$RTCAM_VM_QUIET" = 1 ] || echo "rtcam-vm: command exited with \$status at \$(cut -d' ' -f1 /proc/uptime) s"
echo \$status > $RTCAM_VM_STATUS
EOF
chmod 755 "$new/etc/rtcam-vm/command.sh"
cat > "$new/etc/systemd/system/rtcam-vm-command.service" <<EOF
[Unit]
Description=run-in-vm.sh command (output on $RTCAM_VM_CONSOLE, exit status on $RTCAM_VM_STATUS)
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=exec
ExecStart=/etc/rtcam-vm/command.sh
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=$RTCAM_VM_CONSOLE
Environment=SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb
EOF
mkdir -p "$new/etc/systemd/system/multi-user.target.wants"
ln -s ../rtcam-vm-command.service "$new/etc/systemd/system/multi-user.target.wants/rtcam-vm-command.service"

# Hand over: systemd mounts /run, /dev/pts, /dev/shm and /tmp's neighbours itself.
umount /dev/pts /dev/shm /tmp /run 2>/dev/null
mount -o move /vm "$new/vm"
grep -q ' /share ' /proc/mounts && mount -o move /share "$new/share"
mount -o move /dev "$new/dev"
mount -o move /sys "$new/sys"
mount -o move /proc "$new/proc"
say "switching to systemd (the user land's /usr, /etc, /var) at $(cut -d' ' -f1 "$new/proc/uptime") s"
exec switch_root "$new" /lib/systemd/systemd
