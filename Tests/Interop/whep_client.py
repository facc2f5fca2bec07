"""A receive-only WHEP client built on aiortc: a library for the tests and benchmarks, and a CLI.

    python whep_client.py http://127.0.0.1:8080/whep --seconds 5      # prints a JSON summary

As a library:

    async with WhepClient("http://127.0.0.1:8080/whep") as client:   # POST offer, set answer
        await client.wait_for_media(timeout=10)                        # first decoded video frame
        report = await client.measure(seconds=4)                       # fps, size, audio RMS
    # leaving the block DELETEs the session (client.delete_status holds the answer)

or in one call: `summary = asyncio.run(receive(url, seconds=5))`.

aiortc decodes H.264 with PyAV (FFmpeg); `track.recv()` yields av.VideoFrame / av.AudioFrame.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Optional

import aioice.ice
import aioice.turn
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class WhepError(RuntimeError):
    pass


def allow_loopback_host_candidates() -> None:
    """aioice leaves 127.0.0.1 out of its host candidates. In a network namespace holding only `lo`
    (where the interop tests run) that leaves no candidate at all, so add it back. Adding, not
    stripping: every address aioice would gather is still gathered."""
    original = aioice.ice.get_host_addresses
    if getattr(original, "_rtcam_loopback", False):
        return

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4, use_ipv6)
        if use_ipv4 and "127.0.0.1" not in addresses:
            addresses.append("127.0.0.1")
        return addresses

    with_loopback._rtcam_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = with_loopback


def whep_endpoint(url: str) -> str:
    """Accept the daemon's base URL too: http://host:port → http://host:port/whep."""
    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/whep", "", ""))
    return url


