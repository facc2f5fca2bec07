"""One hostile host on the LAN must not take the camera away from everyone (issue 20).

run.sh puts the tests in a network namespace holding only `lo`; the whole of 127.0.0.0/8 is on `lo`,
so the attacker binds its sockets to 127.0.0.66 while the real viewer and /healthz come from
127.0.0.1 (the daemon tells hosts apart by source address).
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import os
import resource
import selectors
import signal
import socket
import threading
import time

from conftest import attach, read_fixture, wait_for_viewers
from rtcam_process import HOST
from whep_client import WhepClient

ATTACKER = "127.0.0.66"
# The soak benchmark (Tests/Benchmarks/run.sh soak) runs these tests longer through these.
SLOWLORIS_SECONDS = float(os.environ.get("HOSTILE_SLOWLORIS_SECONDS", "15"))
FLOOD_DATAGRAMS = int(os.environ.get("HOSTILE_FLOOD_DATAGRAMS", "300000"))
KILL_ROUNDS = int(os.environ.get("HOSTILE_KILL_ROUNDS", "30"))
# The issue asks >= 27 of 30 fps through each attack. Measured here (README, Reliability): 28.3-30.3
# in 7 runs of the three attacks (21 figures) at host load 3.9-7.5, one run beside a VM test; 26.9
# was seen once in the 60 s soak at load 7.6. HOSTILE_MIN_FPS lowers the floor on a busier machine.
MIN_FPS = float(os.environ.get("HOSTILE_MIN_FPS", "27"))


def healthz_seconds(port: int, timeout: float = 3.0) -> float:
    """Seconds /healthz took from a fresh connection (raises if it took more than `timeout`)."""
    start = time.monotonic()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    finally:
        connection.close()
    return time.monotonic() - start


class Slowloris:
    """`count` connections from ATTACKER, each sending a partial request and then one header byte
    every `interval` seconds; a connection the server closes is opened again `reopen` seconds later,
    as a real slowloris tool does, so the attacker always tries to hold `count`."""

    def __init__(self, port: int, count: int, interval: float = 2.0, reopen: float = 1.0):
        self.port, self.count, self.interval, self.reopen = port, count, interval, reopen
        self.reopen_at: list[float] = []
        self.held_at_check = 0
        self.opened = 0
        self.closed_by_server = 0
        self.longest_held = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open_one(self, selector):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((ATTACKER, 0))
        sock.setblocking(False)
        try:
            sock.connect((HOST, self.port))
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            return
        self.opened += 1
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                          {"opened": time.monotonic(), "sent": 0, "next": 0.0})

    def run(self):
        selector = selectors.DefaultSelector()
        for _ in range(self.count):
            self.open_one(selector)
        while not self.stop.is_set():
            now = time.monotonic()
            for key, events in selector.select(timeout=0.2):
                sock, state = key.fileobj, key.data
                gone = False
                if events & selectors.EVENT_READ:
                    try:
                        gone = sock.recv(4096) == b""
                    except (ConnectionError, OSError):
                        gone = True
                if not gone and events & selectors.EVENT_WRITE and now >= state["next"]:
                    piece = b"GET / HTTP/1.1\r\nHost: camera\r\n" if state["sent"] == 0 else b"X"
                    try:
                        sock.send(piece)
                        state["sent"] += 1
                        state["next"] = now + self.interval
                    except BlockingIOError:
                        pass
                    except (ConnectionError, OSError):
                        gone = True
                if gone:
                    self.longest_held = max(self.longest_held, now - state["opened"])
                    self.closed_by_server += 1
                    selector.unregister(sock)
                    sock.close()
                    self.reopen_at.append(now + self.reopen)
                elif events & selectors.EVENT_WRITE and state["sent"] > 0:
                    # Sent for now: only reads until the next byte is due.
                    selector.modify(sock, selectors.EVENT_READ, state)
            while self.reopen_at and self.reopen_at[0] <= now:
                self.reopen_at.pop(0)
                self.open_one(selector)
            for key in list(selector.get_map().values()):
                if key.events == selectors.EVENT_READ and now >= key.data["next"]:
                    selector.modify(key.fileobj, selectors.EVENT_READ | selectors.EVENT_WRITE, key.data)
        for key in list(selector.get_map().values()):
            key.fileobj.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)


def test_slowloris_from_one_address_leaves_healthz_and_a_new_viewer_alone(rtcam_factory, request):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    daemon = rtcam_factory()
    with Slowloris(daemon.http_port, count=1100) as attack:
        time.sleep(SLOWLORIS_SECONDS)
        held = daemon.status()["http"]["connectionsOpen"]
        health = healthz_seconds(daemon.http_port, timeout=3.0)

        async def viewer():
            async with WhepClient(daemon.url("/whep")) as client:
                await client.wait_for_media(timeout=10)
                return client, await client.measure(seconds=3)

        client, measurement = asyncio.run(asyncio.wait_for(viewer(), timeout=40))
        status = daemon.status()
    print(f"slowloris: opened {attack.opened}, closed by rtcam {attack.closed_by_server}, "
          f"longest held {attack.longest_held:.1f} s; rtcam held {held} at {SLOWLORIS_SECONDS:.0f} s; /healthz {health * 1000:.0f} ms; viewer {measurement.fps:.1f} fps; "
          f"http {status.get('http')}")
    attach(request, "status", lambda: str(status))
    assert health < 3.0
    assert held >= 20, f"the attack held only {held} connections when /healthz was asked"
    assert client.post_status == 201 and measurement.fps >= MIN_FPS, measurement
    http = status["http"]
    assert http["refusedPerAddress"] >= 1000 and http["connectionsAccepted"] <= 40 * 32, http
    assert http["requestTimeouts"] >= 32, http
    assert attack.longest_held < 13, f"a slowloris connection stayed {attack.longest_held:.1f} s (request timeout 10 s)"


def test_offers_that_never_connect_do_not_keep_a_real_viewer_out(rtcam_factory, request):
    daemon = rtcam_factory(max_viewers=1)
    offer = read_fixture("chromium-156-recvonly-offer.sdp").encode()
    statuses = []
    for _ in range(10):
        connection = http.client.HTTPConnection(HOST, daemon.http_port, timeout=5, source_address=(ATTACKER, 0))
        try:
            connection.request("POST", "/whep", body=offer, headers={"Content-Type": "application/sdp"})
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        finally:
            connection.close()
    assert statuses.count(201) == 2 and statuses.count(429) == 8, statuses

    async def viewer():
        async with WhepClient(daemon.url("/whep")) as client:
            await client.wait_for_media(timeout=10)
            return client, await client.measure(seconds=3)

    client, measurement = asyncio.run(asyncio.wait_for(viewer(), timeout=40))
    print(f"attacker's POSTs: {statuses}; real viewer {measurement.fps:.1f} fps")
    assert client.post_status == 201 and measurement.fps >= MIN_FPS, measurement
    # The attacker's two never connect: gone after the 10 s connect timeout.
    assert wait_for_viewers(daemon, 0, timeout=15) == 0


def test_hostile_datagram_flood_while_a_viewer_watches(rtcam_factory, request):
    daemon = rtcam_factory()
    sent = [0]

    def flood():
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
        for sock in sockets:
            sock.bind((ATTACKER, 0))
        payloads = [bytes([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]) + bytes(12),   # STUN-looking
                    bytes([0x16, 0xfe, 0xfd]) + bytes(60), bytes([0x80, 0xc8]) + bytes(100), bytes(range(200))]
        for index in range(FLOOD_DATAGRAMS):
            try:
                sockets[index % 64].sendto(payloads[index % 4], (HOST, daemon.media_port))
                sent[0] += 1
            except OSError as error:
                if error.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
        for sock in sockets:
            sock.close()

    async def viewer():
        async with WhepClient(daemon.url("/whep")) as client:
            await client.wait_for_media(timeout=10)
            flooding = threading.Thread(target=flood, daemon=True)
            started = time.monotonic()
            flooding.start()
            measurement = await client.measure(seconds=4)
            await asyncio.to_thread(flooding.join, 120 + FLOOD_DATAGRAMS / 5000)
            return client, measurement, time.monotonic() - started

    client, measurement, seconds = asyncio.run(asyncio.wait_for(viewer(), timeout=180 + FLOOD_DATAGRAMS / 5000))
    print(f"flood: {sent[0]} datagrams in {seconds:.1f} s; viewer {measurement.fps:.1f} fps")
    assert sent[0] >= FLOOD_DATAGRAMS * 0.95
    assert measurement.fps >= MIN_FPS, measurement
    assert daemon.is_running()


def test_kill_9_during_settings_saves_leaves_the_old_or_the_new_config(rtcam_factory):
    """SIGKILL at random moments while the settings page saves, over and over: config.json is always
    one of the saved versions (never empty, never half-written), and a restart tidies the temporary
    files of the write that was cut off."""
    import json
    import random

    daemon = rtcam_factory()
    config = daemon.state_dir / "config.json"
    rng = random.Random(20)
    values = set()
    kills = 0
    saves = 0
    unfinished = 0
    for round_ in range(KILL_ROUNDS):
        cookie = daemon.log_in()
        done = threading.Event()

        def save_repeatedly():
            nonlocal saves
            index = 0
            while not done.is_set():
                value = 2 + (round_ * 1000 + index) % 900
                values.add(value)
                try:
                    daemon.request("PUT", "/api/config", json.dumps({"maxViewers": value}).encode(),
                                   {"Content-Type": "application/json", "Cookie": cookie}, timeout=2)
                    saves += 1
                except OSError:
                    return
                index += 1

        saver = threading.Thread(target=save_repeatedly, daemon=True)
        saver.start()
        time.sleep(rng.uniform(0.05, 0.4))
        daemon.kill()
        kills += 1
        done.set()
        saver.join(timeout=5)
        if config.exists() or saves > 0:
            text = config.read_text()
            saved = json.loads(text)           # never empty or cut off
            assert saved["maxViewers"] in values, text
        leftovers = [p.name for p in daemon.state_dir.iterdir() if ".tmp-" in p.name]
        unfinished += len(leftovers)
        daemon.start()
        assert not [p.name for p in daemon.state_dir.iterdir() if ".tmp-" in p.name], leftovers
    print(f"{kills} kills during {saves} saves; config.json was whole after every one; "
          f"{unfinished} unfinished writes removed at restart")
    assert saves >= 20


def test_a_viewer_that_vanishes_is_freed_within_30_s(rtcam_factory):
    """An aiortc viewer is SIGKILLed mid-stream (no DELETE, no BYE, no close_notify): rtcam ends its
    session on consent expiry (RFC 7675: 30 s without a valid check), stops the encoders, and holds
    no more descriptors than before the viewer came."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from rtcam_process import viewer_count

    def descriptors() -> tuple[int, int]:
        """(sockets, other descriptors) the daemon holds. The sockets include HTTP connections, one
        of which may be the test's own last request, still closing on the daemon's side."""
        links = []
        for name in os.listdir(f"/proc/{daemon.process.pid}/fd"):
            try:
                links.append(os.readlink(f"/proc/{daemon.process.pid}/fd/{name}"))
            except OSError:
                pass
        sockets = sum(1 for link in links if link.startswith("socket:"))
        return sockets, len(links) - sockets

    daemon = rtcam_factory()
    daemon.log_in()
    time.sleep(0.5)
    descriptors_idle = descriptors()
    viewer = subprocess.Popen([sys.executable, str(Path(__file__).parent / "whep_client.py"), daemon.url("/whep"),
                               "--seconds", "120", "--keep-session"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            viewers = daemon.status()["viewers"]
            if viewers and viewers[0]["state"] == "connected" and viewers[0]["packetsSent"] > 100:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the viewer did not connect: {daemon.status()['viewers']}")
    finally:
        viewer.send_signal(signal.SIGKILL)
        viewer.wait(timeout=5)
    vanished = time.monotonic()
    while viewer_count(daemon.status()) > 0 and time.monotonic() - vanished < 40:
        time.sleep(0.25)
    freed_after = time.monotonic() - vanished
    frames = daemon.status()["framesEncoded"]
    time.sleep(1)
    status = daemon.status()
    descriptors_after = descriptors()
    print(f"vanished viewer freed after {freed_after:.1f} s; descriptors (sockets, others) {descriptors_idle} idle, "
          f"{descriptors_after} after")
    assert viewer_count(status) == 0 and freed_after <= 31, f"still {viewer_count(status)} viewer(s) after {freed_after:.1f} s"
    assert status["framesEncoded"] == frames, "the encoder still runs with nobody watching"
    assert descriptors_after[1] == descriptors_idle[1], (descriptors_idle, descriptors_after)
    assert descriptors_after[0] <= descriptors_idle[0] + 1, (descriptors_idle, descriptors_after)


def test_viewers_joining_and_leaving_every_second_beside_a_steady_one(rtcam_factory):
    """The one-hour churn (`bash Tests/Benchmarks/run.sh churn`) in short: a steady aiortc viewer
    watches while another viewer joins every second and leaves (DELETE) about a second later, for
    CHURN_SECONDS. The steady one keeps its frame rate; afterwards rtcam holds the steady viewer only,
    the same descriptors as before the churn, and no joiner's session."""
    from rtcam_process import viewer_count

    churn_seconds = float(os.environ.get("CHURN_SECONDS", "20"))
    daemon = rtcam_factory()
    pid = daemon.process.pid

    def descriptors() -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    def resident_kb() -> int:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    async def joiner(results: list) -> None:
        try:
            async with WhepClient(daemon.url("/whep")) as client:
                await client.wait_for_media(timeout=10)
                await asyncio.sleep(0.8)
            results.append(client.delete_status)
        except Exception as error:  # noqa: BLE001 — counted, then asserted on
            results.append(repr(error))

    async def scenario():
        async with WhepClient(daemon.url("/whep")) as steady:
            await steady.wait_for_media(timeout=10)
            await asyncio.sleep(1)
            before = (descriptors(), resident_kb())
            results: list = []
            joiners = []
            window = asyncio.ensure_future(steady.measure(seconds=churn_seconds))
            started = time.monotonic()
            while time.monotonic() - started < churn_seconds:
                joiners.append(asyncio.ensure_future(joiner(results)))
                await asyncio.sleep(1)
            measurement = await window
            await asyncio.gather(*joiners)
            # Joiners that left: their sessions end at the DELETE; the last one's sockets close at once.
            deadline = time.monotonic() + 5
            while viewer_count(daemon.status()) > 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            after = (descriptors(), resident_kb(), viewer_count(daemon.status()))
            return measurement, results, before, after

    measurement, results, before, after = asyncio.run(asyncio.wait_for(scenario(), timeout=churn_seconds + 60))
    left = results.count(200)
    print(f"churn: {len(results)} joiners, {left} left with 200, others {[r for r in results if r != 200][:3]}; "
          f"steady viewer {measurement.fps:.1f} fps; descriptors {before[0]} -> {after[0]}; "
          f"RSS {before[1]} -> {after[1]} kB; viewers after {after[2]}")
    assert len(results) >= churn_seconds - 1 and left == len(results), results
    assert measurement.fps >= MIN_FPS, measurement
    assert after[2] == 1, f"{after[2]} viewers after the churn (the steady one only expected)"
    assert after[0] <= before[0] + 1, f"descriptors {before[0]} before the churn, {after[0]} after"



def test_sigterm_while_rtcam_is_still_starting_stops_it_cleanly(tmp_path):
    """systemd may stop rtcam while it is still starting (its first log line written, HTTP, the
    encoders and READY not yet): SIGTERM and SIGINT are blocked before the daemon's first thread and
    taken from a signalfd, so the stop is the clean one (exit 0, "stopped" logged), never the
    default action's death by the signal (exit -15) or a signal lost to SIG_IGN (no exit at all)."""
    import subprocess
    from rtcam_process import free_port, rtcam_binary

    outcomes = []
    for round_number, number in enumerate([signal.SIGTERM, signal.SIGINT] * 4):
        log_path = tmp_path / f"start-{round_number}.log"
        with open(log_path, "wb") as log:
            daemon = subprocess.Popen(
                [rtcam_binary(), "--http-port", str(free_port()), "--https-port", "0",
                 "--media-port", str(free_port(socket.SOCK_DGRAM)), "--rtsp-port", "0",
                 "--state-dir", str(tmp_path / f"state-{round_number}"), "--source", "test-pattern",
                 "--audio", "test-tone"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 10
            while not log_path.read_bytes().strip():         # the daemon's first line: it is running
                assert daemon.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.0005)
            daemon.send_signal(number)
            code = daemon.wait(timeout=10)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        text = log_path.read_text()
        outcomes.append(code)
        assert code == 0 and "stopped" in text, (
            f"round {round_number} ({number.name} at the first log line): exit {code}; all so far {outcomes}\n{text}")
