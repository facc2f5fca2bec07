"""Data channel benchmark (issue 18): message round-trip time and throughput of an ordered,
reliable channel, from aiortc's client (Python, on this machine) to
  - rtcam: any channel other than "rtcam" echoes (rtcam's own sans-IO SCTP over its DTLS), and
  - aiortc: a second aiortc peer connection in the same process echoing (aiortc's SCTP both ends).
The client is the same in both; the aiortc echo side also costs Python time in the client's
process, which is part of what is compared (an aiortc-based server would pay it too)."""

from __future__ import annotations

import asyncio
import statistics
import time

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from whep_client import allow_loopback_host_candidates, http_exchange


async def _echo_channel_to_rtcam(url: str):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))   # data channel only: no media to decode
    channel = pc.createDataChannel("bench")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await pc.setLocalDescription(await pc.createOffer())
    status, _, body = await asyncio.to_thread(http_exchange, "POST", url, pc.localDescription.sdp.encode(),
                                              {"Content-Type": "application/sdp"})
    if status != 201:
        raise RuntimeError(f"POST /whep answered {status}: {body[:200]!r}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body.decode(), type="answer"))
    await asyncio.wait_for(opened.wait(), 15)
    return [pc], channel


async def _echo_channel_to_aiortc():
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = client.createDataChannel("bench")

    @server.on("datachannel")
    def on_channel(echo):
        echo.on("message", lambda message: echo.send(message))

    opened = asyncio.Event()
    channel.on("open", opened.set)
    await client.setLocalDescription(await client.createOffer())
    await server.setRemoteDescription(client.localDescription)
    await server.setLocalDescription(await server.createAnswer())
    await client.setRemoteDescription(server.localDescription)
    await asyncio.wait_for(opened.wait(), 15)
    return [client, server], channel


async def _measure(channel, pings: int, total_bytes: int, message_bytes: int) -> dict:
    inbox: asyncio.Queue = asyncio.Queue()
    channel.on("message", inbox.put_nowait)
    # Round trips: one 32-byte message at a time.
    rtts = []
    for index in range(pings):
        started = time.perf_counter()
        channel.send(b"p" * 31 + bytes([index & 255]))
        await asyncio.wait_for(inbox.get(), 10)
        rtts.append((time.perf_counter() - started) * 1000)
    # Throughput: `total_bytes` in `message_bytes` messages, echoed, with at most 1 MiB sent and not
    # yet back (rtcam stops echoing while 2 MiB wait in its queue: a window keeps both sides below).
    progress = asyncio.Event()
    count = total_bytes // message_bytes
    payload = bytes(range(256)) * (message_bytes // 256)
    received = 0
    done = asyncio.Event()

    def on_bulk(message):
        nonlocal received
        received += len(message)
        progress.set()
        if received >= count * message_bytes:
            done.set()
    channel.remove_all_listeners("message")
    channel.on("message", on_bulk)
    started = time.perf_counter()
    for index in range(count):
        while index * message_bytes - received > 1024 * 1024:
            progress.clear()
            await asyncio.wait_for(progress.wait(), 30)
        channel.send(payload)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    return {"rtt_ms_median": statistics.median(rtts), "rtt_ms_p95": sorted(rtts)[int(len(rtts) * 0.95) - 1],
            "pings": pings, "bytes_each_way": count * message_bytes, "message_bytes": message_bytes,
            "seconds": elapsed, "mbit_per_s_each_way": count * message_bytes * 8 / 1e6 / elapsed}


def run(peer: str, url: str | None, pings: int = 200, total_bytes: int = 16 * 1024 * 1024,
        message_bytes: int = 64 * 1024) -> dict:
    allow_loopback_host_candidates()

    async def scenario():
        connections, channel = await (_echo_channel_to_rtcam(url) if peer == "rtcam" else _echo_channel_to_aiortc())
        try:
            return await _measure(channel, pings, total_bytes, message_bytes)
        finally:
            for connection in connections:
                await connection.close()
    return asyncio.run(asyncio.wait_for(scenario(), 600))
