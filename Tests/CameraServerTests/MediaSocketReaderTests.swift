@testable import CameraServer
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTCBase
import Testing
import SystemSupport

/// The media socket's reading channel closing while serving (NIO closes a datagram channel on a read
/// error it does not know): a new one is opened on the same socket. The new channel's future
/// completes at once on the loop, and its callback used to take the lock the loop still held.
@Suite struct MediaSocketReaderTests {
    @Test("a reading channel that closes is replaced, and datagrams still arrive", .timeLimit(.minutes(1)))
    func readingChannelIsReplaced() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let socket = try MediaSocket(port: 0, segmentationOffload: false, logger: Logger(label: "test"))
        let opened = NIOLockedValueBox<[Channel]>([])
        let received = NIOLockedValueBox<[[UInt8]]>([])
        let reader = MediaSocketReader(
            socket: socket, group: group, logger: Logger(label: "test"),
            receive: { datagram, _ in received.withLockedValue { $0.append(datagram) } },
            bind: { descriptor, handler in
                DatagramBootstrap(group: group)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler()) }
                    }
                    .withBoundSocket(descriptor)
                    .map { channel in
                        opened.withLockedValue { $0.append(channel) }
                        return channel
                    }
            })
        try reader.start()
        let first = try #require(opened.withLockedValue { $0.first })
        let port = try #require(first.localAddress?.port)
        try first.close().wait()
        // The replacement is attached on the loop; a reader whose lock is still held would block
        // the polling thread, and the join below would time out.
        let reopened = NIOLockedValueBox(false)
        let poller = DedicatedThread.start {
            let deadline = MonotonicClock.now() + .seconds(5)
            while MonotonicClock.now() < deadline {
                if reader.reopenCount == 1 { reopened.withLockedValue { $0 = true }; return }
                usleep(10_000)
            }
        }
        #expect(poller.join(timeout: .seconds(10)), "the reader's lock was never released")
        #expect(reopened.withLockedValue { $0 })
        #expect(opened.withLockedValue { $0.count } == 2)

        // The new channel reads the same socket.
        let sender = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(sender) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let payload: [UInt8] = [0x80, 1, 2, 3]
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
                payload.withUnsafeBytes { sendto(sender, $0.baseAddress, $0.count, 0, target, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        let deadline = MonotonicClock.now() + .seconds(5)
        while received.withLockedValue({ $0.isEmpty }), MonotonicClock.now() < deadline { usleep(10_000) }
        #expect(received.withLockedValue { $0 } == [payload])
        try reader.close().wait()
        try group.syncShutdownGracefully()
    }

    @Test("datagrams from IPv4 and IPv6 peers reach the hub with plain addresses (no ::ffff:)", .timeLimit(.minutes(1)))
    func receivedSourcesAreUnmapped() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let socket = try MediaSocket(port: 0, segmentationOffload: false, logger: Logger(label: "test"))
        let received = NIOLockedValueBox<[([UInt8], TransportAddress)]>([])
        let reader = MediaSocketReader(socket: socket, group: group, logger: Logger(label: "test"),
                                       receive: { datagram, source in received.withLockedValue { $0.append((datagram, source)) } })
        try reader.start()
        let ipv4 = try LoopbackReceiver(), ipv6 = try LoopbackReceiver(ipv6: true)
        let port = socket.localPort
        func send(from receiver: LoopbackReceiver, _ payload: [UInt8]) {
            TransportAddress(ip: receiver.isIPv6 ? .v6(Array(repeating: 0, count: 15) + [1]) : .v4(127, 0, 0, 1), port: port)
                .withSocketAddress { target, length in
                    _ = payload.withUnsafeBytes { sendto(receiver.descriptor, $0.baseAddress, $0.count, 0, target, length) }
                }
        }
        send(from: ipv4, [0x80, 4])
        send(from: ipv6, [0x80, 6])
        let deadline = MonotonicClock.now() + .seconds(5)
        while received.withLockedValue({ $0.count < 2 }), MonotonicClock.now() < deadline { usleep(10_000) }
        let sources = received.withLockedValue { $0.map { ($0.0, $0.1) } }.sorted { $0.0[1] < $1.0[1] }.map(\.1)
        #expect(sources == [TransportAddress(ip: .v4(127, 0, 0, 1), port: ipv4.port),
                            TransportAddress(ip: .v6(Array(repeating: 0, count: 15) + [1]), port: ipv6.port)])
        try reader.close().wait()
        try group.syncShutdownGracefully()
    }
}
