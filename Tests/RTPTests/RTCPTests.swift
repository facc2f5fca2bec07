import RTCBase
import Testing

@testable import RTP

@Suite("RTCP (RFC 3550 §6, RFC 4585, RFC 5104, REMB, transport-cc)")
struct RTCPTests {
    let srWithBlock = hex("""
        81 C8 00 0C  11 22 33 44  AA BB CC DD EE FF 00 11  01 02 03 04  00 00 00 64  00 00 13 88
        55 66 77 88  33 FF FF FE  00 01 00 05  00 00 00 20  12 34 56 78  00 01 00 00
        """)

    @Test func senderReportFieldByField() throws {
        let packets = try RTCPPacket.parseCompound(srWithBlock)
        guard case let .senderReport(sr) = try #require(packets.first) else { Issue.record("not an SR"); return }
        #expect(packets.count == 1)
        #expect(sr.ssrc == 0x1122_3344)
        #expect(sr.ntpTimestamp == 0xAABB_CCDD_EEFF_0011)
        #expect(sr.rtpTimestamp == 0x0102_0304)
        #expect(sr.packetCount == 100)
        #expect(sr.octetCount == 5000)
        let block = try #require(sr.reportBlocks.first)
        #expect(sr.reportBlocks.count == 1)
        #expect(block.ssrc == 0x5566_7788)
        #expect(block.fractionLost == 0x33)
        #expect(block.cumulativeLost == -2)  // 24-bit two's complement FFFFFE
        #expect(block.highestSequence == 0x0001_0005)
        #expect(block.jitter == 0x20)
        #expect(block.lastSR == 0x1234_5678)
        #expect(block.delaySinceLastSR == 0x0001_0000)
        #expect(packets[0].serialized() == srWithBlock)
    }

