import CUDPSocket
#if canImport(Glibc)
import Glibc
#endif
import Logging
import RTCBase

enum MediaSocketError: Error, CustomStringConvertible {
    case bind(port: UInt16, errno: Int32)
    case duplicate(errno: Int32)

    var description: String {
        switch self {
        case let .bind(port, code): "cannot bind UDP port \(port): \(String(cString: strerror(code)))"
        case let .duplicate(code): "cannot duplicate the media socket: \(String(cString: strerror(code)))"
        }
    }
}

/// What the media socket did since it was opened (GET /api/status).
struct MediaSocketCounters: Sendable, Equatable {
    var datagramsSent = 0
    /// Refused because the socket's send buffer was full (EAGAIN, ENOBUFS): lost like on the wire,
    /// and recovered the same way (NACK, PLI).
    var datagramsDropped = 0
    /// Refused for another reason (no route, a firewall's EPERM, ...), each reason logged once.
    var sendErrors = 0
    var segmentationOffload = false
    /// Both IPv4 and IPv6 (one AF_INET6 socket with IPV6_V6ONLY off); false: IPv4 only, where the
    /// kernel has IPv6 disabled.
    var dualStack = false
}

/// The one UDP socket (default port 8189) every viewer's ICE, DTLS, RTCP and media share, and its
/// one owner. rtcam sends on it itself, from the thread that made the datagrams (the event loop for
/// ICE, DTLS and RTCP; the encoders' threads for media, README "Performance"). Media goes straight
/// from the batch each viewer's datagrams were protected into; the few ICE, DTLS and RTCP datagrams
/// are copied into one first. NIO only reads, from a duplicate descriptor it owns and closes
/// (`receivingDescriptor()`).
///
/// Not thread-safe: StreamHub calls it with its lock held.
final class MediaSocket: @unchecked Sendable {
    private var descriptor: CInt
    private let logger: Logger
    private var segmentationEnabled: Bool
    private var ioVectors: [iovec] = []
    private var loggedErrors: Set<Int32> = []
    private(set) var counters = MediaSocketCounters()

    /// Below the kernel's UDP_MAX_SEGMENTS (64) and a UDP datagram's 65,507-byte payload.
    static let maximumSegmentsPerWrite = 32
    static let maximumBytesPerWrite = 60_000

    /// Binds [::]:`port` dual-stack (IPv4 peers are v4-mapped inside the kernel only: addresses are
    /// converted at this boundary, AddressConversion.swift), or 0.0.0.0:`port` where IPv6 is off or
    /// `dualStack` is false. `segmentationOffload` false never tries UDP GSO (RTCAM_UDP_GSO=0).
    ///
    /// One socket rather than one per family: one port in every candidate, one reading channel, one
    /// owner and one send path; the kernel takes the same UDP path for a v4-mapped destination as for
    /// an AF_INET socket (udpv6_sendmsg hands it to udp_sendmsg), GSO and sendmmsg included.
    init(port: UInt16, segmentationOffload: Bool, dualStack: Bool = true, logger: Logger) throws(MediaSocketError) {
        var result = dualStack ? rtcam_udp_bind_dual_stack(port, 1 << 20, 1 << 21) : -EAFNOSUPPORT
        let isDualStack = result >= 0
        if result == -EAFNOSUPPORT {
            if dualStack { logger.notice("IPv6 is unavailable here (\(String(cString: strerror(EAFNOSUPPORT)))): the media socket is IPv4 only") }
            result = rtcam_udp_bind_ipv4(port, 1 << 20, 1 << 21)
        }
        guard result >= 0 else { throw .bind(port: port, errno: -result) }
        descriptor = result
        self.logger = logger
        counters.dualStack = isDualStack
        segmentationEnabled = segmentationOffload
        counters.segmentationOffload = segmentationOffload
        ioVectors.reserveCapacity(Int(RTCAM_UDP_MAX_BATCH))
    }

    deinit { close() }

    /// A new descriptor of the same socket for NIO's channel, which owns and closes it.
    func receivingDescriptor() throws(MediaSocketError) -> CInt {
        let duplicate = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        guard duplicate >= 0 else { throw .duplicate(errno: errno) }
        return duplicate
    }

    /// The port the kernel bound (the one asked for, or the one it chose for port 0).
    var localPort: UInt16 {
        // sin_port and sin6_port sit at the same offset, right after the family.
        var address = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return result == 0 ? UInt16(bigEndian: address.sin6_port) : 0
    }

    /// Whether IPv6 peers can be reached (false: an IPv4-only socket; their datagrams count as errors).
    var isDualStack: Bool { counters.dualStack }

    func close() {
        guard descriptor >= 0 else { return }
        _ = Glibc.close(descriptor)
        descriptor = -1
    }

