"""Shared pieces of the benchmarks: where the binaries are, starting the daemon, reading a process's
CPU and memory from /proc, running the load generator, writing JSON and tables."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "Tests" / "Interop"))

from rtcam_process import RtcamProcess, viewer_count  # noqa: E402,F401  (Tests/Interop)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def out_dir() -> Path:
    path = Path(os.environ.get("RTCAM_BENCH_OUT", REPO / "out" / "bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def rtcam_binary() -> str:
    return os.environ.get("RTCAM_BIN", str(REPO / ".build" / "release" / "rtcam"))


def bench_binary() -> str:
    return os.environ.get("RTCAM_BENCH_BIN", str(REPO / ".build" / "release" / "rtcam-bench"))


# ---- /proc ---------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` (/proc/PID/stat fields 14 and 15), seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kb(pid: int) -> dict:
    """VmRSS (resident now) and VmHWM (peak resident) of `pid`, kB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[name] = int(rest.split()[0])
    return values


def resident_by_mapping_kind(pid: int) -> dict:
    """Where `pid`'s resident memory is, kB, from /proc/PID/smaps: `heap` (the main arena, [heap]),
    `arenas` (glibc's other arenas: anonymous mappings that begin 64 MB aligned, and the
    reserved rest of them), `stacks` (anonymous
    mappings of exactly 8 MB: the threads' stacks), `chunks` (other anonymous mappings: what malloc
    mapped on its own, x264's buffers and the frame pools among them; `chunk_sizes` lists the larger
    ones as "size/resident" kB), `file` (the binary and libraries)."""
    kinds = {"heap": 0, "arenas": 0, "stacks": 0, "chunks": 0, "file": 0}
    chunk_sizes = []
    size = 0
    kind = None
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            for line in smaps:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    start, end = (int(part, 16) for part in first.split("-"))
                    size = (end - start) // 1024
                    fields = line.split()
                    path = fields[5] if len(fields) > 5 else ""
                    if path == "[heap]":
                        kind = "heap"
                    elif path.startswith("["):
                        kind = "stacks" if path == "[stack]" else "file"
                    elif path:
                        kind = "file"
                    elif start % (64 << 20) == 0 or size >= 32 * 1024:
                        kind = "arenas"   # a thread arena's heap begins 64 MB aligned (HEAP_MAX_SIZE)
                    elif size == 8192:
                        kind = "stacks"
                    else:
                        kind = "chunks"
                elif first == "Rss:" and kind:
                    resident = int(line.split()[1])
                    kinds[kind] += resident
                    if kind == "chunks" and size >= 128:
                        chunk_sizes.append(f"{size}/{resident}")
    except OSError:
        return {}
    kinds["chunk_sizes"] = " ".join(sorted(chunk_sizes, key=lambda text: -int(text.split("/")[0])))
    return kinds


def udp_counters() -> dict:
    """The namespace's UDP counters (/proc/net/snmp): drops on loopback show up as RcvbufErrors."""
    with open("/proc/net/snmp") as snmp:
        lines = [line.split() for line in snmp if line.startswith("Udp:")]
    return dict(zip(lines[0][1:], (int(v) for v in lines[1][1:])))


def machine_load() -> dict:
    """How busy the shared machine was (the benchmarks share 2 cores with other work)."""
    with open("/proc/loadavg") as loadavg:
        one, five, fifteen = loadavg.read().split()[:3]
    return {"loadavg_1m": float(one), "loadavg_5m": float(five), "cpus": os.cpu_count()}


class CPUWindow:
    """CPU of one process between two instants."""

    def __init__(self, pid: int):
        self.pid = pid
        self.start_cpu = self.end_cpu = 0.0
        self.start_wall = self.end_wall = 0.0
        self.start_memory: dict = {}
        self.end_memory: dict = {}

    def start(self) -> None:
        self.start_wall = time.monotonic()
        self.start_cpu = cpu_seconds(self.pid)
        self.start_memory = memory_kb(self.pid)

    def stop(self) -> None:
        self.end_cpu = cpu_seconds(self.pid)
        self.end_wall = time.monotonic()
        self.end_memory = memory_kb(self.pid)

    @property
    def seconds(self) -> float:
        return self.end_wall - self.start_wall

    @property
    def cpu(self) -> float:
        return self.end_cpu - self.start_cpu

    @property
    def percent_of_core(self) -> float:
        return 100 * self.cpu / self.seconds if self.seconds > 0 else 0.0

    def json(self) -> dict:
        return {"wall_s": round(self.seconds, 3), "cpu_s": round(self.cpu, 3),
                "percent_of_core": round(self.percent_of_core, 2),
                "rss_kb_start": self.start_memory.get("VmRSS"), "rss_kb_end": self.end_memory.get("VmRSS"),
                "hwm_kb_end": self.end_memory.get("VmHWM")}


