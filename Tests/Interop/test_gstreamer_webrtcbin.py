"""GStreamer webrtcbin (Debian 12's 1.22, the element behind most GStreamer WHEP players and NVR
integrations) watches rtcam: it must accept the answer, decode H.264 at the stream's size and rate,
and Opus at 48 kHz. Issue 15: with bundle-policy max-bundle it offers the audio section as
`m=audio 0` + `a=bundle-only`, and its Opus rtpmap without a channel count (`OPUS/48000`); rtcam
answered that section as rejected and webrtcbin refused the whole answer.

The client runs in Debian's python3 (python3-gi), not the interop venv: Tests/Interop/gst_whep_client.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import attach, wait_for_viewers

CLIENT = Path(__file__).resolve().parent / "gst_whep_client.py"
SYSTEM_PYTHON = "/usr/bin/python3"
EXPECTED_SIZE = [640, 480]
MIN_FPS = 25.0


def run_client(url: str, bundle_policy: str, request) -> dict:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstWebRTC', '1.0'); "
                            "from gi.repository import Gst; Gst.init(None); "
                            "assert Gst.ElementFactory.find('webrtcbin') and Gst.ElementFactory.find('nicesrc')"],
                           capture_output=True, text=True) if Path(SYSTEM_PYTHON).exists() else None
    if probe is None or probe.returncode != 0:
        pytest.fail("GStreamer is not installed (make test-deps installs gstreamer1.0-plugins-bad, "
                    "gstreamer1.0-nice, python3-gi)", pytrace=False)
    completed = subprocess.run(
        [SYSTEM_PYTHON, str(CLIENT), url, "--seconds", "4", "--bundle-policy", bundle_policy],
        capture_output=True, text=True, timeout=60)
    attach(request, f"webrtcbin client ({bundle_policy}) stderr", lambda: completed.stderr[-4000:])
    try:
        summary = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"the webrtcbin client printed no JSON (exit {completed.returncode}):\n"
                    f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}", pytrace=False)
    attach(request, f"webrtcbin offer and answer ({bundle_policy})",
           lambda: f"offer:\n{summary.get('offer')}\nanswer:\n{summary.get('answer')}")
    return summary


def check_video(summary: dict) -> None:
    assert summary["post_status"] == 201, summary.get("error")
    assert "error" not in summary, summary["error"]
    assert summary["errors"] == [], summary["errors"]
    assert summary["codecs"].get("video", "").upper().startswith("H264/90000"), summary["codecs"]
    assert summary["sizes"] == [EXPECTED_SIZE], f"decoded sizes {summary['sizes']}"
    assert summary["fps"] >= MIN_FPS, f"decoded {summary['fps']} fps over {summary['seconds']} s"
    assert summary["delete_status"] in (200, 204), summary["delete_status"]


def test_webrtcbin_max_bundle_decodes_video_and_audio(rtcam, request):
    summary = run_client(rtcam.url("/whep"), "max-bundle", request)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("offer", "answer")}))
    assert "a=bundle-only" in summary["offer"], "webrtcbin no longer offers bundle-only: the case is gone"
    check_video(summary)
    assert summary["codecs"].get("audio", "").lower().startswith("opus/48000"), summary["codecs"]
    assert summary["audio_rates"] == [48000], f"decoded audio at {summary['audio_rates']} Hz"
    # The tone is 48,000 samples a second, measured from the first decoded video frame on.
    assert summary["audio_samples_per_second"] >= 48000 * 0.9, \
        f"only {summary['audio_samples_per_second']} audio samples/s"
    assert wait_for_viewers(rtcam, 0, timeout=5) == 0


def test_webrtcbin_default_policy_gets_video_and_audio_rejected(rtcam, request):
    """Without BUNDLE each section would need a transport of its own: rtcam serves the video section
    and rejects the audio one (port 0, with the lines webrtcbin needs to accept the answer)."""
    summary = run_client(rtcam.url("/whep"), "none", request)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("offer", "answer")}))
    assert "a=group:BUNDLE" not in summary["offer"]
    check_video(summary)
    assert "audio" not in summary["codecs"], summary["codecs"]
    assert "m=audio 0 " in summary["answer"]
    assert wait_for_viewers(rtcam, 0, timeout=5) == 0
