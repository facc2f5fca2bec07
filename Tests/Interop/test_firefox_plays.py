"""Headless Firefox ESR (driven over Marionette) opens rtcam's viewer page and plays the stream.

Debian's Firefox offers H.264 only with the prefs in marionette.FIREFOX_PREFS (shared/DESIGN.md)."""

from __future__ import annotations

import time

EXPECTED_WIDTH, EXPECTED_HEIGHT = 640, 480
MIN_FPS = 25.0
SAMPLE_SECONDS = 4.0

SNAPSHOT = "return JSON.parse(JSON.stringify(window.rtcam || null));"


def test_firefox_plays_viewer_page(rtcam, firefox, tmp_path):
    firefox.navigate(rtcam.url("/"))
    assert firefox.execute("return typeof window.rtcam;") == "object", "the viewer page defines no window.rtcam"
    firefox.wait_for("window.rtcam.framesDecoded > 0", timeout=15)
    firefox.wait_for("window.rtcam.framesDecoded > 0 && window.rtcam.state === 'connected'", timeout=5)

    first = firefox.execute(SNAPSHOT)
    time.sleep(SAMPLE_SECONDS)
    last = firefox.execute(SNAPSHOT)

    screenshot = firefox.screenshot(str(tmp_path / "firefox-viewer.png"))
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
    assert (last["videoCodec"] or "").lower() == "video/h264", f"video codec {last['videoCodec']}, expected H.264"
    assert (last["audioCodec"] or "").lower() == "audio/opus", f"audio codec {last['audioCodec']}, expected Opus"
    assert last["paused"] is False, "the <video> element is paused"
    assert last["state"] == "connected", f"connection state {last['state']}"
    assert last["reconnects"] == 0, f"the page reconnected {last['reconnects']} times ({last['lastError']})"
