"""ICE-TCP (issue 19, RFC 6544): a viewer whose network drops every UDP datagram still plays, over
rtcam's passive TCP candidate. Two namespaces of the test's own on one veth link:

    camera 10.0.9.1 ──── 10.0.9.2 viewer (nft: UDP dropped both ways on its link)

Chromium in the viewer namespace POSTs its offer to rtcam; rtcam's answer offers UDP and
`tcptype passive` candidates. No UDP check gets through, so Chromium connects to the passive
candidate from its `tcptype active` one and everything (ICE, DTLS, SRTP, RTCP) goes over that one
TCP connection, framed by RFC 4571. Firefox has no ICE-TCP and is not tested here.

Only private addresses inside namespaces made (and deleted, on failure too) here.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from chromium_whep import STATS, whep_script
from conftest import attach
from rtcam_process import RtcamProcess, stop_processes
from test_ice_nat import in_namespace, run

CAMERA_ADDRESS = "10.0.9.1"
VIEWER_ADDRESS = "10.0.9.2"
MIN_FPS = 25.0
# 3 s of a 30 fps stream: 90 frames, enough for the rate (the NAT matrix has to fit in make test's 3 minutes).
WATCH_SECONDS = 3

# The selected pair's transport as Chromium reports it (RTCIceCandidateStats.protocol).
PAIR_PROTOCOL = """(async () => {
  const stats = await window.pc.getStats();
  let pairId = null;
  stats.forEach((report) => { if (report.type === "transport" && report.selectedCandidatePairId) pairId = report.selectedCandidatePairId; });
  const pair = pairId && stats.get(pairId);
  const local = pair && stats.get(pair.localCandidateId), remote = pair && stats.get(pair.remoteCandidateId);
  return {local: local ? local.protocol : null, localTcpType: local ? (local.tcpType || null) : null,
          remote: remote ? remote.protocol : null, remotePort: remote ? remote.port : null};
})()"""


@pytest.fixture
def two_namespaces(request):
    """The camera and viewer namespaces; the viewer's UDP is dropped unless the test is marked
    udp_open (indirect parameter False)."""
    block_udp = getattr(request, "param", True)
    for tool in ("ip", "nft"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            pytest.fail(f"{tool} is missing (make install-test-packages: iproute2, nftables)", pytrace=False)
    names = {role: f"rttcp{os.getpid()}-{role}" for role in ("cam", "view")}
    made: list[str] = []
    processes: list[subprocess.Popen] = []
    try:
        for name in names.values():
            run("ip", "netns", "add", name)
            made.append(name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", names["cam"], "link", "add", "lan", "type", "veth", "peer", "name", "lan", "netns", names["view"])
        run("ip", "-n", names["cam"], "addr", "add", f"{CAMERA_ADDRESS}/24", "dev", "lan")
        run("ip", "-n", names["view"], "addr", "add", f"{VIEWER_ADDRESS}/24", "dev", "lan")
        run("ip", "-n", names["cam"], "link", "set", "lan", "up")
        run("ip", "-n", names["view"], "link", "set", "lan", "up")
        # The viewer's network: no UDP in or out on its link (a hotel or corporate firewall); the
        # counters only count when UDP is open.
        verdict = "drop" if block_udp else "accept"
        run("ip", "netns", "exec", names["view"], "nft", "-f", "-", stdin="""
table inet udpblock {
    chain output {
        type filter hook output priority filter; policy accept;
        oifname "lan" meta l4proto udp counter %(verdict)s
    }
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "lan" meta l4proto udp counter %(verdict)s
    }
}
""" % {"verdict": verdict})
        yield names, processes
    finally:
        stop_processes(processes)
        problems = []
        for name in reversed(made):
            done = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
            if done.returncode != 0:
                problems.append(f"ip netns del {name}: {done.stderr.strip()}")
        assert not problems, problems


def udp_packets_counted(namespace: str) -> int:
    """UDP packets on the viewer's link, both ways (dropped, or let through when UDP is open)."""
    out = subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "table", "inet", "udpblock"],
                         capture_output=True, text=True, timeout=10).stdout
    return sum(int(line.split("packets")[1].split()[0]) for line in out.splitlines() if "counter packets" in line)


