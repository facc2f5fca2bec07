#!/bin/bash
# The whole daemon on the VM board: rtcam runs in the guest on the real drivers (vivid's webcam →
# x264, snd-aloop → Opus) and streams to aiortc's WHEP client on the host through QEMU's port
# forwards; the client must decode video at the size asked for. Then rtcam gets SIGTERM in the
# guest and must exit 0.
#
#   bash board/qemu-x86_64/test-daemon-in-vm.sh [RTCAM_BINARY]     (default .build/debug/rtcam)
#
# Runs in a network namespace of its own holding only `lo` (unshare --net; needs root): the
# forwards bind the namespace's 127.0.0.1:18080 (HTTP) and 127.0.0.1:8189 (media; the same port
# as in the guest, because the guest's candidate names it), nothing else is reachable.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
rtcam=${1:-$repo/.build/debug/rtcam}
[ -x "$rtcam" ] || { echo "test-daemon-in-vm: no rtcam binary at $rtcam (swift build first)" >&2; exit 2; }
python=$(bash "$repo/Tests/Interop/venv.sh")

mkdir -p "$repo/.build-vm"
share=$(mktemp -d "$repo/.build-vm/daemon.XXXXXX")
trap 'rm -rf "$share"' EXIT
ln "$(readlink -f "$rtcam")" "$share/rtcam" 2>/dev/null || cp "$rtcam" "$share/rtcam"

# In the guest (busybox sh): the camera by name, rtcam in the background until the host writes
# `done` into the share, then SIGTERM and rtcam's exit status as the VM's.
cat > "$share/guest-daemon.sh" <<'GUEST'
camera=
for node in /sys/class/video4linux/*; do
  [ "$(cat "$node/name")" = vivid-000-vid-cap ] && camera=/dev/${node##*/}
done
[ -n "$camera" ] || { echo "guest: no vivid capture node"; exit 3; }
mkdir -p /tmp/rtcam-state
./rtcam serve --source "v4l2:$camera" --audio alsa:hw:Loopback,1,0 --size 640x480 --fps 25 --bitrate 600 \
  --encoder x264 --candidate-address 127.0.0.1 --state-dir /tmp/rtcam-state > rtcam.log 2>&1 &
pid=$!
while [ ! -f done ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
if ! kill -0 "$pid" 2>/dev/null; then
  wait "$pid"; status=$?
  echo "guest: rtcam ended by itself (exit $status)"; exit 4
fi
kill -TERM "$pid"
wait "$pid"; status=$?
echo "guest: rtcam exit $status after SIGTERM"
exit "$status"
GUEST

# libsrtp2 (Debian builds it on NSS) makes NSS dlopen its softoken, which ldd does not list.
nss=()
for lib in libsoftokn3.so libfreeblpriv3.so libfreebl3.so; do
  [ -f "/lib/x86_64-linux-gnu/$lib" ] && nss+=(--bin "/lib/x86_64-linux-gnu/$lib")
done
export NSS_BINS="${nss[*]}"

started=$SECONDS
export share python here
set +e
unshare --net bash -c '
  set -u
  ip link set lo up
  "$here/run-in-vm.sh" --quiet --timeout 240 --bin "$share/rtcam" $NSS_BINS --hostfwd tcp:18080:8080 --hostfwd udp:8189:8189 \
      "$share" sh ./guest-daemon.sh > "$share/vm.out" 2>&1 &
  vm=$!
  # The guest boots (~5 s) and rtcam starts; wait for its health check through the forward.
  "$python" - $vm <<PY || { touch "$share/done"; wait $vm; exit 5; }
import os, sys, time, urllib.request
deadline = time.monotonic() + 120
while True:
    try:
        os.kill(int(sys.argv[1]), 0)
    except ProcessLookupError:
        raise SystemExit("the VM ended before rtcam answered /healthz")
    try:
        with urllib.request.urlopen("http://127.0.0.1:18080/healthz", timeout=2) as reply:
            if reply.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        raise SystemExit("rtcam in the VM did not answer /healthz within 120 s")
    time.sleep(0.5)
PY
  "$python" "$here/../../Tests/Interop/whep_client.py" http://127.0.0.1:18080/whep --seconds 6 --connect-timeout 60 \
      > "$share/summary.json"
  client=$?
  touch "$share/done"
  wait $vm
  vm_status=$?
  echo "client exit $client, VM exit $vm_status"
  [ $client = 0 ] && [ $vm_status = 0 ]
'
status=$?
set -e
echo "----- guest console"; cat "$share/vm.out"
echo "----- rtcam log (guest)"; cat "$share/rtcam.log" 2>/dev/null || true
echo "----- WHEP client summary (host)"; cat "$share/summary.json" 2>/dev/null || true
# The picture must have arrived at the size asked for, at a rate that shows frames keep coming
# (TCG runs the guest several times slower than the host: 3 fps is the floor, not the goal).
if [ $status = 0 ]; then
  "$python" - "$share/summary.json" <<'PY' || status=6
import json, sys
summary = json.load(open(sys.argv[1]))
m = summary["measurement"]
print(f"decoded {m['video_frames']} frames at {m['width']}x{m['height']}, {m['fps']:.1f} fps; "
      f"audio {m['audio_frames']} frames at {m['audio_sample_rate']} Hz; codecs {summary.get('codecs')}")
problems = []
if (m["width"], m["height"]) != (640, 480): problems.append(f"size {m['width']}x{m['height']}, wanted 640x480")
if m["fps"] < 3: problems.append(f"only {m['fps']:.1f} fps")
if m["audio_frames"] == 0: problems.append("no audio frames")
if problems: raise SystemExit("FAIL: " + "; ".join(problems))
print("ok: rtcam in the VM streamed vivid through x264 to aiortc on the host")
PY
fi
echo "test-daemon-in-vm: exit $status in $((SECONDS - started)) s"
exit $status
