"""A delay-and-loss line for UDP in user space (issue 20): this machine's kernel has no `netem`.

A viewer sends its datagrams to the relay's port instead of rtcam's; the relay forwards each one to
rtcam after a fixed delay, from a socket of its own per viewer address (so rtcam sees the relay's
address, a peer-reflexive candidate), and forwards rtcam's answers back after the same delay,
dropping a share of them with a seeded random generator:

    viewer ──(delay)──► relay ──► rtcam          rtcam ──► relay ──(drop LOSS, then delay)──► viewer

Each datagram is due at its arrival (the kernel's receive timestamp, SO_TIMESTAMPNS) plus the delay
and sent in arrival order; how late each left after it was due is kept, so a report can say whether
the line itself was on time (`timing`: p50/p99/max in ms).

What is dropped (rtcam → viewer only, as the VM test's `netem loss` on the guest's egress): every
datagram by default (STUN, DTLS, SRTP and SRTCP alike), or only RTP with --media-only. Nothing the
viewer sends is dropped. The n-th datagram eligible for loss is dropped when the seeded generator's
n-th draw says so: the same seed drops the same places of the stream.

Run as a process (its own interpreter: the test's threads cannot hold it up):

    python loss_relay.py --upstream 127.0.0.1:PORT [--listen 127.0.0.1:0] [--delay-ms 25] [--loss 0.1] [--seed 20]

It prints {"port": N} once listening, then answers one JSON line per command read on stdin:
`loss P` (a new share, 0-1), `stats` (the counters since the start; timing since the last `stats`),
`quit`. `LossRelay` below does that from a test.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time
from typing import Optional

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
MAXIMUM_VIEWER_ADDRESSES = 16
DATAGRAM_MAXIMUM = 65_535


def kind_of(datagram: bytes) -> str:
    """RFC 7983 §7's first-byte demultiplexing; RTCP told from RTP by the packet type (RFC 5761 §4)."""
    if not datagram:
        return "empty"
    first = datagram[0]
    if first <= 3:
        return "stun"
    if 20 <= first <= 63:
        return "dtls"
    if 128 <= first <= 191:
        return "rtcp" if len(datagram) > 1 and 192 <= datagram[1] <= 223 else "rtp"
    return "other"


def percentile(sorted_values: list[float], share: float) -> Optional[float]:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(share * (len(sorted_values) - 1)))))
    return sorted_values[index]


