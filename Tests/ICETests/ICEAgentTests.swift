import RTCBase
import STUN
import Testing
@testable import ICE

@Suite struct ICEConversationTests {
    let lite = ICELink.liteAddress
    let viewerAddress = ICELink.firstViewerAddress

    @Test func connectsAndNominates() throws {
        var link = ICELink()
        link.start()
        #expect(link.liteEvents.map(\.1) == [.selected(.host(viewerAddress))])
        #expect(link.viewerEvents.map(\.1) == [.selected(.host(lite))])
        #expect(link.lite.selectedAddress == viewerAddress)
        #expect(link.viewer.isConnected)

        // The check is what a full agent sends (RFC 8445 §7.1), the answer what §7.3.1.2 asks for.
        let check = try STUNMessage(parsing: link.viewerSends[0].1)
        #expect(check.username == "lite:view")
        #expect(check.hasUseCandidate && check.iceControlling == 0x1234_5678_9ABC_DEF0 && check.priority != nil)
        let answer = link.liteSends[0].1
        let response = try STUNMessage(parsing: answer)
        #expect(response.messageClass == .successResponse && response.transactionID == check.transactionID)
        #expect(response.xorMappedAddress == viewerAddress)
        #expect(STUNMessage.hasValidIntegrity(answer, key: Array(ICELink.liteCredentials.password.utf8)))
        #expect(STUNMessage.hasValidFingerprint(answer))
    }

    /// RFC 7675: while consent checks keep coming (every 4-6 s), nobody loses consent and nothing is re-selected.
    @Test func consentHoldsWhileChecksFlow() {
        var link = ICELink()
        link.start()
        link.run(for: .seconds(300))
        #expect(!link.liteEvents.contains { $0.1 == .consentLost })
        #expect(!link.viewerEvents.contains { $0.1 == .consentLost })
        #expect(link.liteEvents.count == 1 && link.viewerEvents.count == 1)
        let times = link.viewerSends.map(\.0)
        #expect(times.count >= 50 && times.count <= 76)
        for (earlier, later) in zip(times, times.dropFirst()) {
            #expect(later - earlier >= .seconds(4) && later - earlier <= .seconds(6))
        }
        // Each consent check is a new transaction.
        let ids = Set(link.viewerSends.compactMap { try? STUNMessage(parsing: $0.1).transactionID })
        #expect(ids.count == link.viewerSends.count)
    }

    /// RFC 7675 §5.1: consent is lost exactly 30 s after the last valid check, not a nanosecond before.
    @Test func consentLostExactlyThirtySecondsAfterLastCheck() {
        var link = ICELink()
        let cutOff = link.now + .seconds(40)
        link.dropRequest = { $0 >= cutOff }
        link.start()
        link.run(for: .seconds(120))
        let lastCheck = try! #require(link.checksDeliveredToLite.last)
        #expect(lastCheck < cutOff && lastCheck > cutOff - .seconds(7))
        let lost = link.liteEvents.filter { $0.1 == .consentLost }.map(\.0)
        #expect(lost == [lastCheck + .seconds(30)])
        // The viewer gets no answers either: it gives up 30 s after its last answered check.
        #expect(link.viewerEvents.filter { $0.1 == .consentLost }.map(\.0) == [lastCheck + .seconds(30)])
        #expect(link.lite.nextDeadline == nil && link.viewer.nextDeadline == nil)

        // The same boundary checked directly on a lite agent.
        var agent = ICELiteAgent(local: ICELink.liteCredentials, remote: nil, now: .zero)
        #expect(agent.nextDeadline == MonotonicTime(seconds: 30))
        #expect(agent.handleTimeout(now: MonotonicTime(seconds: 30) - .nanoseconds(1)) == [])
        #expect(agent.handleTimeout(now: MonotonicTime(seconds: 30)) == [.consentLost])
        #expect(agent.handleTimeout(now: MonotonicTime(seconds: 31)) == [])
    }

    /// The viewer's datagrams suddenly come from another address: its next (nominating) check
    /// makes the lite agent select the new address, once.
    @Test func followsAddressChange() {
        var link = ICELink()
        link.start()
        link.run(for: .seconds(20))
        let moved = TransportAddress(host: "10.0.0.99", port: 40000)!
        link.viewerAddress = moved
        link.run(for: .seconds(60))
        #expect(link.liteEvents.map(\.1) == [.selected(.host(viewerAddress)), .selected(.host(moved))])
        #expect(link.lite.selectedAddress == moved)
        #expect(!link.viewerEvents.contains { $0.1 == .consentLost })
        #expect(link.viewer.isConnected)
    }

