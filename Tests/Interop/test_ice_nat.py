"""Full ICE across two NATs (issue 19): rtcam on a camera LAN behind one NAT router, aiortc (and
Chromium) on a viewer LAN behind another, an "internet" between them with Debian's coturn as the
STUN server and, given `--turn`, rtcam's TURN server (its relayed address is offered as a relay
candidate: the only path when the viewer's NAT is symmetric and no port is forwarded).

    camera LAN 10.0.1.0/24 ── NAT 203.0.113.2 ── internet (coturn 203.0.113.1:3478) ── 198.51.100.2 NAT ── viewer LAN 192.168.50.0/24

Both routers masquerade (nft) and drop unsolicited UDP from their WAN side (shared/DESIGN.md "Hole
punching through Linux NAT namespaces"): a datagram gets in only after the inside host sent one to
where it comes from. No route leads to either LAN from outside, so a host pair cannot work. The
camera router forwards TCP (the WHEP POST: "port-forward the page, let ICE find the media path"),
never UDP. With full ICE both sides check each other's server-reflexive candidate and the checks
punch the holes; with --ice lite rtcam never sends a check, so nothing gets through (why issue 19
exists).

Every namespace is the test's own (names carry its pid), made and deleted here, on failure too;
only documentation and private addresses are used.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import chromium_whep
from chromium_whep import play_viewer_page, whep_script
from conftest import attach
from rtcam_process import RtcamProcess, stop_processes

INTEROP_DIR = Path(__file__).resolve().parent
CLONE_NEWNET = 0x40000000
STUN_ADDRESS = "203.0.113.1"
STUN_PORT = 3478
CAMERA_LAN_ADDRESS = "10.0.1.2"
CAMERA_PUBLIC_ADDRESS = "203.0.113.2"
LAN_VIEWER_ADDRESS = "10.0.1.3"
MIN_FPS = 25.0
# How long each viewer's rate is measured: 3 s of a 30 fps stream is 90 frames, so ≥ 25 fps still
# means ≥ 75 decoded (the matrix's whole run has to fit in make test's 3 minutes).
WATCH_SECONDS = 3
# coturn's accounts: a long-term user and, on a second port, the REST API's shared secret.
TURN_USER, TURN_PASSWORD = "camera", "relay-password-7"
TURN_SECRET_PORT, TURN_SECRET = 3479, "north-secret-19"
TURN_RELAY_PORTS = (49160, 49260)
# coturn's TLS port for turns: (443: what a network that lets only HTTPS out still lets through),
# its certificate from a CA the fixture makes (rtcam gets it with --turn-ca, Chromium is told to
# accept it).
TURN_TLS_PORT = 443

_libc = ctypes.CDLL(None, use_errno=True)


def run(*command: str, stdin: str | None = None) -> None:
    done = subprocess.run(command, input=stdin, text=True, capture_output=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


def in_namespace(name: str, function, *args):
    """Runs `function` on a thread moved into namespace `name` (setns moves only the calling
    thread); processes it starts are born there."""
    box: dict = {}

    def target():
        descriptor = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if _libc.setns(descriptor, CLONE_NEWNET) != 0:
                box["error"] = OSError(ctypes.get_errno(), f"setns into {name}")
                return
        finally:
            os.close(descriptor)
        try:
            box["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 — handed to the caller
            box["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class NATTopology:
    """Five namespaces: cam, rcam (NAT), inet, rview (NAT), view."""

    ROLES = ("cam", "rcam", "inet", "rview", "view")

    def __init__(self, symmetric_viewer_nat: bool = False, symmetric_camera_nat: bool = False):
        # `masquerade random`: a new random port per destination (address-and-port-dependent mapping).
        self.symmetric_viewer_nat = symmetric_viewer_nat
        self.symmetric_camera_nat = symmetric_camera_nat
        prefix = f"rtice{os.getpid()}"
        self.names = {role: f"{prefix}-{role}" for role in self.ROLES}
        self.made: list[str] = []

    def __getitem__(self, role: str) -> str:
        return self.names[role]

    def create(self) -> "NATTopology":
        for role in self.ROLES:
            run("ip", "netns", "add", self[role])
            self.made.append(self[role])
            run("ip", "-n", self[role], "link", "set", "lo", "up")
        self._link("cam", "lan", "10.0.1.2/24", "rcam", "lan", "10.0.1.1/24")
        self._link("rcam", "wan", "203.0.113.2/24", "inet", "cam", "203.0.113.1/24")
        self._link("inet", "view", "198.51.100.1/24", "rview", "wan", "198.51.100.2/24")
        self._link("rview", "lan", "192.168.50.1/24", "view", "lan", "192.168.50.2/24")
        run("ip", "-n", self["cam"], "route", "add", "default", "via", "10.0.1.1")
        run("ip", "-n", self["rcam"], "route", "add", "default", "via", "203.0.113.1")
        run("ip", "-n", self["rview"], "route", "add", "default", "via", "198.51.100.1")
        run("ip", "-n", self["view"], "route", "add", "default", "via", "192.168.50.1")
        # The internet has no route to anyone's LAN, and drops what is sent there silently (as an
        # upstream router does) rather than failing the send: coturn ends an allocation whose relay
        # socket gets ENETUNREACH, which a viewer's private host candidate would otherwise cause.
        # (A veth pair inside the internet namespace, the default route's gateway a permanent
        # neighbour whose MAC no interface has: what goes there is sent, then dropped by the other end.)
        inet = self["inet"]
        run("ip", "-n", inet, "link", "add", "void", "type", "veth", "peer", "name", "voidend")
        run("ip", "-n", inet, "addr", "add", "100.64.0.1/30", "dev", "void")
        run("ip", "-n", inet, "link", "set", "void", "up")
        run("ip", "-n", inet, "link", "set", "voidend", "up")
        run("ip", "-n", inet, "neigh", "add", "100.64.0.2", "lladdr", "02:00:00:00:00:99", "dev", "void", "nud", "permanent")
        run("ip", "-n", inet, "route", "add", "default", "via", "100.64.0.2", "dev", "void")
        for role in ("rcam", "inet", "rview"):
            run("ip", "netns", "exec", self[role], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Both routers: masquerade out of the WAN, drop unsolicited UDP from it; the camera's also
        # forwards TCP (the WHEP POST) to the camera.
        viewer_masquerade = "masquerade random" if self.symmetric_viewer_nat else "masquerade"
        camera_masquerade = "masquerade random" if self.symmetric_camera_nat else "masquerade"
        for role, forward, masquerade in (("rcam", f'iifname "wan" meta l4proto tcp dnat to {CAMERA_LAN_ADDRESS}', camera_masquerade),
                                          ("rview", "", viewer_masquerade)):
            run("ip", "netns", "exec", self[role], "nft", "-f", "-", stdin=f"""
