"""A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (standard library only).

Chromium reads commands from fd 3 and writes responses and events to fd 4; each message is one JSON
object terminated by a NUL byte. Sessions are "flattened": commands for a page carry its sessionId.

    with Chromium(log_path="chromium.log") as browser:
        page = browser.new_page()
        page.navigate("http://127.0.0.1:8080/")
        print(page.evaluate("document.title"))
        page.screenshot("shot.png")
        print(page.console)
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

DEFAULT_TIMEOUT = 15.0

# Flags every run needs (see shared/DESIGN.md, "Browsers"): root needs --no-sandbox; a namespace
# with only `lo` needs loopback candidates and no mDNS obfuscation; unmuted autoplay needs the policy.
# The rest keep Chromium from phoning home or popping dialogs.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--remote-debugging-pipe",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate",
    "--use-fake-ui-for-media-stream",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--metrics-recording-only",
    "--no-pings",
    "--password-store=basic",
    "--window-size=1280,900",
]


class CDPError(RuntimeError):
    """A protocol error answer, a timeout, or the browser going away."""


class JavaScriptError(CDPError):
    """Runtime.evaluate threw; `details` is CDP's exceptionDetails."""

    def __init__(self, message: str, details: dict):
        super().__init__(message)
        self.details = details


def find_chromium() -> str:
    for name in (os.environ.get("CHROMIUM_BIN"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    raise CDPError("no Chromium found: install Debian's `chromium` (apt-get install chromium) or set CHROMIUM_BIN")


def _high_fd(fd: int) -> int:
    """Move `fd` to a number >= 10 (close-on-exec) so dup'ing onto 3 and 4 in the child cannot clobber it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@dataclass
class ConsoleMessage:
    level: str
    text: str
    source: str = "console"

    def __str__(self) -> str:
        return f"[{self.source}:{self.level}] {self.text}"


class Chromium:
    """One headless Chromium process driven over the DevTools pipe."""

    def __init__(self, executable: Optional[str] = None, extra_args: tuple[str, ...] = (),
                 log_path: Optional[str] = None, user_data_dir: Optional[str] = None,
                 launch_timeout: float = 20.0):
        self.executable = executable or find_chromium()
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.launch_timeout = launch_timeout
        self._own_user_data_dir = user_data_dir is None
        self.user_data_dir = user_data_dir or tempfile.mkdtemp(prefix="rtcam-chromium-")
        self.process: Optional[subprocess.Popen] = None
        self._write_fd: Optional[int] = None
        self._read_fd: Optional[int] = None
        self._write_lock = threading.Lock()
        self._condition = threading.Condition()
        self._next_id = 0
        self._responses: dict[int, dict] = {}
        self._events: list[dict] = []       # every event, in arrival order (tests look back into it)
        self._listeners: list[Callable[[dict], None]] = []
        self._closed = False
        self._reader: Optional[threading.Thread] = None
        self._log_file = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "Chromium":
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()
        child_read = _high_fd(to_browser_read)
        child_write = _high_fd(from_browser_write)
        self._write_fd = _high_fd(to_browser_write)
        self._read_fd = _high_fd(from_browser_read)
        args = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.user_data_dir}",
                *self.extra_args, "about:blank"]
        # bash places the pipe ends on fds 3 and 4 (it handles multi-digit fd numbers), then execs.
        script = f'exec 3<&{child_read} 4>&{child_write} {child_read}<&- {child_write}>&-; exec "$@"'
        self._log_file = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                ["bash", "-c", script, "chromium-launcher", *args],
                stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=self._log_file,
                pass_fds=(child_read, child_write), start_new_session=True)
        finally:
            os.close(child_read)
            os.close(child_write)
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()
        # The browser is ready when it answers a command.
        version = self.send("Browser.getVersion", timeout=self.launch_timeout)
        self.version = version.get("product", "?")
        return self

    def __enter__(self) -> "Chromium":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, timeout: float = 5.0) -> None:
        """Browser.close, then wait; kill the process group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None and not self._closed:
            try:
                self.send("Browser.close", timeout=timeout)
            except CDPError:
                pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(signal.SIGKILL)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Helpers (zygote, GPU, network service) share the process group; make sure none survive.
        self._kill_group(signal.SIGKILL)
        for fd in (self._write_fd, self._read_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._write_fd = self._read_fd = None
        if self._reader:
            self._reader.join(timeout=2)
        if self._log_file not in (None, subprocess.DEVNULL):
            self._log_file.close()
        if self._own_user_data_dir:
            shutil.rmtree(self.user_data_dir, ignore_errors=True)
        self.process = None

    def _kill_group(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # ---- transport -------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        buffer = b""
        fd = self._read_fd
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                self._dispatch(message)
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def _dispatch(self, message: dict) -> None:
        if "id" in message:
            with self._condition:
                self._responses[message["id"]] = message
                self._condition.notify_all()
            return
        with self._condition:
            self._events.append(message)
            self._condition.notify_all()
        for listener in list(self._listeners):
            try:
                listener(message)
            except Exception:  # a listener bug must not kill the reader
                pass

    def send(self, method: str, params: Optional[dict] = None, session_id: Optional[str] = None,
             timeout: float = DEFAULT_TIMEOUT) -> dict:
        """Send one command and wait for its answer; raise CDPError on error or timeout."""
        with self._condition:
            if self._closed:
                raise CDPError(f"{method}: the browser is gone")
            self._next_id += 1
            message_id = self._next_id
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        data = json.dumps(message).encode() + b"\0"
        with self._write_lock:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(self._write_fd, view)  # type: ignore[arg-type]
                    view = view[written:]
            except (OSError, TypeError) as error:
                raise CDPError(f"{method}: cannot write to the browser: {error}") from error
        deadline = time.monotonic() + timeout
        with self._condition:
            while message_id not in self._responses:
                remaining = deadline - time.monotonic()
                if self._closed:
                    raise CDPError(f"{method}: the browser closed the pipe")
                if remaining <= 0:
                    raise CDPError(f"{method}: no answer within {timeout:.1f} s")
                self._condition.wait(remaining)
            response = self._responses.pop(message_id)
        if "error" in response:
            error = response["error"]
            raise CDPError(f"{method}: {error.get('message')} ({error.get('code')}) {error.get('data', '')}".strip())
        return response.get("result", {})

    def event_cursor(self) -> int:
        """A position in the event log; wait_event(since=cursor) looks only at events after it."""
        with self._condition:
            return len(self._events)

    def wait_event(self, method: str, session_id: Optional[str] = None, since: int = 0,
                   predicate: Callable[[dict], bool] = lambda params: True,
                   timeout: float = DEFAULT_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        index = since
        with self._condition:
            while True:
                while index < len(self._events):
                    event = self._events[index]
                    index += 1
                    if event.get("method") != method:
                        continue
                    if session_id is not None and event.get("sessionId") != session_id:
                        continue
                    if predicate(event.get("params", {})):
                        return event.get("params", {})
                remaining = deadline - time.monotonic()
                if self._closed:
                    raise CDPError(f"waiting for {method}: the browser closed the pipe")
                if remaining <= 0:
                    raise CDPError(f"no {method} event within {timeout:.1f} s")
                self._condition.wait(remaining)

    def add_listener(self, listener: Callable[[dict], None]) -> None:
        self._listeners.append(listener)

    # ---- pages -----------------------------------------------------------------------------------

    def new_page(self, url: str = "about:blank") -> "Page":
        target_id = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session_id = self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        page = Page(self, target_id, session_id)
        page._enable()
        if url != "about:blank":
            page.navigate(url)
        return page


@dataclass
class Page:
    browser: Chromium
    target_id: str
    session_id: str
    console: list[ConsoleMessage] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    def _enable(self) -> None:
        self.browser.add_listener(self._on_event)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: Optional[dict] = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
        return self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def _on_event(self, message: dict) -> None:
        if message.get("sessionId") != self.session_id:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            parts = []
            for arg in params.get("args", []):
                if "value" in arg:
                    parts.append(str(arg["value"]))
                else:
                    parts.append(arg.get("description") or arg.get("type", "?"))
            self.console.append(ConsoleMessage(params.get("type", "log"), " ".join(parts)))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.exceptions.append(_describe_exception(details))
            self.console.append(ConsoleMessage("error", _describe_exception(details), "exception"))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            text = entry.get("text", "")
            if entry.get("url"):
                text += f" ({entry['url']})"
            self.console.append(ConsoleMessage(entry.get("level", "info"), text, entry.get("source", "log")))

    def errors(self) -> list[ConsoleMessage]:
        return [message for message in self.console if message.level == "error"]

    def navigate(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Navigate and wait for the load event."""
        cursor = self.browser.event_cursor()
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", session_id=self.session_id, since=cursor,
                                timeout=timeout)

    def evaluate(self, expression: str, await_promise: bool = True, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Evaluate JavaScript in the page and return its value (JSON-compatible values only)."""
        result = self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": await_promise, "returnByValue": True,
            "timeout": int(timeout * 1000),
        }, timeout=timeout + 2)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise JavaScriptError(f"JavaScript threw: {_describe_exception(details)}", details)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = DEFAULT_TIMEOUT, interval: float = 0.25) -> Any:
        """Poll `expression` until it is truthy; return its value or raise CDPError with the last one."""
        deadline = time.monotonic() + timeout
        value = None
        while True:
            value = self.evaluate(expression, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
            if value:
                return value
            if time.monotonic() >= deadline:
                raise CDPError(f"`{expression}` still falsy after {timeout:.1f} s (last value {value!r})")
            time.sleep(interval)

    def screenshot(self, path: str) -> str:
        data = self.send("Page.captureScreenshot", {"format": "png"}, timeout=20)["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.browser.send("Target.closeTarget", {"targetId": self.target_id}, timeout=5)
        except CDPError:
            pass


def _describe_exception(details: dict) -> str:
    exception = details.get("exception", {})
    description = exception.get("description") or exception.get("value") or details.get("text", "exception")
    where = ""
    if "lineNumber" in details:
        where = f" at {details.get('url', '')}:{details['lineNumber'] + 1}:{details.get('columnNumber', 0) + 1}"
    return f"{description}{where}"


if __name__ == "__main__":  # smoke test: python cdp.py URL
    import sys
    target = sys.argv[1] if len(sys.argv) > 1 else "about:blank"
    with Chromium() as chromium:
        tab = chromium.new_page()
        tab.navigate(target)
        print(json.dumps({"product": chromium.version, "title": tab.evaluate("document.title"),
                          "console": [str(m) for m in tab.console]}, indent=2))
