#!/usr/bin/env bash
# Installs, removes, reinstalls and purges the rtcam package in a throwaway copy of this machine
# (an overlay over / in a private mount namespace, thrown away at the end: the host's dpkg database,
# users and files are never touched) and checks what each step leaves behind:
#   install: the files, the "rtcam" user in video and audio, the service enabled, the unit verified
#   remove:  the binary gone, the state (/var/lib/rtcam) and the configuration kept
#   purge:   the state and /etc/rtcam gone, the user kept
# The runtime libraries must already be installed here (make deps does it).
#
#   bash board/debian-package/test-deb.sh [out/rtcam_<version>_<arch>.deb]     (as root)
# It does not start the service (systemd is not PID 1 here): the VM test does, see
# systemd/test-in-vm.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
deb=$(readlink -f "${1:-$(ls -t out/rtcam_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1)}")
[ -f "$deb" ] || { echo "test-deb: no package (bash board/debian-package/build-deb.sh first)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "test-deb: needs root (mount namespace and overlay)"; exit 1; }

if [ "${1:-}" != --inside ] && [ -z "${RTCAM_TEST_DEB_INSIDE:-}" ]; then
    exec unshare --mount --fork env RTCAM_TEST_DEB_INSIDE=1 bash "$0" "$deb"
fi

# In the private mount namespace: / as a read-only lower layer, changes in a tmpfs.
mount --make-rprivate /
scratch=$(mktemp -d)
trap 'umount -R "$scratch" 2>/dev/null; rmdir "$scratch"' EXIT
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
mount -t proc proc "$scratch/root/proc"
mount --rbind /dev "$scratch/root/dev"
cp "$deb" "$scratch/root/rtcam.deb"

failures=0
check() {  # check DESCRIPTION COMMAND...: runs COMMAND in the copy
    local description=$1; shift
    if chroot "$scratch/root" /bin/sh -c "$*" >/dev/null 2>&1; then
        echo "ok   $description"
    else
        echo "FAIL $description  ($*)"; failures=$((failures + 1))
    fi
}
run() { chroot "$scratch/root" /bin/sh -c "$*"; }

# The copy must not already have rtcam (a developer's machine may).
run 'dpkg -P rtcam >/dev/null 2>&1; userdel rtcam >/dev/null 2>&1; rm -rf /var/lib/rtcam /var/lib/private/rtcam /etc/rtcam; true'

echo "== dpkg -i $(basename "$deb")"
run 'DEBIAN_FRONTEND=noninteractive dpkg -i /rtcam.deb' | sed 's/^/   /'
check "installed"                     'dpkg-query -W -f="\${Status}" rtcam | grep -q "install ok installed"'
check "binary runs"                   '/usr/bin/rtcam --help | grep -q WHEP'
check "binary is stripped"            '! readelf -S /usr/bin/rtcam | grep -q "\.symtab"'
check "user rtcam exists, no login"   'getent passwd rtcam | grep -q ":/usr/sbin/nologin$"'
check "user rtcam in video and audio" 'id -nG rtcam | grep -qw video && id -nG rtcam | grep -qw audio'
check "service enabled"               'test -L /etc/systemd/system/multi-user.target.wants/rtcam.service'
check "configuration installed"       'grep -q "^RTCAM_OPTIONS=" /etc/rtcam/rtcam.conf'
check "manual page installed"         'test -s /usr/share/man/man1/rtcam.1.gz'
check "unit verifies where installed" 'test -z "$(systemd-analyze verify /lib/systemd/system/rtcam.service 2>&1)"'

# What the running service would have written (StateDirectory= with DynamicUser=yes), and a local edit.
run 'mkdir -p /var/lib/private/rtcam && echo "{}" > /var/lib/private/rtcam/settings.json && ln -sfn private/rtcam /var/lib/rtcam'
run 'echo "RTCAM_OPTIONS=\"--fps 25\"" >> /etc/rtcam/rtcam.conf'

echo "== dpkg -r rtcam"
run 'dpkg -r rtcam' | sed 's/^/   /'
check "binary removed"                '! test -e /usr/bin/rtcam'
check "state kept on remove"          'test -f /var/lib/rtcam/settings.json'
check "configuration kept on remove"  'grep -q "fps 25" /etc/rtcam/rtcam.conf'

echo "== dpkg -i again"
run 'DEBIAN_FRONTEND=noninteractive dpkg -i /rtcam.deb' | sed 's/^/   /'
check "state survives a reinstall"    'test -f /var/lib/rtcam/settings.json'
check "local configuration kept"      'grep -q "fps 25" /etc/rtcam/rtcam.conf'
check "service enabled again"         'test -L /etc/systemd/system/multi-user.target.wants/rtcam.service'

echo "== dpkg -P rtcam"
run 'dpkg -P rtcam' | sed 's/^/   /'
check "purged"                        '! dpkg-query -W rtcam 2>/dev/null | grep -q .'
check "state removed on purge"        '! test -e /var/lib/rtcam && ! test -e /var/lib/private/rtcam'
check "configuration removed"         '! test -e /etc/rtcam'
check "enablement removed"            '! test -e /etc/systemd/system/multi-user.target.wants/rtcam.service'
check "user kept (Debian practice)"   'getent passwd rtcam'

echo "$((22 - failures)) passed, $failures failed"
[ "$failures" = 0 ]
