@testable import CameraServer
#if canImport(Glibc)
import Glibc
#endif
import ICE
import Logging
import NIOPosix
import RTCBase
import SDP
import STUN
import SystemSupport
import Testing

/// A blocking TCP client on loopback: what a browser's active ICE-TCP candidate does, by hand.
final class LoopbackTCPClient {
    let descriptor: CInt
    private var deframer = LengthPrefixedDeframer()
    private var frames: [[UInt8]] = []

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    /// Our end's address (what the camera sees as the connection's remote address).
    var localAddress: TransportAddress {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        return TransportAddress(ip: .v4(127, 0, 0, 1), port: UInt16(bigEndian: address.sin_port))
    }

    func write(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    /// The next frame, or nil when the connection closed or nothing came within 3 s.
    func nextFrame() -> [UInt8]? {
        while frames.isEmpty {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return nil }
            guard let got = try? deframer.append(buffer[..<count]) else { return nil }
            frames += got
        }
        return frames.removeFirst()
    }

    /// Whether the camera closed the connection (recv sees the end within 3 s).
    func isClosedByPeer() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
    }
}

@Suite(.serialized) struct ICETCPListenerTests {
    /// Media is the first to go from a slow connection's queue; ICE, DTLS and RTCP may queue twice as much.
    @Test func sendBudgetDropsMediaFirst() {
        let budget = ICETCPSendBudget(limit: 1000)
        let rtp: [UInt8] = [0x80, 96] + [UInt8](repeating: 0, count: 98)
        let rtcp: [UInt8] = [0x80, 200] + [UInt8](repeating: 0, count: 98)
        let stun: [UInt8] = [0, 1] + [UInt8](repeating: 0, count: 98)
        #expect(budget.admits(rtp, queued: 898))
        #expect(!budget.admits(rtp, queued: 899))
        #expect(budget.admits(rtcp, queued: 1898) && budget.admits(stun, queued: 1898))
        #expect(!budget.admits(rtcp, queued: 1899) && !budget.admits(stun, queued: 1899))
    }

    static let viewerPassword = "viewerPasswordOf24Chars0"

