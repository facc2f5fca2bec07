"""Viewers through a TURN relay vs direct (issue 19), on the NAT topology of
Tests/Interop/test_ice_nat.py: rtcam behind one nft NAT, aiortc behind another, coturn on the
"internet" between them.

First frame per path (goal through the relay: p95 <= 400 ms from the WHEP POST):

  direct host:  aiortc on the camera's LAN (a bridge on the camera's router), --turn configured;
  direct srflx: both routers endpoint-independent: a reflexive pair, although rtcam offers its
                relayed address too;
  relay UDP:    both routers symmetric (address-and-port-dependent mapping): no direct path
                exists, media goes through coturn's relayed address (REST shared secret, --turn-secret);
  relay TCP / relay TLS: the camera's router lets no UDP out; rtcam's allocation is over TCP
                (`turn:…?transport=tcp`) or TLS (`turns:` on 443), the viewer's router symmetric.

(ICE-TCP needs Chromium, which aiortc is not: Tests/Interop/test_ice_tcp.py prints its first frame.)
For each, one camera and `runs` aiortc viewers one after another (each a fresh WHEP session: POST,
ICE, DTLS, the first decoded picture, 1 s of media, DELETE). aiortc's time from its POST to its first
decoded frame is what is measured; rtcam's /api/status names the pair the run used.

CPU per viewer: on the direct srflx and relay paths, N aiortc viewers at once (`--relay-viewers`,
default 1 4 8; they join one after another: rtcam answers 429 to a third session from one
address while two are still connecting); once all N are connected, rtcam's and coturn's (both of its processes) CPU seconds
from /proc/PID/stat over `--seconds` (default 10), divided by N x the window: CPU seconds per
viewer-second. The same camera, the same N, the same machine minutes, path after path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import CPUWindow, cpu_seconds, goal, machine_load, out_dir, percentiles, table, write_json
from rtcam_process import stop_processes
from test_ice_nat import (CAMERA_LAN_ADDRESS, NATTopology, in_namespace, start_aiortc, start_camera, start_coturn,
                          watch)

# name, topology, rtcam's --turn form, camera's router blocks UDP, viewer on the camera's LAN
PATHS = {
    "direct host": (lambda: NATTopology(), "password", False, True),
    "direct srflx": (lambda: NATTopology(), "password", False, False),
    "relay UDP": (lambda: NATTopology(symmetric_viewer_nat=True, symmetric_camera_nat=True), "secret", False, False),
    "relay TCP": (lambda: NATTopology(symmetric_viewer_nat=True), "tcp", True, False),
    "relay TLS": (lambda: NATTopology(symmetric_viewer_nat=True), "tls", True, False),
}
CPU_PATHS = ("direct srflx", "relay UDP", "relay TCP")


def selected_pairs(status: dict) -> list:
    return [viewer["icePair"] for viewer in status.get("viewers", []) if viewer.get("icePair")]


def first_frames(topology: NATTopology, camera, runs: int, viewer_role: str, camera_address: str) -> list:
    results = []
    for _ in range(runs):
        summary, statuses = watch(topology, camera, seconds=1, connect_timeout=10,
                                  viewer_role=viewer_role, camera_address=camera_address)
        pairs = [pair for status in statuses for pair in selected_pairs(status)]
        results.append({"ok": summary.get("ok", False), "error": summary.get("error"),
                        "first_frame_ms": 1000 * summary["time_to_first_frame_s"] if summary.get("ok") else None,
                        "fps": summary.get("measurement", {}).get("fps"),
                        "local": pairs[-1]["local"] if pairs else None, "remote": pairs[-1]["remote"] if pairs else None})
        time.sleep(0.3)
    return results


def cpu_with_viewers(topology: NATTopology, camera, coturn_pids: list[int], count: int, seconds: float,
                     viewer_role: str, camera_address: str) -> dict:
    """`count` aiortc viewers at once; rtcam's and coturn's CPU over `seconds` once all are connected.
    The viewers join one after another: they share their router's public address, and rtcam lets
    only 2 sessions from one address be connecting at a time (429 beyond)."""
    viewers, connected = [], 0
    try:
        for index in range(count):
            # Each stays until the window is over: its measurement starts at its first frame.
            viewers.append(start_aiortc(topology, camera, seconds + 6 + 4 * (count - index), 15, viewer_role, camera_address))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                connected = len(selected_pairs(in_namespace(topology["cam"], camera.status)))
                if connected > index:
                    break
                time.sleep(0.2)
        time.sleep(1.0)   # past the first keyframes and the encoder's start
        rtcam = CPUWindow(camera.process.pid)
        coturn_start = sum(cpu_seconds(pid) for pid in coturn_pids)
        rtcam.start()
        time.sleep(seconds)
        rtcam.stop()
        coturn_cpu = sum(cpu_seconds(pid) for pid in coturn_pids) - coturn_start
        status = in_namespace(topology["cam"], camera.status)
        pairs = selected_pairs(status)
    finally:
        summaries = []
        for viewer in viewers:
            try:
                out, _ = viewer.communicate(timeout=40)
                summaries.append(json.loads(out))
            except Exception as error:   # noqa: BLE001 — a viewer that failed is counted below
                viewer.kill()
                summaries.append({"ok": False, "error": str(error)})
    viewer_seconds = count * rtcam.seconds
    fps = [summary.get("measurement", {}).get("fps") for summary in summaries]
    return {"viewers": count, "connected": connected, "window_s": round(rtcam.seconds, 2),
            "rtcam_cpu_s": round(rtcam.cpu, 3), "coturn_cpu_s": round(coturn_cpu, 3),
            "rtcam_cpu_per_viewer_second": rtcam.cpu / viewer_seconds,
            "coturn_cpu_per_viewer_second": coturn_cpu / viewer_seconds,
            "pairs": [f"{pair['local']}/{pair['remote']}" for pair in pairs], "viewer_fps": fps,
            "viewers_ok": sum(bool(summary.get("ok")) for summary in summaries),
            "viewer_errors": [summary.get("error") for summary in summaries if not summary.get("ok")]}


def one_path(name: str, runs: int, viewer_counts: list[int], seconds: float, directory: Path) -> dict:
    make_topology, turn, udp_blocked, lan_viewer = PATHS[name]
    topology = make_topology()
    directory.mkdir(parents=True, exist_ok=True)
    started: list = []
    try:
        topology.create()
        started += start_coturn(topology, directory, directory / "coturn.log", directory / "coturn-secret.log")
        coturn_pids = [process.pid for process in started]
        topology.processes = started
        viewer_role, camera_address = ("view", "203.0.113.2")
        if lan_viewer:
            viewer_role, camera_address = topology.add_lan_viewer(), CAMERA_LAN_ADDRESS
        if udp_blocked:
            topology.block_outbound_udp("rcam")
        camera = start_camera(topology, directory, None, "full", turn=turn, udp_blocked=udp_blocked)
        result = {"path": name, "load_before": machine_load(),
                  "runs": first_frames(topology, camera, runs, viewer_role, camera_address)}
        if name in CPU_PATHS:
            result["cpu"] = [cpu_with_viewers(topology, camera, coturn_pids, count, seconds, viewer_role, camera_address)
                             for count in viewer_counts]
        result["load_after"] = machine_load()
        return result
    finally:
        stop_processes(started)
        topology.destroy()


def bench_turn_first_frame(args) -> dict:
    directory = out_dir() / "logs" / "turnfirstframe"
    chosen, counts = args.paths or list(PATHS), args.relay_viewers
    paths = [one_path(name, args.runs, counts, args.seconds, directory / name.replace(" ", "-")) for name in chosen]
    rows = []
    for path in paths:
        first = percentiles([run["first_frame_ms"] for run in path["runs"] if run["first_frame_ms"] is not None])
        path["first_frame_ms"] = first
        kinds: dict[str, int] = {}
        for run in path["runs"]:
            kinds[f"{run['local']}/{run['remote']}"] = kinds.get(f"{run['local']}/{run['remote']}", 0) + 1
        path["pairs"] = kinds
        rows.append([path["path"], f"{sum(run['ok'] for run in path['runs'])}/{len(path['runs'])}",
                     first.get("p50"), first.get("p95"), first.get("max"), ", ".join(f"{k} x{v}" for k, v in kinds.items()),
                     f"{path['load_before']['loadavg_1m']:.1f}"])
    relay = next((path for path in paths if path["path"] == "relay UDP"), None)
    relay_p95 = relay["first_frame_ms"].get("p95") if relay else None
    table(f"WHEP POST -> first decoded frame in aiortc across two NATs, {args.runs} runs each "
          f"(goal through the relay: p95 <= 400 ms -> {goal(relay_p95, 400)})",
          ["path", "ok", "p50 ms", "p95 ms", "max ms", "rtcam's pair (local/remote)", "load 1m"], rows)
    cpu_rows = []
    for count in counts:
        for path in paths:
            point = next((p for p in path.get("cpu", []) if p["viewers"] == count), None)
            if point is None:
                continue
            cpu_rows.append([count, path["path"], f"{point['connected']}/{count}", f"{point['viewers_ok']}/{count}",
                             1000 * point["rtcam_cpu_per_viewer_second"], 1000 * point["coturn_cpu_per_viewer_second"],
                             100 * point["rtcam_cpu_s"] / point["window_s"], 100 * point["coturn_cpu_s"] / point["window_s"],
                             ", ".join(sorted(set(point["pairs"])))])
    if cpu_rows:
        table(f"CPU per viewer, {args.seconds:.0f} s windows with all viewers connected (/proc/PID/stat; coturn = both its processes)",
              ["viewers", "path", "connected", "ok", "rtcam ms/viewer-s", "coturn ms/viewer-s", "rtcam % core",
               "coturn % core", "rtcam's pairs"], cpu_rows)
    result = {"paths": paths, "goal_p95_ms": 400}
    write_json("turnfirstframe", result)
    return result
