#!/bin/bash
# The whole daemon on the VM board: rtcam runs in the guest on real drivers and streams to aiortc's
# WHEP client on the host through QEMU's port forwards; the client must decode video at the size
# asked for, and audio. Then rtcam gets SIGTERM in the guest and must exit 0.
#   x264 (default):  vivid's webcam (NV12 640x480 at 25 fps) → x264; snd-aloop → Opus. Then the
#                    size is changed to 640x360 through the settings API (PUT /api/config), which
#                    must reopen the one camera (it was refused with EBUSY while the old pipeline
#                    held it), and a second client must decode 640x360. Before that, vivid's
#                    Brightness is set through the "rtcam" data channel and read back.
#   --passthrough:   a camera that encodes H.264 itself: v4l2loopback (exclusive_caps=1) fed by FFmpeg
#                    in the guest with an H.264 file made here (640x480, 25 fps, an IDR every 2 s),
#                    rtcam --encoder passthrough (no encoder in rtcam); snd-aloop → Opus.
#   --mjpeg:         (issue 21) a USB webcam's MJPEG: v4l2loopback fed by FFmpeg in the guest with
#                    JPEGs made here (640x480 4:2:2, 25 fps, each with FFmpeg's own COM marker);
#                    rtcam --format auto must capture MJPG (the camera has no raw format), serve the
#                    camera's own JPEGs as /snapshot.jpg and /stream.mjpg parts (byte for byte one of
#                    the frames made here), a smaller ?width= re-encoded, and decode them for x264 to aiortc.
#   --unplug:        (issue 20) vivid → x264 to headless Chromium; the guest unbinds vivid for 3 s (a
#                    USB unplug as rtcam sees it) and binds it again: /api/status and /metrics must
#                    say the camera is lost, the picture must be back within 2 s of the return, rtcam
#                    must not crash (fault_viewer.py unplug; RTCAM_VM_FAULT_ARGS=--viewer aiortc for aiortc).
#   --lossy:         (issue 20) rtcam plays an H.264 file (no encoder under TCG) through netem on the
#                    guest's eth0: 25 ms delay each way and 10 % loss on the way out (the host's kernel
#                    has no netem); headless Chromium watches 20 s and no freeze may last 200 ms
#                    (fault_viewer.py lossy: fps, freezes, NACKs, retransmissions).
#   --footprint-pattern, --footprint-file: (issue 23) the resident set as the footprint benchmark
#                    measures it on the host (Tests/Benchmarks: `footprint`), for a like-for-like
#                    figure on each board: HTTPS on as shipped, 1280x720 at 30 fps, 2 Mb/s; idle 15 s
#                    with the test pattern (nothing encoded), or a file source (no encoder, audio
#                    none) idle 15 s, then one aiortc viewer for 6 s; prints the `rss:` line, the
#                    guest's THP mode and each phase's smaps by mapping (smaps_breakdown.py; the smaps
#                    sum is exact, VmRSS of the 6.1 guest is not). RTCAM_VM_THP=never|madvise|always
#                    sets the guest's THP mode; RTCAM_VM_BINARY_ON=tmpfs runs a copy of rtcam from
#                    the guest's /tmp (not 9p); RTCAM_VM_KEEP_SMAPS=DIR keeps the smaps.
#   --talkback:      (issue 17) rtcam with --speaker alsa:hw:Loopback,0,1 (the test pattern, small, so
#                    TCG's CPU goes to the sound); aiortc on the host talks a 600 Hz tone for 12 s
#                    (whep_client.py --talk: sendrecv audio, POST .../talk); arecord in the guest
#                    records Loopback,1,1, what the speaker played; the recording must hold the tone at
#                    its pitch and level for the talk's length, and the longest gap is reported.
#
#   bash board/qemu-x86_64/test-daemon-in-vm.sh [--passthrough|--mjpeg|--unplug|--lossy|--talkback|--footprint-pattern|--footprint-file] [RTCAM_BINARY]   (default .build/debug/rtcam)
#   bash board/qemu-aarch64/test-daemon-in-vm.sh [--passthrough] [RTCAM_BINARY]  (RTCAM_VM_ARCH=arm64;
#        default out/arm64/rtcam from `make arm64`; its libraries are board/arm64's sysroot's)
#
# Runs in a network namespace of its own holding only `lo` (unshare --net; needs root): the
# forwards bind the namespace's 127.0.0.1:18080 (HTTP) and 127.0.0.1:8189 (media; the same port
# as in the guest, because the guest's candidate names it), nothing else is reachable.
# rtcam's resident set size in the guest (VmRSS, sampled every 0.5 s) is reported for three phases:
# idle (up, no viewer, 5 s), one viewer (the first WHEP client's 6 s), and its peak (VmHWM).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
arch=${RTCAM_VM_ARCH:-amd64}
mode=x264
case "${1:-}" in
  --passthrough) mode=passthrough; shift ;;
  --mjpeg) mode=mjpeg; shift ;;
  --unplug) mode=unplug; shift ;;
  --lossy) mode=lossy; shift ;;
  --talkback) mode=talkback; shift ;;
  --footprint-pattern) mode=footprint-pattern; shift ;;
  --footprint-file) mode=footprint-file; shift ;;
