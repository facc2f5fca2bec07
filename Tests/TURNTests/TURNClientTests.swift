import RTCBase
import STUN
import Testing
@testable import TURN

@Suite struct TURNClientTests {
    static let peer = TransportAddress(host: "203.0.113.9", port: 61000)!
    static let otherPeer = TransportAddress(host: "203.0.113.10", port: 62000)!
    let start = MonotonicTime(seconds: 1000)

    func allocated(_ h: Harness) -> [MonotonicTime] {
        h.events.compactMap { if case .allocated = $0.action { $0.time } else { nil } }
    }

    /// RFC 8489 §9.2: the first Allocate goes without credentials, the 401 names realm and nonce,
    /// the second carries USERNAME, REALM, NONCE and a MESSAGE-INTEGRITY keyed with
    /// MD5("alice:rtcam.test:wonderland").
    @Test func allocatesWithLongTermCredentials() throws {
        var h = Harness(start: start)
        #expect(h.client.nextDeadline == start && h.client.state == .idle)
        h.run(until: start)
        #expect(h.server.requests.map(\.method) == [TURNMethod.allocate, TURNMethod.allocate])
        #expect(h.server.requests.map(\.authenticated) == [false, true])
        let second = try STUNMessage(parsing: h.sent[1])
        #expect(second.username == "alice" && second.realm == "rtcam.test" && second.nonce == "nonce-1")
        #expect(second.rawValue(of: TURNAttributeType.requestedTransport) == [17, 0, 0, 0])
        #expect(second.lifetimeSeconds == 600)
        let key = TURNCredentials(username: "alice", password: "wonderland").integrityKey(realm: "rtcam.test")
        #expect(key == hex("8143598b2d037f79997847b5d5d61abf"))
        #expect(STUNMessage.hasValidIntegrity(h.sent[1], key: key) && STUNMessage.hasValidFingerprint(h.sent[1]))
        #expect(h.client.relayedAddress == FakeTURNServer.relayedAddress)
        #expect(h.client.mappedAddress == FakeTURNServer.clientAddress)
        #expect(h.events.map(\.action) == [.allocated(relayed: FakeTURNServer.relayedAddress, mapped: FakeTURNServer.clientAddress,
                                                      lifetime: .seconds(600))])
        // Refreshed 60 s before the 600 s run out.
        #expect(h.client.nextDeadline == start + .seconds(540))
    }

    /// coturn's REST credentials: "expiry:user" and base64(HMAC-SHA1(secret, username)) (the value
    /// from Python's hmac and base64 modules).
    @Test func sharedSecretCredentials() {
        let credentials = TURNCredentials.sharedSecret("north-secret", user: "camera", expiresAtUnixSeconds: 1_700_000_000)
        #expect(credentials.username == "1700000000:camera")
        #expect(credentials.password == "UUQTayiKPFpDs32MsNvJck5Ett4=")
        #expect(Base64.encode([]) == "" && Base64.encode(Array("f".utf8)) == "Zg==" && Base64.encode(Array("fo".utf8)) == "Zm8="
                    && Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")  // RFC 4648 §10
    }

    /// Refreshes at 540 s; the server changed its nonce meanwhile, so the Refresh gets 438 and goes
    /// again with the new nonce; the allocation then lives on, refreshed every 540 s for an hour.
    @Test func refreshesAndFollowsANonceChange() {
        var h = Harness(start: start)
        h.run(until: start)
        h.server.nonce = "nonce-2"
        h.run(until: start + .seconds(540))
        let refreshes = h.server.requests.filter { $0.method == TURNMethod.refresh }
        #expect(refreshes.map(\.nonce) == ["nonce-1", "nonce-2"])
        #expect(h.client.nextDeadline == start + .seconds(1080))
        h.run(until: start + .seconds(3600))
        #expect(h.server.requests.filter { $0.method == TURNMethod.refresh }.count == 2 + 5)  // 1080, 1620, ... 3240
        #expect(h.server.allocated && h.server.requests.filter { $0.method == TURNMethod.allocate }.count == 2)
        #expect(allocated(h).count == 1 && h.events.count == 1)
    }

    /// A nonce that is stale on every try: three retries, then the Allocate fails (no loop).
    @Test func staleNonceRetriesAreBounded() {
        var tries = 0
        var client = TURNClient(server: TransportAddress(host: "192.0.2.1", port: 3478)!, credentials: TURNCredentials(username: "alice", password: "wonderland"),
                                now: start, random: SeededRandom(seed: 4))
        var server = FakeTURNServer()
        var queue = client.handleTimeout(now: start)
        var events: [TURNClient.Action] = []
        while !queue.isEmpty {
            let action = queue.removeFirst()
            guard case let .send(bytes) = action else { events.append(action); continue }
            let answers = server.handle(bytes)
            tries += 1
            server.nonce = "nonce-\(tries + 1)"
            for answer in answers { queue += client.receive(answer, now: start) }
        }
        // 1 unauthenticated + 1 authenticated + 3 retries after 438.
        #expect(tries == 5)
        #expect(events == [.allocationFailed(.errorResponse(code: 438, reason: "Stale Nonce"))])
        #expect(client.state == .idle && client.nextDeadline == start + .seconds(30))
    }

    @Test func wrongPasswordFailsAndIsRetriedLater() {
        var h = Harness(credentials: TURNCredentials(username: "alice", password: "looking-glass"), start: start)
        h.run(until: start)
        #expect(h.server.requests.map(\.authenticated) == [false, true])
        #expect(h.events.map(\.action) == [.allocationFailed(.unauthorized)])
        #expect(h.client.nextDeadline == start + .seconds(30))
        h.run(until: start + .seconds(30))
        #expect(h.server.requests.count == 3)  // realm and nonce known: straight with credentials
    }

    /// 486 (quota) and 508 (capacity) fail the Allocate, which is asked again 30 s later; 437 on an
    /// Allocate says this address already has one.
    @Test func allocateErrors() {
        var h = Harness(start: start)
        h.server.allocateErrors = [486, 508, 437]
        h.run(until: start + .seconds(100))
        #expect(h.events.map(\.action) == [
            .allocationFailed(.errorResponse(code: 486, reason: "Refused")),
            .allocationFailed(.errorResponse(code: 508, reason: "Refused")),
            .allocationFailed(.allocationMismatch),
            .allocated(relayed: FakeTURNServer.relayedAddress, mapped: FakeTURNServer.clientAddress, lifetime: .seconds(600)),
        ])
        #expect(h.events.map(\.time) == [start, start + .seconds(30), start + .seconds(60), start + .seconds(90)])
    }

    /// Permission and channel: before the channel is bound data goes in Send indications and comes
    /// back in Data indications; after, as ChannelData both ways. Permissions are refreshed every
    /// 240 s, channels every 540 s.
    @Test func permissionsChannelsAndData() throws {
        var h = Harness(start: start)
        let beforeAllocation = h.client.wrap([1, 2, 3], to: Self.peer)
        #expect(beforeAllocation == nil)  // no allocation yet
        h.run(until: start)
        let withoutPermission = h.client.wrap([1, 2, 3], to: Self.peer)
        #expect(withoutPermission == nil)  // no permission: the server would drop it
        h.server.silent = true  // hold the answers back to see the Send indication path
        h.call { $0.createPermission(for: Self.peer.ip, now: $1) }
        h.server.silent = false
        let wrappedIndication = h.client.wrap([1, 2, 3], to: Self.peer)
        let indication = try #require(wrappedIndication)
        let parsed = try STUNMessage(parsing: indication)
        #expect(parsed.method == TURNMethod.send && parsed.messageClass == .indication)
        #expect(parsed.xorPeerAddress == Self.peer && parsed.data == [1, 2, 3] && parsed.messageIntegrity == nil)
        h.run(until: start + .milliseconds(500))  // the retransmitted CreatePermission gets through
        #expect(h.client.hasPermission(for: Self.peer.ip) && h.server.permissions == [Self.peer.ip])
        h.deliver([.send(indication)])
        #expect(h.server.relayedToPeers.map(\.viaChannel) == [false])
        let data = try #require(h.server.fromPeer([9, 8], peer: Self.peer, transactionID: Array(repeating: 7, count: 12)))
        #expect(h.client.isFromServer(data))
        let fromIndication = h.client.receive(data, now: h.now)
        #expect(fromIndication == [.received([9, 8], from: Self.peer)])

        h.call { $0.bindChannel(to: Self.peer, now: $1) }
        #expect(h.events.last?.action == .channelBound(0x4000, peer: Self.peer))
        #expect(h.client.boundChannel(for: Self.peer) == 0x4000)
        let wrappedFrame = h.client.wrap([1, 2, 3, 4, 5], to: Self.peer)
        let framed = try #require(wrappedFrame)
        #expect(framed == [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5])  // unpadded over UDP
        h.deliver([.send(framed)])
        #expect(h.server.relayedToPeers.last!.viaChannel && h.server.relayedToPeers.last!.payload == [1, 2, 3, 4, 5])
        let channelData = try #require(h.server.fromPeer([6, 6, 6], peer: Self.peer, transactionID: []))
        let fromChannel = h.client.receive(channelData, now: h.now)
        #expect(h.client.isFromServer(channelData) && fromChannel == [.received([6, 6, 6], from: Self.peer)])
        // An unbound channel number is not ours.
        #expect(!h.client.isFromServer([0x40, 0x01, 0x00, 0x01, 9]))

        let bound = h.now
        h.run(until: bound + .seconds(1200))
        let permissionTimes = h.server.requests.indices.filter { h.server.requests[$0].method == TURNMethod.createPermission }.count
        let bindCount = h.server.requests.filter { $0.method == TURNMethod.channelBind }.count
        // CreatePermission: the first (its first copy was lost), then 240 s after the last refresh,
        // which a ChannelBind also is: 240, 480, (ChannelBind 540) 780, 1020, (ChannelBind 1080).
        // ChannelBind: the first, then at 540 s and 1080 s.
        #expect(permissionTimes == 1 + 4)
        #expect(bindCount == 3)
        #expect(h.client.boundChannel(for: Self.peer) == 0x4000)
    }

    /// The server forgot the allocation (restart): the next Refresh gets 437, the client allocates
    /// again at once and puts its permission and channel back.
    @Test func lostAllocationIsMadeAgainWithItsChannels() {
        var h = Harness(start: start)
        h.run(until: start)
        h.call { $0.bindChannel(to: Self.peer, now: $1) }
        h.server.forgetAllocation()
        h.run(until: start + .seconds(540))
        #expect(h.events.map(\.action) == [
            .allocated(relayed: FakeTURNServer.relayedAddress, mapped: FakeTURNServer.clientAddress, lifetime: .seconds(600)),
            .channelBound(0x4000, peer: Self.peer),
            .allocationLost(.allocationMismatch),
            .allocated(relayed: FakeTURNServer.relayedAddress, mapped: FakeTURNServer.clientAddress, lifetime: .seconds(600)),
            .channelBound(0x4000, peer: Self.peer),
        ])
        #expect(h.server.allocated && h.server.channels == [0x4000: Self.peer] && h.server.permissions == [Self.peer.ip])
    }

    /// RFC 8489 §6.2.1 over UDP: sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s, failed at 39.5 s.
    /// Over TCP: sent once, failed at 39.5 s.
    @Test func retransmitsOverUDPOnlyAndTimesOut() {
        for transport in [TURNClient.Transport.udp, .tcp] {
            var h = Harness(transport: transport, start: start)
            h.server.silent = true
            var sentAt: [Duration] = []
            while let deadline = h.client.nextDeadline, deadline < start + .seconds(60) {
                h.now = deadline
                let before = h.sent.count
                h.deliver(h.client.handleTimeout(now: deadline))
                if h.sent.count > before { sentAt.append(deadline - start) }
            }
            let expected: [Duration] = transport == .udp
                ? [0, 500, 1500, 3500, 7500, 15500, 31500].map { .milliseconds($0) } : [.zero]
            #expect(sentAt == expected)
            #expect(Set(h.sent).count == 1)  // the same request each time
            #expect(h.events.map(\.action) == [.allocationFailed(.timedOut)])
            #expect(h.events.first?.time == start + .milliseconds(39_500))
        }
    }

    /// Refreshes that get no answer are tried again every 30 s; at expiry the allocation is lost
    /// and asked for again.
    @Test func unansweredRefreshesLoseTheAllocationAtExpiry() {
        var configuration = TURNClient.Configuration()
        configuration.requestedLifetime = .seconds(120)
        var h = Harness(configuration: configuration, start: start)
        h.run(until: start)
        #expect(h.client.nextDeadline == start + .seconds(60))  // half of a short lifetime
        h.server.silent = true
        h.run(until: start + .seconds(119))
        #expect(h.client.relayedAddress != nil)
        h.run(until: start + .seconds(120))
        #expect(h.events.map(\.action).contains(.allocationLost(.timedOut)))
        #expect(h.client.state == .allocating)
        h.server.silent = false
        h.server.forgetAllocation()
        h.run(until: start + .seconds(121))
        #expect(h.client.relayedAddress == FakeTURNServer.relayedAddress)
    }

    /// Release: a Refresh with LIFETIME 0; the server frees the allocation.
    @Test func releaseGivesTheAllocationBack() throws {
        var h = Harness(start: start)
        h.run(until: start)
        h.call { $0.release(now: $1) }
        #expect(try STUNMessage(parsing: h.sent.last!).lifetimeSeconds == 0)
        #expect(h.events.last?.action == .released && h.client.state == .released && !h.server.allocated)
        #expect(h.client.nextDeadline == nil)
    }

    /// A success response that is not signed with the key (a forger on the path) is ignored.
    @Test func unsignedSuccessIsIgnored() throws {
        var client = TURNClient(server: TransportAddress(host: "192.0.2.1", port: 3478)!,
                                credentials: TURNCredentials(username: "alice", password: "wonderland"), now: start, random: SeededRandom(seed: 5))
        var server = FakeTURNServer()
        guard case let .send(first) = client.handleTimeout(now: start).first else { Issue.record("no request"); return }
        guard case let .send(second) = client.receive(server.handle(first)[0], now: start).first else { Issue.record("no retry"); return }
        let request = try STUNMessage(parsing: second)
        let forged = STUNMessage(method: TURNMethod.allocate, messageClass: .successResponse, transactionID: request.transactionID,
                                 attributes: [.unknown(type: TURNAttributeType.xorRelayedAddress,
                                                       value: STUNAttribute.xorAddressValue(Self.otherPeer, transactionID: request.transactionID))])
        #expect(client.receive(forged.serialized(integrityKey: Array("wrong".utf8), fingerprint: true), now: start).isEmpty)
        #expect(client.receive(forged.serialized(integrityKey: nil, fingerprint: true), now: start).isEmpty)
        #expect(client.relayedAddress == nil)
        let genuine = server.handle(second)
        #expect(client.receive(genuine[0], now: start).count == 1 && client.relayedAddress == FakeTURNServer.relayedAddress)
    }
}

