"""Headless Chromium watching rtcam through the loss relay (loss_relay.py), and the figures of a
window of that (issue 20): used by test_loss_rtt.py and the `lossy` benchmark.

The page (rtcam's origin, its own RTCPeerConnection) offers with every a=candidate line taken out,
so rtcam (full ICE) has nothing to check and learns the viewer only from the checks it receives,
which come from the relay: a peer-reflexive candidate at the relay's address. In rtcam's answer the
page replaces rtcam's candidates with the relay's, so Chromium sends only to the relay. Nothing
then goes between them but through the relay's delay and loss.

Each presented frame's time comes from requestVideoFrameCallback; getStats gives Chromium's own
freeze count (a freeze: a gap between rendered frames over max(3 × the mean frame duration, the mean
+ 150 ms)), NACKs, losses and RTX received, and the selected pair's round trip.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Optional

from chromium_whep import window_figures

# Where the page keeps its peer connection and the presented frames: window.lossy.
PLAYER = """
(async () => {
  const relayCandidate = %(candidate)s;
  const video = document.createElement("video");
  video.autoplay = true; video.muted = true; video.playsInline = true;
  document.body.appendChild(video);
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.ontrack = (event) => { stream.addTrack(event.track); video.srcObject = stream; video.play().catch(() => {}); };
  window.lossy = { pc, presented: [], rtpTimestamps: [], state: "new" };
  pc.onconnectionstatechange = () => { window.lossy.state = pc.connectionState; };
  const onFrame = (now, metadata) => {
    window.lossy.presented.push(performance.now());
    window.lossy.rtpTimestamps.push(metadata.rtpTimestamp);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") resolve(); };
    setTimeout(resolve, 2000);
  });
  const lines = (sdp) => sdp.split("\\r\\n").filter((line) => line.length > 0);
  // No candidate of the viewer's reaches rtcam: it learns the relay's address from the checks.
  const offer = lines(pc.localDescription.sdp).filter((line) => !line.startsWith("a=candidate:")).join("\\r\\n") + "\\r\\n";
  const response = await fetch("/whep", { method: "POST", headers: { "Content-Type": "application/sdp" }, body: offer });
  if (response.status !== 201) throw new Error("POST /whep: " + response.status + " " + await response.text());
  // rtcam's own candidates out, the relay's in (after each section's ICE password).
  const answer = [];
  for (const line of lines(await response.text())) {
    if (line.startsWith("a=candidate:")) continue;
    answer.push(line);
    if (line.startsWith("a=ice-pwd:")) answer.push("a=candidate:" + relayCandidate);
  }
  window.lossy.answer = answer.join("\\r\\n") + "\\r\\n";
  await pc.setRemoteDescription({ type: "answer", sdp: window.lossy.answer });
  return "offered";
})()
"""

STATS = """
(async () => {
  const out = { now: performance.now(), state: window.lossy.state, presented: window.lossy.presented.length };
  const stats = await window.lossy.pc.getStats();
  let pairId = null;
  stats.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      for (const k of ["framesDecoded", "framesReceived", "framesDropped", "freezeCount", "totalFreezesDuration",
                       "nackCount", "pliCount", "firCount", "packetsLost", "packetsReceived",
                       "retransmittedPacketsReceived", "jitterBufferDelay", "jitterBufferEmittedCount",
                       "frameWidth", "frameHeight", "keyFramesDecoded", "bytesReceived",
                       "headerBytesReceived"]) out[k] = r[k];
    }
    if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  });
  const pair = pairId && stats.get(pairId);
  if (pair) {
    out.rtt = pair.currentRoundTripTime; out.totalRoundTripTime = pair.totalRoundTripTime;
    out.responsesReceived = pair.responsesReceived;
    const remote = stats.get(pair.remoteCandidateId);
    out.remoteAddress = remote ? remote.address + ":" + remote.port : null;
  }
  return out;
})()
"""

VIEWER_COUNTERS = ("packetsSent", "retransmittedPackets", "retransmissionsRefused", "redundantRetransmissions",
                   "redundantRetransmissionsWithheld", "redundantRetransmissionsHeldForCongestion",
                   "retransmissionsInFlight", "keyframeRequests", "staleVideoPacketsDropped")


def make_stream(path: str, seconds: int = 10) -> str:
    """The VM test's clip (board/qemu-x86_64/test-daemon-in-vm.sh --lossy): 640x480 at 25 fps, ~1 Mb/s
    (noise keeps the encoder spending its bits: 4-6 packets a frame), an IDR every 2 s, Constrained
    Baseline. rtcam plays it without an encoder, so the machine's load does not change what is sent."""
    if not os.path.exists(path):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25",
                        "-t", str(seconds), "-vf", "noise=alls=12:allf=t", "-pix_fmt", "yuv420p",
                        "-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-tune", "zerolatency",
                        "-g", "50", "-b:v", "1M", "-maxrate", "1.2M", "-bufsize", "300k", "-f", "h264", path],
                       check=True, capture_output=True)
    return path


