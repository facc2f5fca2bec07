"""Browsers accept an answer in which rtcam rejects some sections (issue 15): an offer with a second
video transceiver, which rtcam cannot serve, still plays in Chromium and Firefox. The rejected section
carries the transport lines GStreamer's webrtcbin needs (a fingerprint in every section); this checks
that the other two parsers accept them in a port-0 section too."""

from __future__ import annotations

from conftest import attach, wait_for_viewers

# Runs in a page of rtcam's origin (so fetch('/whep') needs no CORS). Leaves window.t for the checks.
OFFER_AND_PLAY = """
const pc = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
pc.addTransceiver('video', {direction: 'recvonly'});
pc.addTransceiver('audio', {direction: 'recvonly'});
pc.addTransceiver('video', {direction: 'recvonly'});   // a second picture: rtcam has one, so it rejects this
await pc.setLocalDescription(await pc.createOffer());
await new Promise(resolve => {
  if (pc.iceGatheringState === 'complete') return resolve();
  pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
  setTimeout(resolve, 3000);
});
const response = await fetch('/whep', {method: 'POST', headers: {'Content-Type': 'application/sdp'},
                                       body: pc.localDescription.sdp});
const answer = await response.text();
window.t = {pc, answer, status: response.status, location: response.headers.get('Location'), error: null};
if (response.status !== 201) return {status: response.status, answer};
try {
  await pc.setRemoteDescription({type: 'answer', sdp: answer});
} catch (error) {
  window.t.error = String(error);
  return {status: response.status, answer, error: String(error)};
}
const video = document.createElement('video');
video.muted = true;
video.srcObject = new MediaStream([pc.getTransceivers()[0].receiver.track]);
document.body.appendChild(video);
video.play().catch(() => {});
return {status: response.status, answer, error: null};
"""

FRAMES_DECODED = """
const stats = await window.t.pc.getStats();
let frames = 0;
stats.forEach(report => { if (report.type === 'inbound-rtp' && report.kind === 'video') frames += report.framesDecoded || 0; });
return frames;
"""


def check_result(result: dict) -> None:
    assert result["status"] == 201, f"POST /whep answered {result['status']}: {result['answer'][:300]}"
    assert result["error"] is None, f"the browser refused the answer: {result['error']}\n{result['answer']}"
    sections = [line.split(" ") for line in result["answer"].splitlines() if line.startswith("m=")]
    ports = [(fields[0], fields[1]) for fields in sections]
    assert ports[:2] != [] and ports[2] == ("m=video", "0") and "0" not in (ports[0][1], ports[1][1]), \
        f"expected the second video section (and only it) rejected: {ports}"


def delete_session(rtcam, location: str) -> None:
    status, _, _ = rtcam.request("DELETE", location)
    assert status in (200, 204), f"DELETE {location} answered {status}"
    assert wait_for_viewers(rtcam, 0, timeout=5) == 0


def test_chromium_accepts_a_rejected_section_and_plays(rtcam, chromium, request):
    page = chromium.new_page()
    attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
    page.navigate(rtcam.url("/healthz"))
    result = page.evaluate(f"(async () => {{ {OFFER_AND_PLAY} }})()", timeout=20)
    attach(request, "answer", lambda: result["answer"])
    check_result(result)
    page.wait_for(f"(async () => {{ {FRAMES_DECODED} }})().then(frames => frames > 10)", timeout=15)
    delete_session(rtcam, page.evaluate("window.t.location"))


def test_firefox_accepts_a_rejected_section_and_plays(rtcam, firefox, request):
    firefox.navigate(rtcam.url("/healthz"))
    result = firefox.execute(f"return (async () => {{ {OFFER_AND_PLAY} }})();", timeout=20)
    attach(request, "answer", lambda: result["answer"])
    check_result(result)
    firefox.wait_for(f"(async () => {{ {FRAMES_DECODED} }})().then(frames => frames > 10)", timeout=15)
    delete_session(rtcam, firefox.execute("return window.t.location;"))
