"""--source exec:COMMAND end to end: a program's H.264 (FFmpeg here, rpicam-vid on a Pi) reaches a
WebRTC viewer (aiortc) unchanged, and a program that dies is started again while the viewer stays."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from conftest import attach
from whep_client import WhepClient

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is installed by make test-deps")


def ffmpeg_command(extra: str = "") -> str:
    return (f"exec:{FFMPEG} -hide_banner -loglevel error -re -f lavfi -i testsrc2=size={{width}}x{{height}}:rate={{fps}} {extra} "
            "-c:v libx264 -preset ultrafast -tune zerolatency -profile:v baseline -g 30 -b:v {kbps}k -f h264 -")


def test_exec_source_reaches_aiortc_and_survives_its_program_dying(rtcam_factory, request):
    # Each run of the program lasts 4 s: the viewer watches across at least one restart.
    daemon = rtcam_factory(size="320x240", extra_args=("--source", ffmpeg_command("-t 4"), "--audio", "none"))

    async def scenario():
        client = WhepClient(daemon.url("/whep"), audio=False)
        attach(request, "aiortc client", lambda: f"answer:\n{client.answer_sdp}\nerrors: {client.errors}")
        async with client:
            await client.wait_for_media(timeout=15)
            first = await client.measure(seconds=3)
            restarts_before = daemon.status()["sourceRestarts"]
            # Across the program's end and its start again (0.5 s backoff + FFmpeg's start).
            await asyncio.sleep(3)
            after = await client.measure(seconds=3)
            status = await asyncio.to_thread(daemon.status)
        return client, first, after, restarts_before, status

    client, first, after, restarts_before, status = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    print(f"first window: {first}\nafter a restart: {after}\nstatus: {status}")
    assert client.negotiated_codecs().get("video", "").upper().startswith("H264/90000"), client.negotiated_codecs()
    assert first.fps >= 25, f"decoded {first.fps} fps from the program's 30"
    assert (first.width, first.height) == (320, 240), first.sizes
    assert status["sourceRestarts"] > restarts_before or restarts_before >= 1, status
    assert after.video_frames >= 30, f"only {after.video_frames} frames in 3 s after the program was started again"
    assert status["encoder"] == "passthrough (exec)", status
    assert client.errors == [], client.errors


def test_exec_source_with_garbage_keeps_the_daemon_up(rtcam_factory):
    daemon = rtcam_factory(size="320x240", extra_args=("--source", "exec:head -c 3000000 /dev/urandom", "--audio", "none"))
    status, _, body = daemon.request("GET", "/healthz")
    assert status == 200, body
    media = daemon.status()
    assert media["framesEncoded"] == 0, media
