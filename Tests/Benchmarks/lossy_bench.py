"""10 % loss at 50 ms RTT into Chromium, on this host, side by side with a control without loss
(issue 20). The line is Tests/Interop/loss_relay.py (25 ms each way, 10 % of rtcam → viewer datagrams
dropped, seeded); Chromium watches through it with Tests/Interop/lossy_viewer.py (rtcam sees the
relay as a peer-reflexive candidate, Chromium only the relay's candidate). rtcam plays the VM test's
clip (640x480 at 25 fps, ~1 Mb/s, an IDR every 2 s) without an encoder.

One session: `--seconds` with loss, then `--seconds` without (the relay stops dropping; the 50 ms
round trip stays), each measured in slices of at most 15 s (the issue's window) and in all.

Run through `bash Tests/Benchmarks/run.sh lossy --seconds 60` (bench.py): root, a namespace holding
only `lo`.
"""

from __future__ import annotations

import math
import time

from common import out_dir, start_daemon

from loss_relay import LossRelay                       # Tests/Interop (common put it on the path)
from lossy_viewer import make_stream, relay_window, sample, start_watching, summarize

LOSS, DELAY_MS, SEED = 0.10, 25.0, 20
SLICE_SECONDS = 15.0


def measure(page, daemon, relay: LossRelay, seconds: float) -> dict:
    relay_before = relay.stats()
    first = sample(page, daemon.status())
    time.sleep(seconds)
    last = sample(page, daemon.status())
    return summarize(page, first, last, relay_window(relay_before, relay.stats()))


def combined(slices: list[dict]) -> dict:
    """Slices of one condition as one window: rates weighted by time, counts summed, worst gap."""
    seconds = sum(s["seconds"] for s in slices)

    def total(key):
        return sum(s[key] or 0 for s in slices)

    freezes = total("freezeCount")
    late = [s["relay"]["lateP99Ms"] for s in slices if s["relay"]["lateP99Ms"] is not None]
    return {
        "seconds": round(seconds, 2),
        **{key: round(sum(s[key] * s["seconds"] for s in slices) / seconds, 2)
           for key in ("fpsSent", "fpsDecoded", "fpsPresented")},
        "freezeCount": freezes, "totalFreezesSeconds": round(total("totalFreezesSeconds"), 3),
        "meanFreezeMs": round(1000 * total("totalFreezesSeconds") / freezes, 1) if freezes else None,
        "longestFrameGapMs": max((s["longestFrameGapMs"] or 0) for s in slices),
        "frameGapsOver200Ms": total("frameGapsOver200Ms"), "frameGapsOver150Ms": total("frameGapsOver150Ms"),
        **{key: total(key) for key in ("nackCount", "pliCount", "packetsReceived", "packetsLost",
                                        "retransmittedPacketsReceived", "keyFramesDecoded")},
        "meanRttMs": round(sum((s["meanRttMs"] or 0) * s["seconds"] for s in slices) / seconds, 1),
        "rtcam": {key: sum(s["rtcam"][key] for s in slices) for key in
                  ("retransmittedPackets", "retransmissionsRefused", "redundantRetransmissions",
                   "redundantRetransmissionsWithheld", "retransmissionsInFlight", "keyframeRequests",
                   "staleVideoPacketsDropped")},
        "relay": {"toViewer": sum(s["relay"]["toViewer"] for s in slices),
                  "dropped": sum(s["relay"]["dropped"] for s in slices),
                  "lateP99MsWorstSlice": max(late) if late else None,
                  "lateMaxMs": max((s["relay"]["lateMaxMs"] or 0) for s in slices)},
    }


def run(seconds: float) -> dict:
    from cdp import Chromium  # Tests/Interop

    logs = out_dir() / "logs"
    logs.mkdir(exist_ok=True)
    stream = make_stream(str(out_dir() / "state" / "lossy-stream.h264"))
    daemon = start_daemon("lossy", size="640x480", fps=25, bitrate=1000,
                          extra=("--source", f"file:{stream}", "--ice", "full"))
    result: dict = {"loss": LOSS, "delayMsEachWay": DELAY_MS, "seed": SEED, "conditions": {}}
    try:
        daemon.log_in()
        with LossRelay(("127.0.0.1", daemon.media_port), delay_ms=DELAY_MS, loss=LOSS, seed=SEED,
                       log_path=str(logs / "loss-relay.log"), trace_path=str(logs / "loss-relay-trace.txt")) as relay, \
                Chromium(log_path=str(logs / "chromium-lossy.log"),
                         user_data_dir=str(out_dir() / "state" / "chromium-lossy-profile")) as browser:
            page = browser.new_page()
            page.navigate(daemon.url("/healthz"))
            start_watching(page, relay.candidate)
            time.sleep(3)
            for name, loss in (("10 % loss", LOSS), ("control (no loss)", 0.0)):
                relay.set_loss(loss)
                slices = []
                count = max(1, math.ceil(seconds / SLICE_SECONDS))
                for index in range(count):
                    slices.append(measure(page, daemon, relay, seconds / count))
                    print(f"  {name}, slice {index + 1}/{count}: {slices[-1]['fpsDecoded']} fps, "
                          f"longest gap {slices[-1]['longestFrameGapMs']} ms, {slices[-1]['freezeCount']} freezes",
                          flush=True)
                result["conditions"][name] = {"all": combined(slices), "slices": slices}
            result["relay"] = relay.stats()
    finally:
        daemon.stop()
    return result


HEADER = ["condition", "window", "fps sent", "fps decoded", "fps presented", "freezes (s)", "longest gap ms",
          "gaps >200 ms", "NACKs / lost / RTX", "refused", "redundant", "withheld", "stale", "RTT ms",
          "relay late p99 / max ms"]


def rows_for(result: dict) -> list[list]:
    rows = []
    for name, condition in result["conditions"].items():
        windows = [(f"{s['seconds']:.0f} s #{i + 1}", s) for i, s in enumerate(condition["slices"])]
        if len(windows) > 1:
            windows.append(("all", condition["all"]))
        for label, w in windows:
            late = w["relay"].get("lateP99Ms", w["relay"].get("lateP99MsWorstSlice"))
            rows.append([name, label, w["fpsSent"], w["fpsDecoded"], w["fpsPresented"],
                         f"{w['freezeCount']} ({w['totalFreezesSeconds']:.2f})", w["longestFrameGapMs"],
                         w["frameGapsOver200Ms"],
                         f"{w['nackCount']} / {w['packetsLost']} / {w['retransmittedPacketsReceived']}",
                         w["rtcam"]["retransmissionsRefused"], w["rtcam"]["redundantRetransmissions"],
                         w["rtcam"]["redundantRetransmissionsWithheld"], w["rtcam"]["staleVideoPacketsDropped"],
                         w["meanRttMs"], f"{late or 0:.1f} / {w['relay']['lateMaxMs'] or 0:.0f}"])
    return rows
