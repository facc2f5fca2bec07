"""aiortc as a WHEP *sender*: the peer rtcam is compared with in `bench.py peers`.

    python peer_aiortc.py --port 8090 [--size 1280x720 --fps 30 --bitrate 2000]
    python peer_aiortc.py --port 8090 --bind 192.0.2.1 --candidate-address 192.0.2.1 --follow-remb

POST /whep (application/sdp offer) → 201 + answer + Location; DELETE /whep/ID; GET /healthz.
Each viewer gets its own RTCPeerConnection with a synthetic 720p video track (moving colour bars
over a noisy ramp, like rtcam's test pattern, so x264 does comparable work) encoded by aiortc's
H.264 encoder (PyAV/libx264, its own zerolatency settings) pinned at the requested bitrate, and
aiortc's audio track (silence through its Opus encoder), so both servers send video and audio.
Binds 127.0.0.1 unless told `--bind`; `--candidate-address` makes that address its only ICE host
candidate (`bench.py shaped`: the camera end of a shaped link). `--follow-remb` leaves aiortc's
congestion control on: the encoder starts at --bitrate and follows the viewer's REMB between
aiortc's own floor and --bitrate. GET /status: the video sender's encoder target, media bytes sent,
resends and forced keyframes.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import itertools
import json
import logging
import sys
from pathlib import Path

import numpy
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import h264
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Interop"))
from whep_client import allow_loopback_host_candidates  # noqa: E402


class PatternTrack(VideoStreamTrack):
    """Moving colour bars, a luma ramp whose rows jitter every frame, I420."""

    def __init__(self, width: int, height: int, fps: int):
        super().__init__()
        import av

        self.av = av
        self.width, self.height, self.fps = width, height, fps
        generator = numpy.random.default_rng(0x5EED)
        bars = numpy.array([180, 162, 131, 112, 84, 65, 35, 16], dtype=numpy.uint8)
        columns = bars[numpy.arange(width) * len(bars) // width]
        self.luma = numpy.tile(columns, (height, 1))
        self.ramp_start = (height * 2 // 3) & ~1
        ramp = (16 + 219 * numpy.arange(width) // (width - 1)).astype(numpy.int16)
        noise = generator.integers(-24, 25, size=(height - self.ramp_start, width), dtype=numpy.int16)
        self.luma[self.ramp_start:] = numpy.clip(ramp + noise, 0, 255).astype(numpy.uint8)
        self.u = numpy.full((height // 2, width // 2), 128, dtype=numpy.uint8)
        self.v = numpy.full((height // 2, width // 2), 128, dtype=numpy.uint8)
        self.u[:, :] = numpy.tile((bars * 3 // 4 + 40)[numpy.arange(width // 2) * len(bars) // (width // 2)], (height // 2, 1))
        self.rows = numpy.arange(height - self.ramp_start)[:, None]
        self.columns = numpy.arange(width)[None, :]
        self.counter = itertools.count()
        self.random = numpy.random.default_rng(1)

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        index = next(self.counter)
        shift = (index * (self.width // 4) // self.fps) % self.width & ~1
        frame_luma = numpy.empty_like(self.luma)
        frame_luma[:self.ramp_start] = numpy.roll(self.luma[:self.ramp_start], -shift, axis=1)
        offsets = self.random.integers(0, self.width, size=(len(self.rows), 1))
        frame_luma[self.ramp_start:] = self.luma[self.ramp_start:][self.rows, (self.columns + offsets) % self.width]
        u = numpy.roll(self.u, -shift // 2, axis=1)
        planes = numpy.concatenate([frame_luma.ravel(), u.ravel(), self.v.ravel()])
        frame = self.av.VideoFrame.from_ndarray(planes.reshape(self.height * 3 // 2, self.width), format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


def synthesis_cpu_ms(width: int, height: int, fps: int, frames: int = 60) -> float:
    """CPU milliseconds PatternTrack spends making one frame (numpy + av.VideoFrame), so that the
    comparison can take out what is our synthetic source and not aiortc."""
    import time

    track = PatternTrack(width, height, fps)

    async def frames_made() -> float:
        async def next_timestamp():
            return 0, fractions.Fraction(1, 90_000)

        track.next_timestamp = next_timestamp
        for _ in range(5):
            await track.recv()
        start = time.process_time()
        for _ in range(frames):
            await track.recv()
        return (time.process_time() - start) * 1000 / frames

    return asyncio.run(frames_made())


def pin_bitrate(bits_per_second: int) -> None:
    """aiortc's H264Encoder starts at 1 Mb/s and follows REMB; hold it at the benchmark's rate."""
    h264.DEFAULT_BITRATE = bits_per_second
    h264.MIN_BITRATE = bits_per_second
    h264.MAX_BITRATE = bits_per_second


def follow_remb(bits_per_second: int) -> None:
    """aiortc's own behaviour (its sender sets the encoder's target from each REMB, clamped to
    h264.MIN_BITRATE..MAX_BITRATE), started at and capped by the benchmark's rate."""
    h264.DEFAULT_BITRATE = bits_per_second
    h264.MAX_BITRATE = bits_per_second
    h264.MIN_BITRATE = min(h264.MIN_BITRATE, bits_per_second)