def http_exchange(method: str, url: str, body: Optional[bytes] = None, headers: Optional[dict] = None,
                  timeout: float = 10.0):
    """Blocking HTTP (run it in a thread): returns (status, headers, body bytes)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise WhepError(f"only http:// URLs are supported here: {url}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@dataclass
class VideoStats:
    frames: int = 0
    width: int = 0
    height: int = 0
    sizes: list = field(default_factory=list)          # distinct (w, h) seen
    first_frame_at: Optional[float] = None             # monotonic seconds
    last_frame_at: Optional[float] = None
    arrivals: list = field(default_factory=list)       # monotonic seconds of every decoded frame


@dataclass
class AudioStats:
    frames: int = 0
    samples: int = 0                                    # per channel
    sample_rate: int = 0
    channels: int = 0
    sum_squares: float = 0.0                            # over all samples, normalised to [-1, 1]
    values: int = 0
    peak: float = 0.0
    # Every audio RTP packet as it reached aiortc (after SRTP, before its jitter buffer):
    # (sequence number, RTP timestamp, monotonic seconds).
    rtp: list = field(default_factory=list)

    @property
    def rms(self) -> float:
        return math.sqrt(self.sum_squares / self.values) if self.values else 0.0


@dataclass
class Measurement:
    """What arrived during one measure() window."""
    seconds: float
    video_frames: int
    fps: float
    width: int
    height: int
    sizes: list
    audio_frames: int
    audio_samples: int
    audio_sample_rate: int
    audio_channels: int
    audio_rms: float
    audio_peak: float
    connection_state: str
    audio_rtp: Optional["RtpContinuity"] = None


@dataclass
class RtpContinuity:
    """What a stream of RTP packets says about its source: how many came, whether any are missing,
    and whether the timestamps advance exactly with the sequence numbers (one frame per packet)."""
    packets: int
    missing_sequence_numbers: int        # holes in the (unwrapped) sequence numbers
    reordered_or_repeated: int           # packets not after the previous one
    timestamp_steps: dict                # {RTP timestamp step between consecutive packets: count}
    timestamp_rate: float                # RTP timestamp units per second of arrival time
    seconds: float                       # first to last arrival
    largest_arrival_gap: float           # seconds between two consecutive arrivals

    def irregular_steps(self, step: int) -> dict:
        """The timestamp steps other than `step` (a jump: samples the sender skipped or repeated)."""
        return {key: count for key, count in self.timestamp_steps.items() if key != step}


def rtp_continuity(packets: list) -> Optional[RtpContinuity]:
    """Analyses (sequence number, timestamp, arrival) tuples in arrival order."""
    if len(packets) < 2:
        return None
    missing = disordered = 0
    steps: dict = {}
    previous_sequence = previous_timestamp = previous_arrival = None
    largest_gap = 0.0
    sequence_base = timestamp_base = 0
    first_timestamp = None
    for sequence, timestamp, arrival in packets:
        # Unwrap 16-bit sequence numbers and 32-bit timestamps.
        if previous_sequence is not None:
            while sequence_base + sequence < previous_sequence - 0x8000:
                sequence_base += 0x10000
            while timestamp_base + timestamp < previous_timestamp - 0x80000000:
                timestamp_base += 0x100000000
        sequence += sequence_base
        timestamp += timestamp_base
        if first_timestamp is None:
            first_timestamp = timestamp
        if previous_sequence is not None:
            if sequence <= previous_sequence:
                disordered += 1
                continue
            missing += sequence - previous_sequence - 1
            if sequence == previous_sequence + 1:
                step = timestamp - previous_timestamp
                steps[step] = steps.get(step, 0) + 1
            largest_gap = max(largest_gap, arrival - previous_arrival)
        previous_sequence, previous_timestamp, previous_arrival = sequence, timestamp, arrival
    seconds = packets[-1][2] - packets[0][2]
    return RtpContinuity(
        packets=len(packets), missing_sequence_numbers=missing, reordered_or_repeated=disordered,
        timestamp_steps=steps, timestamp_rate=round((previous_timestamp - first_timestamp) / seconds, 1) if seconds > 0 else 0.0,
        seconds=round(seconds, 3), largest_arrival_gap=round(largest_gap, 4))


def _rms_of(frame) -> tuple[float, int, float]:
    """Sum of squares (normalised), sample count and peak of an av.AudioFrame."""
    import numpy  # aiortc depends on it through av; imported lazily to keep import time low

    samples = frame.to_ndarray()
    if samples.dtype.kind == "i":
        scale = float(-numpy.iinfo(samples.dtype).min)   # int16: 32768, so full scale is 1.0
    else:
        scale = 1.0
    values = samples.astype(numpy.float64).ravel() / scale
    if values.size == 0:
        return 0.0, 0, 0.0
    return float(numpy.dot(values, values)), int(values.size), float(numpy.max(numpy.abs(values)))


class WhepClient:
    def __init__(self, url: str, video: bool = True, audio: bool = True, http_timeout: float = 10.0,
                 loopback_candidates: bool = True, headers: Optional[dict] = None, talk_track=None,
                 stun_urls: tuple[str, ...] = (), turn: Optional["TurnServer"] = None, relay_only: bool = False):
        self.endpoint = whep_endpoint(url)
        self.extra_headers = dict(headers or {})   # e.g. {"Authorization": "Bearer <token>"} (RFC 9725 §4.5)
        self.want_video, self.want_audio = video, audio
        # Talkback (issue 17): an audio track to send on a sendrecv audio transceiver.
        self.talk_track = talk_track
        self.http_timeout = http_timeout
        # STUN servers ("stun:HOST:PORT"): only ones inside namespaces a test made (test_ice_nat.py).
        self.stun_urls = tuple(stun_urls)
        # A TURN server (aiortc uses one) and whether to gather only its relayed candidate
        # (iceTransportPolicy "relay": no host or server-reflexive candidates, no STUN query).
        self.turn = turn
        self.relay_only = relay_only
        if loopback_candidates:
            allow_loopback_host_candidates()
        self.pc: Optional[RTCPeerConnection] = None
        self.session_url: Optional[str] = None
        self.answer_sdp: str = ""
        self.offer_sdp: str = ""
        self.post_status: Optional[int] = None
        self.delete_status: Optional[int] = None
        self.video = VideoStats()
        self.audio = AudioStats()
        self.errors: list[str] = []
        self.connected_at: Optional[float] = None
        self.started_at = time.monotonic()
        self._tasks: list[asyncio.Task] = []
        self._first_video = asyncio.Event()
        self._first_audio = asyncio.Event()
        self._connected = asyncio.Event()
        self._failed = asyncio.Event()

    # ---- setup -----------------------------------------------------------------------------------

    def _record_loop_exception(self, loop, context: dict) -> None:
        """aiortc runs ICE and DTLS in background tasks; their failures (a certificate that does not
        parse, a handshake error) would otherwise only be logged. Keep them for the error message."""
        exception = context.get("exception")
        self.errors.append(f"{context.get('message', 'error')}: {exception!r}" if exception
                           else str(context.get("message")))
        self._failed.set()   # nothing will come now: let wait_for_media() say so at once
        loop.default_exception_handler(context)

    async def connect(self) -> "WhepClient":
        asyncio.get_running_loop().set_exception_handler(self._record_loop_exception)
        # No STUN/TURN unless a test gives its own (nothing off-box).
        servers = [RTCIceServer(urls=url) for url in self.stun_urls]
        if self.turn is not None:
            servers.append(RTCIceServer(urls=self.turn.url, username=self.turn.username, credential=self.turn.credential))
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        if self.want_video:
            self.pc.addTransceiver("video", direction="recvonly")
        if self.want_audio and self.talk_track is not None:
            transceiver = self.pc.addTransceiver("audio", direction="sendrecv")
            transceiver.sender.replaceTrack(self.talk_track)
            self._record_rtp(transceiver.receiver, self.audio.rtp)
        elif self.want_audio:
            self._record_rtp(self.pc.addTransceiver("audio", direction="recvonly").receiver, self.audio.rtp)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)          # aiortc gathers its candidates here
        self.offer_sdp = self.pc.localDescription.sdp
        if self.relay_only and "a=candidate:" not in self.offer_sdp:
            # aioice drops a failed allocation's exception while gathering; fail now, not after the
            # media timeout, and say where to look.
            raise WhepError(f"no relayed candidate: the allocation on {self.turn.url if self.turn else 'no TURN server'} "
                            "failed (aioice keeps the reason to itself: a turns: certificate the trust store rejects "
                            "(--turn-ca), wrong credentials or an unreachable server)")
        status, headers, body = await asyncio.to_thread(
            http_exchange, "POST", self.endpoint, self.offer_sdp.encode(),
            {"Content-Type": "application/sdp", **self.extra_headers}, self.http_timeout)
        self.post_status = status
        if status != 201:
            raise WhepError(f"POST {self.endpoint} answered {status}: {body.decode(errors='replace')[:500]}")
        location = headers.get("Location")
        if not location:
            raise WhepError("POST /whep answered 201 without a Location header")
        self.session_url = urllib.parse.urljoin(self.endpoint, location)
        content_type = headers.get("Content-Type", "")
        if not content_type.startswith("application/sdp"):
            self.errors.append(f"answer Content-Type is {content_type!r}, not application/sdp")
        self.answer_sdp = body.decode()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.answer_sdp, type="answer"))
        return self

    @staticmethod
    def _record_rtp(receiver, into: list) -> None:
        """Notes every RTP packet `receiver` is handed (this instance only; aiortc still gets it)."""
        handle = receiver._handle_rtp_packet

        async def recording(packet, arrival_time_ms):
            into.append((packet.sequence_number, packet.timestamp, time.monotonic()))
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = recording

    def _on_state(self) -> None:
        state = self.pc.connectionState if self.pc else "closed"
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self._connected.set()
        elif state in ("failed", "closed"):
            self._failed.set()

    def _on_track(self, track) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.ensure_future(self._read_video(track)))
        elif track.kind == "audio":
            self._tasks.append(asyncio.ensure_future(self._read_audio(track)))

    async def _read_video(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                stats = self.video
                stats.frames += 1
                stats.width, stats.height = frame.width, frame.height
                if (frame.width, frame.height) not in stats.sizes:
                    stats.sizes.append((frame.width, frame.height))
                if stats.first_frame_at is None:
                    stats.first_frame_at = now
                    self._first_video.set()
                stats.last_frame_at = now
                stats.arrivals.append(now)
        except MediaStreamError:
            pass
        except Exception as error:  # noqa: BLE001 — record and stop reading
            self.errors.append(f"video: {error!r}")

    async def _read_audio(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                stats = self.audio
                stats.frames += 1
                stats.samples += frame.samples
                stats.sample_rate = frame.sample_rate
                stats.channels = len(frame.layout.channels)
                squares, count, peak = _rms_of(frame)
                stats.sum_squares += squares
                stats.values += count
                stats.peak = max(stats.peak, peak)
                self._first_audio.set()
        except MediaStreamError:
            pass
        except Exception as error:  # noqa: BLE001
            self.errors.append(f"audio: {error!r}")

    # ---- waiting and measuring -------------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState if self.pc else "new"

    async def wait_for_media(self, timeout: float = 10.0) -> None:
        """Until the first video frame is decoded (and the first audio frame, if audio was asked for)."""
        waits = []
        if self.want_video:
            waits.append(self._first_video.wait())
        if self.want_audio:
            waits.append(self._first_audio.wait())
        media = asyncio.ensure_future(asyncio.gather(*waits))
        failed = asyncio.ensure_future(self._failed.wait())
        done, _ = await asyncio.wait({media, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in (media, failed):
            if task not in done:
                task.cancel()
        await asyncio.gather(media, failed, return_exceptions=True)
        if media not in done:
            raise WhepError(
                f"no media within {timeout:.0f} s: connection {self.connection_state}, "
                f"{self.video.frames} video / {self.audio.frames} audio frames decoded"
                + (f", errors: {self.errors}" if self.errors else ""))

    async def measure(self, seconds: float) -> Measurement:
        """Count what arrives over `seconds`, from now."""
        video_before, audio_before = self.video.frames, self.audio.frames
        samples_before = self.audio.samples
        rtp_before = len(self.audio.rtp)
        squares_before, values_before = self.audio.sum_squares, self.audio.values
        self.video.sizes = []
        self.audio.peak = 0.0
        start = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - start
        frames = self.video.frames - video_before
        values = self.audio.values - values_before
        rms = math.sqrt((self.audio.sum_squares - squares_before) / values) if values else 0.0
        return Measurement(
            seconds=round(elapsed, 3), video_frames=frames, fps=round(frames / elapsed, 2),
            width=self.video.width, height=self.video.height, sizes=list(self.video.sizes),
            audio_frames=self.audio.frames - audio_before, audio_samples=self.audio.samples - samples_before,
            audio_sample_rate=self.audio.sample_rate, audio_channels=self.audio.channels,
            audio_rms=round(rms, 5), audio_peak=round(self.audio.peak, 5),
            connection_state=self.connection_state,
            audio_rtp=rtp_continuity(self.audio.rtp[rtp_before:]))

    def selected_pair(self) -> Optional[dict]:
        """The ICE pair aioice nominated for media (component 1, shared by every section under
        BUNDLE): each end's candidate type and address, and for a relayed local candidate how it
        reaches its TURN server ("udp", "tcp" or "tls", read from the live connection). aiortc's
        getStats has no candidate-pair report, so this reads aioice's Connection."""
        transceivers = self.pc.getTransceivers() if self.pc else []
        if not transceivers:
            return None
        connection = transceivers[0].receiver.transport.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return None
        local, remote = pair.local_candidate, pair.remote_candidate
        selected = {"local": local.type, "localAddress": f"{local.host}:{local.port}",
                    "remote": remote.type, "remoteAddress": f"{remote.host}:{remote.port}", "relayProtocol": None}
        if local.type == "relay":
            inner = getattr(pair.protocol.transport, "_TurnTransport__inner_protocol", None)
            if isinstance(inner, aioice.turn.TurnClientTcpProtocol):
                selected["relayProtocol"] = "tls" if inner.transport.get_extra_info("ssl_object") is not None else "tcp"
            elif isinstance(inner, aioice.turn.TurnClientUdpProtocol):
                selected["relayProtocol"] = "udp"
        return selected

    def negotiated_codecs(self) -> dict:
        """Codec names per media kind from the answer's rtpmap lines (the first listed payload type)."""
        codecs: dict[str, str] = {}
        kind, first_pt, rtpmaps = None, None, {}
        for line in self.answer_sdp.splitlines() + ["m=end 0 x 0"]:
            if line.startswith("m="):
                if kind and first_pt in rtpmaps:
                    codecs[kind] = rtpmaps[first_pt]
                fields = line[2:].split()
                kind = fields[0]
                first_pt = fields[3] if len(fields) > 3 else None
                rtpmaps = {}
            elif line.startswith("a=rtpmap:"):
                pt, _, encoding = line[len("a=rtpmap:"):].partition(" ")
                rtpmaps[pt] = encoding.strip()
        return codecs

    # ---- teardown --------------------------------------------------------------------------------

    async def delete(self) -> Optional[int]:
        """DELETE the WHEP session (once) and return the status."""
        if self.session_url and self.delete_status is None:
            status, _, _ = await asyncio.to_thread(http_exchange, "DELETE", self.session_url, None, self.extra_headers,
                                                   self.http_timeout)
            self.delete_status = status
        return self.delete_status

    async def close(self, delete: bool = True) -> None:
        try:
            if delete:
                await self.delete()
        finally:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.pc:
                await self.pc.close()

    async def __aenter__(self) -> "WhepClient":
        try:
            return await self.connect()
        except BaseException:
            await self.close(delete=self.session_url is not None)
            raise

    async def __aexit__(self, *exc) -> None:
        await self.close()