table ip nat {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        {forward}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" {masquerade}
    }}
}}
table ip filter {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "wan" meta l4proto udp drop
    }}
}}
""")
        return self

    def block_outbound_udp(self, role: str) -> None:
        """The router `role` ("rcam" or "rview") forwards no UDP from its LAN: a network that lets
        only TCP out (issue 19's "UDP blocked" cases)."""
        run("ip", "netns", "exec", self[role], "nft", "-f", "-", stdin="""
table ip filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname "lan" meta l4proto udp drop
    }
}
""")

    def add_lan_viewer(self) -> str:
        """A sixth namespace, "lview", on the camera's LAN (10.0.1.3, a bridge on the camera's router
        joining it to the camera's link): a viewer at home, beside the camera. Returns its role."""
        rcam, role = self["rcam"], "lview"
        self.names[role] = f"{self.names['cam'].rsplit('-', 1)[0]}-{role}"
        run("ip", "netns", "add", self[role])
        self.made.append(self[role])
        run("ip", "-n", self[role], "link", "set", "lo", "up")
        run("ip", "-n", rcam, "link", "add", "lanbr", "type", "bridge")
        run("ip", "-n", rcam, "addr", "del", "10.0.1.1/24", "dev", "lan")
        run("ip", "-n", rcam, "link", "set", "lan", "master", "lanbr")
        run("ip", "-n", rcam, "addr", "add", "10.0.1.1/24", "dev", "lanbr")
        run("ip", "-n", rcam, "link", "set", "lanbr", "up")
        run("ip", "-n", rcam, "link", "add", "lan2", "type", "veth", "peer", "name", "lan", "netns", self[role])
        run("ip", "-n", rcam, "link", "set", "lan2", "master", "lanbr")
        run("ip", "-n", rcam, "link", "set", "lan2", "up")
        run("ip", "-n", self[role], "addr", "add", f"{LAN_VIEWER_ADDRESS}/24", "dev", "lan")
        run("ip", "-n", self[role], "link", "set", "lan", "up")
        run("ip", "-n", self[role], "route", "add", "default", "via", "10.0.1.1")
        return role

    def forward_udp_to_camera(self, port: int) -> None:
        """A UDP port forward on the camera's router (what a user sets up for the media port)."""
        run("ip", "netns", "exec", self["rcam"], "nft", "add", "rule", "ip", "nat", "prerouting",
            "iifname", "wan", "udp", "dport", str(port), "dnat", "to", CAMERA_LAN_ADDRESS)

    def _link(self, a: str, a_name: str, a_address: str, b: str, b_name: str, b_address: str) -> None:
        run("ip", "-n", self[a], "link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", self[b])
        run("ip", "-n", self[a], "addr", "add", a_address, "dev", a_name)
        run("ip", "-n", self[b], "addr", "add", b_address, "dev", b_name)
        run("ip", "-n", self[a], "link", "set", a_name, "up")
        run("ip", "-n", self[b], "link", "set", b_name, "up")

    def destroy(self) -> list[str]:
        problems = []
        for name in reversed(self.made):
            done = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
            if done.returncode != 0:
                problems.append(f"ip netns del {name}: {done.stderr.strip()}")
        self.made = []
        return problems


@pytest.fixture
def nat_topology(request, tmp_path):
    yield from _nat_topology(request, tmp_path, symmetric_viewer_nat=False)


@pytest.fixture
def symmetric_viewer_topology(request, tmp_path):
    yield from _nat_topology(request, tmp_path, symmetric_viewer_nat=True)


@pytest.fixture
def both_symmetric_topology(request, tmp_path):
    yield from _nat_topology(request, tmp_path, symmetric_viewer_nat=True, symmetric_camera_nat=True)


def _nat_topology(request, tmp_path, symmetric_viewer_nat: bool, symmetric_camera_nat: bool = False):
    for tool in ("ip", "nft", "turnserver"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            pytest.fail(f"{tool} is missing (make install-test-packages: iproute2, nftables, coturn)", pytrace=False)
    topology = NATTopology(symmetric_viewer_nat=symmetric_viewer_nat, symmetric_camera_nat=symmetric_camera_nat)
    started: list[subprocess.Popen] = []
    log, secret_log = tmp_path / "coturn.log", tmp_path / "coturn-secret.log"
    attach(request, "coturn log", lambda: log.read_text()[-3000:] if log.exists() else "")
    attach(request, "coturn (shared secret) log", lambda: secret_log.read_text()[-3000:] if secret_log.exists() else "")
    try:
        topology.create()
        started += start_coturn(topology, tmp_path, log, secret_log)
        topology.processes = started
        yield topology
    finally:
        stop_processes(started)
        problems = topology.destroy()
        assert not problems, problems


def make_turn_certificate(directory: Path) -> Path:
    """A test CA and coturn's certificate from it, for 203.0.113.1 (an iPAddress name, and the
    same as a dNSName and the CN for verifiers that match only those); returns the CA's file."""
    ca_key, ca, key, request, cert = (directory / name for name in ("ca.key", "ca.pem", "turn.key", "turn.csr", "turn.pem"))
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca), "-days", "2", "-subj", "/CN=rtcam interop test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
        "-out", str(request), "-subj", f"/CN={STUN_ADDRESS}")
    extensions = directory / "turn.ext"
    extensions.write_text(f"subjectAltName=IP:{STUN_ADDRESS},DNS:{STUN_ADDRESS}\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(extensions))
    return ca


def start_coturn(topology: NATTopology, directory: Path, log: Path, secret_log: Path) -> list[subprocess.Popen]:
    """STUN for everyone and TURN for rtcam on the internet namespace: a long-term user on 3478,
    coturn's REST API (shared secret) on 3479; relayed addresses on the internet side, ports of
    their own each. (The TURN first-frame benchmark uses this too.)"""
    low, high = TURN_RELAY_PORTS
    middle = (low + high) // 2
    topology.turn_ca = make_turn_certificate(directory)
    common = ["turnserver", "-n", "--no-cli", "--no-dtls", "--listening-ip", STUN_ADDRESS,
              "--relay-ip", STUN_ADDRESS, "--realm", "rtcam.test", "--simple-log", "--no-stdout-log", "--verbose"]
    started = []
    for arguments in (["--listening-port", str(STUN_PORT), "--min-port", str(low), "--max-port", str(middle - 1),
                       "--lt-cred-mech", "--user", f"{TURN_USER}:{TURN_PASSWORD}",
                       # TCP on 3478 too (coturn's default), TLS on TURN_TLS_PORT.
                       "--tls-listening-port", str(TURN_TLS_PORT), "--cert", str(directory / "turn.pem"),
                       "--pkey", str(directory / "turn.key"),
                       "--userdb", str(directory / "coturn.db"), "--pidfile", str(directory / "coturn.pid"),
                       "--log-file", str(log)],
                      ["--listening-port", str(TURN_SECRET_PORT), "--min-port", str(middle), "--max-port", str(high),
                       "--use-auth-secret", "--static-auth-secret", TURN_SECRET, "--no-tls",
                       "--userdb", str(directory / "coturn-secret.db"), "--pidfile", str(directory / "coturn-secret.pid"),
                       "--log-file", str(secret_log)]):
        started.append(in_namespace(topology["inet"], lambda: subprocess.Popen(
            common + arguments, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)))
    return started


def start_camera(topology: NATTopology, tmp_path: Path, request, ice: str, turn: str | None = None,
                 udp_blocked: bool = False) -> RtcamProcess:
    """`turn`: None, "password" (the long-term user), "secret" (coturn's REST API), "tcp" or "tls"
    (the long-term user over TCP, `turn:…?transport=tcp`, or TLS, `turns:`). `udp_blocked`: the
    camera's router lets no UDP out, so no server-reflexive address is waited for."""
    relay_args: tuple[str, ...] = ()
    if turn == "tcp":
        relay_args = ("--turn", f"turn:{STUN_ADDRESS}:{STUN_PORT}?transport=tcp", "--turn-user", TURN_USER,
                      "--turn-password", TURN_PASSWORD)
    elif turn == "tls":
        relay_args = ("--turn", f"turns:{STUN_ADDRESS}:{TURN_TLS_PORT}", "--turn-ca", str(topology.turn_ca),
                      "--turn-user", TURN_USER, "--turn-password", TURN_PASSWORD)
    elif turn == "password":
        relay_args = ("--turn", f"turn:{STUN_ADDRESS}:{STUN_PORT}?transport=udp", "--turn-user", TURN_USER,
                      "--turn-password", TURN_PASSWORD)
    elif turn == "secret":
        relay_args = ("--turn", f"turn:{STUN_ADDRESS}:{TURN_SECRET_PORT}", "--turn-secret", TURN_SECRET, "--turn-user", "rtcam")
    camera = RtcamProcess(state_dir=tmp_path / f"rtcam-{ice}", log_path=tmp_path / f"rtcam-{ice}.log",
                          candidate_addresses=(CAMERA_LAN_ADDRESS,),
                          extra_args=("--ice", ice, "--stun", f"{STUN_ADDRESS}:{STUN_PORT}", "--log-level", "debug") + relay_args)
    if request is not None:
        attach(request, f"rtcam --ice {ice}", lambda: camera.log_tail(120))
    in_namespace(topology["cam"], camera.start)
    topology.processes.append(camera.process)
    if ice == "full" and not udp_blocked:
        # The STUN client asks coturn at start; an answer made before it heard back offers no
        # srflx candidate (answers never wait), so the viewers here come after it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "server-reflexive address: 203.0.113.2:" not in camera.log_text():
            time.sleep(0.05)
        assert "server-reflexive address: 203.0.113.2:" in camera.log_text(), "no srflx address from coturn"
    if turn:
        # Likewise the relayed address: an answer offers it once the allocation is live.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and f"TURN: relayed address {STUN_ADDRESS}:" not in camera.log_text():
            time.sleep(0.05)
        assert f"TURN: relayed address {STUN_ADDRESS}:" in camera.log_text(), "no relayed address from coturn"
    return camera


def start_aiortc(topology: NATTopology, camera: RtcamProcess, seconds: float, connect_timeout: float,
                 viewer_role: str = "view", camera_address: str = CAMERA_PUBLIC_ADDRESS,
                 extra_args: tuple[str, ...] = ()) -> subprocess.Popen:
    """whep_client.py (aiortc) started in `viewer_role`'s namespace; prints its JSON summary when done.
    `extra_args`: more of whep_client.py's options (--turn …). (The TURN benchmark starts several at once.)"""
    viewer = in_namespace(topology[viewer_role], lambda: subprocess.Popen(
        [sys.executable, str(INTEROP_DIR / "whep_client.py"), f"http://{camera_address}:{camera.http_port}/whep",
         "--seconds", str(seconds), "--connect-timeout", str(connect_timeout),
         "--stun", f"stun:{STUN_ADDRESS}:{STUN_PORT}", "--no-loopback", *extra_args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    topology.processes.append(viewer)
    return viewer


def watch(topology: NATTopology, camera: RtcamProcess, seconds: float, connect_timeout: float,
          viewer_role: str = "view", camera_address: str = CAMERA_PUBLIC_ADDRESS,
          extra_args: tuple[str, ...] = ()) -> tuple[dict, list]:
    """aiortc in the viewer LAN (or `viewer_role`'s namespace), configured with the same STUN
    server, against the camera's forwarded HTTP port (or `camera_address`); meanwhile the camera's
    /api/status, polled from its own LAN."""
    viewer = start_aiortc(topology, camera, seconds, connect_timeout, viewer_role, camera_address, extra_args)
    statuses = []
    deadline = time.monotonic() + connect_timeout + seconds + 15
    while viewer.poll() is None and time.monotonic() < deadline:
        statuses.append(in_namespace(topology["cam"], camera.status))
        time.sleep(0.5)
    out, err = viewer.communicate(timeout=max(1.0, deadline - time.monotonic()))
    try:
        summary = json.loads(out)
    except json.JSONDecodeError:
        summary = {"ok": False, "error": f"no JSON from whep_client.py: {out[-500:]!r} {err[-2000:]!r}"}
    summary["stderr_tail"] = err[-1500:]
    return summary, statuses


def ice_pairs(statuses: list) -> list:
    return [viewer["icePair"] for status in statuses for viewer in status.get("viewers", []) if viewer.get("icePair")]


def test_full_ice_connects_through_two_nats_with_stun(nat_topology, tmp_path, request):
    """Both routers endpoint-independent: a direct reflexive pair, although rtcam offers its relayed
    address too (a relay pair ranks lowest: it is never chosen while a direct one works)."""
    started = time.monotonic()
    camera = start_camera(nat_topology, tmp_path, request, "full", turn="password")

    summary, statuses = watch(nat_topology, camera, seconds=WATCH_SECONDS, connect_timeout=10)
    attach(request, "aiortc summary", lambda: json.dumps(summary, indent=2))
    pairs = ice_pairs(statuses)
    print(f"\naiortc: {json.dumps({k: v for k, v in summary.items() if k != 'stderr_tail'})}\nrtcam's pair: {pairs[-1:]}")
    print(f"took {time.monotonic() - started:.1f} s")
    assert summary["ok"], summary.get("error")
    measurement = summary["measurement"]
    assert measurement["fps"] >= MIN_FPS, f"decoded {measurement['fps']} fps over {measurement['seconds']} s"
    assert pairs, "rtcam's /api/status never showed a selected pair"
    pair = pairs[-1]
    # No route to either LAN: the path is a reflexive one on both sides, between the two routers.
    assert pair["local"] in ("srflx", "prflx") and pair["remote"] in ("srflx", "prflx"), pair
    assert pair["localAddress"].startswith(f"{CAMERA_PUBLIC_ADDRESS}:"), pair
    assert pair["remoteAddress"].startswith("198.51.100.2:"), pair
    assert pair["rttMs"] is not None and pair["rttMs"] < 100, pair
    assert all(p["local"] != "relay" for p in pairs), pairs
    assert statuses[-1]["turn"]["relayedAddress"].startswith(f"{STUN_ADDRESS}:"), statuses[-1].get("turn")


def test_ice_lite_cannot_cross_the_nats(nat_topology, tmp_path, request):
    """The same topology with --ice lite: rtcam only answers, its LAN address has no route and no
    check of the viewer's gets through the camera's router, so no media ever flows."""
    camera = start_camera(nat_topology, tmp_path, request, "lite")
    summary, statuses = watch(nat_topology, camera, seconds=1, connect_timeout=6)
    attach(request, "aiortc summary", lambda: json.dumps(summary, indent=2))
    print(f"\naiortc: {summary.get('error')}")
    assert summary.get("post_status") == 201, summary   # the page and WHEP are reachable...
    assert not summary["ok"], "aiortc got media from an ICE-lite camera behind NAT"   # ...the media is not
    states = {viewer["state"] for status in statuses for viewer in status.get("viewers", [])}
    assert "connected" not in states, states
    assert not ice_pairs(statuses)


CHROMIUM_WHEP = whep_script([f"stun:{STUN_ADDRESS}:{STUN_PORT}"], gather_timeout_ms=8000)
CHROMIUM_STATS = chromium_whep.STATS
# Every candidate pair Chromium formed, for a failure's report.
CHROMIUM_PAIRS = """(async () => {
  const stats = await window.pc.getStats(), pairs = [];
  stats.forEach((report) => {
    if (report.type !== "candidate-pair") return;
    const local = stats.get(report.localCandidateId), remote = stats.get(report.remoteCandidateId);
    pairs.push([local && (local.candidateType + " " + local.address + ":" + local.port),
                remote && (remote.candidateType + " " + remote.address + ":" + remote.port),
                report.state, report.requestsSent, report.responsesReceived, report.requestsReceived, report.nominated]);
  });
  return JSON.stringify(pairs);
})()"""


def chromium_watch(topology, camera, tmp_path, request, seconds: float = WATCH_SECONDS, script: str | None = None,
                   extra_args: tuple[str, ...] = (), viewer_role: str = "view",
                   camera_address: str = CAMERA_PUBLIC_ADDRESS):
    """Chromium in the viewer's namespace plays rtcam's WHEP stream for `seconds`: its decoded rate,
    the first frame's time after the offer (Chromium's candidate gathering included), its own
    selected pair's stats at the end, and rtcam's /api/status then."""
    from cdp import Chromium

    browser = Chromium(log_path=str(tmp_path / "chromium.log"), user_data_dir=str(tmp_path / "chromium-profile"),
                       extra_args=extra_args)
    attach(request, "chromium log", lambda: (tmp_path / "chromium.log").read_text()[-3000:])
    relay_protocol = None
    try:
        in_namespace(topology[viewer_role], browser.start)
        topology.processes.append(browser.process)
        page = browser.new_page()
        attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
        page.navigate(f"http://{camera_address}:{camera.http_port}/healthz")
        offered = time.monotonic()
        page.evaluate(script or CHROMIUM_WHEP, timeout=20)
        try:
            page.wait_for("window.pc.connectionState === 'connected'", timeout=15)
        except Exception:
            print(f"\nChromium's candidate pairs: {page.evaluate(CHROMIUM_PAIRS)}; offer/answer: "
                  f"{page.evaluate('window.pc.localDescription.sdp + window.pc.remoteDescription.sdp + window.pc.iceConnectionState')}")
            raise
        page.wait_for(f"(async () => (await {CHROMIUM_STATS}).frames > 0)()", timeout=15)
        first_frame = time.monotonic() - offered
        first = page.evaluate(CHROMIUM_STATS)
        time.sleep(seconds)
        last = page.evaluate(CHROMIUM_STATS)
        status = in_namespace(topology["cam"], camera.status)
        if script is not None:
            relay_protocol = page.evaluate(CHROMIUM_RELAY_PROTOCOL)
    finally:
        browser.close()
    fps = (last["frames"] - first["frames"]) / ((last["at"] - first["at"]) / 1000)
    if script is not None:
        return fps, first_frame, last, status, relay_protocol
    return fps, first_frame, last, status


def test_chromium_connects_through_two_nats_with_stun(nat_topology, tmp_path, request):
    """Chromium, both routers endpoint-independent, rtcam offering its relayed address: direct."""
    camera = start_camera(nat_topology, tmp_path, request, "full", turn="password")
    fps, first_frame, last, status = chromium_watch(nat_topology, camera, tmp_path, request)
    pairs = ice_pairs([status])
    print(f"\nChromium: {fps:.1f} fps, first frame {first_frame:.2f} s after the offer, "
          f"its pair {last['local']} → {last['remote']} {last['remoteAddress']}; rtcam's {pairs}")
    assert fps >= MIN_FPS, f"Chromium decoded {fps:.1f} fps"
    assert last["local"] in ("srflx", "prflx") and last["remote"] in ("srflx", "prflx"), last
    assert last["remoteAddress"].startswith(f"{CAMERA_PUBLIC_ADDRESS}:"), last
    assert pairs and pairs[-1]["remoteAddress"].startswith("198.51.100.2:"), pairs
    assert pairs[-1]["local"] != "relay", pairs


def test_symmetric_viewer_nat_needs_a_relay_or_a_port_forward(symmetric_viewer_topology, tmp_path, request):
    """The viewer's router maps each destination to a new random port (symmetric): its srflx
    address from coturn is useless toward the camera, and the camera's router lets nothing in that
    the camera did not send to first, so no direct path exists: without --turn (or a port
    forward, below) nothing connects."""
    camera = start_camera(symmetric_viewer_topology, tmp_path, request, "full")
    summary, statuses = watch(symmetric_viewer_topology, camera, seconds=1, connect_timeout=6)
    attach(request, "aiortc summary", lambda: json.dumps(summary, indent=2))
    print(f"\naiortc: {summary.get('error')}")
    assert summary.get("post_status") == 201, summary
    assert not summary["ok"], "media crossed a symmetric NAT and a port-restricted one without a relay"
    assert not ice_pairs(statuses)


def test_symmetric_viewer_nat_with_the_media_port_forwarded(symmetric_viewer_topology, tmp_path, request):
    """The same, with the media port forwarded on the camera's router: the viewer's checks get in
    from its new mapping, rtcam learns that address as peer-reflexive (RFC 8445 §7.3.1.3) and its
    triggered check goes back through the viewer's router on the viewer's own mapping. aiortc,
    then Chromium."""
    camera = start_camera(symmetric_viewer_topology, tmp_path, request, "full")
    symmetric_viewer_topology.forward_udp_to_camera(camera.media_port)
    summary, statuses = watch(symmetric_viewer_topology, camera, seconds=WATCH_SECONDS, connect_timeout=10)
    attach(request, "aiortc summary", lambda: json.dumps(summary, indent=2))
    pairs = ice_pairs(statuses)
    print(f"\naiortc: ok={summary['ok']} {summary.get('measurement', {}).get('fps')} fps, first frame "
          f"{summary.get('time_to_first_frame_s')} s after the POST; rtcam's pair: {pairs[-1:]}")
    assert summary["ok"], summary.get("error")
    assert summary["measurement"]["fps"] >= MIN_FPS, summary["measurement"]
    assert pairs and pairs[-1]["remote"] == "prflx" and pairs[-1]["remoteAddress"].startswith("198.51.100.2:"), pairs

    fps, first_frame, last, status = chromium_watch(symmetric_viewer_topology, camera, tmp_path, request)
    pairs = ice_pairs([status])
    print(f"Chromium: {fps:.1f} fps, first frame {first_frame:.2f} s after the offer (its gathering wait included), "
          f"its pair {last['local']} → {last['remote']} {last['remoteAddress']}; rtcam's {pairs}")
    assert fps >= MIN_FPS, f"Chromium decoded {fps:.1f} fps"
    assert last["remoteAddress"].startswith(f"{CAMERA_PUBLIC_ADDRESS}:{camera.media_port}"), last
    assert pairs and pairs[-1]["local"] != "relay" and pairs[-1]["remote"] == "prflx", pairs
    assert pairs[-1]["remoteAddress"].startswith("198.51.100.2:"), pairs


def test_viewer_on_the_camera_lan_uses_a_host_pair_never_the_relay(nat_topology, tmp_path, request):
    """A viewer at home, on the camera's LAN, with rtcam's --turn configured and coturn reachable
    (both through the camera's router): aiortc, then Chromium, each on a host pair between the two
    LAN addresses (it ranks first; the srflx and relay pairs are never chosen)."""
    role = nat_topology.add_lan_viewer()
    camera = start_camera(nat_topology, tmp_path, request, "full", turn="password")
    summary, statuses = watch(nat_topology, camera, seconds=WATCH_SECONDS, connect_timeout=10,
                              viewer_role=role, camera_address=CAMERA_LAN_ADDRESS)
    attach(request, "aiortc summary", lambda: json.dumps(summary, indent=2))
    pairs = ice_pairs(statuses)
    print(f"\naiortc on the camera's LAN: ok={summary['ok']} {summary.get('measurement', {}).get('fps')} fps, first frame "
          f"{summary.get('time_to_first_frame_s')} s after the POST; rtcam's pair: {pairs[-1:]}; relay {statuses[-1].get('turn')}")
    assert summary["ok"], summary.get("error")
    assert summary["measurement"]["fps"] >= MIN_FPS, summary["measurement"]
    assert pairs and all(p["local"] == "host" and p["remote"] in ("host", "prflx") for p in pairs), pairs
    assert pairs[-1]["localAddress"].startswith(f"{CAMERA_LAN_ADDRESS}:"), pairs
    assert pairs[-1]["remoteAddress"].startswith(f"{LAN_VIEWER_ADDRESS}:"), pairs
    # The relay was there to be chosen: the allocation was live and offered.
    assert statuses[-1]["turn"]["relayedAddress"].startswith(f"{STUN_ADDRESS}:"), statuses[-1].get("turn")

    fps, first_frame, last, status = chromium_watch(nat_topology, camera, tmp_path, request,
                                                    viewer_role=role, camera_address=CAMERA_LAN_ADDRESS)
    pairs = ice_pairs([status])
    print(f"Chromium on the camera's LAN: {fps:.1f} fps, first frame {first_frame:.2f} s after the offer (its gathering "
          f"wait included), its pair {last['local']} → {last['remote']} {last['remoteAddress']}; rtcam's {pairs}")
    assert fps >= MIN_FPS, f"Chromium decoded {fps:.1f} fps"
    assert last["local"] == "host" and last["remote"] == "host", last
    assert last["remoteAddress"].startswith(f"{CAMERA_LAN_ADDRESS}:"), last
    assert pairs and pairs[-1]["local"] == "host" and pairs[-1]["remoteAddress"].startswith(f"{LAN_VIEWER_ADDRESS}:"), pairs


def test_viewer_page_plays_through_two_nats(nat_topology, tmp_path, request):
    """rtcam's own viewer page in Chromium: the page takes the camera's --stun servers for the
    browser, waits briefly for the server-reflexive candidate, and plays."""
    from cdp import Chromium

    camera = start_camera(nat_topology, tmp_path, request, "full")
    browser = Chromium(log_path=str(tmp_path / "chromium-page.log"), user_data_dir=str(tmp_path / "chromium-page-profile"))
    attach(request, "chromium log", lambda: (tmp_path / "chromium-page.log").read_text()[-3000:])
    try:
        in_namespace(nat_topology["view"], browser.start)
        nat_topology.processes.append(browser.process)
        page = browser.new_page()
        attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
        played = play_viewer_page(page, f"http://{CAMERA_PUBLIC_ADDRESS}:{camera.http_port}/",
                                  lambda: in_namespace(nat_topology["cam"], camera.status))
    finally:
        browser.close()
    fps, last, pairs = played["fps"], played["last"], ice_pairs([played["status"]])
    print(f"\nviewer page: first frame {played['first_frame_s']:.2f} s after navigating, {fps:.1f} fps; rtcam's pair {pairs}")
    assert fps >= MIN_FPS, f"the page decoded {fps:.1f} fps"
    assert last["reconnects"] == 0, last
    assert pairs and pairs[-1]["local"] in ("srflx", "prflx") and pairs[-1]["remoteAddress"].startswith("198.51.100.2:"), pairs


def relay_watch(topology: NATTopology, tmp_path: Path, request, turn: str, udp_blocked: bool = False,
                viewers: tuple[str, ...] = ("aiortc", "chromium")) -> None:
    """aiortc, then Chromium, behind `topology` against one rtcam with `--turn`: media through
    coturn's relayed address, for each."""
    started = time.monotonic()
    if udp_blocked:
        topology.block_outbound_udp("rcam")
    camera = start_camera(topology, tmp_path, request, "full", turn=turn, udp_blocked=udp_blocked)
    print(f"\nrtcam's allocation over {turn}: {time.monotonic() - started:.2f} s from start to its relayed address")
    for viewer in viewers:
        if viewer == "aiortc":
            summary, statuses = watch(topology, camera, seconds=WATCH_SECONDS, connect_timeout=10)
            attach(request, "aiortc summary", lambda summary=summary: json.dumps(summary, indent=2))
            print(f"aiortc: ok={summary['ok']} {summary.get('measurement', {}).get('fps')} fps, first frame "
                  f"{summary.get('time_to_first_frame_s')} s after the POST; rtcam's pair: {ice_pairs(statuses)[-1:]}")
            assert summary["ok"], summary.get("error")
            assert summary["measurement"]["fps"] >= MIN_FPS, summary["measurement"]
        else:
            fps, first_frame, last, status = chromium_watch(topology, camera, tmp_path, request, seconds=WATCH_SECONDS)
            statuses = [status]
            print(f"Chromium: {fps:.1f} fps, first frame {first_frame:.2f} s after the offer (its gathering wait "
                  f"included), its pair {last['local']} → {last['remote']} {last['remoteAddress']}; rtcam's {ice_pairs(statuses)}")
            assert fps >= MIN_FPS, f"Chromium decoded {fps:.1f} fps"
            # Chromium's remote candidate is rtcam's relayed address.
            assert last["remote"] == "relay" and last["remoteAddress"].startswith(f"{STUN_ADDRESS}:"), last
        pairs = ice_pairs(statuses)
        relay = statuses[-1].get("turn") if statuses else None
        print(f"  relay {relay}; {time.monotonic() - started:.1f} s so far")
        assert pairs, f"rtcam's /api/status never showed {viewer}'s selected pair"
        pair = pairs[-1]
        # rtcam's end of the path is the relayed address on coturn; the viewer's is its router's
        # mapping toward that address (peer-reflexive: the symmetric NAT made it for the relay).
        assert pair["local"] == "relay" and pair["localAddress"].startswith(f"{STUN_ADDRESS}:"), pair
        assert pair["remoteAddress"].startswith("198.51.100.2:"), pair
        assert relay and relay["relayedAddress"] == pair["localAddress"], relay
        # Permissions for the viewer's IPs while it watched (given up once it left).
        assert max(status.get("turn", {}).get("permissions", 0) for status in statuses) >= 1, statuses[-1]
        if turn in ("tcp", "tls"):
            assert relay["transport"] == turn and relay["connection"] == "ready" and relay["error"] is None, relay


def test_symmetric_viewer_nat_connects_through_the_turn_relay(symmetric_viewer_topology, tmp_path, request):
    """The case above with `--turn` (a long-term user): no direct path, so the relay pair, for
    aiortc and for Chromium."""
    relay_watch(symmetric_viewer_topology, tmp_path, request, turn="password")


def test_both_symmetric_nats_connect_through_the_turn_relay(both_symmetric_topology, tmp_path, request):
    """Both routers symmetric, coturn's REST API (`--turn-secret`): through the relay. Chromium
    checks rtcam's relayed candidate (its own srflx and host ones lead nowhere), nominates that
    pair and plays through coturn."""
    relay_watch(both_symmetric_topology, tmp_path, request, turn="secret")


# Issue 19, "UDP blocked": (a) on the camera's side, rtcam's own allocation over TCP or TLS (the
# relay toward the viewer stays UDP); (b) on the viewer's side, aiortc's and Chromium's own
# allocations over TCP or TLS. (ICE-TCP, the third way for a viewer without UDP, is test_ice_tcp.py's.)

def test_camera_without_udp_relays_over_turn_tcp(symmetric_viewer_topology, tmp_path, request):
    """The camera's network lets no UDP out; rtcam keeps its allocation over TCP to coturn
    (`turn:…?transport=tcp`) and aiortc, then Chromium, behind a symmetric NAT play through the
    relayed address."""
    relay_watch(symmetric_viewer_topology, tmp_path, request, turn="tcp", udp_blocked=True)


def test_camera_without_udp_relays_over_turns(symmetric_viewer_topology, tmp_path, request):
    """The same with TLS on 443 (`turns:`, coturn's certificate checked against --turn-ca)."""
    relay_watch(symmetric_viewer_topology, tmp_path, request, turn="tls", udp_blocked=True)


# Chromium's local candidate on its selected pair: its type and, for a relay candidate, how it
# reaches its TURN server ("udp", "tcp" or "tls").
CHROMIUM_RELAY_PROTOCOL = """(async () => {
  const stats = await window.pc.getStats();
  let pairId = null;
  stats.forEach((report) => { if (report.type === "transport" && report.selectedCandidatePairId) pairId = report.selectedCandidatePairId; });
  const pair = pairId && stats.get(pairId), local = pair && stats.get(pair.localCandidateId);
  return local ? (local.candidateType + " " + (local.relayProtocol || "")) : null;
})()"""


@pytest.mark.parametrize("protocol", ["tcp", "tls"])
def test_viewer_without_udp_plays_through_its_own_turn_server(nat_topology, tmp_path, request, protocol):
    """The viewer's network lets no UDP out: aiortc, then Chromium, given coturn as their TURN
    server over TCP (`turn:…?transport=tcp`) or TLS (`turns:` on 443), allocate over that
    connection; the relayed address reaches rtcam's server-reflexive one (rtcam's checks to the
    relayed address open the camera router's mapping), and each plays. aiortc gathers only its
    relayed candidate (iceTransportPolicy "relay") and checks coturn's certificate against the
    test CA (SSL_CERT_FILE, set by whep_client.py --turn-ca)."""
    nat_topology.block_outbound_udp("rview")
    camera = start_camera(nat_topology, tmp_path, request, "full")
    url = (f"turn:{STUN_ADDRESS}:{STUN_PORT}?transport=tcp" if protocol == "tcp"
           else f"turns:{STUN_ADDRESS}:{TURN_TLS_PORT}?transport=tcp")

    started = time.monotonic()
    turn_args = ("--turn", url, "--turn-user", TURN_USER, "--turn-password", TURN_PASSWORD, "--relay-only")
    if protocol == "tls":
        turn_args += ("--turn-ca", str(nat_topology.turn_ca))
    summary, statuses = watch(nat_topology, camera, seconds=WATCH_SECONDS, connect_timeout=10, extra_args=turn_args)
    attach(request, "aiortc summary", lambda: json.dumps(summary, indent=2))
    pairs, selected = ice_pairs(statuses), summary.get("selected_pair") or {}
    measurement = summary.get("measurement", {})
    print(f"\naiortc over {protocol}: ok={summary['ok']} {measurement.get('fps')} fps ({measurement.get('video_frames')} "
          f"frames, {measurement.get('audio_samples')} audio samples in {measurement.get('seconds')} s), first frame "
          f"{summary.get('time_to_first_frame_s')} s after start (its allocation included), its pair "
          f"{selected.get('local')} ({selected.get('relayProtocol')}) {selected.get('localAddress')} → {selected.get('remote')} "
          f"{selected.get('remoteAddress')}; rtcam's {pairs[-1:]}; took {time.monotonic() - started:.1f} s")
    assert summary["ok"], (summary.get("error"), summary.get("offer_candidates"))
    # Only the relayed candidate was offered: nothing but the TURN connection could carry media.
    assert summary["offer_candidates"] and all(" typ relay" in line for line in summary["offer_candidates"]), \
        summary["offer_candidates"]
    assert measurement["fps"] >= MIN_FPS, measurement
    assert measurement["video_frames"] >= MIN_FPS * WATCH_SECONDS, measurement
    assert measurement["sizes"] == [[640, 480]], measurement
    # 3 s of 48 kHz test tone: allow for the jitter buffer, but most of it must have arrived.
    assert measurement["audio_samples"] >= 48000 * (WATCH_SECONDS - 1), measurement
    assert measurement["audio_rms"] >= 0.001, measurement
    assert selected.get("local") == "relay" and selected.get("relayProtocol") == protocol, selected
    assert selected["localAddress"].startswith(f"{STUN_ADDRESS}:"), selected
    assert selected["remote"] in ("srflx", "prflx") and selected["remoteAddress"].startswith(f"{CAMERA_PUBLIC_ADDRESS}:"), selected
    # rtcam's view: its remote end is aiortc's relayed address, the same one aiortc reports.
    assert pairs and pairs[-1]["remote"] in ("relay", "prflx"), pairs
    assert pairs[-1]["remoteAddress"] == selected["localAddress"], (pairs[-1], selected)
    assert pairs[-1]["local"] in ("srflx", "prflx", "host"), pairs

    # Chromium: gathering never completes without UDP (the STUN server is never heard): the offer
    # goes after 3 s, by when the relayed candidate over TCP or TLS is there (well under a second here).
    script = whep_script([f"stun:{STUN_ADDRESS}:{STUN_PORT}", {"urls": url, "username": TURN_USER, "credential": TURN_PASSWORD}],
                         gather_timeout_ms=3000)
    started = time.monotonic()
    fps, first_frame, last, status, relay_protocol = chromium_watch(
        nat_topology, camera, tmp_path, request, script=script,
        # Chromium checks a turns: server's certificate with its own verifier (without this flag
        # the test CA fails its handshake: net_error -202, CERT_AUTHORITY_INVALID).
        extra_args=("--ignore-certificate-errors",) if protocol == "tls" else ())
    pairs = ice_pairs([status])
    print(f"Chromium over {protocol}: {fps:.1f} fps, first frame {first_frame:.2f} s after the offer (its gathering "
          f"included), its pair {last['local']} ({relay_protocol}) → {last['remote']} {last['remoteAddress']}; "
          f"rtcam's {pairs}; took {time.monotonic() - started:.1f} s")
    assert fps >= MIN_FPS, f"Chromium decoded {fps:.1f} fps"
    assert relay_protocol == f"relay {protocol}", relay_protocol
    assert last["remote"] in ("srflx", "prflx") and last["remoteAddress"].startswith(f"{CAMERA_PUBLIC_ADDRESS}:"), last
    assert pairs and pairs[-1]["remote"] in ("relay", "prflx") and pairs[-1]["remoteAddress"].startswith(f"{STUN_ADDRESS}:"), pairs
