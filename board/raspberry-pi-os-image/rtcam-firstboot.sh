#!/bin/bash
# Installs rtcam on a stock Raspberry Pi OS Lite (64-bit; trixie for the `make arm64` package) image,
# without rebuilding it.
#
# Before the first boot, on the card's boot partition (bootfs):
#   mkdir rtcam; copy rtcam_<version>_arm64.deb and this script into it;
#   append to the single line of cmdline.txt:
#     systemd.run=/boot/firmware/rtcam/rtcam-firstboot.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target
# (Raspberry Pi Imager's own customisation uses the same mechanism with firstrun.sh: then do not edit
# cmdline.txt, add the line "bash /boot/firmware/rtcam/rtcam-firstboot.sh" before its "exit 0".)
#
# First boot (no network yet): this script copies the package into the root file system, installs a
# one-shot unit for the next boot and removes its own cmdline.txt entries; the system reboots.
# Second boot: once the network is up, rtcam-install.service installs the package with apt (which
# fetches the libraries it depends on) and libcamera-v4l2, then disables itself; rtcam starts.
set -euo pipefail
boot=/boot/firmware
[ -d "$boot" ] || boot=/boot
here=$(dirname "$(readlink -f "$0")")
deb=$(ls "$here"/rtcam_*_arm64.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "rtcam-firstboot: no rtcam_*_arm64.deb next to $0" >&2; exit 1; }

install -d -m 700 /var/lib/rtcam-install
install -m 644 "$deb" /var/lib/rtcam-install/

cat > /etc/systemd/system/rtcam-install.service <<'UNIT'
[Unit]
Description=Install rtcam (first boot)
Wants=network-online.target
After=network-online.target
ConditionPathExistsGlob=/var/lib/rtcam-install/rtcam_*_arm64.deb

[Service]
Type=oneshot
Environment=DEBIAN_FRONTEND=noninteractive
ExecStart=/bin/sh -ec 'apt-get update; apt-get install -y --no-install-recommends /var/lib/rtcam-install/rtcam_*_arm64.deb libcamera-v4l2 avahi-daemon'
ExecStartPost=/bin/rm -rf /var/lib/rtcam-install
ExecStartPost=/bin/systemctl disable rtcam-install.service

[Install]
WantedBy=multi-user.target
UNIT
install -d /etc/systemd/system/rtcam.service.d
cat > /etc/systemd/system/rtcam.service.d/libcamera.conf <<'DROPIN'
# libcamera cameras through libcamera's V4L2 compatibility layer; remove for a UVC webcam.
[Service]
Environment=LD_PRELOAD=/usr/lib/aarch64-linux-gnu/libcamera/v4l2-compat.so
DROPIN
ln -sf /etc/systemd/system/rtcam-install.service /etc/systemd/system/multi-user.target.wants/rtcam-install.service

# Found on the network as http://rtcam.local (avahi-daemon announces the name and the services the
# package lists): the stock host name becomes rtcam; a name chosen in Raspberry Pi Imager stays.
if [ "$(cat /etc/hostname 2>/dev/null)" = raspberrypi ]; then
    echo rtcam > /etc/hostname
    sed -i 's/\braspberrypi\b/rtcam/g' /etc/hosts
fi

# Run once: take this script's entries out of cmdline.txt (Imager's firstrun.sh cleans up its own).
sed -i 's| systemd\.run=[^ ]*rtcam-firstboot\.sh||' "$boot/cmdline.txt"
if ! grep -q 'systemd\.run=' "$boot/cmdline.txt"; then
    sed -i -e 's| systemd\.run_success_action=reboot||' -e 's| systemd\.unit=kernel-command-line\.target||' "$boot/cmdline.txt"
fi
echo "rtcam-firstboot: rtcam will be installed on the next boot"
exit 0
