"""An IPv6-only viewer LAN → an IPv6 host pair (issue 19).

    test's namespace: rtcam, lo + veth 2001:db8::1/64 and 192.0.2.1/24 ── veth 2001:db8::2/64: viewer namespace (IPv6 only)

rtcam runs in the test's own namespace (run.sh's, holding only `lo` and this veth) with no
--candidate-address: it picks its host candidates itself, so the answer must carry 2001:db8::1
(its IPv4 address too, which the viewer cannot pair) and neither the link-local fe80:: address the
kernel gives the veth nor a deprecated address added for the purpose. The viewer namespace has no
IPv4 address outside `lo`; aiortc and Chromium there fetch the page and POST WHEP to
http://[2001:db8::1]:port over IPv6, while the test itself still reaches rtcam's HTTP on 127.0.0.1
(the same `::` listener, dual-stack). Documentation prefix only, `nodad` so the addresses are usable
at once; the namespace and the veth are deleted on failure too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import chromium_whep
from chromium_whep import play_viewer_page, whep_script
from conftest import attach
from rtcam_process import RtcamProcess, stop_processes, http_request

INTEROP_DIR = Path(__file__).resolve().parent
CAMERA_IPV6 = "2001:db8::1"
VIEWER_IPV6 = "2001:db8::2"
DEPRECATED_IPV6 = "2001:db8::dead"
CAMERA_IPV4 = "192.0.2.1"
MIN_FPS = 25.0


def run(*command: str) -> None:
    done = subprocess.run(command, text=True, capture_output=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


class IPv6ViewerLAN:
    """A veth pair from the test's namespace to a viewer namespace with IPv6 addresses only."""

    def __init__(self):
        self.namespace = f"rtv6-{os.getpid()}"
        self.device = f"rtv6c{os.getpid() % 100000}"   # interface names: 15 characters at most
        self.made_namespace = False
        self.made_device = False

    def create(self) -> "IPv6ViewerLAN":
        run("ip", "netns", "add", self.namespace)
        self.made_namespace = True
        run("ip", "-n", self.namespace, "link", "set", "lo", "up")
        run("ip", "link", "add", self.device, "type", "veth", "peer", "name", "lan", "netns", self.namespace)
        self.made_device = True
        run("ip", "-6", "addr", "add", f"{CAMERA_IPV6}/64", "dev", self.device, "nodad")
        # Deprecated (preferred lifetime 0): still on the interface, never a host candidate.
        run("ip", "-6", "addr", "add", f"{DEPRECATED_IPV6}/64", "dev", self.device, "nodad", "preferred_lft", "0")
        run("ip", "-4", "addr", "add", f"{CAMERA_IPV4}/24", "dev", self.device)
        run("ip", "link", "set", self.device, "up")
        run("ip", "-n", self.namespace, "-6", "addr", "add", f"{VIEWER_IPV6}/64", "dev", "lan", "nodad")
        run("ip", "-n", self.namespace, "link", "set", "lan", "up")
        # A default route (to the camera's end, where nothing is routed further): browsers gather
        # host candidates only for a family they have a route in.
        run("ip", "-n", self.namespace, "-6", "route", "add", "default", "via", CAMERA_IPV6)
        return self

    def popen(self, *command: str, **options) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.namespace, *command], **options)

    def destroy(self) -> list[str]:
        problems = []
        if self.made_device:   # deleting one end deletes the pair; gone already if the namespace went first
            subprocess.run(["ip", "link", "del", self.device], capture_output=True)
            self.made_device = False
        if self.made_namespace:
            done = subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, text=True)
            if done.returncode != 0:
                problems.append(f"ip netns del {self.namespace}: {done.stderr.strip()}")
            self.made_namespace = False
        return problems


@pytest.fixture
def ipv6_viewer_lan(request, tmp_path):
    if subprocess.run(["sh", "-c", "command -v ip"], capture_output=True).returncode != 0:
        pytest.fail("ip is missing (iproute2)", pytrace=False)
    lan = IPv6ViewerLAN()
    started: list[subprocess.Popen] = []
    lan.processes = started
    try:
        lan.create()
        yield lan
    finally:
        stop_processes(started)
        problems = lan.destroy()
        assert not problems, problems


