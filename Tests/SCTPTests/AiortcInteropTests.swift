#if canImport(Glibc)
import Glibc
#endif
import DataChannel
import RTCBase
import SCTP
import Testing

/// rtcam's DataChannelEndpoint against aiortc's SCTP and DCEP (a different implementation, used
/// with browsers), over UDP on 127.0.0.1 in real time. Runs only when SCTP_AIORTC_PYTHON names a
/// python that has aiortc:
/// `SCTP_AIORTC_PYTHON=/path/to/venv/bin/python swift test --filter AiortcInterop`
@Suite("SCTP interop with aiortc", .enabled(if: getenv("SCTP_AIORTC_PYTHON") != nil), .serialized)
struct AiortcInteropTests {
    final class Peer {
        let fd: Int32
        var peerAddress: sockaddr_in?
        var endpoint: DataChannelEndpoint
        var events: [DataChannelEvent] = []
        var child: pid_t = 0

        init() {
            let socketFD = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            var size: Int32 = 4 << 20
            setsockopt(socketFD, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            fd = socketFD
            var random = SystemRandomNumberGenerator()
            endpoint = DataChannelEndpoint(role: .client, configuration: SCTPPair.configuration(), random: &random)
        }

        deinit {
            close(fd)
            if child > 0 {
                kill(child, SIGTERM)
                var status: Int32 = 0
                waitpid(child, &status, 0)
            }
        }

        var port: UInt16 {
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return UInt16(bigEndian: address.sin_port)
        }

        static func now() -> MonotonicTime {
            var time = timespec()
            clock_gettime(CLOCK_MONOTONIC, &time)
            return MonotonicTime(nanoseconds: UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec))
        }

        func spawnPeer(python: String, arguments: [String]) {
            let script = String(#filePath.dropLast("Tests/SCTPTests/AiortcInteropTests.swift".count)) + "Tests/Interop/sctp_peer_aiortc.py"
            let argv = ([python, script] + arguments).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            let result = posix_spawn(&child, python, nil, nil, argv, environ)
            #expect(result == 0)
        }

        func flush() {
            for output in endpoint.drainOutputs() {
                switch output {
                case let .transmit(bytes):
                    guard var address = peerAddress else { continue }  // before the peer spoke: T1 resends
                    _ = bytes.withUnsafeBytes { buffer in
                        withUnsafePointer(to: &address) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                                sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                            }
                        }
                    }
                case let .event(event):
                    events.append(event)
                case .timeout:
                    break
                }
            }
        }

