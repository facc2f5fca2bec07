"""A shaped link between rtcam and a viewer, made by the test (issue 24).

rtcam stays in the test's own network namespace (Tests/Interop/run.sh makes one holding only `lo`);
the viewer runs in a second namespace the test creates, joined by a veth pair. What rtcam sends to
the viewer leaves through a `tbf` qdisc on rtcam's end (a rate limit with a bounded queue, like the
uplink of a Wi-Fi access point or a 4G cell); `set_rate` changes it while the stream runs, and
`queue_delay_ms` reads the queue the way a router would hold it. Only addresses inside these two
namespaces are used (192.0.2.0/24 is the documentation range).

This kernel has no `netem` (shared/DESIGN.md, "Shaping links here"): random loss is an nft rule in the
viewer's namespace (`set_loss`).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
import time
import uuid
from typing import Optional

CAMERA_ADDRESS = "192.0.2.1"
VIEWER_ADDRESS = "192.0.2.2"


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


class ShapedLink:
    def __init__(self, rate_kbit: int, queue_ms: int = 200):
        suffix = uuid.uuid4().hex[:6]
        self.namespace = f"rtcam-viewer-{suffix}"
        self.camera_interface = f"rtcc{suffix}"
        self.viewer_interface = f"rtcv{suffix}"
        self.rate_kbit = rate_kbit
        self.queue_ms = queue_ms
        self._wrapper_dir: Optional[str] = None

    def __enter__(self) -> "ShapedLink":
        try:
            _run("ip", "netns", "add", self.namespace)
            _run("ip", "link", "add", self.camera_interface, "type", "veth", "peer", "name", self.viewer_interface)
            _run("ip", "link", "set", self.viewer_interface, "netns", self.namespace)
            _run("ip", "addr", "add", f"{CAMERA_ADDRESS}/24", "dev", self.camera_interface)
            _run("ip", "link", "set", self.camera_interface, "up")
            self._in_namespace("ip", "link", "set", "lo", "up")
            self._in_namespace("ip", "addr", "add", f"{VIEWER_ADDRESS}/24", "dev", self.viewer_interface)
            self._in_namespace("ip", "link", "set", self.viewer_interface, "up")
            self._apply("add")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        _run("ip", "link", "del", self.camera_interface, check=False)
        _run("ip", "netns", "del", self.namespace, check=False)
        if self._wrapper_dir:
            for name in os.listdir(self._wrapper_dir):
                os.unlink(os.path.join(self._wrapper_dir, name))
            os.rmdir(self._wrapper_dir)

    def _in_namespace(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run("ip", "netns", "exec", self.namespace, *command, check=check)

    def _apply(self, verb: str) -> None:
        # burst: one 1,500-byte packet or 2 ms at the rate, whichever is more (a shaper's bucket);
        # latency: how long a packet may wait in the queue before tbf drops it (the queue's size).
        burst = max(1600, self.rate_kbit * 1000 // 8 // 500)
        _run("tc", "qdisc", verb, "dev", self.camera_interface, "root", "tbf", "rate", f"{self.rate_kbit}kbit",
             "burst", str(burst), "latency", f"{self.queue_ms}ms")

    def set_rate(self, rate_kbit: int, queue_ms: Optional[int] = None) -> None:
        self.rate_kbit = rate_kbit
        if queue_ms is not None:
            self.queue_ms = queue_ms
        self._apply("change")

    def set_loss(self, percent: int) -> None:
        """Drops `percent` % of the UDP datagrams reaching the viewer (nft, in its namespace)."""
        self._in_namespace("nft", "delete", "table", "inet", "rtcamloss", check=False)
        if percent <= 0:
            return
        self._in_namespace("nft", "add", "table", "inet", "rtcamloss")
        self._in_namespace("nft", "add", "chain", "inet", "rtcamloss", "pre",
                           "{ type filter hook prerouting priority 0; }")
        self._in_namespace("nft", "add", "rule", "inet", "rtcamloss", "pre", "meta", "l4proto", "udp",
                           "numgen", "random", "mod", "100", "lt", str(percent), "drop")

    def qdisc_statistics(self) -> dict:
        out = _run("tc", "-s", "-j", "qdisc", "show", "dev", self.camera_interface).stdout
        for entry in json.loads(out or "[]"):
            if entry.get("kind") == "tbf":
                return entry
        return {}

    def queue_delay_ms(self) -> float:
        """What waits in the shaper now, as time at its rate (the delay a packet joining it meets)."""
        backlog = self.qdisc_statistics().get("backlog", 0)
        return backlog * 8 / (self.rate_kbit * 1000) * 1000

    def dropped_packets(self) -> int:
        return self.qdisc_statistics().get("drops", 0)

    def chromium_executable(self, chromium: str) -> str:
        """A launcher that starts `chromium` inside the viewer's namespace (cdp.Chromium runs it)."""
        self._wrapper_dir = tempfile.mkdtemp(prefix="rtcam-shaped-")
        path = os.path.join(self._wrapper_dir, "chromium-in-namespace")
        with open(path, "w") as script:
            script.write(f"#!/bin/sh\nexec ip netns exec {self.namespace} {chromium} \"$@\"\n")
        os.chmod(path, stat.S_IRWXU)
        return path