esac
if [ "$arch" = amd64 ]; then
  rtcam=${1:-$repo/.build/debug/rtcam}
  # TCG runs the guest several times slower than the host: 3 fps is the floor, not the goal.
  min_fps=${RTCAM_VM_MIN_FPS:-3}
  http_timeout=60
else
  rtcam=${1:-$repo/out/arm64/rtcam}
  # aarch64 under TCG is slower again (x264's NEON code is translated instruction by instruction).
  min_fps=${RTCAM_VM_MIN_FPS:-2}
  http_timeout=240   # the password's PBKDF2 hash under emulation
fi
[ -x "$rtcam" ] || { echo "test-daemon-in-vm: no rtcam binary at $rtcam (swift build first; arm64: make arm64)" >&2; exit 2; }
python=$(bash "$repo/Tests/Interop/venv.sh")

mkdir -p "$repo/.build-vm"
share=$(mktemp -d "$repo/.build-vm/daemon.XXXXXX")
trap 'rm -rf "$share"' EXIT
ln "$(readlink -f "$rtcam")" "$share/rtcam" 2>/dev/null || cp "$rtcam" "$share/rtcam"

extra_bins=()
if [ "$mode" = passthrough ]; then
  ffmpeg=$(command -v ffmpeg) || { echo "test-daemon-in-vm: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 2; }
  # The guest's FFmpeg: the host's on amd64; on arm64 the sysroot's (board/arm64's test packages).
  [ "$arch" = amd64 ] && extra_bins+=(--bin "$ffmpeg")
  # What a UVC H.264 camera sends: Constrained Baseline, no B-frames, an IDR every 50 frames.
  "$ffmpeg" -v error -y -f lavfi -i testsrc=size=640x480:rate=25 -t 8 -pix_fmt yuv420p -c:v libx264 \
    -profile:v baseline -preset ultrafast -tune zerolatency -g 50 -f mpegts "$share/camera.ts"
fi
if [ "$mode" = mjpeg ]; then
  ffmpeg=$(command -v ffmpeg) || { echo "test-daemon-in-vm: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 2; }
  [ "$arch" = amd64 ] && extra_bins+=(--bin "$ffmpeg")
  # What a UVC webcam sends: baseline JPEGs, 4:2:2 (yuvj422p), each frame different (testsrc's counter).
  # FFmpeg's MJPEG encoder writes a COM marker with its name in each: libjpeg-turbo (rtcam's own
  # encoder) writes none, so a still that has it is the camera's JPEG passed through.
  "$ffmpeg" -v error -y -f lavfi -i testsrc=size=640x480:rate=25 -t 4 -pix_fmt yuvj422p -c:v mjpeg -q:v 5 \
    -f matroska "$share/camera.mkv"
  mkdir -p "$share/frames"
  "$ffmpeg" -v error -y -i "$share/camera.mkv" -c:v copy -f image2 "$share/frames/%04d.jpg"
fi
if [ "$mode" = footprint-file ]; then
  # What the host's footprint benchmark plays: 1280x720 at 30 fps, 2 Mb/s, 4 s, Constrained Baseline.
  ffmpeg=$(command -v ffmpeg) || { echo "test-daemon-in-vm: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 2; }
  "$ffmpeg" -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -t 4 -pix_fmt yuv420p -c:v libx264 \
    -profile:v baseline -preset veryfast -tune zerolatency -g 30 -b:v 2M -maxrate 2M -bufsize 1M -f h264 "$share/footprint.h264"
fi
if [ "$mode" = talkback ]; then
  # The guest records what rtcam's speaker plays with alsa-utils' arecord (the host's).
  arecord=$(command -v arecord) || { echo "test-daemon-in-vm: arecord is needed (apt-get install alsa-utils)" >&2; exit 2; }
  extra_bins+=(--bin "$arecord")
fi
if [ "$mode" = lossy ]; then
  # rtcam plays a file (no encoder: the guest's CPU under TCG does not limit the frame rate), the
  # guest's eth0 gets netem, with iproute2's tc from the host (busybox's has no netem).
  ffmpeg=$(command -v ffmpeg) || { echo "test-daemon-in-vm: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 2; }
  tc=$(command -v tc) || { echo "test-daemon-in-vm: tc is needed (apt-get install iproute2)" >&2; exit 2; }
  extra_bins+=(--bin "$tc")
  # 640x480 at 25 fps, ~1 Mb/s (noise keeps the encoder spending its bits: 4-6 packets a frame),
  # an IDR every 2 s, Constrained Baseline as a browser takes it.
  "$ffmpeg" -v error -y -f lavfi -i testsrc2=size=640x480:rate=25 -t 10 -vf noise=alls=12:allf=t -pix_fmt yuv420p \
    -c:v libx264 -profile:v baseline -preset ultrafast -tune zerolatency -g 50 -b:v 1M -maxrate 1.2M -bufsize 300k \
    -f h264 "$share/stream.h264"
fi

# In the guest (busybox sh): the camera by name, rtcam in the background until the host writes
# `done` into the share, then SIGTERM and rtcam's exit status as the VM's.
# RTCAM_VM_DAEMON_ARGS: more rtcam options in the guest (e.g. --log-level debug).
# RTCAM_VM_NETEM_EGRESS / _INGRESS (--lossy): netem's parameters for the guest's eth0 each way.
{ echo "mode=$mode"; echo "extra='${RTCAM_VM_DAEMON_ARGS:-}'"
  echo "thp='${RTCAM_VM_THP:-}'"; echo "binary_on='${RTCAM_VM_BINARY_ON:-share}'"
  echo "tc='${tc:-}'"   # the host's iproute2 tc at its host path (busybox's tc comes first in PATH)
  echo "netem_egress='${RTCAM_VM_NETEM_EGRESS:-delay 25ms loss 10%}'"; echo "netem_ingress='${RTCAM_VM_NETEM_INGRESS:-delay 25ms}'"
  cat <<'GUEST'; } > "$share/guest-daemon.sh"
node_named() {
  for node in /sys/class/video4linux/*; do
    [ "$(cat "$node/name")" = "$1" ] && { echo "/dev/${node##*/}"; return 0; }
  done
  return 1
}
# A USB camera that sends compressed video: v4l2loopback fed by FFmpeg copying FILE's stream (TS or
# MKV: FFmpeg cannot loop a raw elementary stream, EPERM). With exclusive_caps=1 the node turns into a
# capture device once the writer streams, showing FOURCC in its format.
loopback_camera() {  # LABEL FILE FOURCC
  modprobe v4l2loopback exclusive_caps=1 card_label="$1" max_buffers=4 || exit 3
  camera=$(node_named "$1") || { echo "guest: no v4l2loopback node"; exit 3; }
  ffmpeg -nostdin -v error -re -stream_loop -1 -i "$2" -c:v copy -f v4l2 "$camera" > ffmpeg.log 2>&1 &
  for i in $(seq 150); do
    grep -q "$3" "/sys/class/video4linux/${camera#/dev/}/format" 2>/dev/null && break
    sleep 0.2
  done
  echo "guest: $camera delivers $(cat "/sys/class/video4linux/${camera#/dev/}/format" 2>/dev/null)"
}
if [ "$mode" = passthrough ]; then
  loopback_camera rtcam-h264-camera camera.ts H264   # Annex-B inside MPEG-TS
  encoder=passthrough
elif [ "$mode" = mjpeg ]; then
  loopback_camera rtcam-mjpeg-camera camera.mkv MJPG
  encoder=auto
else
  camera=$(node_named vivid-000-vid-cap) || { echo "guest: no vivid capture node"; exit 3; }
  encoder=x264
fi
source="v4l2:$camera"
if [ "$mode" = lossy ]; then
  source=file:stream.h264
  encoder=auto
  # Egress: netem on eth0 itself. Ingress: eth0's packets redirected through ifb0, netem there.
  # (no module autoloading in the guest: each tc module is loaded here)
  for m in sch_netem sch_ingress cls_matchall act_mirred; do modprobe $m || exit 3; done
  modprobe ifb numifbs=1 && ip link set ifb0 up &&
  "$tc" qdisc replace dev eth0 root netem $netem_egress &&
  "$tc" qdisc add dev eth0 handle ffff: ingress &&
  "$tc" filter add dev eth0 parent ffff: matchall action mirred egress redirect dev ifb0 &&
  "$tc" qdisc replace dev ifb0 root netem $netem_ingress || { echo "guest: netem could not be set up"; exit 3; }
  echo "guest: eth0 egress netem $netem_egress; ingress (ifb0) netem $netem_ingress"
  "$tc" qdisc show dev eth0; "$tc" qdisc show dev ifb0
fi
size=640x480; fps=25; bitrate=600; speaker=; audio=alsa:hw:Loopback,1,0; https="--https-port 0"
case $mode in
  # As the host's footprint benchmark runs it: HTTPS on as shipped (its port is not forwarded).
  footprint-pattern) source=test-pattern; audio=test-tone; encoder=auto; size=1280x720; fps=30; bitrate=2000; https= ;;
  footprint-file) source=file:footprint.h264; audio=none; encoder=auto; size=1280x720; fps=30; bitrate=2000; https= ;;
esac
if [ "$mode" = talkback ]; then
  # A small test pattern: the test is about sound, and TCG's CPU is slow.
  source=test-pattern; encoder=auto; size=320x240; fps=10
  speaker="--speaker alsa:hw:Loopback,0,1"
  # What rtcam plays into Loopback,0,1 comes out of Loopback,1,1. Opened first, the recorder fixes
  # the format of both sides: 48 kHz, S16, stereo, what rtcam's speaker asks for.
  arecord -q -D hw:Loopback,1,1 -t wav -f S16_LE -r 48000 -c 2 -d 120 talk.wav > arecord.log 2>&1 &
  recorder=$!
fi
mkdir -p /tmp/rtcam-state
# Issue 23's diagnostics (footprint modes): the guest's THP mode as the kernel booted it, or as
# RTCAM_VM_THP sets it (always, madvise, never); RTCAM_VM_BINARY_ON=tmpfs runs a copy of rtcam from
# the guest's own /tmp instead of the 9p share.
thp_file=/sys/kernel/mm/transparent_hugepage/enabled
[ -n "$thp" ] && [ -w "$thp_file" ] && echo "$thp" > "$thp_file"
echo "guest: transparent_hugepage/enabled: $(cat "$thp_file" 2>/dev/null || echo absent)," \
  "defrag: $(cat /sys/kernel/mm/transparent_hugepage/defrag 2>/dev/null || echo absent)"
rtcam_binary=./rtcam
if [ "$binary_on" = tmpfs ]; then cp rtcam /tmp/rtcam && rtcam_binary=/tmp/rtcam; fi
# HTTPS off: the settings API is then served on plain HTTP, where the host changes a setting below.
"$rtcam_binary" serve --source "$source" --audio "$audio" --size $size --fps $fps --bitrate $bitrate $speaker \
  --encoder "$encoder" --degradation off --candidate-address 127.0.0.1 --state-dir /tmp/rtcam-state $https $extra > rtcam.log 2>&1 &
pid=$!
# The host asks (--unplug) for the camera to go (file `unplug`) and come back (`replug`); the guest
# unbinds and binds vivid's platform device, as a USB unplug looks to rtcam, and says when done.
# Every 0.5 s, rtcam's resident set with the phase the host writes into the share (idle, viewer ...).
tick=0
while [ ! -f done ] && kill -0 "$pid" 2>/dev/null; do
  if [ -f unplug ]; then
    rm -f unplug; echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind; touch unplugged
    echo "guest: vivid unbound at $(cut -d' ' -f1 /proc/uptime) s"
  fi
  if [ -f replug ]; then
    rm -f replug; echo vivid.0 > /sys/bus/platform/drivers/vivid/bind; touch replugged
    echo "guest: vivid bound at $(cut -d' ' -f1 /proc/uptime) s: $(node_named vivid-000-vid-cap)"
  fi
  if [ $((tick % 10)) = 0 ]; then
    # "uptime phase VmRSS RssAnon RssFile" (KiB)
    echo "$(cut -d' ' -f1 /proc/uptime) $(cat phase 2>/dev/null || echo starting) $(sed -n 's/^\(VmRSS\|RssAnon\|RssFile\):[^0-9]*\([0-9]*\).*/\2/p' "/proc/$pid/status" 2>/dev/null | tr '\n' ' ')" >> rss.log
    # Footprint modes: the whole map of each phase's last sample (smaps_breakdown.py reads it).
    case $mode in footprint-*)
      phase_now=$(cat phase 2>/dev/null || echo starting)
      cat "/proc/$pid/smaps" > "smaps-$phase_now" 2>/dev/null
      ls "/proc/$pid/task" 2>/dev/null | wc -l > "threads-$phase_now" ;;
    esac
  fi
  tick=$((tick + 1))
  sleep 0.05
done
sed -n 's/^VmHWM:[^0-9]*\([0-9]*\).*/peak \1/p' "/proc/$pid/status" >> rss.log 2>/dev/null
if ! kill -0 "$pid" 2>/dev/null; then
  wait "$pid"; status=$?
  echo "guest: rtcam ended by itself (exit $status)"; exit 4
fi
kill -TERM "$pid"
wait "$pid"; status=$?
echo "guest: rtcam exit $status after SIGTERM"
# SIGINT: arecord completes the WAV header with the length it recorded.
[ -n "${recorder:-}" ] && { kill -INT "$recorder"; wait "$recorder"; }
exit "$status"
GUEST

# libsrtp2 (Debian builds it on NSS) makes NSS dlopen its softoken, which ldd does not list.
# (arm64: the whole sysroot is in the guest, dlopen finds what it looks for.)
nss=()
for lib in libsoftokn3.so libfreeblpriv3.so libfreebl3.so; do
  [ "$arch" = amd64 ] && [ -f "/lib/x86_64-linux-gnu/$lib" ] && nss+=(--bin "/lib/x86_64-linux-gnu/$lib")
done
# libjpeg-turbo is opened with dlopen at the first snapshot (issue 21): ldd does not list it either.
[ "$arch" = amd64 ] && [ -f /lib/x86_64-linux-gnu/libturbojpeg.so.0 ] && nss+=(--bin /lib/x86_64-linux-gnu/libturbojpeg.so.0)
# RTCAM_VM_DAEMON_ENV: NAME=VALUE for rtcam's environment in the guest (one).
[ -n "${RTCAM_VM_DAEMON_ENV:-}" ] && extra_bins+=(--env "$RTCAM_VM_DAEMON_ENV")
export NSS_BINS="${nss[*]} ${extra_bins[*]}"

# RTCAM_VM_FAULT_ARGS: more fault_viewer.py options (--unplug, --lossy), e.g. --seconds 20.
case $mode in
  unplug) FAULT_ARGS="--min-fps 3 ${RTCAM_VM_FAULT_ARGS:-}" ;;
  # Windows of 15 s, a second one when the guest stalled in the first (mean STUN RTT over 250 ms:
  # the host's other work starves TCG); a window where it did not is judged: no gap over 0.8 s
  # (what a packet rtcam does not recover costs: the picture waits for the next IDR, 2 s apart) and
  # no refused resend. Freezes are reported; the 200 ms of issue 20 is not asserted: the guest
  # stalls for 200-340 ms now and then even without loss (README, Reliability).
  lossy) FAULT_ARGS="--seconds 15 --windows 2 --min-fps 15 --max-freeze 0.8 ${RTCAM_VM_FAULT_ARGS:-}" ;;
  *) FAULT_ARGS= ;;
