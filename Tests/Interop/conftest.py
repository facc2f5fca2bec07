"""Fixtures for the interop tests: the rtcam daemon and the browsers that watch it.

Run through Tests/Interop/run.sh, which puts the whole run in a fresh network namespace holding only
`lo`. A missing or broken daemon makes these tests FAIL (never skip), with the daemon's log attached.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rtcam_process import RtcamError, RtcamProcess, rtcam_binary, viewer_count

INTEROP_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEROP_DIR.parents[1]
SDP_FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "sdp"


def _attachments(item) -> list:
    return item.__dict__.setdefault("_rtcam_attachments", [])


def attach(request, title: str, provider) -> None:
    """Show `provider()` (a string) in the report if this test fails."""
    _attachments(request.node).append((title, provider))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for title, provider in _attachments(item):
            try:
                text = provider()
            except Exception as error:  # noqa: BLE001 — a report must still come out
                text = f"(could not collect: {error!r})"
            if text:
                report.sections.append((f"{title} ({report.when})", text))


@pytest.fixture
def rtcam_factory(request, tmp_path):
    """Starts daemons (`rtcam_factory(max_viewers=1)`); each is stopped with SIGTERM at teardown and
    must exit with code 0 within 5 s (a daemon that died during the test fails it too)."""
    started: list[RtcamProcess] = []

    def start(**options) -> RtcamProcess:
        index = len(started)
        daemon = RtcamProcess(state_dir=tmp_path / f"rtcam-state-{index}",
                              log_path=tmp_path / f"rtcam-{index}.log", **options)
        started.append(daemon)
        attach(request, f"rtcam #{index} stderr", lambda: daemon.log_tail(150))
        problem = None
        try:
            daemon.start()
        except RtcamError as error:
            problem = _without_log(error)
        if problem is not None:
            pytest.fail(f"could not start rtcam: {problem}", pytrace=False)
        return daemon

    yield start

    problems = []
    for daemon in started:
        if not daemon.healthy:
            daemon.kill()       # its start-up failure was already reported
            continue
        try:
            code = daemon.stop(timeout=5.0)
        except RtcamError as error:
            problems.append(_without_log(error))
            continue
        if daemon.died_early:
            problems.append(f"rtcam (port {daemon.http_port}) died during the test with code {code}")
        elif code != 0:
            problems.append(f"rtcam exited with code {code} after SIGTERM (expected 0)")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def rtcam(rtcam_factory) -> RtcamProcess:
    """One daemon: test pattern + test tone, 640x480 at 30 fps, 1000 kb/s, on free ports."""
    return rtcam_factory()


@pytest.fixture
def chromium(request, tmp_path):
    from cdp import Chromium, CDPError

    browser = Chromium(log_path=str(tmp_path / "chromium.log"), user_data_dir=str(tmp_path / "chromium-profile"))
    attach(request, "chromium log", lambda: _tail(tmp_path / "chromium.log", 60))
    problem = None
    try:
        browser.start()
    except CDPError as error:
        problem = str(error)
    if problem is not None:
        browser.close()
        pytest.fail(f"could not start Chromium: {problem}", pytrace=False)
    yield browser
    browser.close()


def _without_log(error: Exception) -> str:
    """The message of an RtcamError minus the log tail it carries (the report attaches the log)."""
    return str(error).split("\n--- rtcam log", 1)[0]


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for_viewers(daemon: RtcamProcess, expected: int, timeout: float = 5.0) -> int:
    """Poll /api/status until the viewer count equals `expected`; return the last count seen."""
    deadline = time.monotonic() + timeout
    count = -1
    while True:
        count = viewer_count(daemon.status())
        if count == expected or time.monotonic() >= deadline:
            return count
        time.sleep(0.2)


class MachineLoad:
    """The machine's CPU load while a test runs: the highest 1-minute load average seen, sampled
    every half second by a thread. Real-time measurements (audio played or captured without a gap)
    cannot hold when other work takes the CPU from every thread of the test; a test that sees such a
    failure *and* the daemon's own sign of it (an xrun, a skipped backlog) reports it as an expected
    failure on an overloaded machine, never as a pass."""

    def __init__(self) -> None:
        import threading

        self.cores = os.cpu_count() or 1
        self.peak = os.getloadavg()[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="machine-load", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, os.getloadavg()[0])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    @property
    def overloaded(self) -> bool:
        """More than two runnable threads per core on average over a minute."""
        return self.peak > 2 * self.cores

    def describe(self) -> str:
        return f"load average up to {self.peak:.1f} on {self.cores} cores"


@pytest.fixture
def machine_load():
    load = MachineLoad()
    yield load
    load.stop()


def read_fixture(name: str) -> str:
    path = SDP_FIXTURES / name
    if not path.is_file():
        pytest.fail(f"SDP fixture missing: {path}", pytrace=False)
    return path.read_text()


def pytest_report_header(config):
    binary = rtcam_binary()
    state = "present" if os.access(binary, os.X_OK) else "MISSING"
    return [f"rtcam binary: {binary} ({state})"]


@pytest.fixture
def firefox(request, tmp_path):
    from marionette import Firefox, MarionetteError

    log = tmp_path / "firefox.log"
    browser = Firefox(log_path=str(log), profile_dir=str(tmp_path / "firefox-profile"))
    attach(request, "firefox log (page console included)", lambda: _tail(log, 80))
    problem = None
    try:
        browser.start()
    except MarionetteError as error:
        problem = str(error)
    if problem is not None:
        browser.close()
        pytest.fail(f"could not start Firefox: {problem}", pytrace=False)
    yield browser
    browser.close()