# A WHEP viewer in a blank page at rtcam's origin that keeps getStats figures in window.shaped:
# what the issue measures (framesPerSecond, freezeCount, totalFreezesDuration, jitterBufferDelay,
# packetsLost), sampled every 250 ms.
VIEWER_JS = r"""
(async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', {direction: 'recvonly'});
  pc.addTransceiver('audio', {direction: 'recvonly'});
  window.shaped = {samples: [], error: null, state: 'new'};
  pc.onconnectionstatechange = () => { window.shaped.state = pc.connectionState; };
  await pc.setLocalDescription(await pc.createOffer());
  const response = await fetch('/whep', {method: 'POST', headers: {'Content-Type': 'application/sdp'},
                                         body: pc.localDescription.sdp});
  if (response.status !== 201) { window.shaped.error = 'POST /whep answered ' + response.status; return; }
  window.shaped.location = response.headers.get('Location');
  await pc.setRemoteDescription({type: 'answer', sdp: await response.text()});
  setInterval(async () => {
    const stats = await pc.getStats();
    for (const report of stats.values()) {
      if (report.type === 'inbound-rtp' && report.kind === 'video') {
        window.shaped.samples.push({
          t: performance.now(), framesDecoded: report.framesDecoded || 0,
          framesPerSecond: report.framesPerSecond || 0, freezeCount: report.freezeCount || 0,
          totalFreezesDuration: report.totalFreezesDuration || 0, packetsLost: report.packetsLost || 0,
          keyFramesDecoded: report.keyFramesDecoded || 0, nackCount: report.nackCount || 0,
          pliCount: report.pliCount || 0,
          bytesReceived: report.bytesReceived || 0, jitterBufferDelay: report.jitterBufferDelay || 0,
          jitterBufferEmittedCount: report.jitterBufferEmittedCount || 0,
          width: report.frameWidth || 0, height: report.frameHeight || 0});
      }
    }
  }, 250);
  return true;
})()
"""


def window(samples: list[dict], start_ms: float, end_ms: float) -> dict:
    """Figures over [start, end] (page clock, ms): fps, freeze time, bitrate, loss, jitter buffer delay."""
    inside = [s for s in samples if start_ms <= s["t"] <= end_ms]
    if len(inside) < 2:
        return {"fps": 0.0, "freeze_s": 0.0, "kbps": 0.0, "lost": 0, "jitter_buffer_ms": None, "seconds": 0.0}
    first, last = inside[0], inside[-1]
    seconds = (last["t"] - first["t"]) / 1000
    emitted = last["jitterBufferEmittedCount"] - first["jitterBufferEmittedCount"]
    return {
        "fps": (last["framesDecoded"] - first["framesDecoded"]) / seconds,
        "freeze_s": last["totalFreezesDuration"] - first["totalFreezesDuration"],
        "freezes": last["freezeCount"] - first["freezeCount"],
        "kbps": (last["bytesReceived"] - first["bytesReceived"]) * 8 / seconds / 1000,
        "lost": last["packetsLost"] - first["packetsLost"],
        "keyframes": last.get("keyFramesDecoded", 0) - first.get("keyFramesDecoded", 0),
        "nacks": last.get("nackCount", 0) - first.get("nackCount", 0),
        "plis": last.get("pliCount", 0) - first.get("pliCount", 0),
        "jitter_buffer_ms": ((last["jitterBufferDelay"] - first["jitterBufferDelay"]) / emitted * 1000) if emitted else None,
        "seconds": seconds,
        "size": f"{last['width']}x{last['height']}",
    }


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