def measure_idle(pid: int, seconds: float) -> CPUWindow:
    window = CPUWindow(pid)
    window.start()
    time.sleep(seconds)
    window.stop()
    return window


# ---- processes -----------------------------------------------------------------------------------

def start_daemon(name: str, size: str = "1280x720", fps: int = 30, bitrate: int = 2000, max_viewers: int = 250,
                 extra: tuple[str, ...] = (), https: bool = False, env: Optional[dict[str, str]] = None) -> RtcamProcess:
    """rtcam on free loopback ports with a fresh state dir; its log under out/bench/logs/. `https`:
    the HTTPS listener on (the daemon's default; off unless a benchmark is about it or about footprint).
    `env`: variables for the daemon, over this process's environment."""
    logs = out_dir() / "logs"
    logs.mkdir(exist_ok=True)
    state = out_dir() / "state" / name
    if state.exists():
        subprocess.run(["rm", "-rf", str(state)], check=True)
    daemon = RtcamProcess(state_dir=state, log_path=logs / f"rtcam-{name}.log", binary=rtcam_binary(),
                          size=size, fps=fps, bitrate_kbps=bitrate, max_viewers=max_viewers,
                          extra_args=tuple(extra), https=https, env=env)
    log = logs / f"rtcam-{name}.log"
    if log.exists():
        log.unlink()
    daemon.start()
    return daemon


def run_loadgen(url: str, viewers: int, seconds: float, json_path: Path,
                on_ready: Optional[Callable[[], None]] = None, on_done: Optional[Callable[[], None]] = None,
                extra: tuple[str, ...] = (), echo: bool = True, niceness: int = 0,
                on_line: Optional[Callable[[str], None]] = None) -> dict:
    """`rtcam-bench loadgen`; calls on_ready when every viewer is connected (the measured window
    starts) and on_done when the window ends, then returns the load generator's JSON."""
    # niceness > 0: the load generator yields the CPU to the daemon under test (2 shared cores).
    command = (["nice", "-n", str(niceness)] if niceness else []) + [bench_binary(), "loadgen", "--url", url, "--viewers", str(viewers), "--seconds", str(seconds),
               "--json", str(json_path), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if on_line:
            on_line(line)
        if line.startswith("READY") and on_ready:
            on_ready()
        elif line.startswith("DONE") and on_done:
            on_done()
        if echo:
            sys.stdout.write("    " + line)
    code = process.wait()
    if code != 0:
        raise RuntimeError(f"loadgen exited with {code}: {''.join(output[-20:])}")
    with open(json_path) as file:
        return json.load(file)


def run_tool(command: list[str], echo: bool = True) -> str:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if echo:
        sys.stdout.write("".join("    " + line + "\n" for line in result.stdout.splitlines()))
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {result.returncode}")
    return result.stdout


# ---- output --------------------------------------------------------------------------------------

def write_json(name: str, data: dict) -> Path:
    data = {"benchmark": name, "machine": machine_load(), "time_unix": int(time.time()), **data}
    path = out_dir() / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"json: {path}")
    return path


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in header]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(cells[0], widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def rank(fraction: float) -> float:
        index = max(0, min(len(ordered) - 1, int(-(-fraction * len(ordered) // 1)) - 1))
        return ordered[index]

    return {"count": len(ordered), "p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99),
            "min": ordered[0], "max": ordered[-1], "mean": sum(ordered) / len(ordered)}


def goal(value: Optional[float], limit: float, lower_is_better: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = value <= limit if lower_is_better else value >= limit
    return "meets" if ok else "MISSES"


def wait_for_healthz(process: subprocess.Popen, url: str, name: str, seconds: float = 30.0) -> Optional[str]:
    """Waits until `url`/healthz answers 200; the problem when the process exits first or the time runs out."""
    import urllib.request
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            return f"{name} exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return None
        except OSError:
            pass
        if time.monotonic() > deadline:
            return f"{name} did not answer /healthz within {seconds:.0f} s"
        time.sleep(0.1)