func hex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        out.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return out
}

/// What the daemon's relay needs beyond one allocation: a backoff between failed Allocates, peers
/// forgotten when their viewer leaves, and new REST credentials for the next Allocate.
@Suite struct TURNClientOwnerTests {
    let start = MonotonicTime(seconds: 1000)

    /// 2 s, 4 s, 8 s, then 10 s (the maximum) between failed Allocates; after a success, the next
    /// failure waits 2 s again.
    @Test func failedAllocatesBackOffUpToTheMaximum() {
        var configuration = TURNClient.Configuration()
        configuration.retryInterval = .seconds(2)
        configuration.maximumRetryInterval = .seconds(10)
        var h = Harness(configuration: configuration, start: start)
        h.server.allocateErrors = [508, 508, 508, 508, 508]
        h.run(until: start + .seconds(60))
        let times = h.events.map(\.time)
        #expect(times == [start, start + .seconds(2), start + .seconds(6), start + .seconds(14), start + .seconds(24),
                          start + .seconds(34)])
        #expect(h.events.last.map { if case .allocated = $0.action { true } else { false } } == true)
    }

    /// A forgotten peer's permission and channel are no longer refreshed; the other peer's are, and a
    /// new channel gets a number never used before.
    @Test func forgottenPeersAreNotRefreshed() {
        let peer = TransportAddress(host: "203.0.113.9", port: 61000)!, other = TransportAddress(host: "203.0.113.10", port: 62000)!
        var h = Harness(start: start)
        h.run(until: start)
        h.deliver(h.client.bindChannel(to: peer, now: start))
        h.deliver(h.client.bindChannel(to: other, now: start))
        #expect(h.client.boundChannel(for: peer) == 0x4000 && h.client.boundChannel(for: other) == 0x4001)
        h.client.forget(peer.ip)
        #expect(h.client.boundChannel(for: peer) == nil && h.client.permissionCount == 1)
        let before = h.server.requests.count
        h.run(until: start + .seconds(600))
        let refreshed = h.server.requests[before...].filter { $0.method == TURNMethod.channelBind }
        #expect(refreshed.count == 1)   // the other peer's channel at 540 s, not the forgotten one's
        #expect(h.client.wrap([1], to: peer) == nil)   // no permission any more: the server would drop it
        h.deliver(h.client.bindChannel(to: peer, now: h.now))
        #expect(h.client.boundChannel(for: peer) == 0x4002)
    }

    /// New credentials are used by the requests after the change (and keyed with the known realm).
    @Test func replacedCredentialsSignTheNextRequests() throws {
        var h = Harness(start: start)
        h.run(until: start)
        h.client.replaceCredentials(TURNCredentials(username: "bob", password: "builder"))
        h.deliver(h.client.createPermission(for: .v4(203, 0, 113, 9), now: start))
        let request = try STUNMessage(parsing: h.sent.last!)
        #expect(request.username == "bob")
        #expect(STUNMessage.hasValidIntegrity(h.sent.last!, key: TURNCredentials(username: "bob", password: "builder")
            .integrityKey(realm: "rtcam.test")))
    }
}
