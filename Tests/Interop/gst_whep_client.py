"""GStreamer 1.22 webrtcbin as a receive-only WHEP client: the element behind most GStreamer WHEP
players and NVR integrations (Debian 12 has no `whepsrc`, so the WHEP exchange is done here, as those
players do it). Runs with Debian's python3 + python3-gi, not the interop venv:

    /usr/bin/python3 gst_whep_client.py http://127.0.0.1:8080/whep --seconds 4 [--bundle-policy max-bundle]

Prints one JSON object: the offer and answer, the negotiated codecs, and what was decoded in the
measuring window that starts at the first decoded video frame (frames, fps, sizes, audio samples per
second and the decoded sample rate). Exit code 0 when it measured, 1 with {"error": ...} otherwise.

libnice gathers no candidate on `lo`, and the interop tests run in a namespace holding only `lo`; so
127.0.0.1 is given to the ICE agent through its `add-local-ip-address` signal (GStreamer >= 1.20).
The offer is sent after ICE gathering completes (non-trickle), as most WHEP players built on webrtcbin do.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO_CAPS = ("application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=102,"
              "packetization-mode=(string)1,profile-level-id=(string)42e01f,level-asymmetry-allowed=(string)1")
AUDIO_CAPS = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111"


def http_exchange(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    try:
        connection.request(method, parts.path or "/", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


class Client:
    def __init__(self, url: str, bundle_policy: str, local_address: str):
        self.url = url
        self.local_address = local_address
        self.pipeline = Gst.Pipeline.new("viewer")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", bundle_policy)
        self.pipeline.add(self.webrtc)
        self.lock = threading.Lock()
        self.first_video = threading.Event()
        self.failed = threading.Event()
        self.errors: list[str] = []
        self.offer_sdp = ""
        self.answer_sdp = ""
        self.post_status = 0
        self.session_url = ""
        self.video_frames = 0
        self.video_sizes: list[tuple[int, int]] = []
        self.audio_samples = 0
        self.audio_rates: set[int] = set()
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.webrtc.connect("pad-added", self._on_pad_added)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)
        for caps in (VIDEO_CAPS, AUDIO_CAPS):
            self.webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                             Gst.Caps.from_string(caps))
        self._negotiating = False

    # Signalling -------------------------------------------------------------------------------

    def start(self) -> None:
        # Kept for the client's lifetime: webrtcbin 1.22's "ice-agent" getter hands out a reference it
        # does not add, so letting the Python wrapper go would free the agent under webrtcbin.
        self.ice_agent = self.webrtc.get_property("ice-agent")
        if not self.ice_agent.emit("add-local-ip-address", self.local_address):
            self._fail(f"libnice refused the local address {self.local_address}")
        self.pipeline.set_state(Gst.State.PLAYING)

    def _on_negotiation_needed(self, _element) -> None:
        if self._negotiating:
            return
        self._negotiating = True
        promise = Gst.Promise.new_with_change_func(self._on_offer_created, None)
        self.webrtc.emit("create-offer", None, promise)

    def _on_offer_created(self, promise, _data) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply else None
        if offer is None:
            return self._fail("create-offer gave no offer")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _on_gathering(self, *_args) -> None:
        if self.webrtc.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        if self.offer_sdp:
            return
        self.offer_sdp = self.webrtc.get_property("local-description").sdp.as_text()
        threading.Thread(target=self._post_offer, daemon=True).start()

    def _post_offer(self) -> None:
        try:
            status, headers, body = http_exchange("POST", self.url, self.offer_sdp.encode(),
                                                  {"Content-Type": "application/sdp"})
        except OSError as error:
            return self._fail(f"POST {self.url}: {error}")
        self.post_status = status
        if status != 201:
            return self._fail(f"POST {self.url} answered {status}: {body[:300]!r}")
        self.answer_sdp = body.decode()
        location = headers.get("Location", "")
        self.session_url = urllib.parse.urljoin(self.url, location)
        GLib.idle_add(self._set_answer)

    def _set_answer(self) -> bool:
        result, message = GstSdp.SDPMessage.new_from_text(self.answer_sdp)
        if result != GstSdp.SDPResult.OK:
            self._fail(f"GStreamer cannot parse the answer ({result})")
            return False
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        promise = Gst.Promise.new_with_change_func(self._on_answer_set, None)
        self.webrtc.emit("set-remote-description", answer, promise)
        return False

    def _on_answer_set(self, promise, _data) -> None:
        reply = promise.get_reply()
        # webrtcbin answers a refused description with an "error" field (GError) in the reply.
        if reply is not None and reply.has_field("error"):
            self._fail(f"webrtcbin refused the answer: {reply.get_value('error')}")

    # Media ------------------------------------------------------------------------------------

    def _on_pad_added(self, _element, pad) -> None:
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        decodebin = Gst.ElementFactory.make("decodebin")
        decodebin.connect("pad-added", self._on_decoded_pad)
        self.pipeline.add(decodebin)
        decodebin.sync_state_with_parent()
        pad.link(decodebin.get_static_pad("sink"))

    def _on_decoded_pad(self, _decodebin, pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name()
        sink = Gst.ElementFactory.make("appsink")
        sink.set_property("emit-signals", True)
        sink.set_property("sync", False)
        if name.startswith("video/"):
            sink.connect("new-sample", self._on_video_sample)
        elif name.startswith("audio/"):
            sink.connect("new-sample", self._on_audio_sample)
        else:
            sink = Gst.ElementFactory.make("fakesink")
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def _on_video_sample(self, sink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        structure = sample.get_caps().get_structure(0)
        size = (structure.get_value("width"), structure.get_value("height"))
        with self.lock:
            self.video_frames += 1
            if not self.video_sizes or self.video_sizes[-1] != size:
                self.video_sizes.append(size)
        self.first_video.set()
        return Gst.FlowReturn.OK

    def _on_audio_sample(self, sink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        structure = sample.get_caps().get_structure(0)
        rate = structure.get_value("rate")
        channels = structure.get_value("channels") or 1
        # Decoded audio is interleaved S16 or F32: bytes / (channels × bytes per sample) frames.
        audio_format = structure.get_string("format") or "S16LE"
        width = 4 if audio_format.startswith("F32") or audio_format.startswith("S32") else 2
        frames = sample.get_buffer().get_size() // (channels * width)
        with self.lock:
            self.audio_samples += frames
            self.audio_rates.add(rate)
        return Gst.FlowReturn.OK

    def counters(self) -> tuple[int, int]:
        with self.lock:
            return self.video_frames, self.audio_samples

    # Errors and teardown ----------------------------------------------------------------------

    def _on_error(self, _bus, message) -> None:
        error, debug = message.parse_error()
        self._fail(f"{message.src.get_name()}: {error.message} ({debug})")

    def _fail(self, text: str) -> None:
        self.errors.append(text)
        self.failed.set()

    def stop(self) -> int:
        self.pipeline.set_state(Gst.State.NULL)
        if not self.session_url:
            return 0
        try:
            return http_exchange("DELETE", self.session_url)[0]
        except OSError:
            return 0


def negotiated_codecs(answer: str) -> dict[str, str]:
    codecs: dict[str, str] = {}
    kind = ""
    for line in answer.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=rtpmap:") and kind and kind not in codecs:
            codecs[kind] = line.split(" ", 1)[1]
    return codecs


def run(url: str, seconds: float, bundle_policy: str, local_address: str, timeout: float) -> dict:
    Gst.init(None)
    loop = GLib.MainLoop()
    threading.Thread(target=loop.run, daemon=True).start()
    client = Client(url, bundle_policy, local_address)
    GLib.idle_add(lambda: (client.start(), False)[1])
    summary: dict = {"bundle_policy": bundle_policy}
    try:
        deadline = time.monotonic() + timeout
        while not client.first_video.is_set() and not client.failed.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not client.first_video.is_set():
            raise RuntimeError("; ".join(client.errors) or f"no video frame decoded within {timeout} s")
        start_video, start_audio = client.counters()
        started = time.monotonic()
        time.sleep(seconds)
        end_video, end_audio = client.counters()
        elapsed = time.monotonic() - started
        summary.update({
            "seconds": round(elapsed, 3),
            "frames": end_video - start_video,
            "fps": round((end_video - start_video) / elapsed, 2),
            "sizes": client.video_sizes,
            "audio_samples_per_second": round((end_audio - start_audio) / elapsed),
            "audio_rates": sorted(client.audio_rates),
        })
    except RuntimeError as error:
        summary["error"] = str(error)
    finally:
        summary["errors"] = client.errors
        summary["post_status"] = client.post_status
        summary["delete_status"] = client.stop()
        summary["codecs"] = negotiated_codecs(client.answer_sdp)
        summary["offer"] = client.offer_sdp
        summary["answer"] = client.answer_sdp
        loop.quit()
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--timeout", type=float, default=15, help="for the first decoded frame")
    parser.add_argument("--bundle-policy", default="max-bundle",
                        choices=["none", "balanced", "max-compat", "max-bundle"])
    parser.add_argument("--local-address", default="127.0.0.1")
    args = parser.parse_args()
    summary = run(args.url, args.seconds, args.bundle_policy, args.local_address, args.timeout)
    print(json.dumps(summary, indent=1))
    return 1 if "error" in summary else 0


if __name__ == "__main__":
    sys.exit(main())
