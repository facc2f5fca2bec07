import RTCBase
import Testing
@testable import SRTP

@Suite("SRTP hostile input")
struct SRTPFuzzTests {
    @Test("short input is refused before libsrtp", arguments: SRTPProfile.allCases)
    func shortInput(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        for length in 0..<12 {
            let bytes = [UInt8](repeating: 0x80, count: length)
            #expect(thrownError { () throws(SRTPError) in try server.protectRTP(bytes) } == .malformed)
            #expect(thrownError { () throws(SRTPError) in try client.unprotectRTP(bytes) } == .malformed)
        }
        for length in 0..<8 {
            let bytes = [UInt8](repeating: 0x81, count: length)
            #expect(thrownError { () throws(SRTPError) in try server.protectRTCP(bytes) } == .malformed)
            #expect(thrownError { () throws(SRTPError) in try client.unprotectRTCP(bytes) } == .malformed)
        }
        // Headers announcing more CSRCs / extension words than the packet holds.
        var csrcs = rtpPacket(sequenceNumber: 1, payload: [1, 2, 3])
        csrcs[0] |= 0x0F
        var extensionTooLong = rtpPacket(sequenceNumber: 1, payload: [], extensionWords: [1])
        extensionTooLong[15] = 9
        for bad in [csrcs, extensionTooLong] {
            #expect(thrownError { () throws(SRTPError) in try server.protectRTP(bad) } == .malformed)
            #expect(thrownError { () throws(SRTPError) in try client.unprotectRTP(bad) } == .malformed)
        }
        #expect(client.authenticationFailures == 0 && client.replayedPackets == 0)
    }

    @Test("every truncation of a protected packet fails", arguments: SRTPProfile.allCases)
    func truncation(profile: SRTPProfile) throws {
        let (client, server) = try sessionPair(profile)
        let rtp = try server.protectRTP(rtpPacket(sequenceNumber: 3, payload: [UInt8](repeating: 7, count: 60)))
        let rtcp = try server.protectRTCP(rtcpReceiverReport())
        for length in 0..<rtp.count {
            let truncated = Array(rtp.prefix(length))
            #expect(thrownError { () throws(SRTPError) in try client.unprotectRTP(truncated) } != nil)
        }
        for length in 0..<rtcp.count {
            let truncated = Array(rtcp.prefix(length))
            #expect(thrownError { () throws(SRTPError) in try client.unprotectRTCP(truncated) } != nil)
        }
        #expect(try client.unprotectRTP(rtp).count == rtp.count - SRTPSession.protectionOverhead(profile))
        #expect(try client.unprotectRTCP(rtcp) == rtcpReceiverReport())
    }

    @Test("seeded random mutations never crash and never verify", arguments: SRTPProfile.allCases)
    func mutations(profile: SRTPProfile) throws {
        var random = SeededRandom(seed: 0x5EED_0000 + UInt64(profile.rawValue))
        let (client, server) = try sessionPair(profile)
        var validRTP: [[UInt8]] = []
        var validRTCP: [[UInt8]] = []
        for seq in UInt16(0)..<8 {
            let payload = random.bytes(Int(random.next() % 200))
            validRTP.append(try server.protectRTP(rtpPacket(sequenceNumber: seq, payload: payload)))
            validRTCP.append(try server.protectRTCP(rtcpReceiverReport(fill: UInt8(seq))))
        }
        var rejected = 0
        for round in 0..<3000 {
            let rtcpRound = round % 2 == 1
            let original = (rtcpRound ? validRTCP : validRTP)[Int(random.next() % 8)]
            var mutated = original
            switch random.next() % 4 {
            case 0:  // flip 1...4 bits
                for _ in 0...(random.next() % 4) {
                    let bit = Int(random.next() % UInt64(mutated.count * 8))
                    mutated[bit / 8] ^= 1 << UInt8(bit % 8)
                }
            case 1:  // overwrite a run of bytes
                let start = Int(random.next() % UInt64(mutated.count))
                let length = min(mutated.count - start, 1 + Int(random.next() % 16))
                for index in start..<start + length { mutated[index] = UInt8(truncatingIfNeeded: random.next()) }
            case 2:  // truncate or extend
                if random.next() % 2 == 0 {
                    mutated.removeLast(1 + Int(random.next() % UInt64(mutated.count)))
                } else {
                    mutated += random.bytes(1 + Int(random.next() % 32))
                }
            default:  // pure garbage
                mutated = random.bytes(Int(random.next() % 300))
            }
            guard mutated != original else { continue }
            let error = rtcpRound
                ? thrownError { () throws(SRTPError) in try client.unprotectRTCP(mutated) }
                : thrownError { () throws(SRTPError) in try client.unprotectRTP(mutated) }
            #expect(error != nil)
            if error != nil { rejected += 1 }
            // The sender side must not crash on garbage either (it may accept a well-formed header).
            _ = thrownError { () throws(SRTPError) in try server.protectRTP(mutated) }
            _ = thrownError { () throws(SRTPError) in try server.protectRTCP(mutated) }
        }
        #expect(rejected > 2900)
        // Nothing genuine was consumed by the forgeries.
        for packet in validRTP { _ = try client.unprotectRTP(packet) }
        for packet in validRTCP { _ = try client.unprotectRTCP(packet) }
    }
}