    /// A viewer that never reads: the hub's sends return at once whatever the connection does; past
    /// the queue bound media is dropped while ICE/DTLS/RTCP still get in.
    @Test func aStalledConnectionDropsMediaAndNeverBlocks() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var limits = ICETCPLimits()
        limits.maximumQueuedBytes = 64 * 1024
        let listener = ICETCPListener(limits: limits, logger: Logger(label: "test"), receive: { _, _ in },
                                      inUse: { _ in true }, closed: { _ in })
        let port = try listener.start(group: group, host: "127.0.0.1", port: 0)
        defer { listener.close() }
        let client = try LoopbackTCPClient(port: port)
        for _ in 0..<200 where listener.status.connectionsOpen == 0 { usleep(5000) }
        #expect(listener.status.connectionsOpen == 1)
        var media = DatagramBatch()
        for sequence in 0..<20 { media.append([0x80, 96, 0, UInt8(sequence)] + [UInt8](repeating: 0xAB, count: 1196)) }
        let start = MonotonicClock.now()
        for _ in 0..<1000 { listener.send(media, to: client.localAddress) }   // 24 MB offered
        let elapsed = MonotonicClock.now() - start
        let afterMedia = listener.status
        #expect(elapsed < .seconds(5), "sending took \(elapsed)")
        #expect(afterMedia.framesDropped > 10_000, "\(afterMedia)")
        #expect(afterMedia.framesSent + afterMedia.framesDropped == 20_000)
        var control = DatagramBatch()
        control.append([0, 1, 0, 8] + [UInt8](repeating: 0, count: 16))   // a STUN request's worth
        control.append([0x80, 200, 0, 6] + [UInt8](repeating: 0, count: 24)) // RTCP
        listener.send(control, to: client.localAddress)
        #expect(listener.status.framesSent == afterMedia.framesSent + 2)
        _ = client
    }

    /// The daemon's wiring on loopback: the answer offers the passive candidate; a check over a
    /// connection is answered on it and followed by the camera's own check on the same connection;
    /// once that succeeds the viewer's nomination selects the TCP pair (status says TCP). A
    /// connection that carries no check is closed after the check interval, one beyond the
    /// per-address limit at once, and one announcing an oversized frame too.
    @Test func checksOverAConnectionSelectTheTCPPair() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let socket = try MediaSocket(port: 0, segmentationOffload: false, logger: Logger(label: "test"))
        defer { socket.close() }
        let hub = StreamHubFullICETests.makeHub(group: group, mediaPort: socket.localPort)
        hub.attach(socket: socket)
        var limits = ICETCPLimits()
        limits.checkInterval = .milliseconds(400)
        limits.maximumConnectionsPerAddress = 3
        let listener = ICETCPListener(limits: limits, logger: Logger(label: "test"),
                                      receive: { datagram, path in hub.receive(datagram, on: path) },
                                      inUse: { hub.holdsPath($0) }, closed: { hub.transportClosed($0) })
        let port = try listener.start(group: group, host: "127.0.0.1", port: 0)
        defer { listener.close() }
        hub.attach(iceTCP: listener, port: UInt16(port))

        var offer = RecvOnlyOfferBuilder.offer(iceUfrag: "vwer", icePassword: Self.viewerPassword,
                                               fingerprintSHA256: StreamHubTests.certificate.fingerprintSDP)
        offer.media[0].attributes.append(SDPAttribute("candidate", "1 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active"))
        let (_, answerText) = try hub.createSession(offer: offer.serialized())
        let passive = ICECandidate.tcp(address: TransportAddress(ip: .v4(127, 0, 0, 1), port: UInt16(port)), tcpType: .passive,
                                       otherPreference: 8191, foundation: "t1")
        #expect(answerText.contains("a=candidate:\(passive.sdpValue)\r\n"))
        #expect(answerText.contains("tcptype passive"))
        let answer = try SessionDescription(parsing: answerText)
        let ufrag = try #require(answer.media[0].iceUfrag), password = try #require(answer.media[0].icePassword)

        let client = try LoopbackTCPClient(port: port)
        let check = STUNMessage(messageClass: .request, transactionID: Array(repeating: 7, count: 12), attributes: [
            .username("\(ufrag):vwer"), .priority(1_518_280_447), .iceControlling(77), .useCandidate,
        ]).serialized(integrityKey: Array(password.utf8), fingerprint: true)
        let framed = LengthPrefixedFraming.frame(check)!
        client.write(Array(framed.prefix(5)))      // a read cut inside the frame
        client.write(Array(framed.dropFirst(5)))
        var response: STUNMessage?, cameraCheck: STUNMessage?
        while response == nil || cameraCheck == nil, let frame = client.nextFrame() {
            let message = try STUNMessage(parsing: frame)
            if message.messageClass == .successResponse { response = message }
            if message.messageClass == .request { cameraCheck = message }
        }
        let answered = try #require(response)
        #expect(answered.transactionID == Array(repeating: 7, count: 12))
        #expect(answered.xorMappedAddress == client.localAddress)
        let triggered = try #require(cameraCheck)
        #expect(triggered.username == "vwer:\(ufrag)" && triggered.iceControlled != nil)
        // Its PRIORITY is a TCP peer-reflexive one (RFC 6544 §4.2), below any UDP candidate's.
        let announced = try #require(triggered.priority)
        #expect(announced >> 24 == 80 && announced < ICECandidate.priority(kind: .serverReflexive, localPreference: 0))
        let success = STUNMessage(messageClass: .successResponse, transactionID: triggered.transactionID,
                                  attributes: [.xorMappedAddress(passive.address)])
            .serialized(integrityKey: Array(Self.viewerPassword.utf8), fingerprint: true)
        client.write(LengthPrefixedFraming.frame(success)!)
        var pair: ICESelectedPair?
        for _ in 0..<100 where pair == nil {
            pair = hub.viewerStatuses().first?.icePair
            if pair == nil { usleep(10_000) }
        }
        let selected = try #require(pair)
        #expect(selected.path == .tcp(client.localAddress))
        #expect(selected.local.tcpType == .passive && selected.remote.tcpType == .active)
        #expect(hub.holdsPath(.tcp(client.localAddress)))

        // A connection that never checks is closed after the interval; the used one stays.
        let idle = try LoopbackTCPClient(port: port)
        #expect(idle.isClosedByPeer())
        // Three from one address at most: the checked one and two more; the fourth is closed at once.
        let second = try LoopbackTCPClient(port: port), third = try LoopbackTCPClient(port: port)
        let fourth = try LoopbackTCPClient(port: port)
        #expect(fourth.isClosedByPeer())
        // An announced frame longer than the bound closes the connection.
        second.write([0xFF, 0xFF, 1, 2, 3])
        #expect(second.isClosedByPeer())
        _ = third
        let status = listener.status
        #expect(status.port == port)
        #expect(status.connectionsAccepted == 4 && status.refusedPerAddress == 1)
        #expect(status.closedUnused >= 1 && status.framingErrors == 1)
        #expect(status.framesReceived == 2 && status.framesSent >= 2 && status.framesDropped == 0)
        // The checked connection is still open and in use.
        #expect(hub.holdsPath(.tcp(client.localAddress)))
    }
}