def start_camera(lan: IPv6ViewerLAN, tmp_path: Path, request) -> RtcamProcess:
    # No --candidate-address: the daemon's own choice of host candidates is under test.
    camera = RtcamProcess(state_dir=tmp_path / "rtcam", log_path=tmp_path / "rtcam.log", candidate_addresses=(),
                          extra_args=("--log-level", "debug"))
    attach(request, "rtcam log", lambda: camera.log_tail(120))
    camera.start()   # /healthz over 127.0.0.1: IPv4 still reaches the `::` listener
    lan.processes.append(camera.process)
    return camera


def selected_pairs(statuses: list) -> list:
    return [viewer["icePair"] for status in statuses for viewer in status.get("viewers", []) if viewer.get("icePair")]


def assert_ipv6_host_pair(pair: dict) -> None:
    assert pair["local"] == "host" and pair["remote"] == "host", pair
    assert pair["localAddress"].startswith(f"[{CAMERA_IPV6}]:"), pair
    assert pair["remoteAddress"].startswith(f"[{VIEWER_IPV6}]:"), pair


def test_answer_offers_global_ipv6_first_then_ipv4(ipv6_viewer_lan, tmp_path, request):
    """The answer's host candidates, from the daemon's own interface enumeration: 2001:db8::1 first
    (RFC 8421: IPv6 slightly preferred), then 192.0.2.1; no link-local, no deprecated address, no
    loopback. The offer goes over IPv4 to 127.0.0.1: the `::` listener still takes IPv4."""
    camera = start_camera(ipv6_viewer_lan, tmp_path, request)
    offer = (INTEROP_DIR.parent / "Fixtures" / "sdp" / "chromium-156-recvonly-offer.sdp").read_bytes()
    status, _, body = http_request("POST", "/whep", camera.http_port, body=offer,
                                   headers={"Content-Type": "application/sdp"})
    assert status == 201, (status, body[:300])
    candidates = [line.split() for line in body.decode().splitlines() if line.startswith("a=candidate:")]
    hosts, tcp_hosts = [], []   # once each, in the answer's order (every m-section repeats them)
    for fields in candidates:
        if fields[7] != "host":
            continue
        found = hosts if fields[2].lower() == "udp" else tcp_hosts
        if (fields[4], int(fields[3])) not in found:
            found.append((fields[4], int(fields[3])))
    print(f"\nUDP host candidates: {hosts}; ICE-TCP passive: {tcp_hosts}")
    assert [address for address, _ in hosts] == [CAMERA_IPV6, CAMERA_IPV4], hosts
    assert hosts[0][1] > hosts[1][1], hosts
    # The passive TCP candidates at the same addresses, each below every UDP one (RFC 6544 §4.2).
    assert [address for address, _ in tcp_hosts] == [CAMERA_IPV6, CAMERA_IPV4], tcp_hosts
    assert max(priority for _, priority in tcp_hosts) < min(priority for _, priority in hosts), (hosts, tcp_hosts)