    @Test func wrongPasswordGets401AndNoSelection() throws {
        var link = ICELink(viewerUsesLitePassword: "notTheLitePasswordAtAll")
        link.start()
        link.run(for: .seconds(10))
        #expect(!link.liteEvents.contains { if case .selected = $0.1 { true } else { false } })
        #expect(link.liteEvents.allSatisfy { if case let .rejected(reason) = $0.1 { reason.hasPrefix("401") } else { false } })
        #expect(link.liteEvents.count == link.checksDeliveredToLite.count)
        #expect(!link.viewer.isConnected)
        let answer = try #require(link.liteSends.first?.1)
        let response = try STUNMessage(parsing: answer)
        #expect(response.messageClass == .errorResponse)
        #expect(response.errorCode?.code == 401)
        #expect(response.messageIntegrity == nil)  // RFC 8489 §9.1.3: we cannot sign for a peer who lacks our password
        #expect(STUNMessage.hasValidFingerprint(answer))
        #expect(link.viewerEvents.first?.1 == .rejected(reason: "error response 401 Unauthenticated"))
        link.run(for: .seconds(30))
        #expect(link.viewerEvents.last?.1 == .consentLost)  // never answered: gives up 30 s after start
    }

    /// RFC 8489 §6.2.1 / RFC 8445 §14.3: lost responses make the viewer retransmit the same request at
    /// 0.5, 1.5, 3.5 s…; the first one that gets through connects.
    @Test func retransmitsWhenResponsesAreLost() throws {
        var link = ICELink()
        let start = link.now
        link.dropResponse = { $0 < start + .seconds(3) }
        link.start()
        link.run(for: .seconds(4))
        let sendTimes = link.viewerSends.map { $0.0 - start }
        #expect(sendTimes == [.zero, .milliseconds(500), .milliseconds(1500), .milliseconds(3500)])
        #expect(Set(link.viewerSends.map(\.1)).count == 1)  // the same transaction, byte for byte
        #expect(link.viewerEvents.map(\.0) == [start + .milliseconds(3500)])
        #expect(link.viewer.isConnected)
        #expect(link.liteEvents.map(\.0) == [start])  // selected by the first check; no re-selection after
    }

    @Test func retransmissionBacksOffToFourSecondsAndStopsAtConsentTimeout() {
        var link = ICELink()
        let start = link.now
        link.dropRequest = { _ in true }
        link.start()
        link.run(for: .seconds(60))
        let gaps = zip(link.viewerSends.dropFirst(), link.viewerSends).map { $0.0 - $1.0 }
        #expect(gaps.prefix(4) == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4)])
        #expect(gaps.dropFirst(3).allSatisfy { $0 == .seconds(4) })
        #expect(link.viewerEvents.map(\.1) == [.consentLost])
        #expect(link.viewerEvents.first?.0 == start + .seconds(30))
        #expect(link.liteEvents.map(\.1) == [.consentLost])  // the lite side never heard anything either
    }

    @Test func liteAgentWithoutRemoteCredentialsStillConnects() {
        var link = ICELink(liteKnowsRemote: false)
        link.start()
        #expect(link.liteEvents.map(\.1) == [.selected(.host(viewerAddress))])
        #expect(link.viewer.isConnected)
    }
}

/// Checks crafted by hand, as browsers send them.
@Suite struct ICELiteAgentTests {
    let local = ICECredentials(ufrag: "rtcm", password: "rtcamPasswordOf24Chars!!")
    let browser = TransportAddress(host: "192.168.1.30", port: 55555)!
    let now = MonotonicTime(seconds: 5)
    var key: [UInt8] { Array(local.password.utf8) }

    func check(username: String? = "rtcm:brow", key: [UInt8]?, useCandidate: Bool = false, fingerprint: Bool = true,
               extra: [STUNAttribute] = [.iceControlling(7)], id: UInt8 = 1) -> [UInt8] {
        var attributes: [STUNAttribute] = extra + [.priority(1_853_824_767)]
        if let username { attributes.insert(.username(username), at: 0) }
        if useCandidate { attributes.append(.useCandidate) }
        return STUNMessage(messageClass: .request, transactionID: Array(repeating: id, count: 12), attributes: attributes)
            .serialized(integrityKey: key, fingerprint: fingerprint)
    }