def rtx_payload_type(page) -> Optional[int]:
    """The video RTX payload type of the answer the page applied (a=rtpmap:N rtx/90000)."""
    found = page.evaluate("(/a=rtpmap:(\\d+) rtx\\/90000/.exec(window.lossy.answer || '') || [])[1] || null")
    return int(found) if found else None


def start_watching(page, relay_candidate: str, timeout: float = 30) -> None:
    """The page must be at rtcam's origin already. Returns once a frame was presented."""
    page.evaluate(PLAYER % {"candidate": json.dumps(relay_candidate)}, timeout=timeout)
    page.wait_for("window.lossy.presented.length > 0", timeout=timeout)


def sample(page, status: dict) -> dict:
    """What a window starts or ends with: Chromium's stats and rtcam's /api/status at that moment."""
    return {"chromium": page.evaluate(STATS), "status": status}


def summarize(page, first: dict, last: dict, relay: Optional[dict] = None) -> dict:
    """One window between two samples: fps decoded and presented against what rtcam sent, Chromium's
    freezes, the longest gap between presented frames, NACKs, losses, RTX, and rtcam's counters."""
    a, b = first["chromium"], last["chromium"]
    start = max(0, a["presented"] - 1)
    times = page.evaluate(f"window.lossy.presented.slice({start}, {b['presented']})")
    timestamps = page.evaluate(f"window.lossy.rtpTimestamps.slice({start}, {b['presented']})")
    # The frames after the longest gaps (RTP timestamps: a relay trace shows what became of their packets).
    long_gaps = sorted(((later - earlier, index + 1) for index, (earlier, later) in enumerate(zip(times, times[1:]))
                        if later - earlier > 150), reverse=True)[:10]

    def viewer(status):
        return next(iter(status.get("viewers") or []), {})

    before, after = viewer(first["status"]), viewer(last["status"])
    figures = window_figures(a, b, times)
    frames_sent = (last["status"].get("framesEncoded") or 0) - (first["status"].get("framesEncoded") or 0)
    return figures | {
        "fpsSent": round(frames_sent / figures["seconds"], 2),
        "longGaps": [{"ms": round(gap, 1), "atMs": round(times[index], 1), "rtpTimestamp": timestamps[index],
                      "previousRtpTimestamp": timestamps[index - 1]} for gap, index in long_gaps],
        "chromiumRemote": b.get("remoteAddress"),
        "rtcam": {key: (after.get(key) or 0) - (before.get(key) or 0) for key in VIEWER_COUNTERS}
        | {"rttMs": after.get("rttMs"), "icePair": after.get("icePair")},
        "relay": relay,
    }


def relay_window(before: dict, after: dict) -> dict:
    """The relay's counters over a window, and its timing (LossRelay.stats() gives the timing since the
    previous call, so `after`'s timing is this window's)."""
    return {"toViewer": after["toViewer"] - before["toViewer"], "dropped": after["dropped"] - before["dropped"],
            "toRtcam": after["toRtcam"] - before["toRtcam"], "loss": after["loss"],
            "lateP50Ms": after["timing"]["p50Ms"], "lateP99Ms": after["timing"]["p99Ms"],
            "lateMaxMs": after["timing"]["maxMs"]}
