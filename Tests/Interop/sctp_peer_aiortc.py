"""aiortc's SCTP and data channels as the peer of rtcam's SCTP/DataChannel targets (issue 18).

SCTP packets go over plain UDP on 127.0.0.1 here (RFC 8261 puts each one in a DTLS record; DTLS adds
nothing to what is tested: the SCTP wire format, its procedures and DCEP). A stand-in for aiortc's
RTCDtlsTransport hands aiortc's RTCSctpTransport the datagrams.

    python sctp_peer_aiortc.py SWIFT_PORT [--role server|client]

With --loss P each datagram is dropped with probability P, each way.

Behaviour: echoes every message on every channel back on the same channel; opens its own channel
"from-aiortc" and sends "hello from aiortc" on it; on the text "bye" it stops (aiortc sends ABORT).
Run by Tests/SCTPTests/AiortcInteropTests.swift when SCTP_AIORTC_PYTHON names a python with aiortc.
"""
import argparse
import asyncio
import logging
import random
import socket

from aiortc.rtcdatachannel import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcsctptransport import RTCSctpCapabilities, RTCSctpTransport


class DatagramTransport:
    """What RTCSctpTransport uses of an RTCDtlsTransport."""

    def __init__(self, role, sock, peer, loss):
        self.loss = loss
        self.state = "connected"
        self._role = role
        self.sock = sock
        self.peer = peer
        self.receiver = None

    def _register_data_receiver(self, receiver):
        self.receiver = receiver

    def _unregister_data_receiver(self, receiver):
        self.receiver = None

    async def _send_data(self, data):
        if random.random() >= self.loss:
            self.sock.sendto(data, self.peer)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("swift_port", type=int)
    parser.add_argument("--role", default="server")
    parser.add_argument("--seconds", type=float, default=60, help="stop (ABORT) after this long at most")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--loss", type=float, default=0.0, help="drop this share of datagrams each way")
    args = parser.parse_args()
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    transport = DatagramTransport(args.role, sock, ("127.0.0.1", args.swift_port), args.loss)
    sctp = RTCSctpTransport(transport)
    done = asyncio.Event()

    def echo_on(channel):
        @channel.on("message")
        def on_message(message):
            if message == "bye":
                done.set()
                return
            channel.send(message)

    @sctp.on("datachannel")
    def on_datachannel(channel):
        echo_on(channel)

    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    loop.add_reader(sock.fileno(), lambda: queue.put_nowait(sock.recv(65536)))

    async def pump():
        while True:
            data = await queue.get()
            if transport.receiver is not None and random.random() >= args.loss:
                await transport.receiver._handle_data(data)

    pump_task = asyncio.ensure_future(pump())
    await sctp.start(RTCSctpCapabilities(maxMessageSize=262144), 5000)

    own = RTCDataChannel(sctp, RTCDataChannelParameters(label="from-aiortc", protocol="interop"))
    echo_on(own)

    @own.on("open")
    def on_open():
        own.send("hello from aiortc")

    try:
        await asyncio.wait_for(done.wait(), args.seconds)
    except asyncio.TimeoutError:
        pass
    await sctp.stop()
    await asyncio.sleep(0.2)
    pump_task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
