import RTCBase
import RTP
import Testing
@testable import SRTP

@Suite("SRTP session")
struct SRTPSessionTests {
    @Test("protection overhead per profile", arguments: SRTPProfile.allCases)
    func overhead(profile: SRTPProfile) {
        switch profile {
        case .aes128CmHmacSha1_80:
            #expect(SRTPSession.protectionOverhead(profile) == 10)
            #expect(SRTPSession.rtcpProtectionOverhead(profile) == 14)
        case .aeadAes128Gcm:
            #expect(SRTPSession.protectionOverhead(profile) == 16)
            #expect(SRTPSession.rtcpProtectionOverhead(profile) == 20)
        }
    }

    @Test("RTP round trip both ways", arguments: SRTPProfile.allCases)
    func rtpRoundTrip(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let overhead = SRTPSession.protectionOverhead(profile)
        for (sender, receiver) in [(server, client), (client, server)] {
            for seq in UInt16(100)..<120 {
                let payload = (0..<Int(seq) * 3).map { UInt8(truncatingIfNeeded: $0) }
                let plain = rtpPacket(sequenceNumber: seq, payload: payload)
                let protected = try sender.protectRTP(plain)
                #expect(protected.count == plain.count + overhead)
                // RFC 3711 §3.1: the header stays in the clear, the payload is encrypted.
                #expect(Array(protected[0..<12]) == Array(plain[0..<12]))
                #expect(Array(protected[12..<plain.count]) != Array(plain[12...]))
                #expect(try receiver.unprotectRTP(protected) == plain)
            }
        }
        #expect(client.replayedPackets == 0 && client.authenticationFailures == 0)
        #expect(server.replayedPackets == 0 && server.authenticationFailures == 0)
    }

    @Test("protecting with a payload type rewrites it in the protected copy only", arguments: SRTPProfile.allCases)
    func protectWithPayloadType(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let (_, reference) = try sessionPair(profile)
        for (seq, marker) in [(UInt16(7), false), (8, true)] {
            var shared = rtpPacket(sequenceNumber: seq, payloadType: 0, payload: Array(repeating: 0x3C, count: 200))
            if marker { shared[1] |= 0x80 }
            let original = shared
            let protected = try server.protectingWithPayloadType(shared, 102)
            #expect(shared == original)  // the shared plaintext is untouched
            var patched = shared
            patched[1] = (patched[1] & 0x80) | 102
            #expect(protected == (try reference.protectRTP(patched)))
            #expect(try client.unprotectRTP(protected) == patched)
        }
    }

    @Test("protecting into a buffer appends exactly the protected packet; a refused one leaves it as it was",
          arguments: SRTPProfile.allCases)
    func protectAppending(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let (_, reference) = try sessionPair(profile)
        var buffer: [UInt8] = [9, 8, 7]
        var expected = buffer
        for seq in UInt16(20) ..< 24 {
            let plain = rtpPacket(sequenceNumber: seq, payloadType: 0, payload: Array(repeating: UInt8(seq), count: 100 + Int(seq)))
            let before = buffer.count
            try server.protectRTP(plain, appendingTo: &buffer) { RTPFixedHeader.setPayloadType(111, in: $0) }
            let alone = try reference.protectingWithPayloadType(plain, 111)
            expected += alone
            #expect(buffer == expected)
            var patched = plain
            patched[1] = 111
            #expect(try client.unprotectRTP(Array(buffer[before...])) == patched)
        }
        var refused: SRTPError?
        do { try server.protectRTP([0x80, 0, 0], appendingTo: &buffer) { RTPFixedHeader.setPayloadType(111, in: $0) } } catch { refused = error }
        #expect(refused == .malformed)
        #expect(buffer == expected)
    }