    func agent(remote: ICECredentials? = ICECredentials(ufrag: "brow", password: "browserPassword012345678")) -> ICELiteAgent {
        ICELiteAgent(local: local, remote: remote, now: now)
    }

    /// The single `.send` of `actions`, parsed.
    func sentResponse(_ actions: [ICEAction]) throws -> (message: STUNMessage, bytes: [UInt8]) {
        let sends = actions.compactMap { if case let .send(bytes, path) = $0, path == .host(browser) { bytes } else { nil } }
        let bytes = try #require(sends.count == 1 ? sends[0] : nil)
        return (try STUNMessage(parsing: bytes), bytes)
    }

    /// Chromium's regular nomination: checks without USE-CANDIDATE are answered but select nothing;
    /// the nominating one selects, once.
    @Test func regularNomination() throws {
        var agent = agent()
        for id in UInt8(1)...3 {
            let actions = agent.receive(check(key: key, id: id), from: browser, now: now)
            #expect(actions.count == 2)
            #expect(try sentResponse(actions).message.messageClass == .successResponse)
            // Every check answered with success says so: the session learns its working pairs here.
            #expect(actions.last == .checked(.host(browser)))
        }
        #expect(agent.selectedAddress == nil)
        let nominated = agent.receive(check(key: key, useCandidate: true, id: 4), from: browser, now: now)
        #expect(nominated.last == .selected(.host(browser)))
        #expect(agent.receive(check(key: key, useCandidate: true, id: 5), from: browser, now: now).count == 2)
        // A valid but unnominated check from elsewhere changes nothing; a nominated one does.
        let other = TransportAddress(host: "10.9.8.7", port: 1)!
        #expect(agent.receive(check(key: key, id: 6), from: other, now: now).count == 2)
        #expect(agent.selectedAddress == browser)
        #expect(agent.receive(check(key: key, useCandidate: true, id: 7), from: other, now: now).last == .selected(.host(other)))
    }

    @Test func unknownLocalUfragGets401WithoutIntegrity() throws {
        var agent = agent()
        for username in ["other:brow", "rtcmbrow", ":brow", "rtcm"] {
            let actions = agent.receive(check(username: username, key: key, useCandidate: true), from: browser, now: now)
            let response = try sentResponse(actions).message
            #expect(response.errorCode?.code == 401 && response.messageIntegrity == nil, "\(username)")
            #expect(actions.last.map { if case .rejected = $0 { true } else { false } } == true)
            #expect(!actions.contains(.checked(.host(browser))))  // an error response is no working pair
        }
        #expect(agent.selectedAddress == nil)
    }

    @Test func wrongPasswordGets401WithoutIntegrity() throws {
        var agent = agent()
        let actions = agent.receive(check(key: Array("guess".utf8), useCandidate: true), from: browser, now: now)
        let response = try sentResponse(actions).message
        #expect(response.errorCode?.code == 401 && response.messageIntegrity == nil)
        #expect(agent.selectedAddress == nil)
    }

