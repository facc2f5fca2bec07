"""GStreamer webrtcbin as a WHEP *sender*: the second peer rtcam is compared with in `bench.py peers`.
Runs with Debian's python3 + python3-gi (gstreamer1.0-plugins-bad/-good/-ugly, gstreamer1.0-nice).

    /usr/bin/python3 peer_gstreamer.py --port 8091 [--size 1280x720 --fps 30 --bitrate 2000]

POST /whep (offer) → 201 + answer (non-trickle: after ICE gathering) + Location; DELETE /whep/ID;
GET /healthz. Each viewer gets a pipeline: videotestsrc (moving SMPTE bars) → x264enc (ultrafast,
zerolatency, the requested bitrate, keyframe every 2 s, Constrained Baseline) → rtph264pay, and
audiotestsrc → opusenc → rtpopuspay, into webrtcbin. Binds 127.0.0.1 unless told `--bind`;
`--candidate-address` keeps only that address's candidates in the answer (`bench.py shaped`). The
x264enc bitrate stays fixed: webrtcbin itself has no congestion control (GStreamer's is the
rtpgccbwe element of gst-plugins-rs, which Debian 12 does not ship).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = (
    "webrtcbin name=webrtc bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=smpte horizontal-speed=4 "
    "! video/x-raw,width={width},height={height},framerate={fps}/1,format=I420 "
    "! x264enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate} key-int-max={keyint} threads=1 "
    "! video/x-h264,profile=constrained-baseline "
    "! rtph264pay config-interval=-1 aggregate-mode=zero-latency pt={{video_pt}} "
    "! application/x-rtp,media=video,encoding-name=H264,payload={{video_pt}},clock-rate=90000 ! webrtc. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt={{audio_pt}} "
    "! application/x-rtp,media=audio,encoding-name=OPUS,payload={{audio_pt}},clock-rate=48000 ! webrtc. "
)


def offered_payload_types(offer_sdp: str) -> dict:
    """The offer's payload types for H.264 (packetization-mode=1, Constrained Baseline first, then any)
    and Opus: webrtcbin (1.22) answers a pad whose payload type means another codec in the offer with
    a new transceiver and then aborts (`_connect_input_stream: assertion failed: (trans->stream)`);
    Chromium offers VP8 as 96, where rtcam-bench's loadgen offers H.264."""
    names, parameters = {}, {}
    for line in offer_sdp.splitlines():
        if line.startswith("a=rtpmap:"):
            pt, _, codec = line[len("a=rtpmap:"):].partition(" ")
            names[pt] = codec.split("/")[0].upper()
        elif line.startswith("a=fmtp:"):
            pt, _, value = line[len("a=fmtp:"):].partition(" ")
            parameters[pt] = value
    h264 = [pt for pt, name in names.items() if name == "H264" and "packetization-mode=1" in parameters.get(pt, "")]
    constrained = [pt for pt in h264 if "profile-level-id=42e0" in parameters.get(pt, "")]
    opus = [pt for pt, name in names.items() if name == "OPUS"]
    return {"video_pt": (constrained or h264 or ["96"])[0], "audio_pt": (opus or ["111"])[0]}


class Session:
    def __init__(self, description: str, offer_sdp: str, candidate_address: str | None = None):
        self.pipeline = Gst.parse_launch(description.format(**offered_payload_types(offer_sdp)))
        self.webrtc = self.pipeline.get_by_name("webrtc")
        # Not libnice's add-local-ip-address: PyGObject (Debian 12) takes webrtcbin's only reference
        # to the ice-agent property's object and frees it; the answer's candidate lines are filtered.
        self.candidate_address = candidate_address
        self.done = threading.Event()
        self.answer: str | None = None
        self.error: str | None = None
        self.offer_sdp = offer_sdp
        self.candidates: list[str] = []
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.webrtc.connect("on-ice-candidate", lambda _element, _mline, candidate: self.candidates.append(candidate))

    def start(self) -> None:
        """Runs on the GLib main loop."""
        self.pipeline.set_state(Gst.State.PLAYING)
        _, message = GstSdp.SDPMessage.new_from_text(self.offer_sdp)
        offer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, message)
        promise = Gst.Promise.new_with_change_func(self._on_remote_set, None)
        self.webrtc.emit("set-remote-description", offer, promise)

    def _on_remote_set(self, promise, _data) -> None:
        promise = Gst.Promise.new_with_change_func(self._on_answer, None)
        self.webrtc.emit("create-answer", None, promise)

    def _on_answer(self, promise, _data) -> None:
        reply = promise.get_reply()
        answer = reply.get_value("answer") if reply else None
        if answer is None:
            self.error = f"create-answer failed: {reply.to_string() if reply else 'no reply'}"
            self.done.set()
            return
        self.webrtc.emit("set-local-description", answer, Gst.Promise.new())

    def _on_gathering(self, *_args) -> None:
        if self.webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            local = self.webrtc.get_property("local-description")
            if local is not None and not self.done.is_set():
                self.answer = only_candidates_on(local.sdp.as_text(), self.candidate_address)
                self.done.set()

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)


def only_candidates_on(sdp: str, address: str | None) -> str:
    """The SDP without the a=candidate lines of other addresses (all kept when `address` is None)."""
    if not address:
        return sdp
    kept = [line for line in sdp.split("\r\n")
            if not line.startswith("a=candidate:") or line.split()[4] == address]
    return "\r\n".join(kept)


class Handler(BaseHTTPRequestHandler):
    sessions: dict[str, Session] = {}
    ids = itertools.count(1)
    description = ""
    candidate_address: str | None = None

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, b"ok") if self.path == "/healthz" else self._reply(404)

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/whep":
            return self._reply(404)
        offer = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        session = Session(self.description, offer, self.candidate_address)
        GLib.idle_add(lambda: (session.start(), False)[1])
        if not session.done.wait(8) or session.answer is None:
            GLib.idle_add(lambda: (session.stop(), False)[1])
            reason = session.error or (
                "ICE gathering did not complete within 8 s" + (
                    "" if session.candidates else ": no local candidate at all (libnice skips loopback "
                    "interfaces, and this namespace holds only lo)"))
            return self._reply(500, reason.encode())
        identifier = str(next(self.ids))
        self.sessions[identifier] = session
        self._reply(201, session.answer.encode(), {"Content-Type": "application/sdp",
                                                   "Location": f"/whep/{identifier}"})

    def do_DELETE(self) -> None:  # noqa: N802
        session = self.sessions.pop(self.path.rsplit("/", 1)[-1], None)
        if session is None:
            return self._reply(404)
        GLib.idle_add(lambda: (session.stop(), False)[1])
        self._reply(200)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=2000, help="kbit/s")
    parser.add_argument("--bind", default="127.0.0.1", help="the HTTP listener's address (0.0.0.0: all)")
    parser.add_argument("--candidate-address", help="answer with this address's candidates only")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    Handler.description = PIPELINE.format(width=width, height=height, fps=args.fps, bitrate=args.bitrate,
                                          keyint=args.fps * 2)
    Handler.candidate_address = args.candidate_address
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    loop = GLib.MainLoop()
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
