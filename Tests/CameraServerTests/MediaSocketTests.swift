@testable import CameraServer
import DTLS
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTCBase
import Testing

/// A plain UDP socket on 127.0.0.1 that collects what MediaSocket sends it.
final class LoopbackReceiver {
    let descriptor: CInt
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        descriptor = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        try #require(bound)
        port = UInt16(bigEndian: address.sin_port)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    var address: TransportAddress { TransportAddress(ip: .v4(127, 0, 0, 1), port: port) }

    /// The next `count` datagrams (fewer if 2 s pass without one).
    func receive(_ count: Int) -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while datagrams.count < count {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received < 0 { break }
            datagrams.append(Array(buffer[0 ..< received]))
        }
        return datagrams
    }
}

private func datagrams(sizes: [Int], tag: UInt8) -> [[UInt8]] {
    sizes.enumerated().map { index, size in
        (0 ..< size).map { UInt8(truncatingIfNeeded: $0 &+ index &* 31) ^ tag }
    }
}

private func batch(_ datagrams: [[UInt8]]) -> DatagramBatch {
    var batch = DatagramBatch()
    for datagram in datagrams { batch.append(datagram) }
    return batch
}

@Suite struct MediaSocketTests {
    let logger = Logger(label: "test")

    @Test("a frame's datagrams arrive whole and in order, with and without UDP GSO", arguments: [true, false])
    func datagramsArriveInOrder(segmentationOffload: Bool) throws {
        let socket = try MediaSocket(port: 0, segmentationOffload: segmentationOffload && System.supportsUDPSegmentationOffload,
                                     logger: logger)
        let receiver = try LoopbackReceiver()
        // Equal runs, a shorter last one, a larger one after a smaller (a new run), and a run longer
        // than one GSO write takes (32 segments).
        let sizes = [1200, 1200, 1200, 700, 100, 1200, 1200, 40] + Array(repeating: 1000, count: 40) + [999]
        let sent = datagrams(sizes: sizes, tag: 0x5A)
        socket.send(batch(sent), to: receiver.address)
        #expect(receiver.receive(sent.count) == sent)
        #expect(socket.counters.datagramsSent == sent.count)
        #expect(socket.counters.datagramsDropped == 0 && socket.counters.sendErrors == 0)
    }

    @Test("a destination the socket cannot reach is counted and does not stop the next sends")
    func refusedDestinationIsCounted() throws {
        let socket = try MediaSocket(port: 0, segmentationOffload: System.supportsUDPSegmentationOffload, logger: logger)
        let receiver = try LoopbackReceiver()
        // An IPv6 address on the IPv4 socket: the kernel refuses it (EAFNOSUPPORT), datagram by datagram.
        socket.send(batch(datagrams(sizes: [500, 500, 200], tag: 1)),
                    to: TransportAddress(ip: .v6(Array(repeating: 0, count: 15) + [1]), port: receiver.port))
        #expect(socket.counters.sendErrors == 3)
        let after = datagrams(sizes: [300, 300], tag: 2)
        socket.send(batch(after), to: receiver.address)
        #expect(receiver.receive(2) == after)
        #expect(socket.counters.datagramsSent == 2)
    }

    @Test("NIO's descriptor reads what arrives at the media socket's port, and closing it leaves the socket")
    func receivingDescriptorSharesTheSocket() throws {
        let socket = try MediaSocket(port: 0, segmentationOffload: false, logger: logger)
        let port = socket.localPort
        #expect(port != 0)
        let reader = try socket.receivingDescriptor()
        let sender = try LoopbackReceiver()
        socket.send(batch([[9, 9, 9]]), to: sender.address)   // sent from the media socket's port
        var from = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        var buffer = [UInt8](repeating: 0, count: 64)
        let echoed = sender.receive(1)
        #expect(echoed == [[9, 9, 9]])
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let payload: [UInt8] = [1, 2, 3, 4]
        let sent = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(sender.descriptor, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(sent == 4)
        var pollDescriptor = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pollDescriptor, 1, 2000) == 1)
        let received = withUnsafeMutablePointer(to: &from) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                buffer.withUnsafeMutableBytes { recvfrom(reader, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT), address, &length) }
            }
        }
        #expect(Array(buffer.prefix(max(0, received))) == payload)
        close(reader)
        socket.send(batch([[7]]), to: sender.address)
        #expect(sender.receive(1) == [[7]])
    }
}