esac
started=$SECONDS
export share python here mode FAULT_ARGS arch http_timeout
set +e
unshare --net bash -c '
  set -u
  ip link set lo up
  "$here/run-in-vm.sh" --arch "$arch" --quiet --timeout $((http_timeout * 3 + 120)) --bin "$share/rtcam" $NSS_BINS --hostfwd tcp:18080:8080 --hostfwd udp:8189:8189 \
      "$share" sh ./guest-daemon.sh > "$share/vm.out" 2>&1 &
  vm=$!
  # The host side is done: the guest stops rtcam; this shell exits 0 only if the client ($1) and the VM did.
  finish() {
    touch "$share/done"; wait $vm; vm_status=$?
    echo "$1 exit $client, VM exit $vm_status"
    [ $client = 0 ] && [ $vm_status = 0 ]
    exit
  }
  # The guest boots (~5 s) and rtcam starts; wait for its health check through the forward.
  "$python" - $vm <<PY || { touch "$share/done"; wait $vm; exit 5; }
import os, sys, time, urllib.request
deadline = time.monotonic() + 180
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
        raise SystemExit("rtcam in the VM did not answer /healthz within 180 s")
    time.sleep(0.5)
PY
  if [ "$mode" = unplug ] || [ "$mode" = lossy ]; then
    # shellcheck disable=SC2086  # FAULT_ARGS is a word list
    "$python" "$here/fault_viewer.py" "$mode" http://127.0.0.1:18080 "$share" $FAULT_ARGS > "$share/fault.json"
    client=$?
    finish "fault viewer"
  fi
  if [ "$mode" = footprint-pattern ] || [ "$mode" = footprint-file ]; then
    # Idle 15 s after rtcam answered (the benchmark settles 15 s after start), then one viewer.
    echo idle > "$share/phase"
    sleep 15
    echo viewer > "$share/phase"
    # (the file source has no audio: the viewer offers none, as the load generator of the benchmark)
    "$python" "$here/../../Tests/Interop/whep_client.py" http://127.0.0.1:18080/whep --seconds 6 --connect-timeout 60 \
        $([ "$mode" = footprint-file ] && echo --no-audio) > "$share/footprint.json"
    client=$?
    finish "viewer"
  fi
  if [ "$mode" = talkback ]; then
    # aiortc talks a 600 Hz tone for 12 s (it claims the floor first).
    "$python" "$here/../../Tests/Interop/whep_client.py" http://127.0.0.1:18080/whep --talk --seconds 12 \
        --connect-timeout 60 > "$share/talk.json"
    client=$?
    sleep 2   # the jitter buffer and the device buffer play out into the recording
    finish "talker"
  fi
  # Idle: up, nobody watching (5 s of samples), then one viewer. (--mjpeg: no idle phase, which
  # keeps it under 40 s in the VM stage; the x264 run measures the idle footprint.)
  echo idle > "$share/phase"
  [ "$mode" = mjpeg ] || sleep 5
  echo viewer > "$share/phase"
  "$python" "$here/../../Tests/Interop/whep_client.py" http://127.0.0.1:18080/whep --seconds "$([ "$mode" = mjpeg ] && echo 5 || echo 6)" \
      --connect-timeout 60 > "$share/summary.json"
  client=$?
  echo after-viewer > "$share/phase"
  if [ $client = 0 ]; then
    # GET /snapshot.jpg (issue 21): a JPEG of vivid'"'"'s picture through the V4L2 capture path; a camera'"'"'s
    # own H.264 (passthrough) has no raw pictures, and the answer says so.
    "$python" - "$mode" > "$share/snapshot.out" 2>&1 <<PY || client=10
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:18080/snapshot.jpg", timeout=$http_timeout) as reply:
        status, body = reply.status, reply.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
