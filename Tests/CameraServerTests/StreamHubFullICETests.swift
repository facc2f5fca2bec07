@testable import CameraServer
import ICE
import Logging
import NIOPosix
import RTCBase
import SDP
import STUN
import Testing

/// The hub with full ICE (issue 19): answers without a=ice-lite and with the server-reflexive
/// candidate once a STUN server gave it; the session's checks leave from the media socket; their responses find the session
/// by transaction ID, and only a genuine one from where the check went counts.
@Suite(.serialized) struct StreamHubFullICETests {
    static let viewerPassword = "viewerPasswordOf24Chars0"

    /// A full-ICE hub answering with one host candidate, 127.0.0.1 at `mediaPort` (other suites on a
    /// loopback media socket use it too; `adjust` changes its settings first).
    static func makeHub(group: MultiThreadedEventLoopGroup, mediaPort: UInt16,
                        adjust: (inout HubSettings) -> Void = { _ in }) -> StreamHub {
        var settings = HubSettings(maximumViewers: 2, candidateAddresses: [.v4(127, 0, 0, 1)], mediaPort: mediaPort,
                                   h264ProfileLevelID: "42e01f", hasVideo: true, hasAudio: true)
        settings.iceMode = .full
        adjust(&settings)
        return StreamHub(loop: group.next(), settings: settings, certificate: StreamHubTests.certificate,
                         logger: Logger(label: "test"), encoders: RecordingEncoderControl())
    }

    func offer(candidate: TransportAddress) -> String {
        var offer = RecvOnlyOfferBuilder.offer(iceUfrag: "vwer", icePassword: Self.viewerPassword,
                                               fingerprintSHA256: StreamHubTests.certificate.fingerprintSDP)
        offer.media[0].attributes.append(SDPAttribute("candidate", "1 1 udp 2130706431 \(candidate.ip) \(candidate.port) typ host"))
        return offer.serialized()
    }

