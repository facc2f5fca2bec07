#!/bin/sh
# Runs INSIDE the qemu-x86_64 guest (busybox sh), started by check-vm.sh: proves the board has what
# rtcam needs. Exit status 0 = every check passed; each failure prints "FAIL: …".
# v4l2-ctl, arecord and aplay are the host's, brought in by run-in-vm.sh --bin when installed.

failures=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
have() { command -v "$1" >/dev/null 2>&1; }

echo "== device nodes"
ls -l /dev/video* /dev/media* /dev/snd/* 2>&1
echo "== /sys/class/video4linux/*/name"
for node in /sys/class/video4linux/*; do
  echo "/dev/${node##*/}: $(cat "$node/name")"
done
echo "== /proc/asound/cards"
cat /proc/asound/cards

# The node that carries a given name (vivid and vicodec number their nodes in load order).
node_named() {
  for node in /sys/class/video4linux/*; do
    [ "$(cat "$node/name")" = "$1" ] && { echo "/dev/${node##*/}"; return 0; }
  done
  return 1
}
camera=$(node_named vivid-000-vid-cap) && pass "vivid capture node $camera" || fail "no vivid capture node"
encoder=$(node_named stateful-encoder) && pass "vicodec encoder node $encoder" || fail "no vicodec encoder node"
node_named stateful-decoder >/dev/null && pass "vicodec decoder node" || fail "no vicodec decoder node"
grep -q '\[Loopback *\]' /proc/asound/cards && pass "ALSA card Loopback" || fail "no ALSA Loopback card"
[ -c /dev/snd/pcmC0D1c ] && pass "Loopback capture PCM /dev/snd/pcmC0D1c" || fail "no /dev/snd/pcmC0D1c"

if have v4l2-ctl && [ -n "$camera" ]; then
  echo "== vivid: inputs, and streaming rates (v4l2-ctl)"
  v4l2-ctl -d "$camera" --list-inputs | grep -E 'Input|Name'
  stream() {  # $1 = label, the rest = v4l2-ctl arguments; prints the measured rate
    # v4l2-ctl prints the rate once a second: stream a little over two seconds' worth.
    out=$(v4l2-ctl -d "$camera" "$@" --stream-mmap --stream-count="$count" 2>&1)
    fps=$(echo "$out" | tr '\r' '\n' | sed -n 's/.* \([0-9.]*\) fps.*/\1/p' | tail -n 1)
    echo "$label: ${fps:-?} fps"
  }
  v4l2-ctl -d "$camera" --set-input=0 >/dev/null
  label="webcam 640x480 YUYV" count=55 stream --set-fmt-video=width=640,height=480,pixelformat=YUYV --set-parm=25
  label="webcam 1280x720 YUYV" count=28 stream --set-fmt-video=width=1280,height=720,pixelformat=YUYV
  if v4l2-ctl -d "$camera" --set-input=1 >/dev/null 2>&1; then
    # vivid's HDMI input starts at 720p60; pick 1280x720 at 30 frames per second from its list.
    index=$(v4l2-ctl -d "$camera" --list-dv-timings | awk '
      /Index:/ { i = $2; w = h = 0 } /Active width:/ { w = $3 } /Active height:/ { h = $3 }
      /Pixelclock:/ && w == 1280 && h == 720 && /\(30.00 frames/ { print i; exit }')
    v4l2-ctl -d "$camera" --set-dv-bt-timings=index="${index:-0}" >/dev/null
    label="HDMI 720p30 (DV timings index ${index:-?}) NV12" count=65 \
      stream --set-fmt-video=width=1280,height=720,pixelformat=NV12
    v4l2-ctl -d "$camera" --set-input=0 >/dev/null
  fi
  if v4l2-ctl -d "$camera" --set-fmt-video=width=640,height=480,pixelformat=YUYV --stream-mmap --stream-count=5 >/dev/null 2>&1; then
    pass "vivid streams"
  else
    fail "vivid does not stream"
  fi
fi
if have v4l2-ctl && [ -n "$encoder" ]; then
  echo "== vicodec encoder (FWHT): 640x360 YU12 in, compressed out (v4l2-ctl, MMAP both sides)"
  v4l2-ctl -d "$encoder" --list-formats-out | grep -E "^\s*\[" | head -5
  if v4l2-ctl -d "$encoder" --set-fmt-video-out=width=640,height=360,pixelformat=YU12 \
       --stream-mmap --stream-out-mmap --stream-count=10 --stream-to=/tmp/fwht.bin 2>&1 | tail -n 1; then
    [ -s /tmp/fwht.bin ] && pass "vicodec encoded $(wc -c < /tmp/fwht.bin) bytes" || fail "vicodec gave no bytes"
  else
    fail "vicodec encoder does not stream"
  fi
fi
if have arecord && have aplay; then
  echo "== snd-aloop: 1 s played into Loopback,0 comes out of Loopback,1 (aplay/arecord)"
  head -c 192000 /dev/urandom > /tmp/noise.raw   # 1 s of 48 kHz stereo S16_LE noise
  aplay -q -D hw:Loopback,0,0 -t raw -f S16_LE -r 48000 -c 2 /tmp/noise.raw &
  arecord -q -D hw:Loopback,1,0 -t raw -f S16_LE -r 48000 -c 2 -d 1 /tmp/capture.raw
  wait
  bytes=$(wc -c < /tmp/capture.raw)
  nonzero=$(od -An -tx1 -v /tmp/capture.raw | tr -s ' ' '\n' | grep -cv '^00$')
  echo "captured $bytes bytes, $nonzero of them non-zero"
  [ "$bytes" -ge 180000 ] && [ "$nonzero" -gt 1000 ] && pass "Loopback carries sound" || fail "Loopback capture empty"
fi

echo "== $failures failure(s)"
[ "$failures" = 0 ]
