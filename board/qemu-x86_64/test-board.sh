#!/bin/bash
# The VM stage of `make test` (issue 7), one command: rtcam's own V4L2, V4L2-M2M and ALSA code on
# the real vivid, vicodec and snd-aloop drivers (test-kernel-drivers.sh: the KernelDriverTests
# suites in one boot), then the whole daemon in the VM streaming to aiortc on the host
# (test-daemon-in-vm.sh): vivid → x264, a camera's own H.264 (v4l2loopback) → passthrough, and a
# webcam's MJPEG (v4l2loopback) passed through to the stills and decoded for x264 (--mjpeg, issue 21);
# then the faults of issue 20: vivid unplugged and back while Chromium watches (--unplug), and 10 % loss
# at 50 ms RTT through the guest's netem while Chromium watches (--lossy); and talkback (issue 17):
# aiortc talks a tone that rtcam plays into snd-aloop, recorded in the guest (--talkback).
# Prints what ran and how long; fails if any part fails.
#
#   bash board/qemu-x86_64/test-board.sh     (after `swift build --build-tests`)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

started=$SECONDS
# The parts whose checks are timing bounds on the emulated guest (the snd-aloop xrun test, the
# lossy link's resends and freezes, the speaker's longest gap) fail now and then when the host starves
# TCG, as in CI, where the aarch64 suite runs beside this stage (rehearsals: the xrun test and --lossy
# with the guest's RTT at 8.7 s; talkback with a 455 ms gap against its 250 ms bound, 15 ms in the run
# before). Such a part that fails is run once more, and passes only if that run passes; the summary
# says which needed it. A defect that fails every time still fails the stage.
retried=""
again() {   # again NAME COMMAND...: the command's exit, after a second run if the first failed
    local name=$1; shift
    "$@" && return 0
    echo "== VM stage: $name failed (exit $?); running it once more (a starved TCG guest?)"
    retried="$retried $name"
    "$@"
}
again "kernel-driver suites" bash "$here/test-kernel-drivers.sh" "$repo/.build/debug/rtcamPackageTests.xctest"
drivers=$?
drivers_s=$((SECONDS - started))
bash "$here/test-daemon-in-vm.sh" "$repo/.build/debug/rtcam"
daemon=$?
daemon_s=$((SECONDS - started - drivers_s))
bash "$here/test-daemon-in-vm.sh" --passthrough "$repo/.build/debug/rtcam"
passthrough=$?
passthrough_s=$((SECONDS - started - drivers_s - daemon_s))
mark=$SECONDS
bash "$here/test-daemon-in-vm.sh" --mjpeg "$repo/.build/debug/rtcam"
mjpeg=$?
mjpeg_s=$((SECONDS - mark)); mark=$SECONDS
bash "$here/test-daemon-in-vm.sh" --unplug "$repo/.build/debug/rtcam"
unplug=$?
unplug_s=$((SECONDS - mark)); mark=$SECONDS
again "--lossy" bash "$here/test-daemon-in-vm.sh" --lossy "$repo/.build/debug/rtcam"
lossy=$?
lossy_s=$((SECONDS - mark)); mark=$SECONDS
again "--talkback" bash "$here/test-daemon-in-vm.sh" --talkback "$repo/.build/debug/rtcam"
talkback=$?
talkback_s=$((SECONDS - mark))
echo "== VM stage: kernel-driver suites exit $drivers (${drivers_s} s); daemon → aiortc, vivid + x264: exit $daemon (${daemon_s} s);" \
     "camera H.264 passthrough: exit $passthrough (${passthrough_s} s); camera MJPEG: exit $mjpeg (${mjpeg_s} s); camera unplugged and back: exit $unplug (${unplug_s} s);" \
     "10 % loss, 50 ms RTT into Chromium: exit $lossy (${lossy_s} s); talkback into snd-aloop: exit $talkback (${talkback_s} s);" \
     "$((SECONDS - started)) s in all${retried:+; run twice after a failure:$retried}"
((drivers == 0 && daemon == 0 && passthrough == 0 && mjpeg == 0 && unplug == 0 && lossy == 0 && talkback == 0))
