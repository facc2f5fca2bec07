"""First frame through a TURN relay (issue 19; goal p95 <= 400 ms from the WHEP POST), beside a
direct path, on the NAT topology of Tests/Interop/test_ice_nat.py: rtcam behind one nft NAT, aiortc
behind another, coturn on the "internet" between them.

  relay:  both routers symmetric (address-and-port-dependent mapping): no direct path exists, media
          goes through coturn's relayed address (REST shared secret, `--turn-secret`);
  direct: both endpoint-independent: a reflexive pair, although rtcam offers its relayed address too.

For each, one camera and `runs` aiortc viewers one after another (each a fresh WHEP session: POST,
ICE, DTLS, the first decoded picture, 1 s of media, DELETE). aiortc's time from its POST to its first
decoded frame is what is measured; rtcam's /api/status names the pair the run used.
"""

from __future__ import annotations

import time
from pathlib import Path

from common import goal, out_dir, percentiles, table, write_json
from rtcam_process import stop_processes
from test_ice_nat import NATTopology, start_camera, start_coturn, watch


def one_path(name: str, topology: NATTopology, turn: str, runs: int, directory: Path) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    started = []
    try:
        topology.create()
        started += start_coturn(topology, directory, directory / "coturn.log", directory / "coturn-secret.log")
        topology.processes = started
        camera = start_camera(topology, directory, None, "full", turn=turn)
        results = []
        for run in range(runs):
            summary, statuses = watch(topology, camera, seconds=1, connect_timeout=10)
            pairs = [viewer["icePair"] for status in statuses for viewer in status.get("viewers", []) if viewer.get("icePair")]
            results.append({"ok": summary.get("ok", False), "error": summary.get("error"),
                            "first_frame_ms": 1000 * summary["time_to_first_frame_s"] if summary.get("ok") else None,
                            "fps": summary.get("measurement", {}).get("fps"),
                            "local": pairs[-1]["local"] if pairs else None, "remote": pairs[-1]["remote"] if pairs else None})
            time.sleep(0.3)
        return {"path": name, "runs": results}
    finally:
        stop_processes(started)
        topology.destroy()


def bench_turn_first_frame(args) -> dict:
    directory = out_dir() / "logs" / "turnfirstframe"
    paths = [one_path("relay", NATTopology(symmetric_viewer_nat=True, symmetric_camera_nat=True), "secret", args.runs,
                      directory / "relay"),
             one_path("direct", NATTopology(), "password", args.runs, directory / "direct")]
    rows = []
    for path in paths:
        first = percentiles([run["first_frame_ms"] for run in path["runs"] if run["first_frame_ms"] is not None])
        path["first_frame_ms"] = first
        kinds: dict[str, int] = {}
        for run in path["runs"]:
            kinds[f"{run['local']}/{run['remote']}"] = kinds.get(f"{run['local']}/{run['remote']}", 0) + 1
        path["pairs"] = kinds
        rows.append([path["path"], f"{sum(run['ok'] for run in path['runs'])}/{len(path['runs'])}",
                     first.get("p50"), first.get("p95"), first.get("max"), ", ".join(f"{k} x{v}" for k, v in kinds.items())])
    relay_p95 = paths[0]["first_frame_ms"].get("p95")
    table(f"WHEP POST -> first decoded frame in aiortc across two NATs, {args.runs} runs each "
          f"(goal through the relay: p95 <= 400 ms -> {goal(relay_p95, 400)})",
          ["path", "ok", "p50 ms", "p95 ms", "max ms", "rtcam's pair (local/remote)"], rows)
    result = {"paths": paths, "goal_p95_ms": 400}
    write_json("turnfirstframe", result)
    return result
