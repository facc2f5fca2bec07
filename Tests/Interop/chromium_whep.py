"""WHEP from a Chromium page of the camera's origin with the page's own RTCPeerConnection (not the
viewer page), for the ICE tests: the offer goes once gathering is complete (or after a timeout), so
it carries every candidate Chromium found, and the stats name the selected pair."""

from __future__ import annotations

import json


def whep_script(ice_servers: list[str] = (), gather_timeout_ms: int = 5000, extensions: list[str] = ()) -> str:
    """The page's WHEP viewer, kept in window.pc; evaluates to the offer it sent. `extensions`: RTP
    header extension URIs Chromium implements but does not offer by default, offered through
    RTCRtpTransceiver.setHeaderExtensionsToNegotiate where this Chromium has it."""
    servers = json.dumps([{"urls": url} for url in ice_servers])
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
