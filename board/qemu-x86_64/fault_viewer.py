"""The host side of test-daemon-in-vm.sh's fault modes (issue 20): a viewer on the host watches rtcam
in the VM while the guest does something hostile to it, and says in JSON what it saw.

  unplug BASE SHARE   headless Chromium (or aiortc: --viewer aiortc) watches vivid through x264; the guest unbinds vivid (the host asks by
                      writing SHARE/unplug, the guest answers SHARE/unplugged) for UNPLUG_SECONDS,
                      then binds it again (SHARE/replug → SHARE/replugged). Measures every decoded
                      frame's arrival: the gap from the return to the first new picture, fps before
                      and after, and /api/status's `camera` while lost and after.
  lossy BASE SHARE    headless Chromium (Tests/Interop/cdp.py) plays the stream for --seconds through
                      the guest's netem (loss and delay on eth0) and reports getStats: fps, freezes
                      (freezeCount, totalFreezesDuration, and the longest gap between presented frames
                      from requestVideoFrameCallback), NACKs, losses, retransmissions; and the
                      daemon's retransmittedPackets / retransmissionsRefused.

Exit 0 when the figures meet the limits given on the command line, 1 otherwise (the JSON says why).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "Tests", "Interop"))


class Daemon:
    """rtcam's HTTP API in the guest, through the host's forward; logs in with the setup code."""

    def __init__(self, base: str, share: str):
        self.base, self.share, self.cookie = base.rstrip("/"), share, None

    def call(self, method: str, path: str, body=None):
        request = urllib.request.Request(
            self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **({"Cookie": self.cookie} if self.cookie else {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.headers.get("Set-Cookie", ""), reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, "", error.read().decode()

    def status(self) -> dict:
        if self.cookie is None:
            found = re.search(r"setup code ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})",
                              open(os.path.join(self.share, "rtcam.log")).read())
            if not found:
                raise SystemExit("no setup code in the guest's rtcam.log")
            code, cookie, answer = self.call("POST", "/api/password", {
                "password": "rtcam-vm-test-password", "setupCode": found.group(1), "viewingRequiresPassword": False})
            if code != 200:
                raise SystemExit(f"POST /api/password: {code} {answer}")
            self.cookie = cookie.split(";", 1)[0]
            # Viewing stays open without the password once the settings say so (written after the answer).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                code, _, answer = self.call("GET", "/api/config")
                if code == 200 and json.loads(answer).get("viewingRequiresPassword") is False:
                    break
                time.sleep(0.2)
        code, _, answer = self.call("GET", "/api/status")
        if code != 200:
            raise SystemExit(f"GET /api/status: {code} {answer[:300]}")
        return json.loads(answer)


def wait_for_file(path: str, timeout: float) -> float:
    """Polls every 20 ms until `path` exists; returns when it was seen (monotonic seconds)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"the guest did not write {os.path.basename(path)} within {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic()


def fps_between(arrivals: list, start: float, end: float) -> float:
    return sum(1 for t in arrivals if start <= t < end) / max(1e-6, end - start)


async def unplug(args) -> dict:
    from whep_client import WhepClient
    daemon = Daemon(args.base, args.share)
    # Logged in before watching (the password's hash takes seconds in the guest under TCG); every
    # status call runs in a thread, away from aiortc's event loop.
    await asyncio.to_thread(daemon.status)
    result: dict = {"unplugSeconds": args.unplug_seconds}
    async with WhepClient(args.base + "/whep", audio=False) as client:
        await client.wait_for_media(timeout=60)
        await asyncio.sleep(args.before)
        arrivals = client.video.arrivals
        asked = time.monotonic()
        open(os.path.join(args.share, "unplug"), "w").close()
        unplugged = wait_for_file(os.path.join(args.share, "unplugged"), 30)
        result["unbindSeenAfterSeconds"] = round(unplugged - asked, 3)
        result["fpsBefore"] = round(fps_between(arrivals, asked - args.before, asked), 2)
        await asyncio.sleep(max(0.0, args.unplug_seconds - 1.0))
        lost = await asyncio.to_thread(daemon.status)
        result["cameraWhileLost"] = lost.get("camera")
        code, _, metrics = await asyncio.to_thread(daemon.call, "GET", "/metrics")
        result["metricsWhileLost"] = [line for line in metrics.splitlines() if line.startswith("rtcam_camera_")] \
            if code == 200 else f"GET /metrics: {code}"
        result["sourceProblemWhileLost"] = lost.get("sourceProblem")
        await asyncio.sleep(max(0.0, asked + args.unplug_seconds - time.monotonic()))
        returned_asked = time.monotonic()
        open(os.path.join(args.share, "replug"), "w").close()
        returned = wait_for_file(os.path.join(args.share, "replugged"), 30)
        result["bindSeenAfterSeconds"] = round(returned - returned_asked, 3)
        # Frames until 10 s after the return at most.
        deadline = returned_asked + 10
        while time.monotonic() < deadline and not any(t > returned_asked for t in arrivals):
            await asyncio.sleep(0.02)
        await asyncio.sleep(args.after)
        after = [t for t in arrivals if t > returned_asked]
        last_before = max((t for t in arrivals if t <= unplugged), default=None)
        result["lastFrameBeforeUnplugSeconds"] = None if last_before is None else round(last_before - asked, 3)
        if after:
            result["pictureBackAfterReturnSeconds"] = round(after[0] - returned_asked, 3)
            result["pictureBackAfterBindSeenSeconds"] = round(after[0] - returned, 3)
            result["longestGapSeconds"] = round(after[0] - (last_before or asked), 3)
            result["fpsAfter"] = round(fps_between(arrivals, after[0] + 0.5, after[0] + 0.5 + args.after - 1.0), 2)
        else:
            result["pictureBackAfterReturnSeconds"] = None
        result["connectionState"] = client.connection_state
        status = await asyncio.to_thread(daemon.status)
        result["cameraAfter"] = status.get("camera")
        result["sourceProblemAfter"] = status.get("sourceProblem")
        result["keyframesForced"] = status.get("keyframesForced")
    result["problems"] = judge_unplug(result, args)
    return result