def size(data):
    index = 2
    while data[:2] == b"\xff\xd8" and index + 9 <= len(data) and data[index] == 0xFF:
        marker, length = data[index + 1], int.from_bytes(data[index + 2:index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[index + 7:index + 9], "big"), int.from_bytes(data[index + 5:index + 7], "big")
        index += 2 + length
    return None
print(f"GET /snapshot.jpg: {status}, {len(body)} bytes, JPEG size {size(body)}" + ("" if size(body) else f": {body[:300]!r}"))
if sys.argv[1] == "passthrough":
    if status != 503 or b"no raw pictures" not in body: raise SystemExit(f"FAIL: wanted 503 saying why, got {status} {body[:200]!r}")
elif status != 200 or size(body) != (640, 480):
    raise SystemExit(f"FAIL: wanted a 640x480 JPEG, got {status} {size(body)}")
PY
  fi
  if [ $client = 0 ] && [ "$mode" = mjpeg ]; then
    # The JPEGs of the camera itself: the snapshot and the MJPEG parts are frames FFmpeg made (byte
    # for byte); a smaller width is decoded, scaled and coded by rtcam (no FFmpeg marker in it).
    "$python" - "$share/frames" > "$share/mjpeg.out" 2>&1 <<PY || client=11
import os, sys, time, urllib.request
frames = {open(os.path.join(sys.argv[1], name), "rb").read() for name in os.listdir(sys.argv[1])}
def get(path):
    started = time.monotonic()
    with urllib.request.urlopen("http://127.0.0.1:18080" + path, timeout=$http_timeout) as reply:
        body = reply.read()
    return reply.status, body, time.monotonic() - started
status, body, seconds = get("/snapshot.jpg")
marked = b"Lavc" in body
print(f"GET /snapshot.jpg: {status}, {len(body)} bytes in {seconds * 1000:.0f} ms; one of the {len(frames)} camera JPEGs: {body in frames}; "
      f"FFmpeg COM marker: {marked}")
if body not in frames: raise SystemExit("FAIL: the snapshot is not one of the camera JPEGs")
# Snapshot latency with passthrough: 10 more, 50 ms apart (TCG: the guest runs several times slower).
latencies = []
for _ in range(10):
    time.sleep(0.05)
    status, again, seconds = get("/snapshot.jpg")
    if again not in frames: raise SystemExit("FAIL: a later snapshot is not one of the camera JPEGs")
    latencies.append(seconds * 1000)
latencies.sort()
print(f"snapshot latency over 10 (passthrough, in the TCG guest): p50 {latencies[4]:.0f} ms, max {latencies[-1]:.0f} ms")
status, small, seconds = get("/snapshot.jpg?width=320")
marked = b"Lavc" in small
print(f"GET /snapshot.jpg?width=320: {status}, {len(small)} bytes in {seconds * 1000:.0f} ms; FFmpeg marker: {marked}")
if status != 200 or b"Lavc" in small or small[:2] != b"\xff\xd8": raise SystemExit("FAIL: wanted a smaller JPEG coded by rtcam")
# Three parts of /stream.mjpg at 5 fps.
reply = urllib.request.urlopen("http://127.0.0.1:18080/stream.mjpg?fps=5", timeout=$http_timeout)
parts, buffer, started = [], b"", time.monotonic()
while len(parts) < 3 and time.monotonic() - started < 30:
    buffer += reply.read1(65536)
    while True:
        head = buffer.find(b"\r\n\r\n")
        if head < 0 or b"Content-Length" not in buffer[:head]: break
        length = int(buffer[:head].split(b"Content-Length: ")[1].split(b"\r\n")[0])
        if len(buffer) < head + 4 + length: break
        parts.append(buffer[head + 4:head + 4 + length])
        buffer = buffer[head + 4 + length:]
reply.close()
print(f"GET /stream.mjpg?fps=5: {len(parts)} parts in {time.monotonic() - started:.1f} s, each one of the camera JPEGs: {[p in frames for p in parts]}, distinct: {len(set(parts))}")
if len(parts) < 3 or not all(p in frames for p in parts) or len(set(parts)) < 2: raise SystemExit("FAIL: the MJPEG parts are not the camera JPEGs")
PY
    grep -q "MJPG 640x480 (MJPEG: the camera gives no raw format)" "$share/rtcam.log" || { echo "FAIL: rtcam did not log MJPEG capture" >> "$share/mjpeg.out"; client=11; }
  fi
  if [ $client = 0 ] && [ "$mode" = x264 ]; then
    # A camera control through the "rtcam" data channel (issue 18): the Brightness of vivid set and read back.
    "$python" "$here/../../Tests/Interop/datachannel_controls.py" http://127.0.0.1:18080/whep Brightness \
        > "$share/controls.json" 2>&1 || client=9
  fi
  if [ $client = 0 ] && [ "$mode" = x264 ]; then
    # A new size for the same camera: choose a password (with the setup code rtcam logged, as a
    # person reads it in the journal; viewing stays open), log in, PUT the settings.
    "$python" - <<PY > "$share/resize.out" 2>&1 || client=7
import json, re, urllib.request
def call(method, path, body, cookie=None):
    request = urllib.request.Request("http://127.0.0.1:18080" + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})})
    try:
        with urllib.request.urlopen(request, timeout=$http_timeout) as reply:
            return reply.status, reply.headers.get("Set-Cookie", ""), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, "", error.read().decode()
