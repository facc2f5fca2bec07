"""Congestion control side by side (issue 24): rtcam, aiortc's sender (REMB-driven) and GStreamer's
webrtcbin, each sending 720p30 configured at 2.5 Mb/s to a headless Chromium behind the same shaped
link (Tests/Interop/shaped_link.py: a tbf-shaped veth into a viewer namespace this benchmark makes).

Scenarios (each sender in turn, one Chromium and one link for the whole run):
- `step`: 5 Mb/s for 8 s, 800 kb/s for 15 s, 5 Mb/s again for 15 s (tbf queue: 200 ms).
- `bufferbloat`: a steady 1.5 Mb/s link with a 200 ms queue, 20 s (the first 5 s, and the rest).
- `loss`: a steady 2 Mb/s link with 5 % of the datagrams to the viewer dropped at random (nft in its
  namespace) and no added delay, 26 s (the first 10 s, while the estimate climbs, and the 16 s after):
  what the bufferbloat interop test measured after its bufferbloat phase until stop 33.

Per sender and phase: Chromium's decoded fps, freeze count and time, received kb/s, packets lost and
jitter buffer delay (getStats, shaped_link.VIEWER_JS); the link's queueing delay
(ShapedLink.queue_delay_ms every 200 ms: p50/p95); the encoder's target where the sender says it
(rtcam: /api/status bitrateControl.encoderTargetKbps; aiortc: the peer's GET /status); what the
sender offered the link (tbf's sent bytes plus its drops at the mean packet size) and tbf's drops.

Run through `bash Tests/Benchmarks/run.sh shaped` (bench.py): root, a namespace holding only `lo`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Callable, Optional

import common
from common import out_dir, percentiles, start_daemon

from shaped_link import CAMERA_ADDRESS, VIEWER_JS, ShapedLink, window  # Tests/Interop (common put it on the path)

SIZE, FPS, CONFIGURED_KBPS = "1280x720", 30, 2500
QUEUE_MS = 200
STEP_PHASES = (("5 Mb/s", 5000, 8.0), ("800 kb/s", 800, 15.0), ("5 Mb/s again", 5000, 15.0))
BUFFERBLOAT_PHASES = (("1.5 Mb/s: first 5 s", 1500, 5.0), ("1.5 Mb/s: 5-20 s", 1500, 15.0))
# (label, link kb/s, seconds[, % of the datagrams to the viewer dropped at random])
LOSS_PHASES = (("2 Mb/s, 5 % loss: first 10 s", 2000, 10.0, 5), ("2 Mb/s, 5 % loss: 10-26 s", 2000, 16.0, 5))
SCENARIOS = {"step": STEP_PHASES, "bufferbloat": BUFFERBLOAT_PHASES, "loss": LOSS_PHASES}
SENDERS = ("rtcam", "aiortc", "webrtcbin")
SAMPLE_INTERVAL_S = 0.2


AIORTC_FIELDS = ("mediaBytesSent", "nackedPackets", "resentPackets", "resentBytes", "keyframesForced")
VIEWER_FIELDS = ("packetsSent", "retransmittedPackets", "redundantRetransmissions", "retransmissionsRefused",
                 "keyframeRequests", "probeClusters", "staleVideoPacketsDropped", "estimateKbps", "pacerQueueMs")


class Sender:
    """One running sender: where the viewer page loads from, and what it says about itself now:
    {"target_kbps": its encoder's target or None, "viewer": rtcam's figures for the viewer or None}."""

    def __init__(self, url: str, stop: Callable[[], None], status: Callable[[], dict]):
        self.url, self.stop, self.status = url, stop, status


def start_rtcam(scenario: str) -> Sender:
    daemon = start_daemon(f"shaped-{scenario}", SIZE, FPS, CONFIGURED_KBPS,
                          extra=("--candidate-address", CAMERA_ADDRESS))
    daemon.log_in()   # /api/status; viewing stays open (the harness's first-run choice)

    def status() -> dict:
        answer = daemon.status()
        control = answer.get("bitrateControl") or {}
        viewers = answer.get("viewers") or []
        return {"target_kbps": control.get("encoderTargetKbps") or CONFIGURED_KBPS,
                "viewer": {field: viewers[0].get(field) for field in VIEWER_FIELDS} if viewers else None}

    return Sender(f"http://{CAMERA_ADDRESS}:{daemon.http_port}", daemon.stop, status)


def start_peer(name: str, scenario: str) -> Sender:
    from rtcam_process import free_port

    port = free_port()
    logs = out_dir() / "logs"
    logs.mkdir(exist_ok=True)
    common_args = ["--port", str(port), "--size", SIZE, "--fps", str(FPS), "--bitrate", str(CONFIGURED_KBPS),
                   "--bind", CAMERA_ADDRESS, "--candidate-address", CAMERA_ADDRESS]
    if name == "aiortc":
        command = [sys.executable, str(common.HERE / "peer_aiortc.py"), *common_args, "--follow-remb"]
    else:   # Debian's python3-gi
        command = ["/usr/bin/python3", str(common.HERE / "peer_gstreamer.py"), *common_args]
    log_path = logs / f"shaped-{scenario}-{name}.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{CAMERA_ADDRESS}:{port}"

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

    problem = common.wait_for_healthz(process, url, name)
    if problem:
        stop()
        raise RuntimeError(f"{problem}; see {log_path}")

    def status() -> dict:
        if name != "aiortc":
            return {"target_kbps": None, "viewer": None}    # webrtcbin's x264enc keeps its configured bitrate
        with urllib.request.urlopen(url + "/status", timeout=1) as response:
            senders = list(json.load(response)["videoSenders"].values())
        video = senders[-1] if senders else {}
        return {"target_kbps": video.get("encoderTargetKbps"),
                "viewer": {field: video.get(field) for field in AIORTC_FIELDS} if video else None}

    return Sender(url, stop, status)


def stalled_seconds(samples: list[dict], start_ms: float, end_ms: float) -> float:
    """Time inside [start, end] between getStats samples (250 ms apart) with no frame decoded: a
    picture that stands still, counted in the phase where it stood (Chromium counts a freeze only
    when the next frame comes, so a freeze spanning two phases lands in the second)."""
    inside = [s for s in samples if start_ms <= s["t"] <= end_ms]
    return sum((b["t"] - a["t"]) / 1000 for a, b in zip(inside, inside[1:]) if b["framesDecoded"] == a["framesDecoded"])


class Sampler(threading.Thread):
    """Every 200 ms: the link's queueing delay and the encoder's target, stamped with the phase."""

    def __init__(self, link: ShapedLink, sender: Sender):
        super().__init__(daemon=True)
        self.link, self.sender = link, sender
        self.phase: Optional[str] = None
        self.samples: list[dict] = []
        self.finished = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.finished.is_set():
            phase = self.phase
            queue = self.link.queue_delay_ms()
            try:
                status = self.sender.status()
            except Exception:  # noqa: BLE001 — a slow status answer loses one sample, not the run
                status = {"target_kbps": None, "viewer": None}
            if phase is not None:
                self.samples.append({"t": time.monotonic(), "phase": phase, "queue_ms": queue, **status})
            next_at += SAMPLE_INTERVAL_S
            self.finished.wait(max(0.0, next_at - time.monotonic()))


def run_one(name: str, scenario: str, link: ShapedLink, browser) -> dict:
    phases = SCENARIOS[scenario]
    link.set_rate(phases[0][1], QUEUE_MS)
    time.sleep(0.5)     # what the previous run left in the queue drains
    sender = start_rtcam(scenario) if name == "rtcam" else start_peer(name, scenario)
    page = None
    sampler = Sampler(link, sender)
    try:
        page = browser.new_page(f"{sender.url}/healthz")
        asked_ms = page.evaluate("performance.now()")
        page.evaluate(VIEWER_JS)
        # The phases start once media flows (not once frames decode: a sender that starts above the
        # link may decode nothing for long, which is what is measured).
        page.wait_for("window.shaped.error || (window.shaped.samples.length > 0 && "
                      "window.shaped.samples.at(-1).bytesReceived > 0)", timeout=20)
        error = page.evaluate("window.shaped.error")
        if error:
            raise RuntimeError(error)
        sampler.start()
        boundaries = []     # (label, page ms at its start)
        shaper = []         # (monotonic s, tbf statistics) at each boundary
        for label, rate, seconds, *loss in phases:
            if link.rate_kbit != rate:
                link.set_rate(rate)
            link.set_loss(loss[0] if loss else 0)
            boundaries.append((label, page.evaluate("performance.now()")))
            shaper.append((time.monotonic(), link.qdisc_statistics()))
            sampler.phase = label
            time.sleep(seconds)
        end_ms = page.evaluate("performance.now()")
        shaper.append((time.monotonic(), link.qdisc_statistics()))
        sampler.finished.set()
        sampler.join()
        viewer_samples = page.evaluate("window.shaped.samples")
        drops = link.dropped_packets()
    finally:
        sampler.finished.set()
        link.set_loss(0)
        if page is not None:
            page.close()
        sender.stop()
    decoded = [v for v in viewer_samples if v["framesDecoded"] > 0]
    first_frame_s = round((decoded[0]["t"] - asked_ms) / 1000, 2) if decoded else None
    result = {"sender": name, "scenario": scenario, "first_frame_s": first_frame_s,
              "tbf_drops": drops, "phases": []}
    for index, (label, rate, seconds, *_) in enumerate(phases):
        start_ms = boundaries[index][1]
        stop_ms = boundaries[index + 1][1] if index + 1 < len(boundaries) else end_ms
        viewer = window(viewer_samples, start_ms, stop_ms)
        viewer["stalled_s"] = stalled_seconds(viewer_samples, start_ms, stop_ms)
        (t0, before), (t1, after) = shaper[index], shaper[index + 1]
        sent_bytes = after.get("bytes", 0) - before.get("bytes", 0)
        sent_packets = after.get("packets", 0) - before.get("packets", 0)
        dropped = after.get("drops", 0) - before.get("drops", 0)
        offered_bytes = sent_bytes + dropped * (sent_bytes / sent_packets if sent_packets else 1200)
        inside = [s for s in sampler.samples if s["phase"] == label]
        queue = percentiles([s["queue_ms"] for s in inside])
        targets = [s["target_kbps"] for s in inside if s["target_kbps"] is not None]
        result["phases"].append({
            "phase": label, "link_kbps": rate, "seconds": seconds, "viewer": viewer,
            "queue_ms": queue, "offered_kbps": offered_bytes * 8 / (t1 - t0) / 1000, "tbf_dropped_packets": dropped,
            "encoder_target_kbps": ({"median": statistics.median(targets), "min": min(targets), "max": max(targets),
                                     "last": targets[-1]} if targets else None),
            "sender_counters": counters_over([s["viewer"] for s in inside if s["viewer"]],
                                             inside[-1]["t"] - inside[0]["t"] if inside else 0),
            "timeline": [{"t": round(s["t"] - inside[0]["t"], 2), "queue_ms": round(s["queue_ms"], 1),
                          "target_kbps": s["target_kbps"], "viewer": s["viewer"]} for s in inside],
        })
    return result


def counters_over(viewers: list[dict], seconds: float) -> Optional[dict]:
    """The sender's own counters over a phase (last sample less first): rtcam's per-viewer ones and
    its estimate's median, or aiortc's video sender's (media and resent kb/s, forced keyframes)."""
    if len(viewers) < 2:
        return None
    first, last = viewers[0], viewers[-1]
    if "mediaBytesSent" in first:
        delta = {field: (last.get(field) or 0) - (first.get(field) or 0) for field in AIORTC_FIELDS}
        return {"media_kbps": delta["mediaBytesSent"] * 8 / seconds / 1000,
                "resent_kbps": delta["resentBytes"] * 8 / seconds / 1000,
                "nacked_packets": delta["nackedPackets"], "resent_packets": delta["resentPackets"],
                "keyframes_forced": delta["keyframesForced"]}
    counters = {field: (last.get(field) or 0) - (first.get(field) or 0)
                for field in VIEWER_FIELDS if field not in ("estimateKbps", "pacerQueueMs")}
    estimates = [v["estimateKbps"] for v in viewers if v.get("estimateKbps") is not None]
    pacer = [v["pacerQueueMs"] for v in viewers if v.get("pacerQueueMs") is not None]
    counters["estimate_kbps_median"] = statistics.median(estimates) if estimates else None
    counters["pacer_queue_ms_max"] = max(pacer) if pacer else None
    return counters


