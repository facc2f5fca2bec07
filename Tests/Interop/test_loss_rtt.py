"""10 % loss at 50 ms RTT into Chromium, on this host (issue 20): every freeze under 200 ms.

The host's kernel has no netem; the line is loss_relay.py, a user-space relay on loopback: 25 ms each
way, 10 % of what rtcam sends to the viewer dropped (every datagram kind, as the VM test's netem on
the guest's egress; seeded). rtcam (full ICE, the default) plays the VM test's clip (640x480 at
25 fps, ~1 Mb/s, an IDR every 2 s; no encoder, so the machine's load does not change what is sent)
and sees the relay as a peer-reflexive candidate; headless Chromium (lossy_viewer.py) sees only the
relay's candidate.

A lossy window of LOSSY_SECONDS, then a control window without loss on the same session (the relay
stops dropping). The lossy window must show: NACKs and RTX received, no resend refused, decoded fps
at least 90 % of what rtcam sent, no gap between presented frames of 200 ms or more and Chromium's
freezes (gaps over max(3 × mean frame time, mean + 150 ms)) under 200 ms on average. On a busy shared
machine Chromium itself may stall: a lossy window that misses the bound while the control without
loss stalled too (or the relay was over 40 ms late, or dropped all three or four copies of a resend:
one resend in ten thousand at 10 %, and a second NACK round trip whatever the sender does) is
measured again, once; when that happens twice the test is an expected failure with the figures,
never a pass. A sender that resends once (no copies) is not excused by the last rule.
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import attach
from loss_relay import LossRelay, resends_lost_whole
from lossy_viewer import make_stream, relay_window, rtx_payload_type, sample, start_watching, summarize

LOSS, DELAY_MS, SEED = 0.10, 25.0, 20
SETTLE_SECONDS, LOSSY_SECONDS, CONTROL_SECONDS = 3.0, 15.0, 8.0
MAX_GAP_MS = 200.0
MIN_FPS_SHARE = 0.9
RELAY_STALL_MS = 40.0       # a datagram this late (the relay itself unscheduled) and the window says nothing


def measure(page, daemon, relay: LossRelay, seconds: float, trace: str, rtx: int) -> dict:
    relay_before = relay.stats()
    whole_before = resends_lost_whole(trace, rtx)
    first = sample(page, daemon.status())
    time.sleep(seconds)
    last = sample(page, daemon.status())
    window = summarize(page, first, last, relay_window(relay_before, relay.stats()))
    window["relay"]["resendsLostWhole"] = resends_lost_whole(trace, rtx) - whole_before
    return window


def shortfalls(window: dict, lossy: bool) -> list[str]:
    """What keeps a window from the issue's bound (the machine may be to blame: see excused())."""
    problems = []
    if window["fpsSent"] <= 0 or window["fpsDecoded"] < MIN_FPS_SHARE * window["fpsSent"]:
        problems.append(f"{window['fpsDecoded']} fps decoded of {window['fpsSent']} sent")
    if window["longestFrameGapMs"] is None or window["longestFrameGapMs"] >= MAX_GAP_MS:
        problems.append(f"a {window['longestFrameGapMs']} ms gap between presented frames")
    if window["meanFreezeMs"] is not None and window["meanFreezeMs"] >= MAX_GAP_MS:
        problems.append(f"{window['freezeCount']} freezes of {window['meanFreezeMs']} ms on average")
    if lossy and window["rtcam"]["retransmissionsRefused"] > 0:
        problems.append(f"rtcam refused {window['rtcam']['retransmissionsRefused']} resends")
    return problems


def relay_late(window: dict) -> bool:
    return (window["relay"]["lateMaxMs"] or 0) > RELAY_STALL_MS


def excused(lossy: dict, control: dict) -> bool:
    """The machine or the line's luck, not rtcam, may explain a lossy window that missed the bound:
    the control window without loss right after it missed the bound too, or the relay was late in
    either, or the relay dropped every copy (three or more) of a resend."""
    return bool(shortfalls(control, lossy=False)) or relay_late(control) or relay_late(lossy) \
        or lossy["relay"]["resendsLostWhole"] > 0