found = re.search(r"setup code ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})", open("$share/rtcam.log").read())
if not found: raise SystemExit("no setup code in the rtcam.log of the guest")
status, cookie, answer = call("POST", "/api/password", {"password": "rtcam-vm-test-password", "setupCode": found.group(1),
                                                      "viewingRequiresPassword": False})
if status != 200: raise SystemExit(f"password: {status} {answer}")
status, _, answer = call("PUT", "/api/config", {"width": 640, "height": 360}, cookie.split(";", 1)[0])
print(f"PUT /api/config width 640 height 360: {status} {answer[:400]}")
if status != 200: raise SystemExit("the camera did not take the new size")
PY
    [ $client = 0 ] && { "$python" "$here/../../Tests/Interop/whep_client.py" http://127.0.0.1:18080/whep --seconds 6 \
        --connect-timeout 60 > "$share/summary-resized.json" || client=8; }
  fi
  finish client
'
status=$?
set -e
echo "----- guest console"; cat "$share/vm.out"
echo "----- rtcam log (guest)"; cat "$share/rtcam.log" 2>/dev/null || true
[ -s "$share/ffmpeg.log" ] && { echo "----- FFmpeg feeding v4l2loopback (guest)"; tail -n 20 "$share/ffmpeg.log"; }
[ -f "$share/summary.json" ] && { echo "----- WHEP client summary (host)"; cat "$share/summary.json"; }
[ -f "$share/fault.json" ] && { echo "----- fault viewer ($mode, host)"; cat "$share/fault.json"; }
[ -f "$share/chromium.log" ] && [ $status != 0 ] && { echo "----- Chromium log (host)"; tail -n 30 "$share/chromium.log"; }
[ -f "$share/resize.out" ] && { echo "----- settings change (host)"; cat "$share/resize.out"; }
[ -f "$share/controls.json" ] && { echo "----- camera control over the data channel (host)"; cat "$share/controls.json"; }
[ -f "$share/snapshot.out" ] && { echo "----- snapshot (host)"; cat "$share/snapshot.out"; }
[ -f "$share/mjpeg.out" ] && { echo "----- the camera's own JPEGs (host)"; cat "$share/mjpeg.out"; }
if [ -s "$share/rss.log" ]; then
  # VmRSS per phase: idle = the last idle sample (settled), viewer = the largest while watched; with
  # its anonymous (heap, stacks, buffers) and file-backed (the binary's touched pages) parts.
  echo "----- rtcam's resident set in the guest ($arch, VmRSS from /proc/PID/status every 0.5 s)"
  awk '$2 == "idle" && $3 != "" { idle = $3; idleAnon = $4; idleFile = $5 }
       $2 == "viewer" && $3 > viewer { viewer = $3; viewerAnon = $4; viewerFile = $5 }
       $1 == "peak" { peak = $2 }
       END { printf "rss: idle %.1f MB (anon %.1f, file %.1f), one viewer %.1f MB max (anon %.1f, file %.1f), peak (VmHWM) %.1f MB (MB = 2^20 bytes)\n",
                    idle / 1024, idleAnon / 1024, idleFile / 1024, viewer / 1024, viewerAnon / 1024, viewerFile / 1024, peak / 1024 }' \
      "$share/rss.log"
