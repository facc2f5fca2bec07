"""Checks of the harness itself, with no daemon: when these fail, the browser or the namespace is the
problem, not rtcam. Chromium connects two RTCPeerConnections inside one page (canvas video, loopback
candidates only), driven over the CDP pipe."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

LOOPBACK_CALL = r"""
(async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 320; canvas.height = 240;
  const context = canvas.getContext("2d");
  let tick = 0;
  const timer = setInterval(() => {
    context.fillStyle = `hsl(${(tick += 7) % 360}, 80%, 50%)`;
    context.fillRect(0, 0, canvas.width, canvas.height);
  }, 33);
  const stream = canvas.captureStream(30);
  const sender = new RTCPeerConnection({iceServers: []});
  const receiver = new RTCPeerConnection({iceServers: []});
  sender.onicecandidate = (e) => e.candidate && receiver.addIceCandidate(e.candidate);
  receiver.onicecandidate = (e) => e.candidate && sender.addIceCandidate(e.candidate);
  stream.getTracks().forEach((track) => sender.addTrack(track, stream));
  const candidates = [];
  sender.addEventListener("icecandidate", (e) => e.candidate && candidates.push(e.candidate.candidate));
  await sender.setLocalDescription(await sender.createOffer());
  await receiver.setRemoteDescription(sender.localDescription);
  await receiver.setLocalDescription(await receiver.createAnswer());
  await sender.setRemoteDescription(receiver.localDescription);
  const deadline = Date.now() + 10000;
  let frames = 0, state = "";
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    state = receiver.connectionState;
    (await receiver.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames = r.framesDecoded || 0;
    });
    if (frames > 10) break;
  }
  clearInterval(timer);
  sender.close(); receiver.close();
  return {frames, state, candidates};
})()
"""


class BlankPage(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>harness self-check</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def blank_page_url():
    """WebRTC wants a secure context: http://127.0.0.1 is one, about:blank opened over CDP is not."""
    server = HTTPServer(("127.0.0.1", 0), BlankPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_chromium_webrtc_loopback_inside_the_namespace(chromium, blank_page_url):
    page = chromium.new_page(blank_page_url)
    result = page.evaluate(LOOPBACK_CALL, timeout=20)
    print(result)
    assert result["frames"] > 10, f"Chromium could not even call itself: {result} (flags? namespace?)"
    for candidate in result["candidates"]:
        address = candidate.split()[4]
        assert address.startswith("127.") or address == "::1", f"non-loopback candidate {candidate}"


def test_only_loopback_is_reachable():
    """The run must happen in a namespace holding only `lo` (Tests/Interop/run.sh does that)."""
    interfaces = [name for _, name in socket.if_nameindex()]
    assert interfaces == ["lo"], f"interfaces here: {interfaces}; run the tests through Tests/Interop/run.sh"
