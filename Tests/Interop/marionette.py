"""A minimal Marionette client for headless Firefox (standard library only; Debian 12 has no geckodriver).

Marionette speaks over TCP: each message is `<length>:<json>`. The server greets first; a command is
`[0, id, name, params]` and its answer `[1, id, error, result]`. Firefox writes the port it listens
on (marionette.port=0 picks a free one) to `<profile>/MarionetteActivePort`.

    with Firefox(log_path="firefox.log") as firefox:
        firefox.navigate("http://127.0.0.1:8080/")
        print(firefox.execute("return document.title"))
        firefox.screenshot("shot.png")
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

DEFAULT_TIMEOUT = 15.0

# shared/DESIGN.md, "Other real WebRTC clients": Debian disables OpenH264, so these prefs make Firefox
# offer H.264 (decoded with the system FFmpeg); loopback ICE and no mDNS for the `lo`-only namespace.
# The rest keep a fresh profile quiet: no updates, telemetry, safe browsing or first-run pages, and
# console messages from pages go to stdout (our log) so failures can be read.
FIREFOX_PREFS: dict[str, Any] = {
    "marionette.port": 0,
    "gfx.blacklist.webrtc.hw.acceleration.h264": 1,
    "media.webrtc.hw.h264.enabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.navigator.permission.disabled": True,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False,
    "devtools.console.stdout.content": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "browser.region.update.enabled": False,
    "browser.search.update": False,
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "extensions.update.enabled": False,
    "extensions.blocklist.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "security.OCSP.enabled": 0,
    "services.settings.server": "http://127.0.0.1:9/",
    "remote.prefs.recommended": True,
}


class MarionetteError(RuntimeError):
    pass


def find_firefox() -> str:
    for name in (os.environ.get("FIREFOX_BIN"), "firefox-esr", "firefox"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    raise MarionetteError("no Firefox found: install Debian's `firefox-esr` (apt-get install firefox-esr) "
                          "or set FIREFOX_BIN")


def _pref_line(name: str, value: Any) -> str:
    return f"user_pref({json.dumps(name)}, {json.dumps(value)});\n"


class Firefox:
    def __init__(self, executable: Optional[str] = None, profile_dir: Optional[str] = None,
                 log_path: Optional[str] = None, prefs: Optional[dict] = None, launch_timeout: float = 30.0,
                 accept_insecure_certs: bool = False, trusted_certificates: tuple[str, ...] = ()):
        self.executable = executable or find_firefox()
        # WebDriver's acceptInsecureCerts (Firefox 153's Marionette does not take it on its own).
        self.accept_insecure_certs = accept_insecure_certs
        # PEM certificates the profile trusts as authorities (added to its NSS database with certutil,
        # as a user who trusts a camera's self-signed certificate would).
        self.trusted_certificates = trusted_certificates
        self._own_profile = profile_dir is None
        self.profile_dir = Path(profile_dir or tempfile.mkdtemp(prefix="rtcam-firefox-"))
        self.log_path = log_path
        self.prefs = dict(FIREFOX_PREFS, **(prefs or {}))
        self.launch_timeout = launch_timeout
        self.process: Optional[subprocess.Popen] = None
        self.sock: Optional[socket.socket] = None
        self._buffer = b""
        self._next_id = 0
        self.session: dict = {}

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "Firefox":
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        with open(self.profile_dir / "user.js", "w") as user_js:
            for name, value in self.prefs.items():
                user_js.write(_pref_line(name, value))
        if self.trusted_certificates:
            database = f"sql:{self.profile_dir}"
            if not (self.profile_dir / "cert9.db").exists():
                subprocess.run(["certutil", "-N", "-d", database, "--empty-password"], check=True, capture_output=True)
            for index, pem in enumerate(self.trusted_certificates):
                subprocess.run(["certutil", "-A", "-d", database, "-n", f"trusted-{index}", "-t", "C,,", "-a"],
                               input=pem.encode(), check=True, capture_output=True)
        port_file = self.profile_dir / "MarionetteActivePort"
        if port_file.exists():
            port_file.unlink()
        env = dict(os.environ, MOZ_HEADLESS="1", MOZ_CRASHREPORTER_DISABLE="1",
                   HOME=os.environ.get("HOME", str(self.profile_dir)))
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [self.executable, "--headless", "--marionette", "--no-remote", "--new-instance",
                 "--profile", str(self.profile_dir), "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        deadline = time.monotonic() + self.launch_timeout
        port = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MarionetteError(f"Firefox exited with code {self.process.returncode} during start-up")
            try:
                text = port_file.read_text().strip()
                if text:
                    port = int(text)
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        if port is None:
            self.close()
            raise MarionetteError(f"Firefox wrote no {port_file} within {self.launch_timeout:.0f} s")
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError as error:
                if time.monotonic() >= deadline:
                    self.close()
                    raise MarionetteError(f"cannot connect to Marionette on port {port}: {error}")
                time.sleep(0.1)
        hello = self._receive(timeout=10)
        if not isinstance(hello, dict) or hello.get("marionetteProtocol", 0) < 3:
            raise MarionetteError(f"unexpected Marionette greeting: {hello}")
        self.session = self.command("WebDriver:NewSession",
                                    {"capabilities": {"alwaysMatch": {"pageLoadStrategy": "normal",
                                                                      "acceptInsecureCerts": self.accept_insecure_certs}}})
        return self

    def __enter__(self) -> "Firefox":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, timeout: float = 5.0) -> None:
        """Marionette:Quit, then wait; kill the process group if Firefox lingers."""
        if self.sock is not None:
            try:
                self.command("Marionette:Quit", {"flags": ["eForceQuit"]}, timeout=timeout)
            except (MarionetteError, OSError):
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        if self.process is not None:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(self.process.pid, signal.SIGKILL)   # content processes share the group
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            self.process = None
        if self._own_profile:
            shutil.rmtree(self.profile_dir, ignore_errors=True)

    # ---- protocol --------------------------------------------------------------------------------

    def _receive(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            if b":" in self._buffer:
                length_text, rest = self._buffer.split(b":", 1)
                try:
                    length = int(length_text)
                except ValueError:
                    raise MarionetteError(f"garbled Marionette frame: {self._buffer[:60]!r}")
                if len(rest) >= length:
                    self._buffer = rest[length:]
                    return json.loads(rest[:length])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MarionetteError(f"no Marionette message within {timeout:.1f} s")
            assert self.sock is not None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            if not chunk:
                raise MarionetteError("Firefox closed the Marionette connection")
            self._buffer += chunk

    def command(self, name: str, params: Optional[dict] = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
        if self.sock is None:
            raise MarionetteError(f"{name}: not connected")
        self._next_id += 1
        message_id = self._next_id
        data = json.dumps([0, message_id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(max(0.1, deadline - time.monotonic()))
            if isinstance(message, list) and len(message) == 4 and message[0] == 1 and message[1] == message_id:
                _, _, error, result = message
                if error:
                    raise MarionetteError(f"{name}: {error.get('error')}: {error.get('message')}")
                return result
            # anything else (a late answer to a timed-out command) is dropped

    # ---- WebDriver conveniences ------------------------------------------------------------------

    def navigate(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.command("WebDriver:SetTimeouts", {"pageLoad": int(timeout * 1000), "script": int(timeout * 1000)})
        self.command("WebDriver:Navigate", {"url": url}, timeout=timeout + 2)

    def execute(self, script: str, args: Optional[list] = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Run `script` as a function body in the page (a returned Promise is awaited)."""
        result = self.command("WebDriver:ExecuteScript", {"script": script, "args": args or []},
                              timeout=timeout)
        return result.get("value") if isinstance(result, dict) else result

    def wait_for(self, expression: str, timeout: float = DEFAULT_TIMEOUT, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while True:
            value = self.execute(f"return ({expression});")
            if value:
                return value
            if time.monotonic() >= deadline:
                raise MarionetteError(f"`{expression}` still falsy after {timeout:.1f} s (last value {value!r})")
            time.sleep(interval)

    def screenshot(self, path: str) -> str:
        result = self.command("WebDriver:TakeScreenshot", {"full": False, "hash": False}, timeout=20)
        data = result.get("value") if isinstance(result, dict) else result
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))
        return path


if __name__ == "__main__":  # smoke test: python marionette.py URL
    import sys
    target = sys.argv[1] if len(sys.argv) > 1 else "about:blank"
    with Firefox() as firefox:
        firefox.navigate(target)
        print(json.dumps({"browser": firefox.session.get("capabilities", {}).get("browserVersion"),
                          "title": firefox.execute("return document.title")}))