fi
# The picture must have arrived at the size asked for, at a rate that shows frames keep coming
# (TCG runs the guest several times slower than the host: $min_fps is the floor, not the goal).
if [ $status = 0 ] && [ -f "$share/summary.json" ]; then
  # Passthrough does no encoding: the guest only copies buffers, so the file's 25 fps must arrive.
  "$python" - "$share/summary.json" "$([ "$mode" = passthrough ] && echo 15 || echo "$min_fps")" "$mode" <<'PY' || status=6
import json, sys
summary = json.load(open(sys.argv[1]))
m = summary["measurement"]
print(f"decoded {m['video_frames']} frames at {m['width']}x{m['height']}, {m['fps']:.1f} fps; "
      f"audio {m['audio_frames']} frames at {m['audio_sample_rate']} Hz; codecs {summary.get('codecs')}")
problems = []
if (m["width"], m["height"]) != (640, 480): problems.append(f"size {m['width']}x{m['height']}, wanted 640x480")
if m["fps"] < float(sys.argv[2]): problems.append(f"only {m['fps']:.1f} fps, wanted {sys.argv[2]} or more")
if m["audio_frames"] == 0: problems.append("no audio frames")
if problems: raise SystemExit("FAIL: " + "; ".join(problems))
print("ok: rtcam in the VM streamed " + ("a camera's own H.264 (v4l2loopback) through passthrough" if sys.argv[3] == "passthrough"
      else "a camera's MJPEG (v4l2loopback), decoded, through x264" if sys.argv[3] == "mjpeg"
      else "vivid through x264") + " to aiortc on the host")