def only_host_candidate(address: str) -> None:
    """aioice gathers every interface's address; offer only `address` (the camera end of the link)."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]


def count_resends_and_keyframes() -> None:
    """Counts, per RTCRtpSender, the packets it resent for NACKs (those still in its history) and the
    keyframes PLI/FIR made it force, in `sender.benchmark_counters` (for GET /status)."""
    from aiortc import rtcrtpsender

    original_retransmit = rtcrtpsender.RTCRtpSender._retransmit
    original_keyframe = rtcrtpsender.RTCRtpSender._send_keyframe

    def counters(sender) -> dict:
        if not hasattr(sender, "benchmark_counters"):
            sender.benchmark_counters = {"nackedPackets": 0, "resentPackets": 0, "resentBytes": 0, "keyframesForced": 0}
        return sender.benchmark_counters

    async def retransmit(self, sequence_number: int) -> None:
        counts = counters(self)
        counts["nackedPackets"] += 1
        packet = self._RTCRtpSender__rtp_history.get(sequence_number % rtcrtpsender.RTP_HISTORY_SIZE)
        if packet and packet.sequence_number == sequence_number:
            counts["resentPackets"] += 1
            counts["resentBytes"] += len(packet.payload) + 12
        await original_retransmit(self, sequence_number)

    def send_keyframe(self) -> None:
        counters(self)["keyframesForced"] += 1
        original_keyframe(self)

    rtcrtpsender.RTCRtpSender._retransmit = retransmit
    rtcrtpsender.RTCRtpSender._send_keyframe = send_keyframe


def video_sender_status(pc: RTCPeerConnection) -> dict:
    """What aiortc's video sender did: its H.264 encoder's target now (None before its first frame),
    the media payload bytes it sent (not resends), and count_resends_and_keyframes' counters; private
    fields of RTCRtpSender, read for the benchmark's report only."""
    for sender in pc.getSenders():
        if sender.kind == "video":
            encoder = getattr(sender, "_RTCRtpSender__encoder", None)
            target = encoder.target_bitrate // 1000 if encoder is not None and hasattr(encoder, "target_bitrate") else None
            return {"encoderTargetKbps": target, "mediaBytesSent": getattr(sender, "_RTCRtpSender__octet_count", None),
                    **getattr(sender, "benchmark_counters", {})}
    return {}


def match_rtcam_encoder(preset: str, keyframe_interval: int) -> None:
    """aiortc opens libx264 with only tune=zerolatency (so x264's default preset, medium). Give it
    rtcam's settings instead — the preset, one thread, a keyframe every 2 s, no scene cuts — so the
    comparison is about the WebRTC stacks, not about encoder presets. aiortc sets `codec.options`
    right after creating the context; a thin proxy adds ours to that assignment."""
    import av

    extra = {"preset": preset, "threads": "1",
             "x264-params": f"keyint={keyframe_interval}:min-keyint={keyframe_interval // 2}:scenecut=0"}

    class ContextProxy:
        def __init__(self, inner):
            object.__setattr__(self, "_inner", inner)

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def __setattr__(self, name, value):
            if name == "options":
                value = {**value, **extra}
            setattr(self._inner, name, value)

    class CodecContextFactory:
        @staticmethod
        def create(name, mode=None):
            context = av.CodecContext.create(name, mode)
            return ContextProxy(context) if name == "libx264" else context

    class AvProxy:
        CodecContext = CodecContextFactory

        def __getattr__(self, name):
            return getattr(av, name)

    h264.av = AvProxy()


