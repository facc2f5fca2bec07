"""A CPU quota for one process, the way a slow board or a crowded container limits the daemon: a cgroup
made for it (v2: `cpu.max`; v1: the `cpu` controller's `cpu.cfs_quota_us`/`cpu.cfs_period_us`),
with the process moved in (all of its threads) and the group removed afterwards. Needs root.

    with CpuQuota(percent_of_a_core=10) as quota:
        quota.add(pid)
        ...
        quota.throttled_seconds()   # how long the kernel held the group back
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class CpuQuotaError(RuntimeError):
    pass


def cgroup_cpu_base() -> tuple[Path, int]:
    """Where a new CPU-limited group can be made, and the cgroup version (1 or 2)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        if "cpu" not in controllers:
            raise CpuQuotaError("cgroup v2 without the cpu controller")
        return CGROUP_ROOT, 2
    if (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        return CGROUP_ROOT / "cpu", 1
    raise CpuQuotaError(f"no cgroup CPU controller under {CGROUP_ROOT}")


class CpuQuota:
    def __init__(self, percent_of_a_core: float, name: Optional[str] = None):
        self.percent = percent_of_a_core
        base, self.version = cgroup_cpu_base()
        self.path = base / (name or f"rtcam-cpu-quota-{os.getpid()}-{time.monotonic_ns()}")
        self.pids: list[int] = []

    def __enter__(self) -> "CpuQuota":
        if os.geteuid() != 0:
            raise CpuQuotaError("a cgroup CPU quota needs root")
        quota_us = max(1000, int(PERIOD_US * self.percent / 100))
        if self.version == 2:
            parent = self.path.parent
            controllers = (parent / "cgroup.subtree_control").read_text().split()
            if "cpu" not in controllers:
                (parent / "cgroup.subtree_control").write_text("+cpu")
        self.path.mkdir()
        if self.version == 2:
            (self.path / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota_us))
        return self

    def add(self, pid: int) -> None:
        """Moves the process (every thread of it) into the group."""
        (self.path / "cgroup.procs").write_text(str(pid))
        self.pids.append(pid)

    def throttled_seconds(self) -> float:
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_usec":
                return int(value) / 1e6
            if key == "throttled_time":           # v1: nanoseconds
                return int(value) / 1e9
        return 0.0

    def used_seconds(self) -> float:
        if self.version == 2:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
            return 0.0
        accounting = CGROUP_ROOT / "cpuacct" / self.path.name / "cpuacct.usage"
        if accounting.exists():
            return int(accounting.read_text()) / 1e9
        return float("nan")

    def __exit__(self, *exc) -> None:
        # Whatever is still inside goes back to the root group, then the group goes.
        root_procs = self.path.parent / "cgroup.procs"
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                try:
                    root_procs.write_text(pid)
                except OSError:
                    pass
        except OSError:
            pass
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