def tone_track(frequency: float = 600.0, amplitude: float = 0.3):
    """An aiortc audio track: a sine at 48 kHz in 20 ms frames, paced in real time (talkback)."""
    import fractions

    import numpy
    from av import AudioFrame
    from aiortc.mediastreams import AudioStreamTrack

    class ToneTrack(AudioStreamTrack):
        def __init__(self):
            super().__init__()
            self.index = 0
            self.start = None

        async def recv(self):
            if self.start is None:
                self.start = time.monotonic()
            await asyncio.sleep(max(0.0, self.start + self.index * 0.02 - time.monotonic()))
            n = numpy.arange(self.index * 960, (self.index + 1) * 960)
            samples = (numpy.sin(2 * math.pi * frequency * n / 48_000) * amplitude * 32767).astype("<i2")
            frame = AudioFrame(format="s16", layout="mono", samples=960)
            frame.planes[0].update(samples.tobytes())
            frame.pts = self.index * 960
            frame.sample_rate = 48_000
            frame.time_base = fractions.Fraction(1, 48_000)
            self.index += 1
            return frame

    return ToneTrack()


@dataclass
class TurnServer:
    """One TURN server for aiortc: `turn:HOST:PORT?transport=udp|tcp` or `turns:HOST:PORT?transport=tcp`
    (TLS; aioice checks the server's certificate against OpenSSL's default trust store, so a test CA
    is trusted through SSL_CERT_FILE: see `trust_ca`)."""
    url: str
    username: str
    credential: str