    /// Sends the batch's datagrams to `address`, in order. Runs of equal-sized datagrams (a frame's
    /// FU-A fragments, the last may be shorter) go out as one UDP GSO write of the contiguous bytes:
    /// one route lookup and one buffer for the kernel to cut. Without GSO, up to 64 datagrams per
    /// sendmmsg. Never blocks: a full send buffer drops datagrams, as a full queue on the wire would.
    func send(_ batch: DatagramBatch, to address: TransportAddress) {
        guard descriptor >= 0, !batch.isEmpty else { return }
        if !counters.dualStack, case .v6 = address.ip {
            failed(EAFNOSUPPORT, datagrams: batch.count, to: address)
            return
        }
        batch.storage.withUnsafeBytes { bytes in
            address.withSocketAddress(ipv4Mapped: counters.dualStack) { socketAddress, length in
                let destination = Destination(address: socketAddress, length: length, remote: address)
                var index = 0
                while index < batch.count {
                    guard segmentationEnabled else {
                        sendEach(batch, index ..< batch.count, bytes: bytes, to: destination)
                        return
                    }
                    let segmentSize = batch.length(at: index)
                    var end = index + 1
                    var total = segmentSize
                    while end < batch.count, end - index < Self.maximumSegmentsPerWrite,
                          batch.length(at: end) <= segmentSize, total + batch.length(at: end) <= Self.maximumBytesPerWrite {
                        total += batch.length(at: end)
                        end += 1
                        if batch.length(at: end - 1) < segmentSize { break }
                    }
                    if end - index > 1 {
                        sendSegmented(batch, index ..< end, segmentSize: segmentSize, bytes: bytes, to: destination)
                    } else {
                        sendEach(batch, index ..< end, bytes: bytes, to: destination)
                    }
                    index = end
                }
            }
        }
    }

    private struct Destination {
        var address: UnsafePointer<sockaddr>
        var length: socklen_t
        var remote: TransportAddress
    }

    /// One sendmsg of datagrams `run`, contiguous in `bytes`, cut by the kernel every `segmentSize`.
    private func sendSegmented(_ batch: DatagramBatch, _ run: Range<Int>, segmentSize: Int,
                               bytes: UnsafeRawBufferPointer, to destination: Destination) {
        let start = batch.range(at: run.lowerBound).lowerBound
        let end = batch.range(at: run.upperBound - 1).upperBound
        var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress! + start), iov_len: end - start)
        let result = rtcam_udp_send(descriptor, destination.address, destination.length, &vector, 1, UInt16(segmentSize))
        if result >= 0 {
            counters.datagramsSent += run.count
            return
        }
        let code = Int32(-result)
        switch code {
        case EIO, EOPNOTSUPP, ENOPROTOOPT:
            // GSO itself refused (EIO: a device without checksum offload, or IPsec on the route):
            // off for good, and these go one by one.
            segmentationEnabled = false
            counters.segmentationOffload = false
            logger.warning("UDP GSO write refused (\(String(cString: strerror(code)))): sending datagrams one by one from now on")
            sendEach(batch, run, bytes: bytes, to: destination)
        case EINVAL:
            // A segment larger than this one route's MTU allows: this run goes one by one (and
            // meets EMSGSIZE if the datagrams themselves are too large); other viewers keep GSO.
            sendEach(batch, run, bytes: bytes, to: destination)
        default:
            failed(code, datagrams: run.count, to: destination.remote)
        }
    }

    /// Datagrams `run` with sendmmsg, one iovec each pointing into `bytes`: nothing is copied.
    private func sendEach(_ batch: DatagramBatch, _ run: Range<Int>, bytes: UnsafeRawBufferPointer,
                          to destination: Destination) {
        var index = run.lowerBound
        while index < run.upperBound {
            let chunk = index ..< min(run.upperBound, index + Int(RTCAM_UDP_MAX_BATCH))
            ioVectors.removeAll(keepingCapacity: true)
            for datagram in chunk {
                let range = batch.range(at: datagram)
                ioVectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress! + range.lowerBound),
                                       iov_len: range.count))
            }
            let result = ioVectors.withUnsafeBufferPointer { vectors in
                rtcam_udp_send_each(descriptor, destination.address, destination.length, vectors.baseAddress, CInt(vectors.count))
            }
            if result > 0 {
                counters.datagramsSent += Int(result)
                index += Int(result)
                continue
            }
            let code = result == 0 ? EAGAIN : -result
            if code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS {
                failed(code, datagrams: run.upperBound - index, to: destination.remote)   // full: the rest would fail too
                return
            }
            failed(code, datagrams: 1, to: destination.remote)   // this one is refused; try the next
            index += 1
        }
    }

    private func failed(_ code: Int32, datagrams: Int, to remote: TransportAddress) {
        if code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS {
            counters.datagramsDropped += datagrams
            return
        }
        counters.sendErrors += datagrams
        if loggedErrors.insert(code).inserted {
            logger.warning("sending to \(remote) failed: \(String(cString: strerror(code))) (reported once per reason; /api/status counts them)")
        }
    }
}