        /// Runs sockets and timers in real time until `condition` holds or `seconds` pass.
        @discardableResult
        func drive(seconds: UInt64, until condition: () -> Bool) -> Bool {
            let end = Self.now() + .seconds(Int64(seconds))
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                flush()
                if condition() { return true }
                let now = Self.now()
                if now >= end { return false }
                var wait = min(end - now, .milliseconds(20))
                if let deadline = endpoint.nextDeadline { wait = min(wait, max(deadline - now, .zero)) }
                var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&pollfd, 1, Int32(wait.nanosecondsClamped / 1_000_000)) > 0 {
                    var source = sockaddr_in()
                    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                    let count = buffer.withUnsafeMutableBytes { raw in
                        withUnsafeMutablePointer(to: &source) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
                        }
                    }
                    if count > 0 {
                        peerAddress = source
                        endpoint.handle(.receive(Array(buffer[0..<count])), now: Self.now())
                    }
                }
                if let deadline = endpoint.nextDeadline, deadline <= Self.now() {
                    endpoint.handle(.timeout, now: Self.now())
                }
            }
        }

        func messages(on channel: UInt16) -> [DataChannelMessage] {
            events.compactMap { if case let .message(id, message) = $0, id == channel { return message } else { return nil } }
        }
    }

    @Test(arguments: [0.0, 0.1])
    func dataChannelsBothWays(loss: Double) throws {
        let python = String(cString: getenv("SCTP_AIORTC_PYTHON"))
        let peer = Peer()
        peer.spawnPeer(python: python, arguments: ["\(peer.port)", "--role", "server", "--loss", "\(loss)", "--seconds", "600"]
                       + (getenv("SCTP_AIORTC_DEBUG") != nil ? ["--debug"] : []))
        // aiortc sends INIT first (both sides initiate, RFC 8841 §9.3); ours crosses it.
        #expect(peer.drive(seconds: 10) { peer.peerAddress != nil })
        peer.endpoint.connect(now: Peer.now())
        #expect(peer.drive(seconds: 30) { peer.events.contains(.connected) })

        // aiortc (DTLS server) opens channel 1 and says hello.
        #expect(peer.drive(seconds: 30) { peer.messages(on: 1) == [.text("hello from aiortc")] })
        #expect(peer.events.contains(.opened(DataChannelInfo(id: 1, label: "from-aiortc", protocol: "interop",
                                                             options: DataChannelOptions(priority: 0), negotiated: false))))

        // Ours: channel 0, reliable and ordered; every kind of message comes back as it went.
        let echo = try peer.endpoint.open(label: "echo", now: Peer.now())
        #expect(echo == 0)
        var sent: [DataChannelMessage] = [.text("hi"), .binary([7]), .text(""), .binary([]), .text("é ✓"),
                                          .binary(testMessage(index: 1, size: 1172)), .binary(testMessage(index: 2, size: 65_536)),
                                          .binary(testMessage(index: 3, size: 262_144))]
        sent += (0..<300).map { .binary(testMessage(index: $0, size: 1024)) }
        for message in sent { try peer.endpoint.send(message, on: echo, now: Peer.now()) }
        #expect(peer.drive(seconds: 120) { peer.messages(on: echo).count == sent.count })
        #expect(peer.messages(on: echo) == sent)
        #expect(peer.events.contains(.acknowledged(echo)))

        // Unordered, maxRetransmits 0 (FORWARD TSN capable on both sides).
        let loose = try peer.endpoint.open(label: "loose", options: DataChannelOptions(ordered: false, reliability: .maxRetransmits(0)),
                                           now: Peer.now())
        #expect(peer.drive(seconds: 30) { peer.events.contains(.acknowledged(loose)) })
        // Paced, so that the sockets' buffers do not overflow; a message lost anyway is not resent.
        for index in 0..<50 {
            try peer.endpoint.send(.binary(testMessage(index: index, size: 3000)), on: loose, now: Peer.now())
            peer.drive(seconds: 1) { peer.messages(on: loose).count == index + 1 }
        }
        peer.drive(seconds: 2) { peer.messages(on: loose).count == 50 }
        let looseCount = peer.messages(on: loose).count
        // Through 10 % loss each way the three chunks of a message and of its echo all arrive about
        // 0.9^6 = 53 % of the time.
        #expect(looseCount >= (loss == 0 ? 45 : 15), "\(looseCount) of 50 came back")
        #expect(Set(peer.messages(on: loose)).count == looseCount, "no duplicates")

        // Closing resets the stream both ways (RFC 8831 §6.7, RFC 6525).
        peer.endpoint.close(echo, now: Peer.now())
        #expect(peer.drive(seconds: 30) { peer.events.contains(.closed(echo)) })
        if !peer.events.contains(.closed(echo)) {
            print("aiortc interop, loss \(loss), no close; events:", peer.events.filter { if case .message = $0 { return false } else { return true } },
                  peer.endpoint.association.state, peer.endpoint.association.statistics)
        }

        // "bye" makes aiortc stop, which aborts the association (ABORT is not resent: with loss it may not come).
        try peer.endpoint.send(.text("bye"), on: 1, now: Peer.now())
        #expect(peer.drive(seconds: loss == 0 ? 30 : 5) { peer.events.contains { if case .disconnected = $0 { return true } else { return false } } } || loss > 0)
        print("aiortc interop, loss \(loss), events:", peer.events.filter { if case .message = $0 { return false } else { return true } })
        print("aiortc interop statistics:", peer.endpoint.association.statistics)
    }
}