def judge_unplug(result: dict, args) -> list:
    problems = []
    camera = result["cameraWhileLost"] or {}
    if camera.get("state") != "lost":
        problems.append(f"/api/status did not say the camera was lost while unbound: {camera}")
    if "rtcam_camera_lost 1" not in result["metricsWhileLost"]:
        problems.append(f"/metrics did not say the camera was lost: {result['metricsWhileLost']}")
    back = result["pictureBackAfterReturnSeconds"]
    if back is None:
        problems.append("no picture within 10 s of the camera's return")
    elif back > args.max_back:
        problems.append(f"the picture came back {back:.2f} s after the return (limit {args.max_back} s)")
    after = result["cameraAfter"] or {}
    if after.get("state") != "streaming" or after.get("losses") != 1:
        problems.append(f"/api/status after the return: {after}")
    if (result.get("fpsAfter") or 0) < args.min_fps:
        problems.append(f"{result.get('fpsAfter')} fps after the return, wanted {args.min_fps} or more")
    if result.get("connectionState") != "connected":
        problems.append(f"the viewer's connection: {result.get('connectionState')}")
    return problems


def unplug_chromium(args) -> dict:
    """The unplug of `unplug`, watched by headless Chromium: frame times from requestVideoFrameCallback
    (the page's clock, read just before each request to the guest)."""
    from cdp import Chromium
    daemon = Daemon(args.base, args.share)
    daemon.status()
    result: dict = {"viewer": "chromium", "unplugSeconds": args.unplug_seconds}
    with Chromium(log_path=os.path.join(args.share, "chromium.log"),
                  user_data_dir=os.path.join(args.share, "chromium-profile")) as browser:
        page = browser.new_page()
        name, _, value = daemon.cookie.partition("=")
        page.send("Network.setCookie", {"name": name, "value": value, "url": args.base + "/"})
        page.navigate(args.base + "/healthz")
        page.evaluate(PLAYER, timeout=60)
        page.wait_for("window.faults.presented.length > 0", timeout=60)
        time.sleep(args.before)
        asked_page = page.evaluate("performance.now()") / 1000
        asked = time.monotonic()
        open(os.path.join(args.share, "unplug"), "w").close()
        unplugged = wait_for_file(os.path.join(args.share, "unplugged"), 30)
        result["unbindSeenAfterSeconds"] = round(unplugged - asked, 3)
        time.sleep(max(0.0, args.unplug_seconds - 1.0))
        lost = daemon.status()
        result["cameraWhileLost"] = lost.get("camera")
        code, _, metrics = daemon.call("GET", "/metrics")
        result["metricsWhileLost"] = [line for line in metrics.splitlines() if line.startswith("rtcam_camera_")] \
            if code == 200 else f"GET /metrics: {code}"
        time.sleep(max(0.0, asked + args.unplug_seconds - time.monotonic()))
        returned_page = page.evaluate("performance.now()") / 1000
        open(os.path.join(args.share, "replug"), "w").close()
        returned_asked = time.monotonic()
        returned = wait_for_file(os.path.join(args.share, "replugged"), 30)
        result["bindSeenAfterSeconds"] = round(returned - returned_asked, 3)
        try:
            page.wait_for(f"window.faults.presented.some((t) => t / 1000 > {returned_page})", timeout=10)
        except Exception:  # noqa: BLE001 — judged below as "no picture"
            pass
        time.sleep(args.after)
        stats = page.evaluate(STATS)
        arrivals = [t / 1000 for t in page.evaluate("window.faults.presented")]
    after = [t for t in arrivals if t > returned_page]
    last_before = max((t for t in arrivals if t <= asked_page + (unplugged - asked)), default=None)
    result["fpsBefore"] = round(fps_between(arrivals, asked_page - args.before, asked_page), 2)
    if after:
        result["pictureBackAfterReturnSeconds"] = round(after[0] - returned_page, 3)
        result["longestGapSeconds"] = round(after[0] - (last_before or asked_page), 3)
        result["fpsAfter"] = round(fps_between(arrivals, after[0] + 0.5, after[0] + 0.5 + args.after - 1.0), 2)
    else:
        result["pictureBackAfterReturnSeconds"] = None
    result["connectionState"] = stats.get("state")
    result["chromium"] = {k: stats.get(k) for k in ("framesDecoded", "freezeCount", "totalFreezesDuration", "pliCount",
                                                    "keyFramesDecoded", "framesDropped")}
    status = daemon.status()
    result["cameraAfter"] = status.get("camera")
    result["sourceProblemAfter"] = status.get("sourceProblem")
    result["keyframesForced"] = status.get("keyframesForced")
    result["problems"] = judge_unplug(result, args)
    return result


