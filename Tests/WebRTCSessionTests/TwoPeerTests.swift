import ICE
import RTCBase
import RTP
import SDP
import Testing
import WebRTCSession
import WebRTCViewer

/// rtcam's session against a test viewer through an in-memory network on a virtual clock
/// (DESIGN.md "Two peers on a simulated network"). Seconds of simulated time run in milliseconds.
@Suite struct TwoPeerTests {
    @Test func connectsQuicklyAndDeliversIdenticalAccessUnits() throws {
        let harness = try TwoPeerHarness(seed: 1)
        let start = harness.now
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && harness.viewerConnected })
        // ICE (one round trip) + DTLS (HelloVerify, two flights) at 20-30 ms one-way delay.
        #expect(harness.now - start < .milliseconds(500), "connected after \(harness.now - start)")
        harness.run(for: .seconds(3))
        harness.stopMedia()
        harness.run(for: .seconds(1))

        #expect(harness.sentAccessUnits.count >= 80)
        #expect(accessUnitMismatch(sent: harness.sentAccessUnits, received: harness.receivedAccessUnits) == nil)
        #expect(harness.receivedAudioFrames >= 140)
        #expect(harness.network.largestDatagram <= 1200)
        // Sender Reports reached the viewer, and its Receiver Reports gave rtcam a round-trip time.
        #expect(harness.viewerEvents.contains { if case .senderReport = $0.1 { return true }; return false })
        let rtt = try #require(harness.camera.statistics.roundTripTime)
        #expect(rtt >= .milliseconds(35) && rtt <= .milliseconds(80), "RTT \(rtt)")
    }

    @Test("media is protected for a viewer only once connected, appended to the caller's batch, one datagram per packet")
    func protectMediaFillsTheBatch() throws {
        let harness = try TwoPeerHarness(seed: 3)
        let slice: [UInt8] = [0, 0, 0, 1, 0x41] + Array(repeating: 0x22, count: 3000)   // three FU-As
        var batch = DatagramBatch()
        let early = harness.fanout.packetizeVideo(accessUnit: slice, isKeyframe: true, captureTime: harness.now)
        #expect(harness.camera.protectMedia(early, now: harness.now, into: &batch) == nil)
        #expect(batch.isEmpty)
        harness.start()
        #expect(harness.run(upTo: .seconds(5)) { !harness.receivedAccessUnits.isEmpty })   // past the first keyframe
        harness.stopMedia()
        batch.append([1, 2, 3])   // what the batch held before stays as it was
        let packets = harness.fanout.packetizeVideo(accessUnit: slice, isKeyframe: false, captureTime: harness.now)
        let sentBefore = harness.camera.statistics.bytesSent
        let videoPacketsBefore = harness.camera.statistics.videoPacketsSent
        #expect(harness.camera.protectMedia(packets, now: harness.now, into: &batch) == .host(TwoPeerHarness.viewerAddress))
        #expect(packets.count == 3 && batch.count == 1 + packets.count)
        #expect(Array(batch[0]) == [1, 2, 3])
        #expect(harness.camera.statistics.bytesSent - sentBefore == batch.storage.count - 3)
        #expect(harness.camera.statistics.videoPacketsSent - videoPacketsBefore == packets.count)
        var transportSequenceNumbers: [UInt16] = []
        for (index, packet) in packets.enumerated() {
            let datagram = Array(batch[index + 1])
            // The viewer's extension block (transport-wide sequence number and abs-send-time: 4 + 3
            // + 4 bytes, padded to 12) and the AES-CM + HMAC-SHA1-80 tag.
            #expect(datagram.count == packet.bytes.count + 12 + 10)
            #expect(datagram[0] == 0x90)   // V=2, X=1
            #expect(datagram[1] & 0x7F == harness.negotiated.video?.payloadType)   // this viewer's number
            #expect(datagram[2...11] == packet.bytes[2...11])   // sequence, timestamp, SSRC in the clear
            let twcc = try #require(harness.negotiated.video?.extensionIDs[RTPHeaderExtensionURI.transportWideCC])
            #expect(datagram[12...15] == [0xBE, 0xDE, 0, 2])
            #expect(datagram[16] == twcc << 4 | 1)
            transportSequenceNumbers.append(UInt16(datagram[17]) << 8 | UInt16(datagram[18]))
        }
        // One series per viewer, in send order, with no gap.
        #expect(transportSequenceNumbers.count == 3)
        #expect(zip(transportSequenceNumbers, transportSequenceNumbers.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
    }

    @Test("abs-capture-time, where answered: the capture instant in NTP once a second per stream, only on packets with room")
    func absoluteCaptureTime() throws {
        let id: UInt8 = 9
        let harness = try TwoPeerHarness(seed: 5, extraOfferedExtensions: [RTPHeaderExtensionURI.absCaptureTime: id])
        #expect(harness.negotiated.video?.extensionIDs[RTPHeaderExtensionURI.absCaptureTime] == id)
        harness.start()
        #expect(harness.run(upTo: .seconds(5)) { !harness.receivedAccessUnits.isEmpty })
        harness.stopMedia()
        func captureTimes(_ packets: [OutgoingPacket], at now: MonotonicTime) throws -> [UInt64?] {
            var batch = DatagramBatch()
            _ = harness.camera.protectMedia(packets, now: now, into: &batch)
            return try (0 ..< batch.count).map { index in
                // The block's elements, RFC 8285 one-byte form, after the 12-byte fixed header.
                let datagram = Array(batch[index])
                let words = Int(datagram[14]) << 8 | Int(datagram[15])
                var position = 16
                while position < 16 + 4 * words {
                    let element = datagram[position]
                    if element == 0 { position += 1; continue }
                    let length = Int(element & 0x0F) + 1
                    if element >> 4 == id {
                        try #require(length == 8)
                        return datagram[(position + 1)...(position + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    }
                    position += 1 + length
                }
                return nil
            }
        }
        // A full-size packet (a 1150-byte NAL unit alone) has no room for the 9 more bytes; the next one has.
        let capture = harness.now + .seconds(10)
        let full = harness.fanout.packetizeVideo(accessUnit: [0, 0, 0, 1, 0x41] + Array(repeating: 0x22, count: 1149),
                                                 isKeyframe: false, captureTime: capture)
        #expect(full.count == 1 && full[0].bytes.count == 12 + 1150)
        #expect(try captureTimes(full, at: capture) == [nil])
        func small(_ offset: Duration) -> [OutgoingPacket] {
            harness.fanout.packetizeVideo(accessUnit: [0, 0, 0, 1, 0x41, 1, 2, 3], isKeyframe: false, captureTime: capture + offset)
        }
        let expected = NTPTime(monotonic: capture + .milliseconds(33),
                               ntpNanosecondsAtMonotonicZero: harness.camera.configuration.ntpNanosecondsAtMonotonicZero)
        #expect(try captureTimes(small(.milliseconds(33)), at: capture + .milliseconds(33)) == [expected.value])
        // Within the second: none; a second after the last one: again.
        #expect(try captureTimes(small(.milliseconds(500)), at: capture + .milliseconds(500)) == [nil])
        #expect(try captureTimes(small(.milliseconds(1033)), at: capture + .milliseconds(1033)).first! != nil)
        #expect(harness.network.largestDatagram <= 1200)
    }

    @Test func recoversEveryLostVideoPacketWithNACKAt5PercentLoss() throws {
        let harness = try TwoPeerHarness(seed: 7)
        harness.start()
        // Loss starts once video flows: a receiver cannot ask for packets sent before its first one.
        #expect(harness.run(upTo: .seconds(5)) { !harness.receivedAccessUnits.isEmpty })
        let holesBeforeLoss = harness.viewer.statistics.holesSkipped
        harness.network.lossRate = 0.05
        harness.run(for: .seconds(6))
        harness.stopMedia()
        harness.network.lossRate = 0
        harness.run(for: .seconds(2))

        #expect(harness.network.dropped > 25, "the network dropped \(harness.network.dropped) datagrams")
        #expect(harness.camera.statistics.retransmittedPackets > 0)
        #expect(harness.viewer.statistics.retransmissionsReceived > 0)
        #expect(harness.viewer.statistics.holesSkipped == holesBeforeLoss, "\(harness.viewer.statistics)")
        // Loss began after the stream started; every access unit from there on arrived intact.
        #expect(accessUnitMismatch(sent: harness.sentAccessUnits, received: harness.receivedAccessUnits, latestStart: 30) == nil)
        #expect(harness.network.largestDatagram <= 1200)
    }

    @Test func retransmitsLostDTLSFlights() throws {
        let harness = try TwoPeerHarness(seed: 11)
        // Drop the first two DTLS datagrams the camera sends (its first flight, twice).
        var droppedDTLS = 0
        harness.network.dropRule = { datagram in
            guard datagram.from == TwoPeerHarness.cameraAddress, let first = datagram.bytes.first,
                  (20...63).contains(first), droppedDTLS < 2 else { return false }
            droppedDTLS += 1
            return true
        }
        let start = harness.now
        harness.start(media: false)
        #expect(harness.run(upTo: .seconds(20)) { harness.cameraConnected && harness.viewerConnected })
        #expect(droppedDTLS == 2)
        // The handshake waited for at least one retransmission timeout.
        #expect(harness.now - start > .milliseconds(400))
    }

    @Test func dropsConsentAfterThirtySecondsWithoutChecks() throws {
        let harness = try TwoPeerHarness(seed: 3)
        harness.start(media: false)
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected })
        harness.viewerAlive = false
        let silentSince = harness.now
        harness.run(for: .seconds(29))
        #expect(!harness.cameraEvents.contains { if case .disconnected = $0.1 { return true }; return false })
        harness.run(for: .seconds(3))
        let lost = harness.cameraEvents.first { if case .disconnected = $0.1 { return true }; return false }
        let at = try #require(lost?.0)
        // The last check the viewer sent came shortly before it went silent.
        #expect(at - silentSince >= .seconds(25) && at - silentSince <= .seconds(31), "consent lost after \(at - silentSince)")
        #expect(harness.camera.state == .disconnected)
    }

    @Test func keepsConsentWhileTheViewerChecksForMinutes() throws {
        let harness = try TwoPeerHarness(seed: 5)
        harness.start(media: false)
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected })
        harness.run(for: .seconds(120))
        #expect(harness.camera.state == .connected)
    }

    @Test func failsWhenTheViewerCertificateDoesNotMatchItsFingerprint() throws {
        let harness = try TwoPeerHarness(seed: 9, lieAboutViewerFingerprint: true)
        harness.start(media: false)
        harness.run(for: .seconds(5))
        #expect(harness.cameraEvents.contains { if case .failed = $0.1 { return true }; return false })
        #expect(harness.camera.state == .failed)
        #expect(!harness.cameraConnected)
    }

    @Test func actsAsDTLSClientWhenTheOfferIsPassive() throws {
        let harness = try TwoPeerHarness(seed: 13, offerSetup: "passive")
        #expect(harness.negotiated.localDTLSRole == .client)  // the offer really said passive
        harness.start()
        #expect(harness.run(upTo: .seconds(3)) { harness.cameraConnected && harness.viewerConnected })
        // The client holds the server's Finished: its endpoint goes at once.
        #expect(!harness.camera.holdsDTLSEndpoint)
        harness.run(for: .seconds(2))
        harness.stopMedia()
        harness.run(for: .seconds(1))
        #expect(!harness.receivedAccessUnits.isEmpty)
        #expect(accessUnitMismatch(sent: harness.sentAccessUnits, received: harness.receivedAccessUnits, latestStart: 30) == nil)
    }

    @Test func releasesTheDTLSEndpointOnceTheViewerProvesItHasKeys() throws {
        let harness = try TwoPeerHarness(seed: 19)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected })
        // As the DTLS server rtcam keeps the endpoint until authenticated SRTCP (the viewer's first
        // Receiver Report) shows the viewer finished its side of the handshake (RFC 6347 §4.2.4).
        #expect(harness.camera.holdsDTLSEndpoint)
        #expect(harness.run(upTo: .seconds(3)) { !harness.camera.holdsDTLSEndpoint })
        // Afterwards DTLS records (here a fake epoch-1 close_notify) are counted and ignored.
        let alert: [UInt8] = [21, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 26] + [UInt8](repeating: 7, count: 26)
        harness.camera.handle(.receive(alert, on: .host(harness.viewerAddress), now: harness.now), media: harness.fanout)
        #expect(harness.camera.statistics.ignoredDTLSAfterHandshake == 1)
        let before = harness.receivedAccessUnits.count
        harness.run(for: .seconds(2))
        #expect(harness.camera.state == .connected)
        #expect(harness.receivedAccessUnits.count >= before + 55)
        #expect(harness.cameraDeadline != nil)
    }

    @Test func followsTheViewerToANewAddress() throws {
        let harness = try TwoPeerHarness(seed: 17)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected })
        harness.run(for: .seconds(1))
        let moved = TransportAddress(ip: .v4(127, 0, 0, 3), port: 40_000)
        harness.viewerAddress = moved
        // The viewer's next consent check comes from the new address and nominates it.
        harness.run(for: .seconds(8))
        #expect(harness.camera.remoteAddress == moved)
        #expect(harness.cameraEvents.contains { $0.1 == .iceSelected(.host(moved)) })
        let before = harness.receivedAccessUnits.count
        harness.run(for: .seconds(1))
        #expect(harness.receivedAccessUnits.count > before + 20)
    }

    @Test func survivesAnICERestartWithoutInterruptingMedia() throws {
        let harness = try TwoPeerHarness(seed: 23)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && !harness.receivedAccessUnits.isEmpty })
        var random = SeededRandom(seed: 24)
        let viewerICE = ICECredentials.random(ufragLength: 4, passwordLength: 24, using: &random)
        let cameraICE = ICECredentials.random(using: &random)
        let selectionsBefore = harness.cameraEvents.filter { if case .iceSelected = $0.1 { return true }; return false }.count
        harness.camera.restartICE(local: cameraICE, remote: viewerICE, now: harness.now)
        harness.viewer.restartICE(local: viewerICE, remote: cameraICE, now: harness.now, random: &random)
        let before = harness.receivedAccessUnits.count
        harness.run(for: .seconds(2))
        #expect(harness.camera.localICE == cameraICE)
        #expect(harness.cameraEvents.filter { if case .iceSelected = $0.1 { return true }; return false }.count == selectionsBefore + 1)
        #expect(harness.receivedAccessUnits.count >= before + 55)
        // Consent now runs on the new credentials: still connected long after the old ones would have lapsed.
        harness.stopMedia()
        harness.run(for: .seconds(45))
        #expect(harness.camera.state == .connected)
    }

    @Test func hostileDatagramsNeitherCrashNorDisturbAConnectedSession() throws {
        let harness = try TwoPeerHarness(seed: 29)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && !harness.receivedAccessUnits.isEmpty })
        var random = SeededRandom(seed: 30)
        let stranger = TransportAddress(ip: .v4(127, 0, 0, 9), port: 4444)
        // Every RFC 7983 class: STUN (0-3), DTLS (20-63), RTP/RTCP (128-191), and the rest.
        let firstBytes: [UInt8] = [0, 1, 3, 20, 22, 23, 63, 128, 129, 144, 191, 200, 255]
        for index in 0..<20_000 {
            var datagram = random.bytes(Int(random.next() % 300))
            if !datagram.isEmpty { datagram[0] = firstBytes[Int(random.next() % UInt64(firstBytes.count))] }
            if datagram.count > 1, random.next() % 2 == 0 { datagram[1] = UInt8(200 + random.next() % 7) }  // RTCP types
            let from = index % 2 == 0 ? harness.viewerAddress : stranger
            harness.camera.handle(.receive(datagram, on: .host(from), now: harness.now), media: harness.fanout)
        }
        let before = harness.receivedAccessUnits.count
        harness.run(for: .seconds(2))
        #expect(harness.camera.state == .connected)
        #expect(harness.camera.remoteAddress == harness.viewerAddress)
        #expect(harness.receivedAccessUnits.count >= before + 55)
        #expect(harness.camera.statistics.rejectedDatagrams + harness.camera.statistics.srtcpFailures > 10_000)
    }

    @Test func turnsPictureLossIndicationIntoAKeyframeRequest() throws {
        let harness = try TwoPeerHarness(seed: 19)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && harness.viewerConnected })
        harness.run(for: .milliseconds(500))
        let before = harness.camera.statistics.keyframeRequests
        let eventsBefore = harness.cameraEvents.count
        harness.viewer.requestKeyframe()
        harness.run(for: .milliseconds(200))
        #expect(harness.cameraEvents.dropFirst(eventsBefore).contains { $0.1 == .keyframeRequested })
        #expect(harness.camera.statistics.keyframeRequests == before + 1)
    }
}

/// Checks that the received access units are a gap-free run of the sent ones that reaches the end,
/// identical byte for byte; returns what is wrong in words, or nil. (Comparing the arrays with `==`
/// inside #expect would print megabytes on failure.) `start` is where in `sent` the run begins.
func accessUnitMismatch(sent: [[UInt8]], received: [[UInt8]], latestStart: Int = 0) -> String? {
    guard let first = received.first else { return "nothing received (\(sent.count) sent)" }
    guard let start = sent.firstIndex(of: first) else { return "the first received access unit was never sent" }
    if start > latestStart { return "reception started at access unit \(start), later than \(latestStart)" }
    for (offset, accessUnit) in received.enumerated() {
        guard start + offset < sent.count else { return "received more access units than were sent" }
        if sent[start + offset] != accessUnit {
            return "access unit \(start + offset) differs: sent \(sent[start + offset].count) bytes, received \(accessUnit.count)"
        }
    }
    if start + received.count != sent.count {
        return "received access units \(start)..<\(start + received.count) of \(sent.count) sent"
    }
    return nil
}
