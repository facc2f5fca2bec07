import RTCBase
import Testing
@testable import WebRTCSession
import WebRTCViewer

/// What one viewer (or one host pretending to be one) can cost the camera: a slot held by a session
/// that never connects, checks from addresses the WHEP client never named, unbounded NACKs.
@Suite struct SessionLimitsTests {
    func failure(_ harness: TwoPeerHarness) -> String? {
        harness.cameraEvents.lazy.compactMap { if case let .failed(reason) = $0.1 { reason } else { nil } }.first
    }

    @Test("an offer that never connects gives its slot back after 10 s (ICE never started)")
    func neverChecked() throws {
        let harness = try TwoPeerHarness(seed: 41)
        harness.viewerAlive = false   // its checks never leave
        harness.start(media: false)
        harness.run(for: .milliseconds(9_900))
        #expect(failure(harness) == nil)
        harness.run(for: .milliseconds(200))
        #expect(failure(harness)?.hasPrefix("not connected within 10") == true)
        #expect(failure(harness)?.contains("ICE") == true)
        #expect(harness.camera.state == .failed && harness.camera.nextDeadline == nil)
    }

    @Test("a viewer that answers checks but never does DTLS is dropped after 10 s too")
    func checksButNoDTLS() throws {
        let harness = try TwoPeerHarness(seed: 42)
        // Every DTLS record either way is lost (RFC 7983: first byte 20...63).
        harness.network.dropRule = { datagram in (20...63).contains(datagram.bytes.first ?? 0) }
        harness.start()
        harness.run(for: .seconds(11))
        #expect(failure(harness)?.contains("DTLS unfinished") == true, "\(harness.cameraEvents)")
        #expect(!harness.cameraConnected)
    }

    @Test("a connected session is not timed out")
    func connectedStays() throws {
        let harness = try TwoPeerHarness(seed: 43)
        harness.start()
        harness.run(for: .seconds(15))
        #expect(harness.cameraConnected && failure(harness) == nil && harness.camera.state == .connected)
    }

    @Test("checks from an IP that is neither the WHEP client's nor a candidate's are not answered")
    func foreignAddresses() throws {
        let elsewhere = try TwoPeerHarness(seed: 44) { $0.allowedRemoteIPs = [.v4(10, 9, 8, 7)] }
        elsewhere.start()
        elsewhere.run(for: .seconds(3))
        #expect(!elsewhere.cameraConnected)
        #expect(elsewhere.camera.statistics.checksFromForeignAddresses > 0)
        #expect(!elsewhere.cameraEvents.contains { if case .addressVerified = $0.1 { true } else { false } })

        let client = try TwoPeerHarness(seed: 44) { $0.allowedRemoteIPs = [TwoPeerHarness.viewerAddress.ip] }
        client.start()
        client.run(for: .seconds(3))
        #expect(client.cameraConnected && client.camera.statistics.checksFromForeignAddresses == 0)
        #expect(client.cameraEvents.contains { $0.1 == .addressVerified(.host(TwoPeerHarness.viewerAddress)) })
    }

    @Test("a session keeps at most 4 checked addresses, never forgetting the one media goes to")
    func boundedAddresses() throws {
        let harness = try TwoPeerHarness(seed: 45)
        harness.start()
        harness.run(for: .seconds(2))
        #expect(harness.cameraConnected)
        for port in UInt16(50_001)...50_006 {
            harness.viewerAddress = TransportAddress(ip: .v4(127, 0, 0, 2), port: port)
            harness.run(for: .seconds(6))   // the next consent check comes from the new address
        }
        let verified = harness.cameraEvents.filter { if case .addressVerified = $0.1 { true } else { false } }.count
        let forgotten = harness.cameraEvents.filter { if case .addressForgotten = $0.1 { true } else { false } }.count
        #expect(verified == 7 && verified - forgotten == 4, "verified \(verified), forgotten \(forgotten)")
        #expect(!harness.cameraEvents.contains { $0.1 == .addressForgotten(.host(harness.viewerAddress)) })
        #expect(harness.camera.remoteAddress == harness.viewerAddress)
    }