def test_loss_rtt_chromium_freezes_stay_under_200_ms(rtcam_factory, chromium, tmp_path, request, machine_load):
    stream = make_stream(str(tmp_path / "stream.h264"))
    # At debug level the daemon logs each viewer's estimate (delay-based and loss-based apart) with the
    # pacer's backlog: a failure with resends refused (stop 33's last rehearsal: 945, with stale video
    # dropped) then shows which bound held the passed-through clip under its rate.
    daemon = rtcam_factory(fps=25, bitrate_kbps=1000,
                           extra_args=("--source", f"file:{stream}", "--ice", "full", "--log-level", "debug"))
    daemon.log_in()
    windows: list[dict] = []
    attach(request, "windows", lambda: json.dumps(windows, indent=1))
    with LossRelay(("127.0.0.1", daemon.media_port), delay_ms=DELAY_MS, loss=LOSS, seed=SEED,
                   log_path=str(tmp_path / "relay.log"), trace_path=str(tmp_path / "relay-trace.txt")) as relay:
        page = chromium.new_page()
        attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
        page.navigate(daemon.url("/healthz"))
        start_watching(page, relay.candidate)
        rtx = rtx_payload_type(page)
        assert rtx is not None, "rtcam's answer has no video RTX"
        trace = str(tmp_path / "relay-trace.txt")
        time.sleep(SETTLE_SECONDS)
        attempts: list[tuple[dict, dict]] = []
        for attempt in range(2):
            relay.set_loss(LOSS)
            lossy = measure(page, daemon, relay, LOSSY_SECONDS, trace, rtx) | {"window": f"lossy {attempt + 1}"}
            windows.append(lossy)
            relay.set_loss(0.0)
            control = measure(page, daemon, relay, CONTROL_SECONDS, trace, rtx) | {"window": f"control {attempt + 1}"}
            windows.append(control)
            attempts.append((lossy, control))
            if not shortfalls(lossy, lossy=True) or not excused(lossy, control):
                break
        relay_total = relay.stats()
    for window in windows:
        print(f"{window['window']}: " + json.dumps({k: v for k, v in window.items() if k != "window"}))
    print(f"relay: {json.dumps(relay_total)}; {machine_load.describe()}")

    judged = attempts[-1][0]
    # The line is what it should be: Chromium sends to the relay only, rtcam sees it as peer-reflexive,
    # the round trip is the relay's 50 ms (plus the machine's scheduling).
    assert judged["state"] == "connected", f"Chromium's connection: {judged['state']}"
    assert judged["chromiumRemote"] == f"127.0.0.1:{relay.port}", \
        f"Chromium's selected remote candidate is {judged['chromiumRemote']}, not the relay (port {relay.port})"
    pair = judged["rtcam"]["icePair"] or {}
    assert pair.get("remote") == "prflx", f"rtcam's selected pair: {pair} (the relay should be peer-reflexive)"
    assert judged["meanRttMs"] is not None and 45 <= judged["meanRttMs"] <= 150, \
        f"Chromium's mean STUN round trip {judged['meanRttMs']} ms, the line makes 50"
    dropped_share = judged["relay"]["dropped"] / max(1, judged["relay"]["dropped"] + judged["relay"]["toViewer"])
    assert 0.07 <= dropped_share <= 0.13, f"the relay dropped {dropped_share:.1%} of rtcam's datagrams, not ~10 %"
    assert judged["nackCount"] > 0, "Chromium sent no NACK at 10 % loss"
    assert judged["retransmittedPacketsReceived"] > 0, "Chromium received no RTX"

    problems = shortfalls(judged, lossy=True)
    if problems and all(excused(lossy, control) for lossy, control in attempts):
        pytest.xfail(f"the lossy windows missed the bound ({'; '.join(problems)}) but the control windows "
                     f"without loss stalled too, the relay was late or dropped every copy of a resend "
                     f"({machine_load.describe()}): the machine or the line's luck, not rtcam; figures above")
    assert not problems, f"at 10 % loss and 50 ms RTT: {'; '.join(problems)} ({machine_load.describe()})"