def test_aiortc_on_an_ipv6_only_lan_plays_over_an_ipv6_host_pair(ipv6_viewer_lan, tmp_path, request):
    started = time.monotonic()
    camera = start_camera(ipv6_viewer_lan, tmp_path, request)
    viewer = ipv6_viewer_lan.popen(
        sys.executable, str(INTEROP_DIR / "whep_client.py"), f"http://[{CAMERA_IPV6}]:{camera.http_port}/whep",
        "--seconds", "3", "--connect-timeout", "10", "--no-loopback",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ipv6_viewer_lan.processes.append(viewer)
    statuses = []
    deadline = time.monotonic() + 30
    while viewer.poll() is None and time.monotonic() < deadline:
        statuses.append(camera.status())
        time.sleep(0.5)
    out, err = viewer.communicate(timeout=max(1.0, deadline - time.monotonic()))
    try:
        summary = json.loads(out)
    except json.JSONDecodeError:
        summary = {"ok": False, "error": f"no JSON from whep_client.py: {out[-500:]!r} {err[-2000:]!r}"}
    attach(request, "aiortc stderr", lambda: err[-3000:])
    pairs = selected_pairs(statuses)
    print(f"\naiortc over IPv6: {json.dumps(summary.get('measurement'))}, first frame {summary.get('time_to_first_frame_s')} s "
          f"after the POST; rtcam's pair {pairs[-1:]}; "
          f"took {time.monotonic() - started:.1f} s")
    assert summary["ok"], summary.get("error")
    assert summary["measurement"]["fps"] >= MIN_FPS, summary["measurement"]
    assert pairs, "rtcam's /api/status never showed a selected pair"
    assert_ipv6_host_pair(pairs[-1])
    assert statuses[-1]["mediaSocket"]["dualStack"] is True
    assert statuses[-1]["mediaSocket"]["sendErrors"] == 0, statuses[-1]["mediaSocket"]


# WHEP from a page of the camera's origin, with the offer sent once gathering is complete: the
# offer carries Chromium's IPv6 host candidate, so both sides name the pair host/host.
CHROMIUM_WHEP = whep_script(gather_timeout_ms=5000)
CHROMIUM_STATS = chromium_whep.STATS


def chromium_in_viewer_lan(lan: IPv6ViewerLAN, tmp_path: Path, request, name: str):
    from cdp import Chromium, find_chromium

    wrapper = tmp_path / f"{name}-in-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {lan.namespace} {find_chromium()} "$@"\n')
    wrapper.chmod(0o755)
    browser = Chromium(executable=str(wrapper), log_path=str(tmp_path / f"{name}.log"),
                       user_data_dir=str(tmp_path / f"{name}-profile"))
    attach(request, f"{name} log", lambda: (tmp_path / f"{name}.log").read_text()[-3000:])
    browser.start()
    lan.processes.append(browser.process)
    return browser


def test_chromium_whep_on_an_ipv6_only_lan_uses_an_ipv6_host_pair(ipv6_viewer_lan, tmp_path, request):
    camera = start_camera(ipv6_viewer_lan, tmp_path, request)
    browser = chromium_in_viewer_lan(ipv6_viewer_lan, tmp_path, request, "chromium-whep")
    try:
        page = browser.new_page()
        attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
        page.navigate(f"http://[{CAMERA_IPV6}]:{camera.http_port}/healthz")
        offered = time.monotonic()
        offer = page.evaluate(CHROMIUM_WHEP, timeout=20)
        page.wait_for("window.pc.connectionState === 'connected'", timeout=15)
        page.wait_for(f"(async () => (await {CHROMIUM_STATS}).frames > 0)()", timeout=15)
        first_frame = time.monotonic() - offered
        first = page.evaluate(CHROMIUM_STATS)
        time.sleep(3)
        last = page.evaluate(CHROMIUM_STATS)
        pairs = selected_pairs([camera.status()])
    finally:
        browser.close()
    fps = (last["frames"] - first["frames"]) / ((last["at"] - first["at"]) / 1000)
    print(f"\nChromium WHEP over IPv6: {fps:.1f} fps, first frame {first_frame:.2f} s after the offer (its gathering "
          f"included), its pair {last['local']} → {last['remote']} "
          f"{last['remoteIP']}; rtcam's {pairs}")
    assert f" {VIEWER_IPV6} " in offer, "Chromium's offer has no IPv6 host candidate"
    assert fps >= MIN_FPS, f"Chromium decoded {fps:.1f} fps"
    assert last["local"] == "host" and last["remote"] == "host" and last["remoteIP"] == CAMERA_IPV6, last
    assert pairs, "rtcam's /api/status showed no selected pair"
    assert_ipv6_host_pair(pairs[-1])


def test_chromium_on_an_ipv6_only_lan_plays_the_viewer_page(ipv6_viewer_lan, tmp_path, request):
    """rtcam's own viewer page, loaded from http://[2001:db8::1]:port/ in Chromium inside the
    viewer namespace: the page, WHEP and the media all over IPv6. Without STUN the page posts its
    offer before any candidate is gathered (ViewerPage), so rtcam learns the viewer's IPv6 address
    from its checks: a peer-reflexive remote candidate on a host-to-host path."""
    camera = start_camera(ipv6_viewer_lan, tmp_path, request)
    browser = chromium_in_viewer_lan(ipv6_viewer_lan, tmp_path, request, "chromium-page")
    try:
        page = browser.new_page()
        attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
        played = play_viewer_page(page, f"http://[{CAMERA_IPV6}]:{camera.http_port}/", camera.status)
    finally:
        browser.close()
    fps, pairs = played["fps"], selected_pairs([played["status"]])
    print(f"\nviewer page over IPv6: first frame {played['first_frame_s']:.2f} s after navigating, {fps:.1f} fps; rtcam's pair {pairs}")
    assert fps >= MIN_FPS, f"the page decoded {fps:.1f} fps"
    assert pairs, "rtcam's /api/status showed no selected pair"
    pair = pairs[-1]
    assert pair["local"] == "host" and pair["remote"] in ("host", "prflx"), pair
    assert pair["localAddress"].startswith(f"[{CAMERA_IPV6}]:") and pair["remoteAddress"].startswith(f"[{VIEWER_IPV6}]:"), pair