def run(scenarios: list[str], senders: list[str]) -> list[dict]:
    from cdp import Chromium, find_chromium  # Tests/Interop

    runs = []
    logs = out_dir() / "logs"
    logs.mkdir(exist_ok=True)
    with ShapedLink(rate_kbit=STEP_PHASES[0][1], queue_ms=QUEUE_MS) as link:
        browser = Chromium(executable=link.chromium_executable(find_chromium()),
                           log_path=str(logs / "chromium-shaped.log"),
                           user_data_dir=str(out_dir() / "state" / "chromium-shaped-profile"))
        browser.start()
        try:
            for scenario in scenarios:
                for name in senders:
                    print(f"  {scenario}: {name} ...", flush=True)
                    started = time.monotonic()
                    try:
                        runs.append(run_one(name, scenario, link, browser))
                    except Exception as error:  # noqa: BLE001 — one failed sender must not lose the others
                        print(f"  {scenario}: {name} failed: {error!r}")
                        runs.append({"sender": name, "scenario": scenario, "error": repr(error)[:500]})
                    print(f"    ({time.monotonic() - started:.0f} s)", flush=True)
        finally:
            browser.close()
    return runs


def rows_for(runs: list[dict]) -> list[list]:
    rows = []
    for r in runs:
        if "error" in r:
            rows.append([r["scenario"], r["sender"], "failed", None, None, None, None, None, None, None, None, None, None, None,
                         r["error"][:60]])
            continue
        for phase in r["phases"]:
            viewer, queue, target = phase["viewer"], phase["queue_ms"], phase["encoder_target_kbps"]
            rows.append([r["scenario"], r["sender"], phase["phase"], viewer["fps"], viewer.get("freezes"),
                         viewer["freeze_s"], viewer["stalled_s"], phase["offered_kbps"], phase["tbf_dropped_packets"],
                         viewer["kbps"], viewer["lost"], viewer["jitter_buffer_ms"],
                         queue.get("p50"), queue.get("p95"),
                         f"{target['median']:.0f} ({target['min']:.0f}-{target['max']:.0f})" if target else "-"])
    return rows


