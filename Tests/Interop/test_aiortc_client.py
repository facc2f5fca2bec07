"""aiortc (a second, independent WebRTC implementation) receives and decodes rtcam's stream."""

from __future__ import annotations

import asyncio

from conftest import attach, wait_for_viewers
from rtcam_process import viewer_count
from whep_client import WhepClient

EXPECTED_SIZE = (640, 480)
MIN_FPS = 25.0
MIN_AUDIO_RMS = 0.001   # about -60 dBFS: anything quieter is silence, not a test tone


def test_aiortc_decodes_video_and_audio_then_delete_frees_the_session(rtcam, request):
    async def scenario():
        client = WhepClient(rtcam.url("/whep"))
        attach(request, "aiortc client", lambda: f"answer:\n{client.answer_sdp}\nerrors: {client.errors}")
        async with client:
            await client.wait_for_media(timeout=10)
            measurement = await client.measure(seconds=4)
            viewers_while_playing = viewer_count(await asyncio.to_thread(rtcam.status))
        return client, measurement, viewers_while_playing

    client, measurement, viewers_while_playing = asyncio.run(asyncio.wait_for(scenario(), timeout=40))
    print(f"codecs: {client.negotiated_codecs()}\nmeasurement: {measurement}")

    assert client.post_status == 201
    assert client.negotiated_codecs().get("video", "").upper().startswith("H264/90000"), client.negotiated_codecs()
    assert client.negotiated_codecs().get("audio", "").lower().startswith("opus/48000"), client.negotiated_codecs()
    assert measurement.fps >= MIN_FPS, f"decoded {measurement.fps} fps over {measurement.seconds} s"
    assert (measurement.width, measurement.height) == EXPECTED_SIZE, \
        f"decoded {measurement.width}x{measurement.height}; sizes seen {measurement.sizes}"
    assert measurement.sizes == [EXPECTED_SIZE], f"frame size changed while playing: {measurement.sizes}"
    assert measurement.audio_sample_rate == 48000, measurement.audio_sample_rate
    # 4 s of 48 kHz audio: allow for jitter-buffer start-up, but most of it must have arrived.
    assert measurement.audio_samples >= 48000 * 3, f"only {measurement.audio_samples} audio samples in 4 s"
    assert measurement.audio_rms >= MIN_AUDIO_RMS, f"audio is silent (RMS {measurement.audio_rms})"
    assert client.errors == [], client.errors
    assert viewers_while_playing == 1, f"/api/status counted {viewers_while_playing} viewers while one played"

    assert client.delete_status in (200, 204), f"DELETE {client.session_url} answered {client.delete_status}"
    remaining = wait_for_viewers(rtcam, 0, timeout=5)
    assert remaining == 0, f"/api/status still counts {remaining} viewers after DELETE"

    # The session is gone: a second DELETE of the same URL is an unknown session.
    status, _, body = rtcam.request("DELETE", client.session_url.split(rtcam.base_url, 1)[-1])
    assert status == 404, f"second DELETE answered {status}: {body[:200]!r}"
