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

    let isIPv6: Bool

    /// On 127.0.0.1, or on ::1 with `ipv6` (an IPv6-only socket, so it is the IPv6 path that is tested).
    init(ipv6: Bool = false) throws {
        isIPv6 = ipv6
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        descriptor = fd
        if ipv6 {
            var one: CInt = 1
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<CInt>.size))
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_addr = in6addr_loopback
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            try #require(bound, "no ::1 here")
            port = UInt16(bigEndian: address.sin6_port)
        } else {
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
        }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    var address: TransportAddress {
        TransportAddress(ip: isIPv6 ? .v6(Array(repeating: 0, count: 15) + [1]) : .v4(127, 0, 0, 1), port: port)
    }

    /// The next datagram and the address it came from, as the kernel reports it (nil after 2 s).
    func receiveWithSource() -> (datagram: [UInt8], source: TransportAddress)? {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var from = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let received = withUnsafeMutablePointer(to: &from) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                buffer.withUnsafeMutableBytes { recvfrom(descriptor, $0.baseAddress, $0.count, 0, address, &length) }
            }
        }
        guard received >= 0 else { return nil }
        let source: TransportAddress? = withUnsafeBytes(of: &from) { raw in
            let family = raw.load(as: sa_family_t.self)
            if family == sa_family_t(AF_INET6) {
                let v6 = raw.load(as: sockaddr_in6.self)
                var address = v6.sin6_addr
                return TransportAddress(ip: .v6(withUnsafeBytes(of: &address) { Array($0) }), port: UInt16(bigEndian: v6.sin6_port))
            }
            let v4 = raw.load(as: sockaddr_in.self)
            let host = UInt32(bigEndian: v4.sin_addr.s_addr)
            return TransportAddress(ip: .v4(UInt8(host >> 24), UInt8(truncatingIfNeeded: host >> 16),
                                            UInt8(truncatingIfNeeded: host >> 8), UInt8(truncatingIfNeeded: host)),
                                    port: UInt16(bigEndian: v4.sin_port))
        }
        return source.map { (Array(buffer[0 ..< received]), $0) }
    }

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

    @Test("one dual-stack socket sends to IPv4 and IPv6 peers, frames whole and in order, GSO and sendmmsg",
          arguments: [true, false])
    func dualStackReachesBothFamilies(segmentationOffload: Bool) throws {
        let socket = try MediaSocket(port: 0, segmentationOffload: segmentationOffload && System.supportsUDPSegmentationOffload,
                                     logger: logger)
        #expect(socket.counters.dualStack)
        let ipv4 = try LoopbackReceiver(), ipv6 = try LoopbackReceiver(ipv6: true)
        let sizes = [1200, 1200, 1200, 700] + Array(repeating: 1000, count: 70) + [64]
        let toIPv4 = datagrams(sizes: sizes, tag: 0x11), toIPv6 = datagrams(sizes: sizes, tag: 0x66)
        socket.send(batch(toIPv6), to: ipv6.address)
        socket.send(batch(toIPv4), to: ipv4.address)
        #expect(ipv6.receive(toIPv6.count) == toIPv6)
        #expect(ipv4.receive(toIPv4.count) == toIPv4)
        #expect(socket.counters.datagramsSent == 2 * sizes.count)
        #expect(socket.counters.sendErrors == 0 && socket.counters.datagramsDropped == 0)
        // Each peer sees the socket's one port, in its own family: the IPv4 peer a plain IPv4 source.
        socket.send(batch([[1]]), to: ipv4.address)
        socket.send(batch([[2]]), to: ipv6.address)
        let fromIPv4 = try #require(ipv4.receiveWithSource()), fromIPv6 = try #require(ipv6.receiveWithSource())
        #expect(fromIPv4.source == TransportAddress(ip: .v4(127, 0, 0, 1), port: socket.localPort))
        #expect(fromIPv6.source == TransportAddress(ip: .v6(Array(repeating: 0, count: 15) + [1]), port: socket.localPort))
    }

    @Test("an IPv4-only media socket (IPv6 off in the kernel) counts IPv6 destinations as errors and goes on")
    func refusedDestinationIsCounted() throws {
        let socket = try MediaSocket(port: 0, segmentationOffload: System.supportsUDPSegmentationOffload, dualStack: false,
                                     logger: logger)
        #expect(!socket.counters.dualStack)
        let receiver = try LoopbackReceiver()
        // An IPv6 address on the IPv4 socket: refused (EAFNOSUPPORT), every datagram counted.
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