    @Test("an extension block is inserted after the fixed header with the X bit set; a bad block or a packet that has one is refused",
          arguments: SRTPProfile.allCases)
    func insertingHeaderExtension(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let plain = rtpPacket(sequenceNumber: 7, payloadType: 0, payload: Array(repeating: 0x5A, count: 300))
        var block: [UInt8] = []
        SendHeaderExtensions(transportSequenceNumberID: 3, absoluteSendTimeID: 2, playoutDelayID: 5)
            .write(into: &block, transportSequenceNumber: 0x1234, sendTimeNanoseconds: 1_500_000_000, playoutDelay: true)
        var buffer: [UInt8] = [1]
        try server.protectRTP(plain, headerExtension: block, appendingTo: &buffer) { RTPFixedHeader.setPayloadType(96, in: $0) }
        #expect(buffer.count == 1 + plain.count + block.count + SRTPSession.protectionOverhead(profile))
        let received = try RTPPacket(parsing: client.unprotectRTP(Array(buffer.dropFirst())))
        #expect(received.payloadType == 96 && received.sequenceNumber == 7 && received.payload == Array(plain[12...]))
        #expect(received.extensionData(id: 3) == [0x12, 0x34])
        #expect(received.extensionData(id: 2) == [0x06, 0x00, 0x00])   // 1.5 s × 2^18 = 0x060000
        #expect(received.extensionData(id: 5) == [0, 0, 0])
        let before = buffer
        for bad in [[0xBE, 0xDE, 0, 2, 0x31, 0, 0, 0], [0xBE, 0xDE, 0, 0, 0x31], [0xBE, 0xDE]] as [[UInt8]] {
            #expect(throws: SRTPError.malformed) {
                try server.protectRTP(plain, headerExtension: bad, appendingTo: &buffer) { _ in }
            }
        }
        var withExtension = plain
        withExtension[0] |= 0x10
        withExtension.insert(contentsOf: [0xBE, 0xDE, 0, 0], at: 12)
        #expect(throws: SRTPError.malformed) {
            try server.protectRTP(withExtension, headerExtension: block, appendingTo: &buffer) { _ in }
        }
        #expect(buffer == before)
    }

    @Test("RTP with CSRC-free header extension round trips", arguments: SRTPProfile.allCases)
    func rtpWithExtension(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let plain = rtpPacket(sequenceNumber: 7, payload: [1, 2, 3, 4, 5], extensionWords: [0x1012_3456, 0x2200_0000])
        let protected = try server.protectRTP(plain)
        #expect(Array(protected[0..<24]) == Array(plain[0..<24]))   // header + extension in the clear
        #expect(try client.unprotectRTP(protected) == plain)
    }

    @Test("RTCP round trip both ways", arguments: SRTPProfile.allCases)
    func rtcpRoundTrip(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let overhead = SRTPSession.rtcpProtectionOverhead(profile)
        for (sender, receiver) in [(server, client), (client, server)] {
            for round in 1...5 {
                let plain = rtcpReceiverReport(fill: UInt8(round))
                let protected = try sender.protectRTCP(plain)
                #expect(protected.count == plain.count + overhead)
                #expect(Array(protected[0..<8]) == Array(plain[0..<8]))
                #expect(Array(protected[8..<plain.count]) != Array(plain[8...]))
                // E flag set, SRTCP index counts from 1; it precedes the tag in RFC 3711 §3.4 and
                // follows it in RFC 7714 §9.
                let indexAt = srtcpIndexOffset(profile, plaintextLength: plain.count)
                let indexWord = Array(protected[indexAt..<indexAt + 4])
                #expect(indexWord == [0x80, 0, 0, UInt8(round)])
                #expect(try receiver.unprotectRTCP(protected) == plain)
            }
        }
    }

    @Test("several SSRCs share one context (ssrc_any)", arguments: SRTPProfile.allCases)
    func multipleSSRCs(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        for ssrc: UInt32 in [0x1111_1111, 0x2222_2222, 0x3333_3333] {
            for seq in UInt16(0)..<5 {
                let plain = rtpPacket(sequenceNumber: seq, ssrc: ssrc, payload: [UInt8](repeating: 9, count: 50))
                #expect(try client.unprotectRTP(server.protectRTP(plain)) == plain)
            }
        }
    }

    @Test("replayed RTP and RTCP are refused and counted", arguments: SRTPProfile.allCases)
    func replay(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let protected = try server.protectRTP(rtpPacket(sequenceNumber: 1, payload: [1, 2, 3]))
        _ = try client.unprotectRTP(protected)
        #expect(thrownError { () throws(SRTPError) in try client.unprotectRTP(protected) } == .replayed)
        #expect(thrownError { () throws(SRTPError) in try client.unprotectRTP(protected) } == .replayed)
        #expect(client.replayedPackets == 2)

        let protectedRTCP = try server.protectRTCP(rtcpReceiverReport())
        _ = try client.unprotectRTCP(protectedRTCP)
        #expect(thrownError { () throws(SRTPError) in try client.unprotectRTCP(protectedRTCP) } == .replayed)
        #expect(client.replayedPackets == 3)
        #expect(client.authenticationFailures == 0)
    }

    @Test("replay window is 1024 packets", arguments: SRTPProfile.allCases)
    func replayWindow(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        var protected: [UInt16: [UInt8]] = [:]
        for seq: UInt16 in [0, 999, 1000, 2000] {
            protected[seq] = try server.protectRTP(rtpPacket(sequenceNumber: seq, payload: [UInt8(seq & 0xFF)]))
        }
        _ = try client.unprotectRTP(protected[2000]!)
        // 1000 behind the newest: inside a 1024 window (libsrtp's default 128 would refuse it).
        _ = try client.unprotectRTP(protected[1000]!)
        _ = try client.unprotectRTP(protected[999]!)
        // 2000 behind: older than the window (RFC 3711 §3.3.2).
        #expect(thrownError { () throws(SRTPError) in try client.unprotectRTP(protected[0]!) } == .replayed)
        #expect(client.replayedPackets == 1)
    }

    @Test("a flipped bit in payload, header or tag fails authentication", arguments: SRTPProfile.allCases)
    func tamperedRTP(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let plain = rtpPacket(sequenceNumber: 42, payload: [UInt8](repeating: 0x33, count: 40))
        let protected = try server.protectRTP(plain)
        let positions = [1, 5, 12, 30, protected.count - 1, protected.count - SRTPSession.protectionOverhead(profile)]
        for (attempt, position) in positions.enumerated() {
            var tampered = protected
            tampered[position] ^= 0x01
            #expect(thrownError { () throws(SRTPError) in try client.unprotectRTP(tampered) } == .authenticationFailed)
            #expect(client.authenticationFailures == attempt + 1)
        }
        // The forgeries consumed nothing: the genuine packet still verifies.
        #expect(try client.unprotectRTP(protected) == plain)
        #expect(client.replayedPackets == 0)
    }

    @Test("a flipped bit in SRTCP payload, index or tag fails authentication", arguments: SRTPProfile.allCases)
    func tamperedRTCP(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let plain = rtcpReceiverReport()
        let protected = try server.protectRTCP(plain)
        let indexAt = srtcpIndexOffset(profile, plaintextLength: plain.count)
        for position in [4, 9, indexAt + 3, indexAt, protected.count - 1] {
            var tampered = protected
            tampered[position] ^= 0x80
            #expect(thrownError { () throws(SRTPError) in try client.unprotectRTCP(tampered) } == .authenticationFailed)
        }
        #expect(client.authenticationFailures == 5)
        #expect(try client.unprotectRTCP(protected) == plain)
    }

    @Test("wrong keys or wrong roles fail", arguments: SRTPProfile.allCases)
    func wrongKeys(profile: SRTPProfile) throws {
        let server = try SRTPSession(keys: keyingMaterial(profile, start: 1), isClient: false)
        let otherClient = try SRTPSession(keys: keyingMaterial(profile, start: 99), isClient: true)
        let sameRoleAsSender = try SRTPSession(keys: keyingMaterial(profile, start: 1), isClient: false)
        let rtp = try server.protectRTP(rtpPacket(sequenceNumber: 5, payload: [1, 2, 3, 4]))
        let rtcp = try server.protectRTCP(rtcpReceiverReport())
        for receiver in [otherClient, sameRoleAsSender] {
            #expect(thrownError { () throws(SRTPError) in try receiver.unprotectRTP(rtp) } == .authenticationFailed)
            #expect(thrownError { () throws(SRTPError) in try receiver.unprotectRTCP(rtcp) } == .authenticationFailed)
            #expect(receiver.authenticationFailures == 2)
        }
    }

    @Test("GCM and SHA1 sessions do not understand each other")
    func profileMismatch() throws {
        let sender = try SRTPSession(keys: keyingMaterial(.aes128CmHmacSha1_80), isClient: false)
        let receiver = try SRTPSession(keys: keyingMaterial(.aeadAes128Gcm), isClient: true)
        let protected = try sender.protectRTP(rtpPacket(sequenceNumber: 1, payload: [UInt8](repeating: 1, count: 30)))
        #expect(thrownError { () throws(SRTPError) in try receiver.unprotectRTP(protected) } == .authenticationFailed)
    }

    @Test("re-protecting the same sequence number (NACK resend) works", arguments: SRTPProfile.allCases)
    func repeatTransmission(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let first = rtpPacket(sequenceNumber: 10, payload: [UInt8](repeating: 0xAB, count: 100))
        let second = rtpPacket(sequenceNumber: 11, payload: [UInt8](repeating: 0xCD, count: 100))
        let protectedFirst = try server.protectRTP(first)
        let protectedSecond = try server.protectRTP(second)
        let resent = try server.protectRTP(first)
        #expect(resent == protectedFirst)   // same key, same index, same bytes
        #expect(try client.unprotectRTP(protectedSecond) == second)
        #expect(try client.unprotectRTP(resent) == first)   // arrives late, inside the window
        #expect(thrownError { () throws(SRTPError) in try client.unprotectRTP(protectedFirst) } == .replayed)
    }

    @Test("sessions are created and freed repeatedly")
    func createAndFree() throws {
        for round in 0..<200 {
            let profile = SRTPProfile.allCases[round % 2]
            let (client, server) = try sessionPair(profile)
            let plain = rtpPacket(sequenceNumber: UInt16(round), payload: [UInt8(round & 0xFF)])
            #expect(try client.unprotectRTP(server.protectRTP(plain)) == plain)
        }
    }
}

extension SRTPSession {
    /// The daemon's path for one packet: protected into a new buffer, its payload type rewritten.
    func protectingWithPayloadType(_ packet: [UInt8], _ payloadType: UInt8) throws(SRTPError) -> [UInt8] {
        var output: [UInt8] = []
        try protectRTP(packet, appendingTo: &output) { RTPFixedHeader.setPayloadType(payloadType, in: $0) }
        return output
    }
}
