#!/bin/bash
# Installs the Debian 12 packages the qemu-x86_64 board needs on the host (CI calls this once); with
# RTCAM_VM_ARCH=arm64 those of the qemu-aarch64 board (board/qemu-aarch64/install-host-packages.sh).
# The guest kernel, its headers and sources are NOT installed: build-vm.sh fetches them with
# `apt-get download` and unpacks them under .build-vm/ (nothing goes to the host's /boot).
set -euo pipefail

packages=(
  busybox-static    # the guest's whole user land: /init, sh, mount, modprobe, poweroff
  build-essential   # gcc-12 and make for the two out-of-tree modules (the kernel was built with gcc-12)
  bc flex bison     # kbuild's helpers
  libelf-dev        # modpost / objtool headers for external modules
  libssl-dev        # kbuild's sign-file and certificate helpers link libcrypto
  kmod              # depmod/modinfo on the host: module closure and modules.dep for the initramfs
  cpio xz-utils     # the initramfs archive; the linux-source tarball is .tar.xz
  v4l-utils         # v4l2-ctl: a reference V4L2 client to run in the guest next to rtcam's own code
  alsa-utils        # arecord/aplay: a reference ALSA client for the guest
)
case ${RTCAM_VM_ARCH:-amd64} in
  amd64) packages+=(qemu-system-x86) ;;   # the virtual machine (TCG; KVM is not needed)
  # qemu-system-aarch64 (virt, TCG), and gcc-12 for aarch64: Debian's arm64 kernel was built with it.
  arm64) packages+=(qemu-system-arm gcc-aarch64-linux-gnu) ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# build-vm.sh picks the guest kernel from the package lists (linux-image-amd64's dependency).
if ! apt-cache depends linux-image-amd64 2>/dev/null | grep -q 'Depends: linux-image-'; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
fi