    /// No STUN server asked yet: host candidates only (the srflx one: serverReflexiveAddressFromTheSTUNServer).
    @Test func answerIsFull() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let hub = Self.makeHub(group: group, mediaPort: 9)
        let (_, answerText) = try hub.createSession(offer: StreamHubTests.offer())
        let answer = try SessionDescription(parsing: answerText)
        #expect(!answer.isICELite)
        #expect(answerText.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"))
        #expect(!answerText.contains("typ srflx"))
    }

    @Test func checkResponsesReachTheirSessionOnlyWhenGenuine() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let socket = try MediaSocket(port: 0, segmentationOffload: false, logger: Logger(label: "test"))
        defer { socket.close() }
        let hub = Self.makeHub(group: group, mediaPort: socket.localPort)
        hub.attach(socket: socket)
        let viewer = try LoopbackReceiver()
        let (id, answerText) = try hub.createSession(offer: offer(candidate: viewer.address))
        // The first check goes out from the media socket at once (nothing paced before it).
        let check = try STUNMessage(parsing: try #require(viewer.receive(1).first))
        #expect(check.messageClass == .request && check.iceControlled != nil && check.username?.hasPrefix("vwer:") == true)
        let key = Array(Self.viewerPassword.utf8)
        let mediaSocket = TransportAddress(ip: .v4(127, 0, 0, 1), port: socket.localPort)
        let genuine = STUNMessage(messageClass: .successResponse, transactionID: check.transactionID,
                                  attributes: [.xorMappedAddress(mediaSocket)]).serialized(integrityKey: key, fingerprint: true)
        let unknown = STUNMessage(messageClass: .successResponse, transactionID: Array(repeating: 3, count: 12),
                                  attributes: [.xorMappedAddress(mediaSocket)]).serialized(integrityKey: key, fingerprint: true)
        let elsewhere = TransportAddress(ip: .v4(127, 0, 0, 1), port: viewer.port &+ 1)
        hub.receive(genuine, from: elsewhere)        // right transaction, wrong source
        hub.receive(unknown, from: viewer.address)   // no such check
        #expect(hub.lock.withLock { hub.viewers[id]?.paths.isEmpty } == true)
        hub.receive(genuine, from: viewer.address)
        #expect(hub.lock.withLock { hub.viewers[id]?.paths } == [.host(viewer.address)])
        // The viewer nominates (USE-CANDIDATE): the pair is valid already, so it is selected, and
        // /api/status shows it.
        let answer = try SessionDescription(parsing: answerText)
        let camera = try #require(answer.media[0].iceUfrag.flatMap { ufrag in answer.media[0].icePassword.map { (ufrag, $0) } })
        let nomination = STUNMessage(messageClass: .request, transactionID: Array(repeating: 9, count: 12), attributes: [
            .username("\(camera.0):vwer"), .priority(2_130_706_431), .iceControlling(77), .useCandidate,
        ]).serialized(integrityKey: Array(camera.1.utf8), fingerprint: true)
        hub.receive(nomination, from: viewer.address)
        let pair = try #require(hub.viewerStatuses().first?.icePair)
        #expect(pair.remote.kind == .host && pair.remote.address == viewer.address)
        #expect(pair.local.kind == .host && pair.local.address == mediaSocket)
        #expect(pair.roundTripTime != nil)
    }

    /// `--stun`: the hub asks from the media socket; the server's answer (and only the server's)
    /// becomes the srflx candidate of the next answer; the answer before it did not wait.
    @Test func serverReflexiveAddressFromTheSTUNServer() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let socket = try MediaSocket(port: 0, segmentationOffload: false, logger: Logger(label: "test"))
        defer { socket.close() }
        var settings = HubSettings(maximumViewers: 4, candidateAddresses: [.v4(127, 0, 0, 1)], mediaPort: socket.localPort,
                                   h264ProfileLevelID: "42e01f", hasVideo: true, hasAudio: true)
        settings.iceMode = .full
        let hub = StreamHub(loop: group.next(), settings: settings, certificate: StreamHubTests.certificate,
                            logger: Logger(label: "test"), encoders: RecordingEncoderControl())
        hub.attach(socket: socket)
        let stunServer = try LoopbackReceiver()
        hub.startServerReflexiveDiscovery(servers: [stunServer.address])
        let request = try STUNMessage(parsing: try #require(stunServer.receive(1).first))
        #expect(request.messageClass == .request && request.method == STUNMessage.bindingMethod)
        let (_, before) = try hub.createSession(offer: StreamHubTests.offer())
        #expect(!before.contains("typ srflx"))
        let mapped = TransportAddress(host: "203.0.113.9", port: 41234)!
        let response = STUNMessage(messageClass: .successResponse, transactionID: request.transactionID,
                                   attributes: [.xorMappedAddress(mapped)]).serialized(integrityKey: nil, fingerprint: true)
        hub.receive(response, from: TransportAddress(ip: .v4(127, 0, 0, 1), port: stunServer.port &+ 1))   // not the server
        #expect(hub.lock.withLock { hub.serverReflexiveAddresses }.isEmpty)
        hub.receive(response, from: stunServer.address)
        #expect(hub.lock.withLock { hub.serverReflexiveAddresses } == [mapped])
        let (_, after) = try hub.createSession(offer: StreamHubTests.offer(ufrag: "vwr2"))
        #expect(after.contains("typ srflx raddr 127.0.0.1 rport \(socket.localPort)"))
        #expect(after.contains("a=candidate:s1 1 udp 1694498815 203.0.113.9 41234 typ srflx"))
        hub.closeAll()
        hub.detachSocket()
    }

    /// A browser's `.local` candidate: the hub asks for the name (one-shot mDNS, here to a loopback
    /// stand-in for 224.0.0.251:5353), and checks the address the answer gives.
    @Test func multicastDNSCandidateIsResolvedThenChecked() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let socket = try MediaSocket(port: 0, segmentationOffload: false, logger: Logger(label: "test"))
        defer { socket.close() }
        let responder = try LoopbackReceiver()
        let viewer = try LoopbackReceiver()
        let hub = Self.makeHub(group: group, mediaPort: socket.localPort) { $0.multicastDNSGroup = responder.address }
        hub.attach(socket: socket)
        var offer = RecvOnlyOfferBuilder.offer(iceUfrag: "vwer", icePassword: Self.viewerPassword,
                                               fingerprintSHA256: StreamHubTests.certificate.fingerprintSDP)
        let name = "5c1e7a1c-0d51-4e48-a0f6-7b1e0c3a9d21.local"
        offer.media[0].attributes.append(SDPAttribute("candidate", "1 1 udp 2122260223 \(name) \(viewer.port) typ host"))
        _ = try hub.createSession(offer: offer.serialized(), from: .v4(127, 0, 0, 1))
        let query = try #require(responder.receive(1).first)
        #expect(query.count > 12 && query[4...5] == [0, 1])
        // The answer: ID echoed, QR set, the question, one A record 127.0.0.1 (RFC 6762 §6.7).
        var answer = Array(query[0..<2]) + [0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0] + Array(query[12...])
        answer += [0xC0, 12, 0, 1, 0x80, 1, 0, 0, 0, 10, 0, 4, 127, 0, 0, 1]
        hub.receive(answer, from: responder.address)
        let check = try STUNMessage(parsing: try #require(viewer.receive(1).first))
        #expect(check.messageClass == .request && check.username?.hasPrefix("vwer:") == true)
        hub.closeAll()
        hub.detachSocket()
    }

    @Test func stunServerSpellings() {
        #expect(STUNServerSpelling.hostAndPort("stun.example.org:3478")! == ("stun.example.org", 3478))
        #expect(STUNServerSpelling.hostAndPort("192.0.2.1:19302")! == ("192.0.2.1", 19302))
        #expect(STUNServerSpelling.hostAndPort("[2001:db8::1]:3478")! == ("2001:db8::1", 3478))
        for bad in ["stun.example.org", ":3478", "host:0", "host:70000", "host:"] {
            #expect(STUNServerSpelling.hostAndPort(bad) == nil, "\(bad)")
        }
    }

    @Test func outstandingChecksAreBoundedAndForgotten() {
        var checks = OutstandingChecks()
        func request(_ n: Int) -> [UInt8] {
            STUNMessage(messageClass: .request, transactionID: (0..<12).map { UInt8(truncatingIfNeeded: n >> ($0 % 4 * 8)) })
                .serialized(integrityKey: nil, fingerprint: false)
        }
        func response(_ n: Int) -> [UInt8] {
            var bytes = request(n)
            bytes[0] = 0x01; bytes[1] = 0x01
            return bytes
        }
        for n in 0..<100 { checks.recordRequest(request(n), of: "a") }
        checks.recordRequest(request(99), of: "b")   // a retransmission keeps its session
        checks.recordRequest(request(500), of: "b")
        #expect(checks.count == OutstandingChecks.perSession + 1)
        #expect(checks.session(answeredBy: response(99)) == "a" && checks.session(answeredBy: response(35)) == nil)
        #expect(checks.session(answeredBy: response(500)) == "b")
        #expect(checks.session(answeredBy: request(500)) == nil)   // a request is not an answer
        checks.removeSession("a")
        #expect(checks.count == 1 && checks.session(answeredBy: response(99)) == nil)
    }
}

/// The viewer page with the camera's STUN servers for the browser (issue 19).
@Suite struct ViewerPageSTUNTests {
    @Test func stunServersGoInTheMetaTagAndTheScriptsStayTheSame() {
        let page = ViewerPage.html(stunServers: ["stun.example.org:3478", "192.0.2.1:19302"])
        #expect(page.contains(#"<meta name="rtcam-stun" content="stun:stun.example.org:3478 stun:192.0.2.1:19302">"#))
        #expect(!page.contains(#"<meta name="rtcam-stun" content="">"#))
        // The CSP hashes the inline scripts: they must not change.
        #expect(ContentSecurityPolicy.policy(for: page, framing: nil) == ContentSecurityPolicy.viewerPage)
        #expect(ViewerPage.html(stunServers: []) == ViewerPage.html)
        #expect(ViewerPage.html(stunServers: [#"a"><script>x"#]).contains(#"content="stun:a&quot;&gt;&lt;script&gt;x""#))
    }
}
