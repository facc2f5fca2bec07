"""WHEP from a Chromium page of the camera's origin with the page's own RTCPeerConnection (not the
viewer page), for the ICE tests: the offer goes once gathering is complete (or after a timeout), so
it carries every candidate Chromium found, and the stats name the selected pair."""

from __future__ import annotations

import json


def whep_script(ice_servers: list = (), gather_timeout_ms: int = 5000, extensions: list[str] = ()) -> str:
    """The page's WHEP viewer, kept in window.pc; evaluates to the offer it sent. `extensions`: RTP
    header extension URIs Chromium implements but does not offer by default, offered through
    RTCRtpTransceiver.setHeaderExtensionsToNegotiate where this Chromium has it."""
    # A server is a URL, or a dict with "urls", "username" and "credential" (a TURN server).
    servers = json.dumps([server if isinstance(server, dict) else {"urls": server} for server in ice_servers])
    return """(async () => {
  const pc = new RTCPeerConnection({iceServers: %(servers)s, bundlePolicy: "max-bundle"});
  window.pc = pc;
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const wanted = %(extensions)s;
  for (const transceiver of pc.getTransceivers()) {
    if (!wanted.length || !transceiver.setHeaderExtensionsToNegotiate) break;
    transceiver.setHeaderExtensionsToNegotiate(transceiver.getHeaderExtensionsToNegotiate().map(
      (extension) => wanted.includes(extension.uri) ? {uri: extension.uri, direction: "recvonly"} : extension));
  }
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  pc.ontrack = (event) => {
    if (event.track.kind === "video") { video.srcObject = new MediaStream([event.track]); video.play().catch(() => {}); }
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") done();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") done(); };
    setTimeout(done, %(timeout)d);
  });
  const response = await fetch("/whep", {method: "POST", headers: {"Content-Type": "application/sdp"},
                                         body: pc.localDescription.sdp});
  if (response.status !== 201) throw new Error("POST /whep answered " + response.status);
  await pc.setRemoteDescription({type: "answer", sdp: await response.text()});
  return pc.localDescription.sdp;
})()""" % {"servers": servers, "timeout": gather_timeout_ms, "extensions": json.dumps(list(extensions))}


# Frames decoded so far and the selected pair as Chromium sees it (candidate types, the remote
# candidate's address and port).
STATS = """(async () => {
  const stats = await window.pc.getStats();
  let frames = 0, pairId = null;
  stats.forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") frames = report.framesDecoded || 0;
    if (report.type === "transport" && report.selectedCandidatePairId) pairId = report.selectedCandidatePairId;
  });
  const pair = pairId && stats.get(pairId);
  const local = pair && stats.get(pair.localCandidateId), remote = pair && stats.get(pair.remoteCandidateId);
  return {frames, state: window.pc.connectionState, at: performance.now(),
          local: local ? local.candidateType : null, remote: remote ? remote.candidateType : null,
          remoteIP: remote ? remote.address : null,
          remoteAddress: remote ? remote.address + ":" + remote.port : null};
})()"""


def play_viewer_page(page, url: str, read_status, seconds: float = 4.0, timeout: float = 20) -> dict:
    """rtcam's own viewer page at `url`: navigate, wait for its first decoded frame while connected,
    then sample window.rtcam twice `seconds` apart and call read_status() (rtcam's /api/status, while
    the page still plays). Returns first_frame_s (from navigating), fps over the window, the last
    window.rtcam sample and the status."""
    import time

    started = time.monotonic()
    page.navigate(url)
    page.wait_for("window.rtcam && window.rtcam.framesDecoded > 0 && window.rtcam.state === 'connected'", timeout=timeout)
    first_frame = time.monotonic() - started
    first = page.evaluate("JSON.parse(JSON.stringify(window.rtcam))")
    time.sleep(seconds)
    last = page.evaluate("JSON.parse(JSON.stringify(window.rtcam))")
    status = read_status()
    fps = (last["framesDecoded"] - first["framesDecoded"]) / ((last["updatedAt"] - first["updatedAt"]) / 1000)
    return {"first_frame_s": first_frame, "fps": fps, "last": last, "status": status}


def window_figures(first: dict, last: dict, presented_times: list) -> dict:
    """What Chromium saw between two samples of its inbound video stats (`framesDecoded`,
    `freezeCount`, `totalFreezesDuration`, NACK/PLI/loss/RTX counters, the jitter buffer, the
    candidate pair's `totalRoundTripTime`/`responsesReceived`, plus the page's own `now` in ms and
    `presented` frame count), and the gaps between the presented frames' times (ms): the figures
    the loss tests judge, in the VM's fault viewer and on the host's relay line alike."""
    elapsed = (last["now"] - first["now"]) / 1000
    gaps = sorted((later - earlier for earlier, later in zip(presented_times, presented_times[1:])), reverse=True)

    def delta(key):
        return (last.get(key) or 0) - (first.get(key) or 0)

    responses = delta("responsesReceived")
    freezes = delta("freezeCount")
    return {
        "seconds": round(elapsed, 2),
        "fpsDecoded": round(delta("framesDecoded") / elapsed, 2),
        "fpsPresented": round(delta("presented") / elapsed, 2),
        "freezeCount": freezes,
        "totalFreezesSeconds": round(delta("totalFreezesDuration"), 3),
        "meanFreezeMs": round(1000 * delta("totalFreezesDuration") / freezes, 1) if freezes else None,
        "longestFrameGapMs": round(gaps[0], 1) if gaps else None,
        "frameGapsOver200Ms": sum(1 for gap in gaps if gap > 200),
        "frameGapsOver150Ms": sum(1 for gap in gaps if gap > 150),
        "frameGapsOver100Ms": sum(1 for gap in gaps if gap > 100),
        "nackCount": delta("nackCount"),
        "pliCount": delta("pliCount"),
        "packetsReceived": delta("packetsReceived"),
        "packetsLost": delta("packetsLost"),
        "retransmittedPacketsReceived": delta("retransmittedPacketsReceived"),
        "framesDropped": delta("framesDropped"),
        "keyFramesDecoded": delta("keyFramesDecoded"),
        "jitterBufferMs": round(1000 * delta("jitterBufferDelay") / max(1, delta("jitterBufferEmittedCount")), 1),
        "meanRttMs": round(1000 * delta("totalRoundTripTime") / responses, 1) if responses else None,
        "size": [last.get("frameWidth"), last.get("frameHeight")],
        "state": last.get("state"),
    }