class Line:
    """The relay's state: sockets, the datagrams waiting for their time, counters."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], delay_ms: float, loss: float,
                 seed: int, media_only: bool, trace=None):
        self.upstream = upstream
        self.delay_ns = int(delay_ms * 1_000_000)
        self.loss = loss
        self.random = random.Random(seed)
        self.media_only = media_only
        self.trace = trace      # a text file: one line per datagram (see trace())
        self.started_ns = time.monotonic_ns()
        self.viewer_socket = self._socket(listen)
        self.upstream_sockets: dict[tuple, socket.socket] = {}   # viewer address → its socket towards rtcam
        self.viewer_of: dict[int, tuple] = {}                     # that socket's fd → the viewer address
        self.waiting: list[tuple] = []                            # (due ns, order, socket, datagram, to)
        self.order = 0
        self.counters = {"toRtcam": 0, "toViewer": 0, "dropped": 0, "droppedByKind": {}, "toViewerByKind": {},
                         "sendErrors": 0, "viewerAddresses": 0, "refusedViewerAddresses": 0}
        self.realtime_offset_ns = self._realtime_offset_ns()
        self.last_due: dict[int, int] = {}    # per outgoing socket: a fixed delay keeps each direction in order
        self.lateness_ns: list[int] = []      # send time − due time of every datagram since the last `stats`
        self.late_total = {"count": 0, "over1ms": 0, "over5ms": 0, "maxMs": 0.0}

    @staticmethod
    def _socket(address: tuple[str, int]) -> socket.socket:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 21)
        sock.bind(address)
        sock.setblocking(False)
        return sock

    @property
    def port(self) -> int:
        return self.viewer_socket.getsockname()[1]

    def sockets(self) -> list[socket.socket]:
        return [self.viewer_socket, *self.upstream_sockets.values()]

    @staticmethod
    def _realtime_offset_ns() -> int:
        """CLOCK_REALTIME − CLOCK_MONOTONIC, from the tightest of three readings (a reading the
        scheduler interrupted between the two clocks would move arrivals by the interruption)."""
        best = None
        for _ in range(3):
            before = time.monotonic_ns()
            real = time.time_ns()
            after = time.monotonic_ns()
            if best is None or after - before < best[0]:
                best = (after - before, real - (before + after) // 2)
        return best[1]

    def _arrival_ns(self, ancillary) -> int:
        """The kernel's receive time on the monotonic clock (SO_TIMESTAMPNS is CLOCK_REALTIME)."""
        now = time.monotonic_ns()
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
                seconds, nanoseconds = TIMESPEC.unpack_from(data)
                return min(now, seconds * 1_000_000_000 + nanoseconds - self.realtime_offset_ns)
        return now

    def receive(self, sock: socket.socket) -> None:
        """Everything readable on `sock` now, each datagram queued for its time (or dropped)."""
        self.realtime_offset_ns = self._realtime_offset_ns()     # follows a step of the wall clock
        while True:
            try:
                datagram, ancillary, _, source = sock.recvmsg(DATAGRAM_MAXIMUM, socket.CMSG_SPACE(TIMESPEC.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # An ICMP error for an earlier send (e.g. port unreachable) surfaces here: skip it.
                continue
            arrived = self._arrival_ns(ancillary)
            if sock is self.viewer_socket:
                upstream = self._upstream_for(source)
                if upstream is None:
                    continue
                self.counters["toRtcam"] += 1
                self._trace(arrived, "up", datagram, False)
                self._queue(arrived, upstream, datagram, self.upstream)
            else:
                viewer = self.viewer_of.get(sock.fileno())
                if viewer is None or source[:2] != self.upstream[:2]:
                    continue
                kind = kind_of(datagram)
                eligible = kind == "rtp" if self.media_only else True
                if eligible and self.loss > 0 and self.random.random() < self.loss:
                    self._trace(arrived, "down", datagram, True)
                    self.counters["dropped"] += 1
                    self.counters["droppedByKind"][kind] = self.counters["droppedByKind"].get(kind, 0) + 1
                    continue
                self._trace(arrived, "down", datagram, False)
                self.counters["toViewer"] += 1
                self.counters["toViewerByKind"][kind] = self.counters["toViewerByKind"].get(kind, 0) + 1
                self._queue(arrived, self.viewer_socket, datagram, viewer)

    def _trace(self, arrived_ns: int, direction: str, datagram: bytes, dropped: bool) -> None:
        """One line: ms since the start, direction, kind, dropped (1/0), size, and what SRTP and
        SRTCP leave in the clear: RTP payload type, SSRC, sequence number and timestamp (an RTX copy
        keeps its original's timestamp, RFC 4588 §4), or the RTCP packet type and sender SSRC."""
        if self.trace is None:
            return
        kind = kind_of(datagram)
        fields = ""
        if kind == "rtp" and len(datagram) >= 12:
            sequence, timestamp, ssrc = struct.unpack_from("!HII", datagram, 2)
            fields = f" pt={datagram[1] & 0x7F} ssrc={ssrc} seq={sequence} ts={timestamp}"
        elif kind == "rtcp" and len(datagram) >= 8:
            fields = f" type={datagram[1]} ssrc={struct.unpack_from('!I', datagram, 4)[0]}"
        self.trace.write(f"{(arrived_ns - self.started_ns) / 1e6:.2f} {direction} {kind} {int(dropped)} {len(datagram)}{fields}\n")

    def _upstream_for(self, viewer: tuple) -> Optional[socket.socket]:
        key = viewer[:2]
        sock = self.upstream_sockets.get(key)
        if sock is None:
            if len(self.upstream_sockets) >= MAXIMUM_VIEWER_ADDRESSES:
                self.counters["refusedViewerAddresses"] += 1
                return None
            host = "::1" if ":" in self.upstream[0] else "127.0.0.1"
            sock = self._socket((host if self.upstream[0] in ("127.0.0.1", "::1") else "", 0))
            self.upstream_sockets[key] = sock
            self.viewer_of[sock.fileno()] = viewer
            self.counters["viewerAddresses"] += 1
        return sock

    def _queue(self, arrived_ns: int, sock: socket.socket, datagram: bytes, to: tuple) -> None:
        self.order += 1
        due = max(arrived_ns + self.delay_ns, self.last_due.get(sock.fileno(), 0))
        self.last_due[sock.fileno()] = due
        heapq.heappush(self.waiting, (due, self.order, sock, datagram, to))

    def send_due(self) -> None:
        while self.waiting and self.waiting[0][0] <= time.monotonic_ns():
            due, _, sock, datagram, to = heapq.heappop(self.waiting)
            late = time.monotonic_ns() - due
            self.lateness_ns.append(late)
            self.late_total["count"] += 1
            self.late_total["over1ms"] += late > 1_000_000
            self.late_total["over5ms"] += late > 5_000_000
            self.late_total["maxMs"] = max(self.late_total["maxMs"], late / 1e6)
            try:
                sock.sendto(datagram, to)
            except OSError:
                self.counters["sendErrors"] += 1

    def seconds_to_next(self) -> Optional[float]:
        if not self.waiting:
            return None
        return max(0.0, (self.waiting[0][0] - time.monotonic_ns()) / 1e9)

    def stats(self) -> dict:
        late = sorted(value / 1e6 for value in self.lateness_ns)
        self.lateness_ns = []
        timing = {"datagrams": len(late), "p50Ms": percentile(late, 0.5), "p99Ms": percentile(late, 0.99),
                  "maxMs": late[-1] if late else None}
        return {**self.counters, "loss": self.loss, "delayMs": self.delay_ns / 1e6, "mediaOnly": self.media_only,
                "timing": timing, "timingSinceStart": dict(self.late_total), "waiting": len(self.waiting)}


def command(line: Line, text: str) -> Optional[dict]:
    words = text.split()
    if not words:
        return None
    if words[0] == "loss" and len(words) == 2:
        line.loss = min(1.0, max(0.0, float(words[1])))
        return {"loss": line.loss}
    if words[0] == "stats":
        if line.trace is not None:
            line.trace.flush()
        return line.stats()
    if words[0] == "quit":
        raise SystemExit(0)
    return {"error": f"unknown command {text.strip()!r}"}


def serve(line: Line) -> None:
    print(json.dumps({"port": line.port}), flush=True)
    pending = b""
    while True:
        readable, _, _ = select.select([*line.sockets(), sys.stdin.fileno()], [], [], line.seconds_to_next())
        for source in readable:
            if source == sys.stdin.fileno():
                chunk = os.read(source, 4096)
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    text, pending = pending.split(b"\n", 1)
                    answer = command(line, text.decode())
                    if answer is not None:
                        print(json.dumps(answer), flush=True)
            else:
                line.receive(source)
        line.send_due()


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", type=address, required=True, help="rtcam's media address, HOST:PORT")
    parser.add_argument("--listen", type=address, default=("127.0.0.1", 0), help="where viewers send (HOST:PORT)")
    parser.add_argument("--delay-ms", type=float, default=25.0, help="one way, each way")
    parser.add_argument("--loss", type=float, default=0.10, help="share of rtcam → viewer datagrams dropped")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--media-only", action="store_true", help="drop only RTP (not STUN, DTLS or RTCP)")
    parser.add_argument("--trace", help="write one line per datagram to this file (a diagnosis aid)")
    args = parser.parse_args()
    trace = open(args.trace, "w", buffering=1 << 16) if args.trace else None
    line = Line(args.listen, args.upstream, args.delay_ms, args.loss, args.seed, args.media_only, trace)
    try:
        serve(line)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if trace is not None:
            trace.close()
    return 0


def resends_lost_whole(trace_path: str, rtx_payload_type: int, minimum_copies: int = 3) -> int:
    """From a --trace file: resends sent as `minimum_copies` copies or more (RTX datagrams of one
    RTP timestamp and size within 8 ms: SRTP leaves the header in the clear) of which the relay
    dropped every one. Each such resend costs the viewer a second NACK round trip, whatever the
    sender does short of more copies: the line's bad luck, about one in ten thousand at 10 %."""
    groups: list[list[tuple[float, bool]]] = []
    last_key = None
    with open(trace_path) as trace:
        for text in trace:
            fields = text.split()
            if len(fields) < 6 or fields[1] != "down" or fields[2] != "rtp" or f"pt={rtx_payload_type}" not in fields:
                continue
            at, dropped = float(fields[0]), fields[3] == "1"
            key = (fields[4], next((f for f in fields if f.startswith("ts=")), ""))
            if groups and key == last_key and at - groups[-1][-1][0] < 8.0:
                groups[-1].append((at, dropped))
            else:
                groups.append([(at, dropped)])
            last_key = key
    return sum(1 for group in groups if len(group) >= minimum_copies and all(dropped for _, dropped in group))


class LossRelay:
    """The relay as a child process, from a test:

        with LossRelay(upstream=("127.0.0.1", rtcam.media_port), loss=0.1) as relay:
            relay.port; relay.set_loss(0.0); relay.stats()
    """

    def __init__(self, upstream: tuple[str, int], delay_ms: float = 25.0, loss: float = 0.10, seed: int = 20,
                 media_only: bool = False, listen: tuple[str, int] = ("127.0.0.1", 0), log_path: Optional[str] = None,
                 trace_path: Optional[str] = None):
        self.arguments = ["--upstream", f"{upstream[0]}:{upstream[1]}", "--listen", f"{listen[0]}:{listen[1]}",
                          "--delay-ms", str(delay_ms), "--loss", str(loss), "--seed", str(seed)]
        if media_only:
            self.arguments.append("--media-only")
        if trace_path:
            self.arguments += ["--trace", trace_path]
        self.listen_host = listen[0]
        self.log_path = log_path
        self.process: Optional[subprocess.Popen] = None
        self.port = 0

    def __enter__(self) -> "LossRelay":
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), *self.arguments],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            start_new_session=True, text=True, bufsize=1)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        first = self.process.stdout.readline() if ready else ""
        if not first:
            self.__exit__(None, None, None)
            raise RuntimeError("the loss relay did not start (no port within 10 s)")
        self.port = json.loads(first)["port"]
        return self

    def __exit__(self, *exc) -> None:
        if self.process is None:
            return
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        except OSError:
            pass
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def _ask(self, text: str) -> dict:
        assert self.process is not None, "the relay is not running"
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        answer = self.process.stdout.readline() if ready else ""
        if not answer:
            raise RuntimeError(f"the loss relay did not answer {text!r}")
        return json.loads(answer)

    def set_loss(self, share: float) -> None:
        self._ask(f"loss {share}")

    def stats(self) -> dict:
        return self._ask("stats")

    @property
    def candidate(self) -> str:
        """The a=candidate value viewers are given instead of rtcam's (a host candidate: the relay's)."""
        return f"1 1 udp 2130706431 {self.listen_host} {self.port} typ host"


if __name__ == "__main__":
    sys.exit(main())