def trust_ca(path: str) -> None:
    """Makes `path` (PEM) the CA file of every TLS connection this process verifies from now on.
    aioice opens `turns:` with `ssl=True`, so asyncio builds ssl.create_default_context(), which
    loads OpenSSL's default verify paths; OpenSSL reads SSL_CERT_FILE when that happens (not at
    start-up), so setting it here is enough."""
    if not os.path.isfile(path):
        raise WhepError(f"no CA file at {path}")
    os.environ["SSL_CERT_FILE"] = path


async def receive(url: str, seconds: float = 5.0, connect_timeout: float = 10.0, video: bool = True,
                  audio: bool = True, delete: bool = True, talk: bool = False, stun_urls: tuple[str, ...] = (),
                  loopback_candidates: bool = True, turn: Optional[TurnServer] = None, relay_only: bool = False) -> dict:
    """Connect, wait for media, measure for `seconds`, DELETE; return a JSON-ready summary. `talk`:
    send a 600 Hz tone on a sendrecv audio transceiver and claim the talk floor (talkback, issue 17).
    The summary's `selected_pair` is aioice's nominated pair at the end of the measurement, and
    `offer_candidates` the candidates aiortc offered (none: its gathering failed, e.g. a TURN
    allocation that did not succeed)."""
    client = WhepClient(url, video=video, audio=audio, talk_track=tone_track() if talk else None, stun_urls=stun_urls,
                        loopback_candidates=loopback_candidates, turn=turn, relay_only=relay_only)
    summary: dict = {"endpoint": client.endpoint, "ok": False}
    try:
        await client.connect()
        summary["session_url"] = client.session_url
        summary["offer_candidates"] = [line[2:] for line in client.offer_sdp.splitlines() if line.startswith("a=candidate:")]
        summary["codecs"] = client.negotiated_codecs()
        if talk:
            status, _, body = await asyncio.to_thread(http_exchange, "POST", client.session_url + "/talk")
            summary["talk"] = {"status": status, "answer": body.decode(errors="replace")[:200]}
            if status != 200:
                raise WhepError(f"POST {client.session_url}/talk answered {status}: {body[:200]!r}")
        await client.wait_for_media(timeout=connect_timeout)
        summary["time_to_first_frame_s"] = round((client.video.first_frame_at or client.started_at)
                                                 - client.started_at, 3)
        summary["measurement"] = asdict(await client.measure(seconds))
        summary["selected_pair"] = client.selected_pair()
        summary["ok"] = True
    except WhepError as error:
        summary["error"] = str(error)
    finally:
        try:
            await client.close(delete=delete)
        except OSError as error:
            summary.setdefault("error", f"DELETE failed: {error}")
        summary["post_status"] = client.post_status
        summary["delete_status"] = client.delete_status
        summary["errors"] = client.errors
    return summary


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Receive an rtcam WHEP stream with aiortc and summarise it.")
    parser.add_argument("url", help="WHEP endpoint (http://127.0.0.1:8080/whep) or the daemon's base URL")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to measure (default 5)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, help="wait this long for media")
    parser.add_argument("--no-audio", action="store_true", help="offer video only")
    parser.add_argument("--no-video", action="store_true", help="offer audio only")
    parser.add_argument("--keep-session", action="store_true", help="do not DELETE the session at the end")
    parser.add_argument("--stun", action="append", default=[], metavar="stun:HOST:PORT",
                        help="a STUN server for aiortc's server-reflexive candidate (repeatable)")
    parser.add_argument("--turn", metavar="URL",
                        help="a TURN server: turn:HOST:PORT?transport=udp|tcp or turns:HOST:PORT?transport=tcp "
                             "(with --turn-user and --turn-password)")
    parser.add_argument("--turn-user", default="", help="the TURN server's long-term username")
    parser.add_argument("--turn-password", default="", help="the TURN server's long-term password")
    parser.add_argument("--turn-ca", metavar="PEM",
                        help="trust this CA (only it) for a turns: server's certificate")
    parser.add_argument("--relay-only", action="store_true",
                        help='iceTransportPolicy "relay": offer only the TURN relayed candidate')
    parser.add_argument("--no-loopback", action="store_true",
                        help="no 127.0.0.1 host candidate (a namespace with real interfaces: its STUN query would only time out)")
    parser.add_argument("--talk", action="store_true",
                        help="talk through the camera: send a 600 Hz tone (sendrecv audio) and claim the talk floor")
    args = parser.parse_args(argv)
    if args.turn_ca:
        trust_ca(args.turn_ca)
    turn = TurnServer(args.turn, args.turn_user, args.turn_password) if args.turn else None
    summary = asyncio.run(receive(args.url, seconds=args.seconds, connect_timeout=args.connect_timeout,
                                  video=not args.no_video, audio=not args.no_audio,
                                  delete=not args.keep_session, talk=args.talk, stun_urls=tuple(args.stun),
                                  loopback_candidates=not args.no_loopback, turn=turn, relay_only=args.relay_only))
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