def play_in_chromium(names: dict, processes: list, tmp_path: Path, request) -> dict:
    """rtcam in the camera namespace, Chromium's WHEP page in the viewer's: first-frame time, fps
    over WATCH_SECONDS, the video's size, both sides' view of the selected pair, the listener's counters."""
    from cdp import Chromium

    camera = RtcamProcess(state_dir=tmp_path / "rtcam", log_path=tmp_path / "rtcam.log",
                          candidate_addresses=(CAMERA_ADDRESS,), extra_args=("--ice", "full", "--log-level", "debug"))
    attach(request, "rtcam log", lambda: camera.log_tail(120))
    in_namespace(names["cam"], camera.start)
    processes.append(camera.process)
    browser = Chromium(log_path=str(tmp_path / "chromium.log"), user_data_dir=str(tmp_path / "chromium-profile"))
    attach(request, "chromium log", lambda: (tmp_path / "chromium.log").read_text()[-3000:])
    try:
        in_namespace(names["view"], browser.start)
        processes.append(browser.process)
        page = browser.new_page()
        attach(request, "page console", lambda: "\n".join(str(message) for message in page.console))
        page.navigate(f"http://{CAMERA_ADDRESS}:{camera.http_port}/healthz")
        started = time.monotonic()
        page.evaluate(whep_script([], gather_timeout_ms=3000), timeout=20)
        posted = time.monotonic()
        page.wait_for(f"(async () => (await {STATS}).frames > 0)()", timeout=20)
        first_frame = time.monotonic() - started
        first = page.evaluate(STATS)
        time.sleep(WATCH_SECONDS)
        last = page.evaluate(STATS)
        protocols = page.evaluate(PAIR_PROTOCOL)
        size = page.evaluate("(() => { const v = document.querySelector('video'); return [v.videoWidth, v.videoHeight]; })()")
        status = in_namespace(names["cam"], camera.status)
    finally:
        browser.close()
    fps = (last["frames"] - first["frames"]) / ((last["at"] - first["at"]) / 1000)
    pairs = [viewer["icePair"] for viewer in status.get("viewers", []) if viewer.get("icePair")]
    ice_tcp = status.get("iceTCP", {})
    udp_packets = udp_packets_counted(names["view"])
    print(f"\nfirst frame {first_frame:.2f} s after the offer was made ({posted - started:.2f} s gathering + POST), "
          f"{fps:.1f} fps at {size[0]}x{size[1]}; Chromium's pair {protocols}; rtcam's {pairs}; "
          f"listener {ice_tcp}; UDP packets on the viewer's link: {udp_packets}")
    return {"fps": fps, "size": size, "protocols": protocols, "pairs": pairs, "ice_tcp": ice_tcp,
            "udp_packets": udp_packets, "first_frame_s": first_frame, "media_port": camera.media_port}


def test_chromium_plays_over_ice_tcp_with_udp_blocked(two_namespaces, tmp_path, request):
    names, processes = two_namespaces
    played = play_in_chromium(names, processes, tmp_path, request)
    fps, size, protocols, pairs, ice_tcp = played["fps"], played["size"], played["protocols"], played["pairs"], played["ice_tcp"]
    dropped = played["udp_packets"]
    assert dropped > 0, "no UDP was even tried: the test did not block anything"
    assert size == [640, 480], size
    assert fps >= MIN_FPS, f"Chromium decoded {fps:.1f} fps over ICE-TCP"
    assert protocols["local"] == "tcp" and protocols["remote"] == "tcp", protocols
    assert protocols["localTcpType"] == "active" and protocols["remotePort"] == played["media_port"], protocols
    assert pairs and pairs[-1]["protocol"] == "tcp" and pairs[-1]["remoteAddress"].startswith(f"{VIEWER_ADDRESS}:"), pairs
    assert ice_tcp.get("connectionsOpen", 0) >= 1 and ice_tcp.get("framesSent", 0) > MIN_FPS * WATCH_SECONDS, ice_tcp
    assert ice_tcp.get("framingErrors") == 0, ice_tcp


@pytest.mark.parametrize("two_namespaces", [False], indirect=True)
def test_chromium_keeps_udp_when_it_works(two_namespaces, tmp_path, request):
    """The same link with UDP open: the TCP candidate is offered but UDP pairs rank above it, so
    both sides select UDP."""
    names, processes = two_namespaces
    played = play_in_chromium(names, processes, tmp_path, request)
    assert played["fps"] >= MIN_FPS, played["fps"]
    assert played["protocols"]["local"] == "udp" and played["protocols"]["remote"] == "udp", played["protocols"]
    assert played["pairs"] and played["pairs"][-1]["protocol"] == "udp", played["pairs"]
    assert played["udp_packets"] > 100, "media did not take UDP"
