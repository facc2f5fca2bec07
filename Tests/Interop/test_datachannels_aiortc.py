"""Data channels (issue 18) with aiortc's own SCTP stack through WHEP: rtcam answers the offer's
m=application, SCTP runs over the session's DTLS, channels other than "rtcam" echo (1 B to 256 KiB,
ordered and unordered, 2,000 messages each way in order), a channel closes by stream reset, and the
"rtcam" channel pushes the status and answers commands (setBitrate only for the owner)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from conftest import attach, wait_for_viewers
from whep_client import allow_loopback_host_candidates, http_exchange

SIZES = [1, 2, 1000, 1100, 1200, 4096, 16384, 65535, 65536, 100_000, 262_144]


class ChannelPeer:
    """An aiortc peer connection that offers recvonly media and the data channels named."""

    def __init__(self, url: str, labels: dict, headers: dict | None = None):
        allow_loopback_host_candidates()
        self.url = url
        self.labels = labels
        self.headers = headers or {}
        self.pc: RTCPeerConnection | None = None
        self.channels = {}
        self.received: dict[str, list] = {label: [] for label in labels}
        self.opened: dict[str, asyncio.Event] = {}
        self.closed: dict[str, asyncio.Event] = {}
        self.arrived = asyncio.Event()
        self.answer = ""
        self.location = ""

    async def connect(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        for label, options in self.labels.items():
            channel = self.pc.createDataChannel(label, **options)
            self.channels[label] = channel
            self.opened[label] = asyncio.Event()
            self.closed[label] = asyncio.Event()
            channel.on("open", self.opened[label].set)
            channel.on("close", self.closed[label].set)

            def on_message(message, label=label):
                self.received[label].append(message)
                self.arrived.set()
            channel.on("message", on_message)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, headers, body = await asyncio.to_thread(
            http_exchange, "POST", self.url, self.pc.localDescription.sdp.encode(),
            {"Content-Type": "application/sdp", **self.headers})
        assert status == 201, f"POST /whep answered {status}: {body[:300]!r}"
        self.answer = body.decode()
        self.location = headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.answer, type="answer"))
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in self.opened.values())), 15)

    async def connect_with(self, make_channels) -> None:
        """Offers the channels `make_channels(pc)` creates (kept in `created`, in order); waits for
        them to open or close."""
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.created = make_channels(self.pc)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, headers, body = await asyncio.to_thread(
            http_exchange, "POST", self.url, self.pc.localDescription.sdp.encode(), {"Content-Type": "application/sdp"})
        assert status == 201, f"POST /whep answered {status}: {body[:300]!r}"
        self.answer = body.decode()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.answer, type="answer"))

    async def wait_for(self, predicate, timeout: float, what: str):
        async def loop():
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()
        try:
            await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None

    async def command(self, message: dict, timeout: float = 5.0) -> dict:
        """Sends a command on "rtcam" and returns the answer with the same id (statuses are skipped)."""
        self.channels["rtcam"].send(json.dumps(message))

        def answer():
            for text in self.received["rtcam"]:
                reply = json.loads(text)
                if reply.get("id") == message.get("id") and reply.get("type") != "status":
                    return reply
            return None
        await self.wait_for(lambda: answer() is not None, timeout, f"the answer to {message}")
        return answer()

    def statuses(self) -> list:
        return [json.loads(text) for text in self.received["rtcam"] if json.loads(text).get("type") == "status"]

    async def close(self) -> None:
        if self.pc:
            await self.pc.close()


def test_aiortc_channels_echo_status_and_commands(rtcam, request):
    async def scenario():
        peer = ChannelPeer(rtcam.url("/whep"), {"rtcam": {}, "echo": {}, "loose": {"ordered": False}, "bulk": {},
                                                "to-close": {}})
        attach(request, "answer", lambda: peer.answer)
        try:
            await peer.connect()
            sdp = peer.answer
            assert "m=application" in sdp and "a=sctp-port:5000" in sdp and "a=max-message-size:262144" in sdp, sdp

            # The status arrives at once and then once a second; the encoder's rate is measured over
            # its first second, so wait for a status with frames (this machine may be loaded).
            await peer.wait_for(lambda: len(peer.statuses()) >= 3, 5, "three status messages")
            await peer.wait_for(lambda: any(s["fps"] > 0 for s in peer.statuses()), 10, "a status with frames")
            status = [s for s in peer.statuses() if s["fps"] > 0][-1]
            assert status["viewers"] == 1 and status["talk"] == "idle" and status["owner"] is False, status
            assert status["fps"] > 5 and status["bitrateKbps"] > 50, status
            assert status["targetBitrateKbps"] == rtcam.bitrate_kbps, status

            # Commands.
            reply = await peer.command({"type": "keyframe", "id": 1})
            assert reply == {"type": "keyframe", "id": 1, "ok": True}, reply
            reply = await peer.command({"type": "listControls", "id": 2})
            assert reply["type"] == "controls" and reply["controls"] == [], reply   # the test pattern has none
            reply = await peer.command({"type": "setBitrate", "id": 3, "kbps": 700})
            assert reply["type"] == "error" and "owner" in reply["error"], reply
            reply = await peer.command({"type": "setControl", "id": "four", "control": 9963776, "value": 1})
            assert reply["type"] == "error" and reply["id"] == "four", reply
            reply = await peer.command({"type": "fly", "id": 5})
            assert reply["type"] == "error" and "fly" in reply["error"], reply
            # A burst of control requests: each is answered, with the controls or "busy" (at most 4 at a
            # time are being answered on the daemon's worker thread).
            for index in range(10):
                peer.channels["rtcam"].send(json.dumps({"type": "listControls", "id": 100 + index}))
            answered = lambda: {json.loads(t).get("id"): json.loads(t) for t in peer.received["rtcam"]}
            await peer.wait_for(lambda: all(100 + i in answered() for i in range(10)), 10, "ten answers")
            burst = [answered()[100 + i] for i in range(10)]
            assert all(m["type"] == "controls" or "busy" in m.get("error", "") for m in burst), burst
            assert burst[0]["type"] == "controls", burst[0]
            peer.channels["rtcam"].send("{not json")
            await peer.wait_for(lambda: any(json.loads(t)["type"] == "error" and "id" not in json.loads(t)
                                            for t in peer.received["rtcam"]), 5, "the error for bad JSON")

            # Echo: every size, ordered and unordered, binary and text.
            generator = random.Random(18)
            messages = [bytes(generator.getrandbits(8) for _ in range(size)) if size < 5000 else os.urandom(size)
                        for size in SIZES]
            for message in messages + ["hé", ""]:
                peer.channels["echo"].send(message)
            for message in messages:
                peer.channels["loose"].send(message)
            await peer.wait_for(lambda: len(peer.received["echo"]) == len(messages) + 2
                                and len(peer.received["loose"]) == len(messages), 30, "the echoes")
            assert peer.received["echo"] == messages + ["hé", ""], [len(m) for m in peer.received["echo"]]
            assert sorted(peer.received["loose"]) == sorted(messages)

            # 2,000 messages each way (aiortc → rtcam and the echoes back), none lost or reordered.
            for index in range(2000):
                peer.channels["bulk"].send(f"m{index}")
            await peer.wait_for(lambda: len(peer.received["bulk"]) == 2000, 30, "2,000 echoes")
            assert peer.received["bulk"] == [f"m{index}" for index in range(2000)]

            # Close by stream reset: aiortc's channel closes once rtcam reset its side too.
            peer.channels["to-close"].close()
            await asyncio.wait_for(peer.closed["to-close"].wait(), 5)
            peer.channels["echo"].send("still here")
            await peer.wait_for(lambda: peer.received["echo"][-1:] == ["still here"], 5, "the echo after a close")
        finally:
            await peer.close()
        return peer

    asyncio.run(asyncio.wait_for(scenario(), timeout=90))
    assert wait_for_viewers(rtcam, 0, timeout=10) == 0
    log = rtcam.log_text()
    assert "data channel" in log and "closed" in log


def test_aiortc_owner_sets_the_bitrate(rtcam, request):
    cookie = rtcam.log_in()   # viewing stays open; this viewer comes with the owner's session

    async def scenario():
        peer = ChannelPeer(rtcam.url("/whep"), {"rtcam": {}}, headers={"Cookie": cookie})
        attach(request, "answer", lambda: peer.answer)
        try:
            await peer.connect()
            await peer.wait_for(lambda: len(peer.statuses()) >= 1, 5, "a status")
            assert peer.statuses()[0]["owner"] is True
            reply = await peer.command({"type": "setBitrate", "id": 1, "kbps": 700})
            assert reply == {"type": "bitrateSet", "id": 1, "kbps": 700}, reply
            reply = await peer.command({"type": "setBitrate", "id": 2, "kbps": 10})
            assert reply["type"] == "error", reply
            count = len(peer.statuses())
            await peer.wait_for(lambda: len(peer.statuses()) > count, 5, "the next status")
            assert peer.statuses()[-1]["targetBitrateKbps"] == 700, peer.statuses()[-1]
        finally:
            await peer.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=40))


def test_offer_without_data_channel_is_answered_as_before(rtcam):
    # aiortc without channels offers no m=application, and the answer has none.
    async def scenario():
        peer = ChannelPeer(rtcam.url("/whep"), {})
        try:
            await peer.connect()
            return peer.answer
        finally:
            await peer.close()
    answer = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert "m=application" not in answer and "sctp" not in answer


def test_aiortc_too_many_channels_are_closed_at_once(rtcam, request):
    # 16 channels at most, 2 of them "rtcam": the 3rd "rtcam" and the 17th+ channel close at once.
    async def scenario():
        peer = ChannelPeer(rtcam.url("/whep"), {})
        await peer.connect_with(lambda pc: [pc.createDataChannel("rtcam") for _ in range(3)]
                                + [pc.createDataChannel(f"x{index}") for index in range(16)])
        try:
            channels = peer.created
            # Until every channel opened and the refused ones closed again (15 s: a loaded machine).
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                states = [channel.readyState for channel in channels]
                if "connecting" not in states and states.count("closed") >= 3:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)   # nothing more closes afterwards
            states = [channel.readyState for channel in channels]
            # One more message on an open echo channel still echoes.
            echoed = asyncio.Event()
            open_echo = next(c for c in channels[3:] if c.readyState == "open")
            open_echo.on("message", lambda message: echoed.set())
            open_echo.send("ping")
            await asyncio.wait_for(echoed.wait(), 5)
            return states
        finally:
            await peer.close()

    states = asyncio.run(asyncio.wait_for(scenario(), timeout=40))
    assert states[:2] == ["open", "open"] and states[2] == "closed", states
    assert states.count("open") == 16 and states.count("closed") == 3, states
    assert "too many channels" in rtcam.log_text()