    @Test func receiverReportSDESAndByeInOneCompound() throws {
        let bytes = hex("""
            81 C9 00 07  00 00 00 01  00 00 00 02 0A 00 00 03 00 00 FF FF 00 00 00 04 00 00 00 00 00 00 00 00
            81 CA 00 03  00 00 00 01  01 04 61 62 63 64 00 00
            81 CB 00 02  00 00 00 01  03 62 79 65
            """)
        let packets = try RTCPPacket.parseCompound(bytes)
        let block = ReportBlock(ssrc: 2, fractionLost: 10, cumulativeLost: 3, highestSequence: 0xFFFF,
                                jitter: 4, lastSR: 0, delaySinceLastSR: 0)
        #expect(packets == [
            .receiverReport(ReceiverReport(ssrc: 1, reportBlocks: [block])),
            .sourceDescription([SDESChunk(ssrc: 1, cname: "abcd")]),
            .goodbye(ssrcs: [1], reason: "bye"),
        ])
        guard case let .sourceDescription(chunks) = packets[1] else { Issue.record("no SDES"); return }
        #expect(chunks[0].cname == "abcd")
        #expect(RTCPPacket.compound(packets) == bytes)
    }

    @Test func sdesPaddingIsAlwaysAtLeastOneNullOctet() throws {
        // CNAME of 2 bytes: 4 + 2 + 2 = 8, so a whole word of nulls follows.
        let packet = RTCPPacket.sourceDescription([SDESChunk(ssrc: 7, cname: "xy"), SDESChunk(ssrc: 8, cname: "z")])
        let bytes = packet.serialized()
        #expect(bytes == hex("82 CA 00 05  00 00 00 07 01 02 78 79 00 00 00 00  00 00 00 08 01 01 7A 00"))
        #expect(try RTCPPacket.parseCompound(bytes) == [packet])
    }

    @Test func genericNACKFromLostList() throws {
        // RFC 4585 §6.2.1: 100 is the PID; 101, 105, 116 are bits 0, 4, 15; 117 starts a new entry.
        let lost: [UInt16] = [100, 101, 105, 116, 117]
        #expect(GenericNACK.entries(forLost: lost) == [
            NACKEntry(packetID: 100, lostBitmask: 0x8011), NACKEntry(packetID: 117, lostBitmask: 0),
        ])
        let nack = RTCPPacket.genericNACK(GenericNACK(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: lost))
        let bytes = hex("81 CD 00 04  00 00 00 01  00 00 00 02  00 64 80 11  00 75 00 00")
        #expect(nack.serialized() == bytes)
        #expect(try RTCPPacket.parseCompound(bytes) == [nack])
    }

    @Test func genericNACKAcrossTheWrapAndWithRepeats() throws {
        let lost: [UInt16] = [65530, 65535, 0, 0, 9, 10, 40]
        let entries = GenericNACK.entries(forLost: lost)
        #expect(entries == [NACKEntry(packetID: 65530, lostBitmask: 1 << 4 | 1 << 5 | 1 << 14 | 1 << 15),
                            NACKEntry(packetID: 40, lostBitmask: 0)])
        #expect(GenericNACK.lostSequenceNumbers(in: entries) == [65530, 65535, 0, 9, 10, 40])
        // Each of 200 random sorted lists: parse(serialize) gives the list back, in as few entries as
        // the greedy cover (entries never overlap, every PID is a lost seq).
        var rng = SeededRandom(seed: 4585)
        for _ in 0..<200 {
            let start = UInt16.random(in: 0...UInt16.max, using: &rng)
            var list: [UInt16] = []
            var seq = start
            for _ in 0..<Int.random(in: 1...60, using: &rng) {
                seq &+= UInt16.random(in: 1...24, using: &rng)
                list.append(seq)
            }
            let packet = RTCPPacket.genericNACK(GenericNACK(senderSSRC: 3, mediaSSRC: 4, lostSequenceNumbers: list))
            #expect(try RTCPPacket.parseCompound(packet.serialized()) == [packet])
            let fci = GenericNACK.entries(forLost: list)
            for (earlier, later) in zip(fci, fci.dropFirst()) { #expect(later.packetID &- earlier.packetID > 16) }
        }
    }

    @Test func pictureLossIndication() throws {
        let bytes = hex("81 CE 00 02  00 00 00 01  CA FE BA BE")
        #expect(try RTCPPacket.parseCompound(bytes) == [.pictureLossIndication(senderSSRC: 1, mediaSSRC: 0xCAFE_BABE)])
        #expect(RTCPPacket.pictureLossIndication(senderSSRC: 1, mediaSSRC: 0xCAFE_BABE).serialized() == bytes)
    }

    @Test func fullIntraRequest() throws {
        // RFC 5104 §4.3.1: media SSRC 0, FCI = SSRC + seq nr + 3 reserved bytes.
        let bytes = hex("84 CE 00 04  00 00 00 01  00 00 00 00  00 00 BE EF  07 00 00 00")
        let fir = FullIntraRequest(senderSSRC: 1, entries: [.init(ssrc: 0xBEEF, sequenceNumber: 7)])
        #expect(try RTCPPacket.parseCompound(bytes) == [.fullIntraRequest(fir)])
        #expect(RTCPPacket.fullIntraRequest(fir).serialized() == bytes)
    }

    @Test func remb() throws {
        // 1 000 000 bit/s = 250000 × 2^2: exponent 2, mantissa 0x3D090 → 0B D0 90.
        let bytes = hex("8F CE 00 05  00 00 00 01  00 00 00 00  52 45 4D 42  01 0B D0 90  00 00 AB CD")
        let remb = REMB(senderSSRC: 1, bitrate: 1_000_000, ssrcs: [0xABCD])
        #expect(try RTCPPacket.parseCompound(bytes) == [.receiverEstimatedMaxBitrate(remb)])
        #expect(RTCPPacket.receiverEstimatedMaxBitrate(remb).serialized() == bytes)
        // Unrepresentable rates round down to 18 significant bits.
        let big = RTCPPacket.receiverEstimatedMaxBitrate(REMB(senderSSRC: 1, bitrate: 123_456_789, ssrcs: []))
        guard case let .receiverEstimatedMaxBitrate(parsed) = try RTCPPacket.parseCompound(big.serialized())[0] else {
            Issue.record("no REMB"); return
        }
        #expect(parsed.bitrate <= 123_456_789 && parsed.bitrate > 123_456_789 - 512)
        // Saturates instead of overflowing: exponent 63.
        let huge = hex("8F CE 00 04  00 00 00 01  00 00 00 00  52 45 4D 42  00 FF FF FF")
        guard case let .receiverEstimatedMaxBitrate(saturated) = try RTCPPacket.parseCompound(huge)[0] else {
            Issue.record("no REMB"); return
        }
        #expect(saturated.bitrate == .max)
    }

    @Test func applicationLayerFeedbackThatIsNotREMBStaysOther() throws {
        let bytes = hex("8F CE 00 03  00 00 00 01  00 00 00 00  41 42 43 44")
        #expect(try RTCPPacket.parseCompound(bytes) == [.other(packetType: 206, format: 15, body: Array(bytes[4...]))])
    }

    @Test func transportCCWithTwoBitVectorAndRun() throws {
        // base 16, count 10, reference 258 × 64 ms, fb count 5.
        // Chunk D1 80: 2-bit vector [small, none, small, large, none, none, none]; 00 03: run of 3 "none".
        // Deltas: 04, 02, FFFC (−4 → −1 ms).
        let bytes = hex("8F CD 00 06  00 00 00 01  00 00 00 02  00 10 00 0A  00 01 02 05  D1 80 00 03  04 02 FF FC")
        let packets = try RTCPPacket.parseCompound(bytes)
        guard case let .transportCC(feedback) = try #require(packets.first) else { Issue.record("no TWCC"); return }
        #expect(feedback.senderSSRC == 1)
        #expect(feedback.mediaSSRC == 2)
        #expect(feedback.baseSequenceNumber == 16)
        #expect(feedback.referenceTime == 258)
        #expect(feedback.feedbackPacketCount == 5)
        let expected: [Int16?] = [4, nil, 2, -4, nil, nil, nil, nil, nil, nil]
        #expect(feedback.packets.map(\.receiveDelta) == expected)
        #expect(feedback.packets.map(\.sequenceNumber) == Array(16..<26))
        #expect(feedback.packets.map(\.received) == expected.map { $0 != nil })
        let arrivals = feedback.arrivalTimesMicroseconds
        #expect(arrivals.map(\.sequenceNumber) == [16, 18, 19])
        #expect(arrivals.map(\.microseconds) == [16_513_000, 16_513_500, 16_512_500])
        #expect(packets[0].serialized() == bytes)
    }

    @Test func transportCCOneBitVectorAndNegativeReference() throws {
        // Chunk A0 01: S=0, symbols 1 at index 0 and 13. Reference FFFFFF = −1.
        let bytes = hex("8F CD 00 05  00 00 00 01  00 00 00 02  FF FE 00 0E  FF FF FF 00  A0 01 01 02")
        guard case let .transportCC(feedback) = try RTCPPacket.parseCompound(bytes)[0] else {
            Issue.record("no TWCC"); return
        }
        #expect(feedback.referenceTime == -1)
        #expect(feedback.packets.count == 14)
        #expect(feedback.packets[0] == .init(sequenceNumber: 0xFFFE, receiveDelta: 1))
        #expect(feedback.packets[13] == .init(sequenceNumber: 11, receiveDelta: 2))
        #expect(feedback.packets[1...12].allSatisfy { !$0.received })
        #expect(packetsEqualAfterRoundTrip(.transportCC(feedback)))
    }

    @Test func transportCCRandomRoundTrips() throws {
        var rng = SeededRandom(seed: 0x7743)
        for _ in 0..<200 {
            let count = Int.random(in: 1...(Bool.random(using: &rng) ? 40 : 2500), using: &rng)
            let lossy = Double.random(in: 0...1, using: &rng)
            var statuses: [TransportCCFeedback.PacketStatus] = []
            let base = UInt16.random(in: 0...UInt16.max, using: &rng)
            for index in 0..<count {
                var delta: Int16?
                if Double.random(in: 0...1, using: &rng) >= lossy {
                    delta = Bool.random(using: &rng) ? Int16.random(in: 0...255, using: &rng)
                        : Int16.random(in: Int16.min...Int16.max, using: &rng)
                }
                statuses.append(.init(sequenceNumber: base &+ UInt16(truncatingIfNeeded: index), receiveDelta: delta))
            }
            let feedback = TransportCCFeedback(
                senderSSRC: 9, mediaSSRC: 10, baseSequenceNumber: base,
                referenceTime: Int32.random(in: -0x80_0000...0x7F_FFFF, using: &rng),
                feedbackPacketCount: UInt8.random(in: 0...255, using: &rng), packets: statuses)
            let bytes = RTCPPacket.transportCC(feedback).serialized()
            #expect(bytes.count % 4 == 0)
            #expect(try RTCPPacket.parseCompound(bytes) == [.transportCC(feedback)])
        }
    }

    @Test func transportCCRejectsReservedSymbolAndMissingDeltas() {
        // 2-bit vector with symbol 11.
        #expect(throws: RTPError.malformed("TWCC reserved status symbol 11 (§3.1.1)")) {
            try RTCPPacket.parseCompound(hex("8F CD 00 05  00 00 00 01  00 00 00 02  00 00 00 01  00 00 00 00  F0 00 00 00"))
        }
        // Run-length chunk of 8 "received, small delta" but only 2 delta bytes.
        #expect(throws: RTPError.self) {
            try RTCPPacket.parseCompound(hex("8F CD 00 05  00 00 00 01  00 00 00 02  00 00 00 08  00 00 00 00  20 08 01 02"))
        }
    }

    @Test func unknownTypesAndPaddingAreKept() throws {
        // APP (204) and an XR (207) with P bit and 4 padding octets.
        let bytes = hex("""
            80 CC 00 02  00 00 00 01  6E 61 6D 65
            A0 CF 00 03  00 00 00 05  00 00 00 00  00 00 00 04
            """)
        let packets = try RTCPPacket.parseCompound(bytes)
        #expect(packets == [
            .other(packetType: 204, format: 0, body: hex("00 00 00 01 6E 61 6D 65")),
            .other(packetType: 207, format: 0, body: hex("00 00 00 05 00 00 00 00")),
        ])
    }

    @Test func reducedSizeSingleFeedbackPacket() throws {
        // RFC 5506 §3: a lone PLI, no leading report.
        let packets = try RTCPPacket.parseCompound(hex("81 CE 00 02 00 00 00 01 00 00 00 02"))
        #expect(packets == [.pictureLossIndication(senderSSRC: 1, mediaSSRC: 2)])
    }

    @Test func rejectsMalformedCompounds() {
        #expect(throws: RTPError.truncated(context: "RTCP header", needed: 4, available: 0)) {
            try RTCPPacket.parseCompound([])
        }
        #expect(throws: RTPError.unsupportedVersion(1)) { try RTCPPacket.parseCompound(hex("41 C9 00 01 00 00 00 01")) }
        #expect(throws: RTPError.invalidLength(declared: 12, available: 8)) {
            try RTCPPacket.parseCompound(hex("81 C9 00 02 00 00 00 01"))
        }
        #expect(throws: RTPError.invalidPadding) { try RTCPPacket.parseCompound(hex("A0 C9 00 01 00 00 00 00")) }
        #expect(throws: RTPError.self) {  // RC=1 without a block
            try RTCPPacket.parseCompound(hex("81 C9 00 01 00 00 00 01"))
        }
        #expect(throws: RTPError.truncated(context: "RTCP header", needed: 4, available: 2)) {
            try RTCPPacket.parseCompound(hex("80 C9 00 01 00 00 00 01 80 C9"))
        }
        #expect(throws: RTPError.self) {  // NACK without FCI
            try RTCPPacket.parseCompound(hex("81 CD 00 02 00 00 00 01 00 00 00 02"))
        }
    }

    @Test func roundTripTimeFromReportBlock() {
        // RFC 3550 §6.4.1 Figure 2: A = 0xB710_8000, LSR = 0xB705_2000, DLSR = 0x0005_4000 → 0x0006_2000 (6.125 s).
        let block = ReportBlock(ssrc: 1, fractionLost: 0, cumulativeLost: 0, highestSequence: 0, jitter: 0,
                                lastSR: 0xB705_2000, delaySinceLastSR: 0x0005_4000)
        let arrival = NTPTime(value: UInt64(0xB710_8000) << 16)
        #expect(block.roundTripTime(arrival: arrival) == .milliseconds(6125))
        var none = block
        none.lastSR = 0
        #expect(none.roundTripTime(arrival: arrival) == nil)
    }

    @Test func everyTypeRoundTripsInOneCompound() throws {
        let packets: [RTCPPacket] = [
            .senderReport(SenderReport(ssrc: 1, ntpTimestamp: 2, rtpTimestamp: 3, packetCount: 4, octetCount: 5,
                                       reportBlocks: [ReportBlock(ssrc: 6, fractionLost: 7, cumulativeLost: -0x80_0000,
                                                                  highestSequence: 9, jitter: 10, lastSR: 11, delaySinceLastSR: 12)])),
            .receiverReport(ReceiverReport(ssrc: 1)),
            .sourceDescription([SDESChunk(ssrc: 1, items: [SDESItem(type: 1, value: Array("cname".utf8)),
                                                           SDESItem(type: 6, value: Array("rtcam".utf8))])]),
            .goodbye(ssrcs: [1, 2], reason: nil),
            .genericNACK(GenericNACK(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: [5])),
            .pictureLossIndication(senderSSRC: 1, mediaSSRC: 2),
            .fullIntraRequest(FullIntraRequest(senderSSRC: 1, entries: [.init(ssrc: 2, sequenceNumber: 255), .init(ssrc: 3, sequenceNumber: 0)])),
            .receiverEstimatedMaxBitrate(REMB(senderSSRC: 1, bitrate: 0x3_FFFF << 10, ssrcs: [2, 3])),
            .transportCC(TransportCCFeedback(senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 3, referenceTime: 4,
                                             feedbackPacketCount: 5, packets: [.init(sequenceNumber: 3, receiveDelta: 1)])),
            .other(packetType: 204, format: 3, body: [1, 2, 3, 4]),
        ]
        let bytes = RTCPPacket.compound(packets)
        #expect(try RTCPPacket.parseCompound(bytes) == packets)
    }

    /// Thousands of seeded mutations of every packet type: never a trap; what parses re-serializes
    /// into something that parses again.
    @Test func fuzzCompoundParser() throws {
        var rng = SeededRandom(seed: 0x5254_4350)
        let seeds: [[UInt8]] = [
            srWithBlock,
            hex("81 C9 00 07 00 00 00 01 00 00 00 02 0A 00 00 03 00 00 FF FF 00 00 00 04 00 00 00 00 00 00 00 00 81 CA 00 03 00 00 00 01 01 04 61 62 63 64 00 00 81 CB 00 02 00 00 00 01 03 62 79 65"),
            hex("81 CD 00 04 00 00 00 01 00 00 00 02 00 64 80 11 00 75 00 00"),
            hex("81 CE 00 02 00 00 00 01 CA FE BA BE 84 CE 00 04 00 00 00 01 00 00 00 00 00 00 BE EF 07 00 00 00"),
            hex("8F CE 00 05 00 00 00 01 00 00 00 00 52 45 4D 42 01 0B D0 90 00 00 AB CD"),
            hex("8F CD 00 06 00 00 00 01 00 00 00 02 00 10 00 0A 00 01 02 05 D1 80 00 03 04 02 FF FC"),
            hex("8F CD 00 05 00 00 00 01 00 00 00 02 FF FE 00 0E FF FF FF 00 A0 01 01 02"),
            hex("A0 CF 00 03 00 00 00 05 00 00 00 00 00 00 00 04"),
        ]
        var parsed = 0
        for iteration in 0..<8000 {
            let input = mutate(seeds[iteration % seeds.count], using: &rng)
            guard let packets = try? RTCPPacket.parseCompound(input) else { continue }
            parsed += 1
            #expect((try? RTCPPacket.parseCompound(RTCPPacket.compound(packets))) != nil)
        }
        #expect(parsed > 500)
    }
}

private func packetsEqualAfterRoundTrip(_ packet: RTCPPacket) -> Bool {
    (try? RTCPPacket.parseCompound(packet.serialized())) == [packet]
}