HEADER = ["scenario", "sender", "phase", "fps", "freezes", "froze s", "stalled s", "sent kb/s", "tbf drops", "recv kb/s", "lost", "jitter buf ms",
          "queue p50 ms", "queue p95 ms", "target kb/s med (min-max)"]



def counter_rows(runs: list[dict]) -> list[list]:
    rows = []
    for r in runs:
        for phase in r.get("phases", []):
            c = phase.get("sender_counters")
            if c and "packetsSent" in c:
                rows.append([r["scenario"], r["sender"], phase["phase"], c["packetsSent"], c["retransmittedPackets"],
                             c["redundantRetransmissions"], c["retransmissionsRefused"], c["keyframeRequests"],
                             c["probeClusters"], c["staleVideoPacketsDropped"], c["estimate_kbps_median"],
                             c["pacer_queue_ms_max"]])
    return rows


COUNTER_HEADER = ["scenario", "sender", "phase", "packets sent", "resent", "redundant resends", "resends refused",
                  "keyframe requests", "probe clusters", "stale video dropped", "estimate kb/s med", "pacer max ms"]


def aiortc_rows(runs: list[dict]) -> list[list]:
    rows = []
    for r in runs:
        for phase in r.get("phases", []):
            c = phase.get("sender_counters")
            if c and "media_kbps" in c:
                rows.append([r["scenario"], phase["phase"], c["media_kbps"], c["resent_kbps"], c["nacked_packets"],
                             c["resent_packets"], c["keyframes_forced"], phase["offered_kbps"]])
    return rows


AIORTC_HEADER = ["scenario", "phase", "media kb/s (RTP payload)", "resent kb/s", "NACKed packets", "resent packets",
                 "keyframes forced (PLI/FIR)", "link offered kb/s"]
