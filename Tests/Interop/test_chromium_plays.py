"""Headless Chromium opens rtcam's viewer page and plays the WHEP stream (H.264 + Opus)."""

from __future__ import annotations

import time

from conftest import attach

EXPECTED_WIDTH, EXPECTED_HEIGHT = 640, 480
MIN_FPS = 25.0
SAMPLE_SECONDS = 4.0

SNAPSHOT = "JSON.parse(JSON.stringify(window.rtcam || null))"


def test_chromium_plays_viewer_page(rtcam, chromium, tmp_path, request):
    page = chromium.new_page()
    attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
    page.navigate(rtcam.url("/"))

    assert page.evaluate("typeof window.rtcam") == "object", "the viewer page defines no window.rtcam"
    page.wait_for("window.rtcam.framesDecoded > 0", timeout=15)
    page.wait_for("window.rtcam.framesDecoded > 0 && window.rtcam.state === 'connected'", timeout=5)

    first = page.evaluate(SNAPSHOT)
    time.sleep(SAMPLE_SECONDS)
    last = page.evaluate(SNAPSHOT)

    screenshot = page.screenshot(str(tmp_path / "chromium-viewer.png"))
    print(f"screenshot: {screenshot}")
    print(f"first sample: {first}\nlast sample:  {last}")

    elapsed = (last["updatedAt"] - first["updatedAt"]) / 1000.0
    assert elapsed > SAMPLE_SECONDS - 1, f"window.rtcam stopped updating (samples {elapsed:.2f} s apart)"
    fps = (last["framesDecoded"] - first["framesDecoded"]) / elapsed
    assert fps >= MIN_FPS, f"decoded {fps:.1f} fps over {elapsed:.1f} s (page reports {last['framesPerSecond']})"
    assert (last["width"], last["height"]) == (EXPECTED_WIDTH, EXPECTED_HEIGHT), \
        f"decoding {last['width']}x{last['height']}, expected {EXPECTED_WIDTH}x{EXPECTED_HEIGHT}"
    assert last["audioSamplesReceived"] > first["audioSamplesReceived"], "audio samples are not arriving"
    assert last["audioEnergy"] > 0, f"the test tone is silent (totalAudioEnergy {last['audioEnergy']})"
    assert last["audioEnergy"] > first["audioEnergy"], \
        f"audio energy stopped growing ({first['audioEnergy']} → {last['audioEnergy']}): silence"
    assert last["paused"] is False, "the <video> element is paused"
    assert last["state"] == "connected", f"connection state {last['state']}"
    assert last["bitrateKbps"] > 50, f"bitrate {last['bitrateKbps']} kb/s is implausibly low"
    assert last["sessionURL"] and "/whep/" in last["sessionURL"], f"no WHEP session URL: {last['sessionURL']}"
    assert last["reconnects"] == 0, f"the page reconnected {last['reconnects']} times ({last['lastError']})"
    assert page.exceptions == [], f"uncaught exceptions in the page: {page.exceptions}"


def test_viewer_page_served(rtcam):
    status, headers, body = rtcam.request("GET", "/")
    assert status == 200, f"GET / answered {status}"
    assert headers.get("Content-Type", "").startswith("text/html"), headers.get("Content-Type")
    text = body.decode()
    for needle in ("<video", "/whep", "window.rtcam", "/settings"):
        assert needle in text, f"viewer page lacks {needle!r}"
