"""Start and stop the rtcam daemon for interop tests (standard library only).

    daemon = RtcamProcess(state_dir=tmp / "state", log_path=tmp / "rtcam.log")
    daemon.start()            # free ports, waits for GET /healthz == 200
    RtcamProcess(..., env={"RTCAM_X264_THREADS": "2"})   # variables for the daemon, over os.environ
    daemon.url("/whep")       # http://127.0.0.1:PORT/whep
    code = daemon.stop()      # SIGTERM; raises if it takes more than 5 s
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

DEFAULT_BINARY = "/work/main/.build/debug/rtcam"
HOST = "127.0.0.1"
TEST_PASSWORD = "interop-test-password"   # set on each fresh state dir to read the JSON API


class RtcamError(RuntimeError):
    pass


def rtcam_binary() -> str:
    return os.environ.get("RTCAM_BIN") or DEFAULT_BINARY


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out for `kind` (TCP or UDP) on 127.0.0.1."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def http_request(method: str, url_path: str, port: int, body: Optional[bytes] = None,
                 headers: Optional[dict] = None, timeout: float = 5.0, host: str = HOST, tls=None):
    """One HTTP exchange (HTTPS with `tls`, an ssl.SSLContext); returns (status, headers as a
    case-insensitive message, body bytes)."""
    connection = (http.client.HTTPSConnection(host, port, timeout=timeout, context=tls) if tls is not None
                  else http.client.HTTPConnection(host, port, timeout=timeout))
    try:
        connection.request(method, url_path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


class RtcamProcess:
    def __init__(self, state_dir: Path, log_path: Path, binary: Optional[str] = None,
                 extra_args: tuple[str, ...] = (), size: str = "640x480", fps: int = 30,
                 bitrate_kbps: int = 1000, max_viewers: Optional[int] = None,
                 startup_timeout: float = 20.0, https: bool = False, candidate_addresses: tuple[str, ...] = (HOST,),
                 env: Optional[dict[str, str]] = None):
        self.binary = binary or rtcam_binary()
        # Variables for the daemon only (RTCAM_X264_THREADS, RTCAM_DEBUG_*), over this process's
        # environment: the caller's own os.environ is left as it was.
        self.env = dict(env or {})
        self.state_dir = Path(state_dir)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args)
        self.candidate_addresses = list(candidate_addresses)
        self.size, self.fps, self.bitrate_kbps, self.max_viewers = size, fps, bitrate_kbps, max_viewers
        self.startup_timeout = startup_timeout
        self.http_port = 0
        # HTTPS is the daemon's default; the tests that are about it turn it on, the others keep
        # the settings API on plain HTTP (with HTTPS on it redirects there).
        self.https = https
        self.https_port = 0
        self.media_port = 0
        self.rtsp_port = 0
        self.process: Optional[subprocess.Popen] = None
        self.exit_code: Optional[int] = None
        self.cookie: Optional[str] = None
        self.healthy = False        # /healthz answered 200 after start()
        self.died_early = False     # stop() found it already gone (crashed or exited on its own)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def https_url(self, path: str = "/", host: str = HOST) -> str:
        return f"https://{host}:{self.https_port}{path}"

    @property
    def https_certificate_pem(self) -> str:
        """The self-signed HTTPS certificate the daemon made (its key stays out of this)."""
        text = (self.state_dir / "https-certificate.pem").read_text()
        start = text.index("-----BEGIN CERTIFICATE-----")
        return text[start:text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"

    def command(self) -> list[str]:
        args = [self.binary,
                "--http-port", str(self.http_port), "--https-port", str(self.https_port if self.https else 0),
                "--media-port", str(self.media_port), "--rtsp-port", str(self.rtsp_port),
                "--state-dir", str(self.state_dir),
                "--source", "test-pattern", "--audio", "test-tone",
                "--size", self.size, "--fps", str(self.fps), "--bitrate", str(self.bitrate_kbps)]
        for address in self.candidate_addresses:
            args += ["--candidate-address", address]
        if self.max_viewers is not None:
            args += ["--max-viewers", str(self.max_viewers)]
        return args + self.extra_args

    def start(self) -> "RtcamProcess":
        """Starts the daemon on free ports. A port found free can be taken by another process before
        rtcam binds it (rtcam binds [::], both families; free_port probes 127.0.0.1): that start is
        tried again on other ports, twice at most."""
        for attempt in range(3):
            logged_before = len(self.log_text())
            try:
                return self._start_once()
            except RtcamError:
                this_attempt = self.log_text()[logged_before:]
                if attempt == 2 or self.exit_code is None or "Address already in use" not in this_attempt:
                    raise
                self.exit_code = None
        raise RtcamError("unreachable")

    def _start_once(self) -> "RtcamProcess":
        if not os.path.isfile(self.binary) or not os.access(self.binary, os.X_OK):
            raise RtcamError(f"rtcam binary not found or not executable: {self.binary} "
                             "(build it with `swift build`, or point RTCAM_BIN at it)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port(socket.SOCK_STREAM)
        self.https_port = free_port(socket.SOCK_STREAM)
        while self.https_port == self.http_port:
            self.https_port = free_port(socket.SOCK_STREAM)
        self.media_port = free_port(socket.SOCK_DGRAM)
        self.rtsp_port = free_port(socket.SOCK_STREAM)
        while self.rtsp_port in (self.http_port, self.https_port):
            self.rtsp_port = free_port(socket.SOCK_STREAM)
        log = open(self.log_path, "ab")
        log.write(f"$ {' '.join(self.command())}\n".encode())
        log.flush()
        try:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, start_new_session=True,
                                            env={**os.environ, **self.env} if self.env else None)
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout
        last_problem = "no answer yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.exit_code = code
                raise RtcamError(f"rtcam exited with code {code} before /healthz answered\n{self.log_tail()}")
            try:
                status, _, body = http_request("GET", "/healthz", self.http_port, timeout=1.0)
                if status == 200:
                    self.healthy = True
                    return self
                last_problem = f"/healthz answered {status}: {body[:200]!r}"
            except OSError as error:
                last_problem = f"/healthz: {error}"
            time.sleep(0.1)
        self.kill()
        raise RtcamError(f"rtcam not healthy within {self.startup_timeout:.0f} s ({last_problem})\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM and wait; raises RtcamError if it needs more than `timeout` seconds (then kills it)."""
        if self.process is None:
            return self.exit_code if self.exit_code is not None else 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                self.exit_code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RtcamError(f"rtcam did not exit within {timeout:.0f} s of SIGTERM (killed)\n{self.log_tail()}")
            with open(self.log_path, "ab") as log:
                log.write(f"# exited with {self.exit_code} {time.monotonic() - started:.2f} s after SIGTERM\n".encode())
        else:
            self.exit_code = self.process.returncode
            self.died_early = True
        self.process = None
        return self.exit_code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)
        if self.process is not None:
            self.exit_code = self.process.returncode
        self.process = None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_text().splitlines()
        return f"--- rtcam log {self.log_path} (last {min(lines, len(text))} lines) ---\n" + "\n".join(text[-lines:])

    # ---- HTTP helpers ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[dict] = None, timeout: float = 5.0):
        return http_request(method, path, self.http_port, body=body, headers=headers, timeout=timeout)

    def setup_code(self) -> str:
        """The first-run setup code, as the daemon saved it (a person reads it from the journal or
        the state directory; the harness reads the file)."""
        path = self.state_dir / "setup-code"
        try:
            return path.read_text().strip()
        except OSError as error:
            raise RtcamError(f"no setup code at {path}: {error}") from error

    def log_in(self, viewing_requires_password: Optional[bool] = False) -> str:
        """The settings API needs a session cookie. A fresh state dir has no password: choose
        TEST_PASSWORD with the setup code (POST /api/password); if one is set already, log in with it
        (POST /api/login). `viewing_requires_password` is the first-run choice: False (the harness's
        default) keeps viewing open as it was while no password existed, so tests that watch
        anonymously and read /api/status keep watching; None leaves the daemon's default (protected)."""
        json_type = {"Content-Type": "application/json"}
        body = json.dumps({"password": TEST_PASSWORD}).encode()
        status, headers, answer = self.request("POST", "/api/login", body, json_type)
        if status == 409:  # no password yet
            first = {"password": TEST_PASSWORD, "setupCode": self.setup_code()}
            if viewing_requires_password is not None:
                first["viewingRequiresPassword"] = viewing_requires_password
            status, headers, answer = self.request("POST", "/api/password", json.dumps(first).encode(), json_type)
        cookie = headers.get("Set-Cookie", "")
        if status != 200 or not cookie:
            raise RtcamError(f"cannot log in to the settings API ({status}): {answer[:300]!r}")
        self.cookie = cookie.split(";", 1)[0]
        return self.cookie

    def api_get(self, path: str) -> dict:
        """GET a JSON API endpoint, logging in first if it answers 401."""
        for attempt in range(2):
            headers = {"Cookie": self.cookie} if self.cookie else {}
            status, _, body = self.request("GET", path, headers=headers)
            if status == 401 and attempt == 0:
                self.log_in()
                continue
            if status != 200:
                raise RtcamError(f"GET {path} answered {status}: {body[:300]!r}")
            return json.loads(body)
        raise RtcamError(f"GET {path}: still 401 after logging in")

    def status(self) -> dict:
        return self.api_get("/api/status")


def viewer_count(status: dict) -> int:
    """The number of viewers in /api/status, whichever of the plausible shapes it takes."""
    for key in ("viewers", "viewerCount", "viewer_count", "sessions"):
        value = status.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, list):
            return len(value)
        if isinstance(value, dict):
            for inner in ("count", "active", "current"):
                if isinstance(value.get(inner), int):
                    return value[inner]
    raise RtcamError(f"/api/status has no viewer count (looked for viewers/viewerCount/sessions): {status}")


def stop_processes(processes: list[subprocess.Popen], timeout: float = 5.0) -> None:
    """SIGTERM to each still running, then SIGKILL to whichever is not gone within `timeout`."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