    @Test("NACKs: a sequence number named again counts once, each packet is resent at most twice (here), resends stay within budget")
    func boundedRetransmissions() throws {
        // Two resends a packet, as configured here (six by default), and no redundant copies: the
        // counts below are the resends the NACKs themselves ask for.
        let harness = try TwoPeerHarness(seed: 46, configure: {
            $0.maximumRetransmissionsPerPacket = 2
            $0.redundantRetransmissions = []
        })
        harness.network.jitter = .zero   // no reordering: the viewer's own NACKs stay out of the counts
        harness.start()
        harness.run(for: .seconds(2))
        #expect(harness.cameraConnected)
        let newest = harness.fanout.videoHistory.newestSequenceNumber
        let target = try #require(newest) &- 3
        let before = harness.camera.statistics
        // Named 30 times in one NACK (interleaved with another so the entries do not merge).
        harness.viewer.sendNACK(Array(repeating: [target, target &- 20], count: 30).flatMap { $0 })
        harness.run(for: .milliseconds(100))
        var after = harness.camera.statistics
        #expect(after.retransmittedPackets - before.retransmittedPackets == 2)   // target and target - 20, once each
        #expect(after.retransmissionsRefused - before.retransmissionsRefused == 58)
        // Twice more: the second resend of each is allowed, the third is not.
        harness.viewer.sendNACK([target])
        harness.run(for: .milliseconds(100))
        harness.viewer.sendNACK([target])
        harness.run(for: .milliseconds(100))
        after = harness.camera.statistics
        #expect(after.retransmittedPackets - before.retransmittedPackets == 3)
        #expect(after.retransmissionsRefused - before.retransmissionsRefused == 59)

        // Every packet of the history at once: far more than half of what the viewer was sent lately.
        let everything = (0..<UInt16(1000)).map { try! #require(newest) &- $0 }
        let beforeFlood = harness.camera.statistics
        harness.viewer.sendNACK(everything)
        harness.run(for: .milliseconds(100))
        let flood = harness.camera.statistics
        let resentBytes = flood.bytesSent - beforeFlood.bytesSent
        #expect(flood.retransmissionsRefused - beforeFlood.retransmissionsRefused > 100)
        #expect(resentBytes < 400_000, "resent \(resentBytes) bytes for one NACK")
    }

    @Test("at 10 % loss each resend goes out up to four times (RTX, own sequence numbers), and every access unit arrives; none without loss")
    func redundantResendsUnderHeavyLoss() throws {
        for (loss, expectCopies) in [(0.10, true), (0.0, false)] {
            let harness = try TwoPeerHarness(seed: 47)
            harness.network.jitter = .zero
            harness.start()
            #expect(harness.run(upTo: .seconds(5)) { !harness.receivedAccessUnits.isEmpty })
            let holesBefore = harness.viewer.statistics.holesSkipped
            harness.network.lossRate = loss
            harness.run(for: .seconds(6))
            harness.stopMedia()
            harness.network.lossRate = 0
            harness.run(for: .seconds(2))
            let statistics = harness.camera.statistics
            if expectCopies {
                #expect(statistics.retransmittedPackets > 20, "\(statistics)")
                // Once the NACKed share passes 5 % (after the first second of loss), two extra copies a
                // resend, three from 8 %.
                #expect(statistics.redundantRetransmissions > statistics.retransmittedPackets, "\(statistics)")
                #expect(statistics.redundantRetransmissions <= 3 * statistics.retransmittedPackets)
                #expect(statistics.retransmissionsRefused == 0)
                #expect(harness.viewer.statistics.holesSkipped == holesBefore, "\(harness.viewer.statistics)")
            } else {
                #expect(statistics.retransmittedPackets == 0)
                #expect(statistics.redundantRetransmissions == 0)
            }
        }
    }

    @Test("10 % loss camera → viewer, 50 ms RTT, ~1.5 Mb/s: every first resend goes out with its three copies, so no access unit needs a second round trip")
    func resendCopiesAtTenPercentLoss() throws {
        let harness = try TwoPeerHarness(seed: 51)
        harness.videoFrameScale = 3
        harness.network.jitter = .zero
        harness.network.baseDelay = .milliseconds(25)
        harness.start()
        #expect(harness.run(upTo: .seconds(5)) { !harness.receivedAccessUnits.isEmpty })
        // What the camera sends is lost (all of it: media, resends, reports, answers to checks); what
        // the viewer sends is not, as with the VM test's netem on the guest's egress.
        var loss = SeededRandom(seed: 52)
        harness.network.dropRule = { datagram in
            datagram.from == TwoPeerHarness.cameraAddress && loss.next() % 1_000 < 100
        }
        harness.run(for: .seconds(2))     // the NACKed share reaches 10 %: copies from here on
        let before = harness.camera.statistics
        let firstMeasured = harness.sentAccessUnits.count
        harness.run(for: .seconds(10))
        harness.stopMedia()
        harness.network.dropRule = nil
        harness.run(for: .seconds(1))
        let after = harness.camera.statistics
        let allArrived = harness.receivedAccessUnits == harness.sentAccessUnits
        #expect(allArrived, "access units lost or out of order")
        let delays = zip(harness.sentAccessUnitTimes, harness.receivedAccessUnitTimes).dropFirst(firstMeasured)
            .map { $1 - $0 }
        let longest = try #require(delays.max())
        let resent = after.retransmittedPackets - before.retransmittedPackets
        let copies = after.redundantRetransmissions - before.redundantRetransmissions
        let withheld = after.redundantRetransmissionsWithheld - before.redundantRetransmissionsWithheld
        print("10 % loss: \(delays.count) access units, the longest \(longest); resent \(resent), copies \(copies), "
              + "withheld \(withheld), in flight \(after.retransmissionsInFlight - before.retransmissionsInFlight)")
        #expect(delays.count > 280 && resent > 150)
        // Four copies cost 40 % of the media at 10 % loss: within what the first resends leave of
        // the budget (with half the budget for copies, as before, copies went unsent here and an
        // access unit waited 143 ms, for the next NACK).
        #expect(withheld == 0)
        #expect(Double(copies) >= 2.85 * Double(resent), "copies \(copies) for \(resent) resends")
        // One way 25 ms, a lost packet seen at the next one, a NACK every 20 ms, the resend 50 ms:
        // under 130 ms unless all four copies were lost too.
        #expect(longest < .milliseconds(130), "an access unit waited \(longest)")
        #expect(after.retransmissionsRefused == before.retransmissionsRefused)
    }

    @Test("the NACKed share: first NACKs of packets over video packets sent, over this second and the last")
    func nackedShare() {
        var share = NACKedShare()
        let at = { (ms: UInt64) in MonotonicTime(milliseconds: ms) }
        share.advance(to: at(0), videoPacketsSent: 0)
        share.advance(to: at(500), videoPacketsSent: 40)
        for _ in 0 ..< 4 { share.nackedForTheFirstTime() }
        #expect(share.share == 0)   // under 50 packets: no rate yet
        share.advance(to: at(900), videoPacketsSent: 100)
        #expect(share.share == 0.04)
        share.advance(to: at(1_000), videoPacketsSent: 110)   // a new window; the last one still counts
        for _ in 0 ..< 7 { share.nackedForTheFirstTime() }
        share.advance(to: at(1_500), videoPacketsSent: 200)
        #expect(share.share == 11.0 / 200)
        share.advance(to: at(3_600), videoPacketsSent: 210)   // over 2 s quiet: the old window is forgotten
        #expect(share.share == 0)
    }

    @Test("a NACK for a packet resent less than a round trip ago is not answered (its resend is on the way); later it is")
    func inFlightResendsAreNotRepeated() throws {
        let harness = try TwoPeerHarness(seed: 48, configure: { $0.redundantRetransmissions = [] })
        harness.network.jitter = .zero
        harness.start()
        harness.run(for: .seconds(3))
        let roundTrip = try #require(harness.camera.statistics.roundTripTime)
        #expect(roundTrip >= .milliseconds(35) && roundTrip <= .milliseconds(60), "\(roundTrip)")
        let target = try #require(harness.fanout.videoHistory.newestSequenceNumber) &- 3
        let before = harness.camera.statistics
        harness.viewer.sendNACK([target])
        harness.flush()
        harness.run(for: .milliseconds(25))    // arrives after 20 ms: resent
        harness.viewer.sendNACK([target])
        harness.flush()
        harness.run(for: .milliseconds(25))    // arrives 25 ms after the resend: on its way still
        var after = harness.camera.statistics
        #expect(after.retransmittedPackets - before.retransmittedPackets == 1)
        #expect(after.retransmissionsInFlight - before.retransmissionsInFlight == 1)
        harness.run(for: roundTrip)
        harness.viewer.sendNACK([target])      // a round trip and more later: the resend was lost
        harness.flush()
        harness.run(for: .milliseconds(25))
        after = harness.camera.statistics
        #expect(after.retransmittedPackets - before.retransmittedPackets == 2)
        #expect(after.retransmissionsInFlight - before.retransmissionsInFlight == 1)
        #expect(after.retransmissionsRefused == before.retransmissionsRefused)
    }
}
