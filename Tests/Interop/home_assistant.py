"""A real Home Assistant for the interop tests (standard library only on this side).

Home Assistant runs from its own venv (Tests/Interop/homeassistant-venv.sh prints its `hass`), with
a configuration that loads only what the rtcam recipe needs: `http` on 127.0.0.1, `onboarding` (to
get a token with no person at the keyboard), `config` (the config-flow REST API), `camera` and
`stream` (HLS through PyAV). `--skip-pip`: everything is in the venv, nothing is fetched at run time.

    home = HomeAssistant(hass_binary, config_dir, log_path)
    home.start()                       # free port, waits for /api/onboarding
    home.onboard()                     # first user through the REST API -> home.token
    flow = home.start_flow("generic")  # config flow, as the UI does it
    home.request("GET", "/api/camera_proxy/camera.x")
    home.stop()
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Optional

from rtcam_process import HOST, free_port

CONFIGURATION = """\
homeassistant:
  name: rtcam interop
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
http:
  server_host: {host}
  server_port: {port}
onboarding:
config:
camera:
stream:
logger:
  default: info
"""


class HomeAssistantError(RuntimeError):
    pass


class HomeAssistant:
    def __init__(self, hass_binary: str, config_dir: Path, log_path: Path, startup_timeout: float = 90.0):
        self.hass_binary = hass_binary
        self.config_dir = Path(config_dir)
        self.log_path = Path(log_path)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self.token: Optional[str] = None
        self.started_in = 0.0     # seconds from the exec to the first /api/onboarding answer

    @property
    def client_id(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> "HomeAssistant":
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(socket.SOCK_STREAM)
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(host=HOST, port=self.port))
        log = open(self.log_path, "ab")
        started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                [self.hass_binary, "--config", str(self.config_dir), "--skip-pip"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        finally:
            log.close()
        deadline = started + self.startup_timeout
        last_problem = "no answer yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise HomeAssistantError(f"hass exited with code {code} before its HTTP server answered")
            if "Activating recovery mode" in self.log_tail(400):
                # Recovery mode listens on 8123 with the UI only: a missing module, said in the log.
                raise HomeAssistantError("Home Assistant went into recovery mode (see its log)")
            try:
                status, _, body = self.request("GET", "/api/onboarding", timeout=2.0, authorized=False)
                if status == 200:
                    self.started_in = time.monotonic() - started
                    return self
                last_problem = f"/api/onboarding answered {status}: {body[:200]!r}"
            except OSError as error:
                last_problem = f"/api/onboarding: {error}"
            time.sleep(0.25)
        raise HomeAssistantError(f"Home Assistant not up within {self.startup_timeout:.0f} s ({last_problem})")

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        """SIGTERM (Home Assistant's own clean stop), SIGKILL to the group if it takes longer."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        code = self.process.returncode
        self.process = None
        return code

    def log_tail(self, lines: int = 120) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    # ---- HTTP ------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body=None, headers: Optional[dict] = None,
                timeout: float = 30.0, authorized: bool = True):
        """One exchange with Home Assistant: (status, headers, body bytes). A dict body is sent as
        JSON; the token (once onboarded) goes in `Authorization: Bearer`."""
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if authorized and self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.headers.get("Content-Encoding") == "gzip":   # HLS playlists come gzipped
                body = gzip.decompress(body)
            return response.status, response.headers, body
        finally:
            connection.close()

    def json_request(self, method: str, path: str, body=None, expect: int = 200, timeout: float = 30.0):
        status, _, answer = self.request(method, path, body, timeout=timeout)
        if status != expect:
            raise HomeAssistantError(f"{method} {path} answered {status} (expected {expect}): {answer[:500]!r}")
        return json.loads(answer)

    def onboard(self, username: str = "owner", password: str = "interop-home-password") -> str:
        """The first user, as the onboarding page makes it (POST /api/onboarding/users), and its
        authorization code exchanged for an access token (POST /auth/token)."""
        created = self.json_request("POST", "/api/onboarding/users", {
            "client_id": self.client_id, "name": "Owner", "username": username,
            "password": password, "language": "en"})
        form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": created["auth_code"],
                                       "client_id": self.client_id}).encode()
        status, _, answer = self.request("POST", "/auth/token", form,
                                         {"Content-Type": "application/x-www-form-urlencoded"}, authorized=False)
        if status != 200:
            raise HomeAssistantError(f"POST /auth/token answered {status}: {answer[:300]!r}")
        self.token = json.loads(answer)["access_token"]
        return self.token

    def start_flow(self, handler: str) -> dict:
        """A config flow started as the "Add integration" dialog starts it: its first form."""
        return self.json_request("POST", "/api/config/config_entries/flow",
                                 {"handler": handler, "show_advanced_options": False})

    def flow_step(self, flow_id: str, answers: dict, timeout: float = 60.0) -> dict:
        """The form's answers as the dialog sends them: the next step, an entry, or the same form
        with `errors`."""
        return self.json_request("POST", f"/api/config/config_entries/flow/{flow_id}", answers, timeout=timeout)

    def camera_entities(self) -> list[str]:
        return sorted(state["entity_id"] for state in self.json_request("GET", "/api/states")
                      if state["entity_id"].startswith("camera."))

    def entities_of_entry(self, entry_id: str, domain: str = "camera", timeout: float = 20.0) -> list[str]:
        """The entities a config entry made (the entity registry, over the websocket API)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.websocket() as socket_api:
                entries = socket_api.call({"type": "config/entity_registry/list"})
            found = [entry["entity_id"] for entry in entries
                     if entry.get("config_entry_id") == entry_id and entry["entity_id"].startswith(domain + ".")]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.25)

    def websocket(self) -> "WebSocketAPI":
        return WebSocketAPI(self.port, self.token)


class WebSocketAPI:
    """Home Assistant's websocket API (/api/websocket) over a minimal RFC 6455 client: text frames
    only, each message one frame (what Home Assistant sends), client frames masked."""

    def __init__(self, port: int, token: Optional[str]):
        self.port, self.token = port, token
        self.connection: Optional[socket.socket] = None
        self.buffer = b""
        self.next_id = 1

    def __enter__(self) -> "WebSocketAPI":
        self.connection = socket.create_connection((HOST, self.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.connection.sendall((f"GET /api/websocket HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                                 f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                 f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.connection.recv(4096)
            if not chunk:
                raise HomeAssistantError("websocket: connection closed during the handshake")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise HomeAssistantError(f"websocket handshake refused: {head[:200]!r}")
        if self.receive().get("type") != "auth_required":
            raise HomeAssistantError("websocket: no auth_required")
        self.send({"type": "auth", "access_token": self.token})
        answer = self.receive()
        if answer.get("type") != "auth_ok":
            raise HomeAssistantError(f"websocket auth: {answer}")
        return self

    def __exit__(self, *_) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def send(self, message: dict) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + len(payload).to_bytes(8, "big")
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.connection.sendall(header + mask + masked)

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.connection.recv(65536)
            if not chunk:
                raise HomeAssistantError("websocket: connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def receive(self) -> dict:
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(self._read(2), "big")
            elif length == 127:
                length = int.from_bytes(self._read(8), "big")
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x8:
                raise HomeAssistantError("websocket: closed by Home Assistant")
            # ping/pong and anything else: not part of these exchanges, skipped

    def call(self, command: dict):
        """One command and its result (`success` required)."""
        identifier = self.next_id
        self.next_id += 1
        self.send({"id": identifier, **command})
        while True:
            answer = self.receive()
            if answer.get("id") == identifier and answer.get("type") == "result":
                if not answer.get("success"):
                    raise HomeAssistantError(f"websocket {command['type']}: {answer.get('error')}")
                return answer.get("result")
