#!/bin/bash -e
# pi-gen: install the rtcam package into the image. The package's postinst creates the "rtcam" user
# (systemd-sysusers) and enables rtcam.service (deb-systemd-helper); nothing starts in the chroot.
# Put rtcam_<version>_arm64.deb into files/ first (board/raspberry-pi-os-image/README.md).
debs=(files/rtcam_*_arm64.deb)
[ -f "${debs[0]}" ] || { echo "stage-rtcam: no files/rtcam_*_arm64.deb"; exit 1; }
install -m 644 "${debs[0]}" "${ROOTFS_DIR}/tmp/rtcam.deb"
on_chroot << 'CHROOT'
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/rtcam.deb libcamera-v4l2 avahi-daemon
rm -f /tmp/rtcam.deb
CHROOT
# libcamera cameras (every Camera Module on bookworm) through libcamera's V4L2 compatibility layer.
install -d "${ROOTFS_DIR}/etc/systemd/system/rtcam.service.d"
install -m 644 files/libcamera.conf "${ROOTFS_DIR}/etc/systemd/system/rtcam.service.d/libcamera.conf"