    /// Remote credentials unknown at first (WHEP answer before trickle): the remote half is not checked;
    /// once known, a mismatch gets a 401 that we can sign, since the peer proved it has our password.
    @Test func remoteUfragCheckedOnlyWhenKnown() throws {
        var agent = agent(remote: nil)
        #expect(agent.receive(check(username: "rtcm:anything", key: key, useCandidate: true), from: browser, now: now).last
                == .selected(.host(browser)))
        agent.setRemoteCredentials(ICECredentials(ufrag: "brow", password: "browserPassword012345678"))
        let (response, bytes) = try sentResponse(agent.receive(check(username: "rtcm:anything", key: key, id: 2), from: browser, now: now))
        #expect(response.errorCode?.code == 401)
        #expect(STUNMessage.hasValidIntegrity(bytes, key: key))
        let matching = agent.receive(check(key: key, id: 3), from: browser, now: now)
        #expect(try sentResponse(matching).message.messageClass == .successResponse)
        #expect(matching.count == 2 && matching.last == .checked(.host(browser)))
    }

    @Test func missingUsernameOrIntegrityGets400() throws {
        var agent = agent()
        for datagram in [check(key: nil, useCandidate: true), check(username: nil, key: key, useCandidate: true)] {
            let response = try sentResponse(agent.receive(datagram, from: browser, now: now)).message
            #expect(response.errorCode?.code == 400)
        }
        #expect(agent.selectedAddress == nil)
    }

    @Test func badFingerprintIsDroppedSilently() {
        var agent = agent()
        var datagram = check(key: key, useCandidate: true)
        datagram[datagram.count - 1] ^= 0xFF
        let actions = agent.receive(datagram, from: browser, now: now)
        #expect(actions == [.rejected(reason: "bad FINGERPRINT")])
        // Without FINGERPRINT at all the check is fine (it is optional in RFC 8489).
        #expect(agent.receive(check(key: key, useCandidate: true, fingerprint: false), from: browser, now: now).last == .selected(.host(browser)))
    }

    /// RFC 8445 §7.3.1.1: the lite agent stays controlled; a peer claiming the controlled role gets 487.
    @Test func roleConflictGets487() throws {
        var agent = agent()
        let (response, bytes) = try sentResponse(agent.receive(check(key: key, useCandidate: true, extra: [.iceControlled(.max)]),
                                                               from: browser, now: now))
        #expect(response.errorCode?.code == 487)
        #expect(STUNMessage.hasValidIntegrity(bytes, key: key))
        #expect(agent.selectedAddress == nil)
    }

    /// RFC 8489 §6.3.1: unknown comprehension-required attributes → 420 with UNKNOWN-ATTRIBUTES;
    /// unknown comprehension-optional ones (Chromium's GOOG-NETWORK-INFO 0xC057) are ignored.
    @Test func unknownAttributes() throws {
        var agent = agent()
        let required = check(key: key, useCandidate: true, extra: [.iceControlling(1), .unknown(type: 0x0077, value: [1])])
        let response = try sentResponse(agent.receive(required, from: browser, now: now)).message
        #expect(response.errorCode?.code == 420)
        #expect(response.attributes.contains(.unknown(type: 0x000A, value: [0x00, 0x77])))
        let optional = check(key: key, useCandidate: true, extra: [.iceControlling(1), .unknown(type: 0xC057, value: [0, 1, 0, 0])])
        #expect(agent.receive(optional, from: browser, now: now).last == .selected(.host(browser)))
    }

    @Test func nonRequestsAreDroppedWithoutAnswer() {
        var agent = agent()
        let response = STUNMessage(messageClass: .successResponse, transactionID: Array(repeating: 1, count: 12))
            .serialized(integrityKey: key, fingerprint: true)
        let indication = STUNMessage(messageClass: .indication, transactionID: Array(repeating: 1, count: 12))
            .serialized(integrityKey: nil, fingerprint: true)
        for datagram in [response, indication, [0x80, 0x60, 0, 1], [], [UInt8](repeating: 0, count: 20)] {
            let actions = agent.receive(datagram, from: browser, now: now)
            #expect(actions.count == 1 && !actions.contains { if case .send = $0 { true } else { false } })
        }
    }

    /// RFC 7675: after selection only checks on the selected pair renew consent.
    @Test func consentRenewedOnlyBySelectedPair() {
        var agent = agent()
        _ = agent.receive(check(key: key, useCandidate: true), from: browser, now: now)
        #expect(agent.nextDeadline == now + .seconds(30))
        _ = agent.receive(check(key: key, id: 2), from: TransportAddress(host: "10.0.0.1", port: 2)!, now: now + .seconds(10))
        #expect(agent.nextDeadline == now + .seconds(30))
        _ = agent.receive(check(key: key, id: 3), from: browser, now: now + .seconds(20))
        #expect(agent.nextDeadline == now + .seconds(50))
        #expect(agent.handleTimeout(now: now + .seconds(50)) == [.consentLost])
        #expect(agent.receive(check(key: key, id: 4), from: browser, now: now + .seconds(51)) == [.rejected(reason: "consent already lost")])
    }

    @Test func localUfragForDemultiplexing() {
        #expect(ICELiteAgent.localUfrag(inBindingRequest: check(key: key)) == "rtcm")
        #expect(ICELiteAgent.localUfrag(inBindingRequest: check(username: "a:b:c", key: nil)) == "a")
        #expect(ICELiteAgent.localUfrag(inBindingRequest: check(username: "nocolon", key: nil)) == nil)
        #expect(ICELiteAgent.localUfrag(inBindingRequest: check(username: ":x", key: nil)) == nil)
        #expect(ICELiteAgent.localUfrag(inBindingRequest: check(username: nil, key: key)) == nil)
        let response = STUNMessage(messageClass: .successResponse, transactionID: Array(repeating: 1, count: 12),
                                   attributes: [.username("rtcm:x")]).serialized(integrityKey: nil, fingerprint: false)
        #expect(ICELiteAgent.localUfrag(inBindingRequest: response) == nil)
        #expect(ICELiteAgent.localUfrag(inBindingRequest: []) == nil)
        #expect(ICELiteAgent.localUfrag(inBindingRequest: [0, 1, 0, 8, 0x21, 0x12, 0xA4, 0x42]) == nil)
    }

    /// Seeded random mutations of valid checks: the demultiplexer and the agent never trap, and no
    /// mutated datagram gets a success answer unless it still carries valid integrity.
    @Test func mutatedChecksNeverTrap() {
        var random = SeededRandom(seed: 77)
        var agent = agent()
        let seeds = [check(key: key, useCandidate: true), check(key: key), check(username: "rtcm:brow", key: nil)]
        for iteration in 0..<4000 {
            var datagram = seeds[iteration % seeds.count]
            switch random.next() % 3 {
            case 0:
                for _ in 0..<(1 + random.next() % 4) {
                    datagram[Int(random.next() % UInt64(datagram.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            case 1:
                datagram = Array(datagram.prefix(Int(random.next() % UInt64(datagram.count + 1))))
            default:
                let index = 20 + Int(random.next() % UInt64(datagram.count - 20))
                datagram[index] = UInt8(truncatingIfNeeded: random.next())
                datagram[2] = UInt8(truncatingIfNeeded: random.next() % 2)  // length sometimes way off
            }
            _ = ICELiteAgent.localUfrag(inBindingRequest: datagram)
            let actions = agent.receive(datagram, from: browser, now: now)
            for case let .send(bytes, _) in actions {
                if let answer = try? STUNMessage(parsing: bytes), answer.messageClass == .successResponse {
                    #expect(STUNMessage.hasValidIntegrity(datagram, key: key))
                }
            }
        }
    }
}

@Suite struct ICEControllingAgentTests {
    let liteAddress = ICELink.liteAddress

    func startedAgent() -> (ICEControllingAgent, STUNMessage) {
        var agent = ICEControllingAgent(local: ICELink.viewerCredentials, remote: ICELink.liteCredentials,
                                        remoteAddress: liteAddress, tieBreaker: 9, now: .zero, random: SeededRandom(seed: 3))
        let actions = agent.start(now: .zero)
        guard case let .send(bytes, _) = actions.first, let check = try? STUNMessage(parsing: bytes) else { fatalError("no check") }
        return (agent, check)
    }

    func answer(_ check: STUNMessage, password: String = ICELink.liteCredentials.password) -> [UInt8] {
        STUNMessage(messageClass: .successResponse, transactionID: check.transactionID,
                    attributes: [.xorMappedAddress(ICELink.firstViewerAddress)])
            .serialized(integrityKey: Array(password.utf8), fingerprint: true)
    }

    @Test func acceptsOnlyAuthenticMatchingResponses() {
        var (agent, check) = startedAgent()
        #expect(agent.start(now: .zero) == [])  // only once
        let elsewhere = TransportAddress(host: "1.2.3.4", port: 5)!
        #expect(agent.receive(answer(check), from: elsewhere, now: .zero).count == 1)
        #expect(agent.receive(answer(check, password: "forged"), from: liteAddress, now: .zero)
                == [.rejected(reason: "bad MESSAGE-INTEGRITY")])
        var otherTransaction = check
        otherTransaction.transactionID[0] ^= 1
        #expect(agent.receive(answer(otherTransaction), from: liteAddress, now: .zero)
                == [.rejected(reason: "unknown transaction")])
        #expect(!agent.isConnected)
        #expect(agent.receive(answer(check), from: liteAddress, now: MonotonicTime(milliseconds: 10)) == [.selected(.host(liteAddress))])
        #expect(agent.isConnected)
        #expect(agent.receive(answer(check), from: liteAddress, now: MonotonicTime(milliseconds: 20)) == [.rejected(reason: "unknown transaction")])
    }

    @Test func deadlinesFollowTheSchedule() {
        var (agent, check) = startedAgent()
        #expect(agent.nextDeadline == MonotonicTime(milliseconds: 500))
        #expect(agent.handleTimeout(now: MonotonicTime(milliseconds: 499)) == [])
        _ = agent.receive(answer(check), from: liteAddress, now: MonotonicTime(milliseconds: 100))
        let next = try! #require(agent.nextDeadline)
        #expect(next >= MonotonicTime(milliseconds: 4100) && next <= MonotonicTime(milliseconds: 6100))
    }
}
