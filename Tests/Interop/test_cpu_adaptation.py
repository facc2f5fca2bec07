"""CPU adaptation under a real CPU quota (issue 24), the short version (about 45 s; the long one is
`bash Tests/Benchmarks/run.sh cpuadapt`).

The daemon alone in a cgroup limited to 10 % of one core (cpu_quota.py), its test pattern at
1920x1080@30; an aiortc viewer decodes the stream and reads the pattern's capture clock back from
every picture. Side by side, in the same minute of the same machine: `--degradation off` (x264 keeps
1080p and skips what it cannot encode: the issue measured 10.8 fps at 202 ms) and `--degradation
resolution` (x264 is given a smaller picture until it keeps up).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Benchmarks"))

from conftest import attach  # noqa: E402
from cpu_quota import CpuQuotaError, cgroup_cpu_base  # noqa: E402
from rtcam_process import rtcam_binary  # noqa: E402

import cpu_adaptation  # noqa: E402

PERCENT = 10


def quota_available() -> str | None:
    if os.geteuid() != 0:
        return "a cgroup CPU quota needs root"
    try:
        cgroup_cpu_base()
    except CpuQuotaError as error:
        return str(error)
    return None


@pytest.mark.timeout(150)
def test_a_smaller_picture_keeps_the_rate_and_the_latency_at_ten_percent_of_a_core(request, tmp_path):
    problem = quota_available()
    if problem:
        pytest.fail(problem, pytrace=False)
    binary = rtcam_binary()
    results = {}
    for degradation in ("off", "resolution"):
        results[degradation] = cpu_adaptation.run(binary, PERCENT, degradation, seconds=8, settle=3,
                                                  adapt_timeout=25, workdir=str(tmp_path))
        attach(request, f"--degradation {degradation}", lambda d=degradation: repr(results[d]))
    fixed, adapted = results["off"], results["resolution"]
    print(f"\n10 % of a core, 1080p30 pattern: off {fixed['fps']} fps at {fixed['width']}x{fixed['height']}, "
          f"g2g p50 {fixed['glass_to_glass_ms']['p50']} ms; resolution {adapted['fps']} fps at "
          f"{adapted['width']}x{adapted['height']}, g2g p50 {adapted['glass_to_glass_ms']['p50']} "
          f"p95 {adapted['glass_to_glass_ms']['p95']} ms")

    # Without adaptation the format never changes, and the quota shows.
    assert fixed["adaptation"]["changes"] == 0 and not fixed["adaptation"]["adapted"]
    assert (fixed["width"], fixed["height"]) == (1920, 1080)
    assert fixed["log"] == []

    # With it: a smaller size, said in /api/status and in one log line per change with its reason.
    status = adapted["adaptation"]
    assert status["adapted"] and status["configured"] == {"width": 1920, "height": 1080, "fps": 30}
    assert status["current"]["height"] < 1080 and status["current"]["fps"] == 30
    assert status["reason"]
    assert len(adapted["log"]) == status["changes"] >= 1
    assert "1920x1080@30 ->" in adapted["log"][0] and ("encode time" in adapted["log"][0] or "fell behind" in adapted["log"][0])
    # What the viewer decodes is what the encoder says it makes, and the pattern's clock survives the scaling.
    assert (adapted["width"], adapted["height"]) == (status["current"]["width"], status["current"]["height"])
    assert adapted["unreadable_frames"] <= adapted["frames"] * 0.05
    assert adapted["errors"] == [] and fixed["errors"] == []

    # What it buys, measured side by side: more frames and less latency. How many more depends on
    # the build and the machine: quiet, the debug build gave 1.7x (17.5 against 10 fps), in CI
    # rehearsals 1.44x and 1.27x (the debug build's own drawing and scaling of the 1080p pattern
    # take much of the tenth of a core); the release build meets the 25 fps (below).
    assert adapted["fps"] > fixed["fps"]
    assert adapted["glass_to_glass_ms"]["count"] > 0, "no picture of the adapted stream had a readable clock"
    if fixed["glass_to_glass_ms"]["count"] > 0:
        assert adapted["glass_to_glass_ms"]["p50"] < fixed["glass_to_glass_ms"]["p50"]
    else:
        # The full size held to its tenth of a core can lose the clock itself: in a CI rehearsal with
        # the arm64 suite beside it, 6.25 fps at 1920x1080 and not one of 50 pictures readable (not
        # yet explained; a strip half updated by a starved x264 would fail its check nibble), while
        # the adapted 480x270 read all 65. A latency that cannot be read is no lower than one that
        # can; the comparison is then how many pictures could be read.
        print(f"--degradation off: no readable clock in {fixed['frames']} pictures; resolution read "
              f"{adapted['glass_to_glass_ms']['count']} of {adapted['frames']}")
        assert fixed["unreadable_frames"] > adapted["unreadable_frames"]
    if "release" in binary:
        # The goal holds for the optimized build (the debug build's own Swift code, the
        # pattern's drawing and the scaling, costs several times more).
        assert adapted["fps"] >= 25
        assert adapted["glass_to_glass_ms"]["p95"] < 100


def test_the_settings_page_says_what_the_encoder_makes(rtcam_factory, chromium):
    """The settings page's line under the encoder choices follows /api/status → adaptation (here with
    no quota: the configured format, and how much of each frame's time encoding takes)."""
    import asyncio
    import json

    from whep_client import WhepClient

    daemon = rtcam_factory(extra_args=("--audio", "none", "--degradation", "balanced"))
    page = chromium.new_page()
    page.navigate(daemon.url("/settings"))
    page.wait_for("!document.querySelector('#choose').hidden", timeout=10)
    page.evaluate("""((code) => {
        const f = document.querySelector('#choose-form');
        f.setupCode.value = code; f.password.value = 'a good password'; f.repeat.value = 'a good password';
        f.viewing.value = 'open';
        f.requestSubmit(); })(%s)""" % json.dumps(daemon.setup_code()))
    page.wait_for("!document.querySelector('#settings').hidden", timeout=10)
    assert page.evaluate("document.querySelector('[name=degradation]').value") == "balanced"
    assert page.evaluate("document.querySelector('[name=intraRefresh]').checked") is False

    async def watch_while(check):
        async with WhepClient(daemon.url("/whep"), audio=False) as client:
            await client.wait_for_media(timeout=10)
            return await asyncio.to_thread(check)

    def page_line():
        page.wait_for("document.querySelector('#encoder-load').textContent.includes('Encoding takes')", timeout=10)
        # "Watching now" (issues 19 and 24): the viewer's ICE pair and, once its first REMB came
        # (aiortc's, about 3 s in), the link's estimate; the encoder's bitrate line.
        page.wait_for("document.querySelector('#watching').textContent.includes('link ≈')", timeout=15)
        watching.append(page.evaluate("document.querySelector('#watching').textContent"))
        watching.append(page.evaluate("document.querySelector('#bitrate-line').textContent"))
        return page.evaluate("document.querySelector('#encoder-load').textContent")

    watching: list[str] = []

    assert json.loads((daemon.state_dir / "config.json").read_text())["viewingRequiresPassword"] is False
    line = asyncio.run(asyncio.wait_for(watch_while(page_line), timeout=30))
    assert line.startswith("Encoding 640×480 at 30 fps as configured"), line
    viewer_line, bitrate_line = watching
    assert "path host → host" in viewer_line and "connected" in viewer_line, viewer_line
    assert bitrate_line.startswith("Video at"), bitrate_line
    assert not [e for e in page.errors() if "Content Security Policy" in e.text], page.errors()