PY
fi
if [ "$mode" = footprint-pattern ] || [ "$mode" = footprint-file ]; then
  echo "----- viewer (host)"; cat "$share/footprint.json" 2>/dev/null
  if [ -s "$share/smaps-idle" ]; then
    # By mapping: Rss / anonymous / of that THP, KiB (the last sample of each phase); threads.
    echo "----- rtcam's mappings in the guest, idle and viewer (threads: $(cat "$share/threads-idle" 2>/dev/null) idle, $(cat "$share/threads-viewer" 2>/dev/null) viewer)"
    python3 "$here/smaps_breakdown.py" "$share/smaps-idle" $([ -s "$share/smaps-viewer" ] && echo "$share/smaps-viewer")
    # RTCAM_VM_KEEP_SMAPS=DIR keeps the maps for a closer look.
    [ -n "${RTCAM_VM_KEEP_SMAPS:-}" ] && mkdir -p "$RTCAM_VM_KEEP_SMAPS" && cp "$share"/smaps-* "$RTCAM_VM_KEEP_SMAPS/"
  fi
  [ -s "$share/rss.log" ] || { echo "FAIL: no resident-set samples"; status=6; }
fi
if [ "$mode" = talkback ]; then
  echo "----- talker (host)"; cat "$share/talk.json" 2>/dev/null
  [ -s "$share/arecord.log" ] && { echo "----- arecord (guest)"; cat "$share/arecord.log"; }
  [ $status = 0 ] && { "$python" "$here/talkback_recording.py" "$share/talk.wav" || status=6; }
fi
# Nobody unplugs the camera here: a "device gone" means rtcam lost its own camera (as when a
# stop closed it under the reading thread).
if [ $status = 0 ] && [ "$mode" != unplug ] && grep -q "device gone" "$share/rtcam.log"; then
  echo "FAIL: rtcam reported its camera gone although nothing removed it"; status=6
fi
if [ $status = 0 ] && [ "$mode" = x264 ]; then
  "$python" - "$share/summary-resized.json" <<'PY' || status=6
import json, sys
m = json.load(open(sys.argv[1]))["measurement"]
print(f"after the settings change: decoded {m['video_frames']} frames at {m['width']}x{m['height']}, {m['fps']:.1f} fps")
if (m["width"], m["height"]) != (640, 360) or m["video_frames"] == 0:
    raise SystemExit(f"FAIL: wanted frames at 640x360 after the settings change, got {m['video_frames']} at {m['width']}x{m['height']}")
print("ok: the settings API moved the camera to a new size while rtcam kept running")
PY
fi
echo "test-daemon-in-vm: exit $status in $((SECONDS - started)) s"
exit $status
