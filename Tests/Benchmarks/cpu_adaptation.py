"""CPU adaptation under a real CPU quota (issue 24): the daemon alone in a cgroup limited to a share of
one core, its test pattern at 1080p30, an aiortc viewer (Tests/Interop/whep_client.py) decoding the
stream and reading the pattern's capture clock back from every picture (glass_to_glass.py): decoded
frames per second, the size they come in, glass-to-glass latency, and what /api/status and the log say
the encoder did.

    python cpu_adaptation.py --percent 10 --degradation resolution off --seconds 20     # prints JSON

Needs root (the cgroup) and a namespace with `lo` (run.sh / Tests/Interop/run.sh make one).
`Tests/Interop/test_cpu_adaptation.py` runs a short version; `bash Tests/Benchmarks/run.sh cpuadapt`
the long one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "Interop"))
sys.path.insert(0, str(HERE))

from cpu_quota import CpuQuota  # noqa: E402
from glass_to_glass import TimestampReadingClient  # noqa: E402
from rtcam_process import RtcamProcess  # noqa: E402


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def status_of(daemon: RtcamProcess, attempts: int = 4) -> dict:
    """/api/status, tried again when it times out: a daemon held to 5 % of a core by its quota may
    answer late while x264 still takes all of it."""
    for attempt in range(attempts):
        try:
            return await asyncio.to_thread(daemon.status)
        except (OSError, TimeoutError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    return {}


async def watch(daemon: RtcamProcess, source_size: tuple[int, int], adapt_timeout: float, settle: float,
                seconds: float, expect_adaptation: bool) -> dict:
    client = TimestampReadingClient(daemon.base_url, source_size=source_size)
    started = time.monotonic()
    try:
        await client.connect()
        await client.wait_for_media(timeout=30)
        first_frame_s = time.monotonic() - started
        # Until the encoder's format has not changed for `settle` seconds (or `adapt_timeout` ran out).
        adapted_after = None
        last_change, last_changes = time.monotonic(), -1
        status = {}
        while time.monotonic() - started < adapt_timeout:
            status = await status_of(daemon)
            changes = (status.get("adaptation") or {}).get("changes", 0)
            if changes != last_changes:
                last_change, last_changes = time.monotonic(), changes
                if changes > 0 and adapted_after is None:
                    adapted_after = time.monotonic() - started
            if time.monotonic() - last_change >= settle and (changes > 0 or not expect_adaptation):
                break
            await asyncio.sleep(0.25)
        client.latencies_ms.clear()
        client.unreadable = 0
        client.recording = True
        client.video.sizes = []
        frames_before = client.video.frames
        cpu_before = process_cpu_seconds(daemon.process.pid)
        window_start = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - window_start
        client.recording = False
        frames = client.video.frames - frames_before
        cpu = process_cpu_seconds(daemon.process.pid) - cpu_before
        status = await status_of(daemon)
    finally:
        await client.close()
    latencies = client.latencies_ms
    return {
        "first_frame_s": round(first_frame_s, 2),
        "adapted_after_s": None if adapted_after is None else round(adapted_after, 1),
        "fps": round(frames / elapsed, 2), "frames": frames, "seconds": round(elapsed, 2),
        "width": client.video.width, "height": client.video.height, "sizes": client.video.sizes,
        "glass_to_glass_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
                              "max": max(latencies) if latencies else None, "count": len(latencies)},
        "unreadable_frames": client.unreadable,
        "daemon_cpu_share_of_a_core": round(cpu / elapsed, 3),
        "adaptation": status.get("adaptation"),
        "server_fps": status.get("framesPerSecond"),
        "errors": client.errors,
        "status_fps": status.get("framesPerSecond"),
    }


def run(binary: str, percent: float, degradation: str, seconds: float, size: str = "1920x1080", fps: int = 30,
        bitrate_kbps: int = 2000, adapt_timeout: float = 30, settle: float = 4, workdir: str | None = None) -> dict:
    """One daemon in a `percent` % quota; returns the measurement and the log's adaptation lines."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="rtcam-cpuadapt-"))
    width, height = (int(part) for part in size.split("x"))
    name = f"cpuadapt-{percent:g}pct-{degradation}-{time.monotonic_ns()}"
    daemon = RtcamProcess(state_dir=workdir / f"state-{name}", log_path=workdir / f"rtcam-{name}.log",
                          binary=binary, size=size, fps=fps, bitrate_kbps=bitrate_kbps,
                          extra_args=("--audio", "none", "--degradation", degradation))
    with CpuQuota(percent) as quota:
        daemon.start()
        try:
            quota.add(daemon.process.pid)
            throttled_before = quota.throttled_seconds()
            result = asyncio.run(watch(daemon, (width, height), adapt_timeout, settle, seconds,
                                       expect_adaptation=degradation != "off"))
            result["throttled_s"] = round(quota.throttled_seconds() - throttled_before, 2)
        finally:
            code = daemon.stop(timeout=10)
    result.update({"percent_of_a_core": percent, "degradation": degradation, "configured": f"{size}@{fps}",
                   "exit_code": code, "log": [line for line in daemon.log_text().splitlines() if "encoder load:" in line],
                   "binary": binary})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("RTCAM_BIN", str(HERE.parents[1] / ".build/release/rtcam")))
    parser.add_argument("--percent", type=float, nargs="+", default=[10])
    parser.add_argument("--degradation", nargs="+", default=["resolution", "off"])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--settle", type=float, default=4)
    parser.add_argument("--adapt-timeout", type=float, default=40)
    args = parser.parse_args()
    results = [run(args.binary, percent, degradation, args.seconds, size=args.size, fps=args.fps,
                   adapt_timeout=args.adapt_timeout, settle=args.settle)
               for percent in args.percent for degradation in args.degradation]
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")
    for r in results:
        g2g = r["glass_to_glass_ms"]
        current = (r["adaptation"] or {}).get("current", {})
        print(f"# {r['percent_of_a_core']:>4} % of a core, --degradation {r['degradation']:<10}: "
              f"{r['fps']:5.1f} fps decoded at {r['width']}x{r['height']} "
              f"(encoder {current.get('width')}x{current.get('height')}@{current.get('fps')}), "
              f"glass-to-glass p50 {g2g['p50']} ms p95 {g2g['p95']} ms, daemon CPU {r['daemon_cpu_share_of_a_core']:.3f} core",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