# In the page (same origin as the WHEP endpoint): a receive-only peer connection, its video in a
# <video>, every presented frame's time from requestVideoFrameCallback.
PLAYER = """
(async () => {
  const video = document.createElement("video");
  video.autoplay = true; video.muted = true; video.playsInline = true;
  document.body.appendChild(video);
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.ontrack = (event) => { stream.addTrack(event.track); video.srcObject = stream; };
  window.faults = { pc, presented: [], state: "new" };
  pc.onconnectionstatechange = () => { window.faults.state = pc.connectionState; };
  const onFrame = (now, metadata) => {
    window.faults.presented.push(performance.now());
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") resolve(); };
    setTimeout(resolve, 2000);
  });
  const answer = await fetch("/whep", { method: "POST", headers: { "Content-Type": "application/sdp" },
                                        body: pc.localDescription.sdp });
  if (answer.status !== 201) throw new Error("POST /whep: " + answer.status + " " + await answer.text());
  await pc.setRemoteDescription({ type: "answer", sdp: await answer.text() });
  return "offered";
})()
"""

STATS = """
(async () => {
  const out = { now: performance.now(), state: window.faults.state, presented: window.faults.presented.length };
  (await window.faults.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      for (const k of ["framesDecoded", "framesReceived", "framesDropped", "freezeCount", "totalFreezesDuration",
                       "pauseCount", "totalPausesDuration", "nackCount", "pliCount", "firCount", "packetsLost",
                       "packetsReceived", "retransmittedPacketsReceived", "jitterBufferDelay",
                       "jitterBufferEmittedCount", "frameWidth", "frameHeight", "keyFramesDecoded"]) out[k] = r[k];
    }
    if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") {
      out.rtt = r.currentRoundTripTime; out.totalRoundTripTime = r.totalRoundTripTime;
      out.responsesReceived = r.responsesReceived;
    }
  });
  return out;
})()
"""