class WHEPServer:
    def __init__(self, width: int, height: int, fps: int):
        self.width, self.height, self.fps = width, height, fps
        self.sessions: dict[str, RTCPeerConnection] = {}
        self.ids = itertools.count(1)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode(errors="replace").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, extra, answer = await self.route(method, path, body)
        except Exception as error:  # noqa: BLE001
            status, extra, answer = 500, {}, str(error).encode()
        reason = {200: "OK", 201: "Created", 404: "Not Found", 500: "Error"}.get(status, "OK")
        response = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(answer)}", "Connection: close"]
        response += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(response) + "\r\n\r\n").encode() + answer)
        await writer.drain()
        writer.close()

    async def route(self, method: str, path: str, body: bytes):
        if method == "GET" and path == "/healthz":
            return 200, {"Content-Type": "text/plain"}, b"ok"
        if method == "GET" and path == "/status":
            senders = {session: video_sender_status(pc) for session, pc in self.sessions.items()}
            return 200, {"Content-Type": "application/json"}, json.dumps({"videoSenders": senders}).encode()
        if method == "POST" and path == "/whep":
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body.decode(), type="offer"))
            video = PatternTrack(self.width, self.height, self.fps)
            audio = AudioStreamTrack()
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver.sender.replaceTrack(video)
                    transceiver.direction = "sendonly"
                elif transceiver.kind == "audio":
                    transceiver.sender.replaceTrack(audio)
                    transceiver.direction = "sendonly"
            await pc.setLocalDescription(await pc.createAnswer())
            session = str(next(self.ids))
            self.sessions[session] = pc
            return 201, {"Content-Type": "application/sdp", "Location": f"/whep/{session}"}, pc.localDescription.sdp.encode()
        if method == "DELETE" and path.startswith("/whep/"):
            pc = self.sessions.pop(path.rsplit("/", 1)[1], None)
            if pc is None:
                return 404, {}, b""
            await pc.close()
            return 200, {}, b""
        return 404, {}, b""


async def serve(address: str, port: int, width: int, height: int, fps: int) -> None:
    server = WHEPServer(width, height, fps)
    listener = await asyncio.start_server(server.handle, address, port)
    async with listener:
        await listener.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--measure-synthesis", action="store_true",
                        help="print the CPU ms one synthetic frame costs, and exit")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate", type=int, default=2000, help="kbit/s")
    parser.add_argument("--x264-preset", default="ultrafast",
                        help="x264 preset (rtcam's: ultrafast); 'aiortc' keeps aiortc's own settings (x264 default: medium)")
    parser.add_argument("--bind", default="127.0.0.1", help="the HTTP listener's address (0.0.0.0: all)")
    parser.add_argument("--candidate-address", help="the only ICE host candidate to offer")
    parser.add_argument("--follow-remb", action="store_true",
                        help="the encoder follows the viewer's REMB (aiortc's congestion control) up to --bitrate")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level (DEBUG shows ICE/DTLS)")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    width, height = (int(v) for v in args.size.split("x"))
    if args.measure_synthesis:
        print(f"{synthesis_cpu_ms(width, height, args.fps):.3f}")
        return 0
    if args.candidate_address:
        only_host_candidate(args.candidate_address)
    else:
        allow_loopback_host_candidates()
    count_resends_and_keyframes()
    if args.follow_remb:
        follow_remb(args.bitrate * 1000)
    else:
        pin_bitrate(args.bitrate * 1000)
    if args.x264_preset != "aiortc":
        match_rtcam_encoder(args.x264_preset, keyframe_interval=2 * args.fps)
    try:
        asyncio.run(serve(args.bind, args.port, width, height, args.fps))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