def lossy(args) -> dict:
    """Measures windows of `args.seconds` until one in which the guest did not stall (the mean STUN
    round trip stayed under `args.max_rtt`), at most `args.windows`; judges that one."""
    from cdp import Chromium
    daemon = Daemon(args.base, args.share)
    daemon.status()   # logs in first: setting the password ends the sessions of the moment
    profile = os.path.join(args.share, "chromium-profile")
    windows = []
    with Chromium(log_path=os.path.join(args.share, "chromium.log"), user_data_dir=profile) as browser:
        page = browser.new_page()
        # Chromium watches as the owner (its login cookie): with a file source the "viewing without
        # the password" choice of the first password did not stick in this run's guest.
        name, _, value = daemon.cookie.partition("=")
        page.send("Network.setCookie", {"name": name, "value": value, "url": args.base + "/"})
        page.navigate(args.base + "/healthz")
        page.evaluate(PLAYER, timeout=60)
        page.wait_for("window.faults.presented.length > 0", timeout=60)
        time.sleep(args.settle)
        for _ in range(args.windows):
            before_status = daemon.status()
            first = page.evaluate(STATS)
            time.sleep(args.seconds)
            last = page.evaluate(STATS)
            times = page.evaluate(f"window.faults.presented.slice({max(0, first['presented'] - 1)}, {last['presented']})")
            window = summarize(first, last, times, before_status, daemon.status())
            windows.append(window)
            if window["meanRttMs"] is not None and window["meanRttMs"] <= 1000 * args.max_rtt:
                break
    result = dict(windows[-1])
    result["windows"] = len(windows)
    result["stalledWindows"] = [{k: w[k] for k in ("meanRttMs", "freezeCount", "longestFrameGapMs", "fpsDecoded")}
                                for w in windows if w is not windows[-1] or w["meanRttMs"] is None
                                or w["meanRttMs"] > 1000 * args.max_rtt]
    problems = []
    if result["meanRttMs"] is None or result["meanRttMs"] > 1000 * args.max_rtt:
        # The guest under TCG went unscheduled for long stretches in every window (other work on the
        # host): what the viewer saw says nothing about rtcam. Said loudly, not failed.
        result["judged"] = False
        result["problems"] = []
        return result
    result["judged"] = True
    if result["state"] != "connected":
        problems.append(f"connection {result['state']}")
    if result["fpsDecoded"] < args.min_fps:
        problems.append(f"{result['fpsDecoded']} fps decoded, wanted {args.min_fps} or more")
    if result["freezeCount"] and result["totalFreezesSeconds"] / result["freezeCount"] > args.max_freeze:
        problems.append(f"freezes average {result['totalFreezesSeconds'] / result['freezeCount']:.3f} s (limit {args.max_freeze} s)")
    if result["longestFrameGapMs"] is not None and result["longestFrameGapMs"] > 1000 * args.max_freeze:
        problems.append(f"a {result['longestFrameGapMs']} ms gap between presented frames (limit {1000 * args.max_freeze:.0f})")
    if args.expect_loss:
        if result["nackCount"] == 0:
            problems.append("Chromium sent no NACK: was there any loss?")
        if result["daemon"]["retransmissionsRefused"] > 0:
            problems.append(f"rtcam refused {result['daemon']['retransmissionsRefused']} resends Chromium asked for")
    result["problems"] = problems
    return result


def summarize(first: dict, last: dict, times: list, before_status: dict, after_status: dict) -> dict:
    """One window: Chromium's getStats differences, gaps between presented frames, the daemon's counts."""
    from chromium_whep import window_figures

    def viewer(status):
        return next(iter(status.get("viewers") or []), {})

    counts = ("retransmittedPackets", "retransmissionsRefused", "redundantRetransmissions", "retransmissionsInFlight",
              "keyframeRequests", "packetsSent")
    daemon = {key: viewer(after_status).get(key, 0) - viewer(before_status).get(key, 0) for key in counts}
    daemon["rttMs"] = viewer(after_status).get("rttMs")
    return window_figures(first, last, times) | {"daemon": daemon}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["unplug", "lossy"])
    parser.add_argument("base", help="rtcam's base URL (http://127.0.0.1:18080)")
    parser.add_argument("share", help="the directory the guest shares with the host")
    parser.add_argument("--unplug-seconds", type=float, default=3.0)
    parser.add_argument("--viewer", choices=["chromium", "aiortc"], default="chromium", help="unplug: who watches")
    parser.add_argument("--before", type=float, default=3.0, help="seconds watched before the unplug")
    parser.add_argument("--after", type=float, default=4.0, help="seconds watched after the picture is back")
    parser.add_argument("--max-back", type=float, default=2.0, help="seconds from the return to the picture")
    parser.add_argument("--seconds", type=float, default=15.0, help="lossy: seconds a window measures")
    parser.add_argument("--windows", type=int, default=2, help="lossy: windows at most, until one without a stall")
    parser.add_argument("--max-rtt", type=float, default=0.25,
                        help="lossy: a window whose mean STUN round trip exceeds this (s) shows the guest stalled")
    parser.add_argument("--settle", type=float, default=2.0, help="lossy: seconds played before measuring")
    parser.add_argument("--max-freeze", type=float, default=0.2, help="lossy: longest freeze allowed (s)")
    parser.add_argument("--min-fps", type=float, default=3.0)
    parser.add_argument("--no-loss", dest="expect_loss", action="store_false",
                        help="lossy: a control run without loss (no NACKs expected)")
    args = parser.parse_args()
    if args.mode == "lossy":
        result = lossy(args)
    else:
        result = unplug_chromium(args) if args.viewer == "chromium" else asyncio.run(unplug(args))
    print(json.dumps(result, indent=2))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
