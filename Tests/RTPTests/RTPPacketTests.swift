import RTCBase
import Testing

@testable import RTP

@Suite("RTP packet (RFC 3550 §5.1, RFC 8285)")
struct RTPPacketTests {
    @Test func parsesHeaderWithOneByteExtension() throws {
        // V=2 X=1, M=1 PT=96, seq 0x1234, ts 0x5678, SSRC DEADBEEF, 0xBEDE len 1: id 2 L=2 (3 bytes).
        let bytes = hex("90 E0 12 34 00 00 56 78 DE AD BE EF BE DE 00 01 22 AA BB CC 01 02 03")
        let packet = try RTPPacket(parsing: bytes)
        #expect(packet.marker)
        #expect(packet.payloadType == 96)
        #expect(packet.sequenceNumber == 0x1234)
        #expect(packet.timestamp == 0x5678)
        #expect(packet.ssrc == 0xDEAD_BEEF)
        #expect(packet.csrcs.isEmpty)
        #expect(packet.extensions == [RTPHeaderExtension(id: 2, data: [0xAA, 0xBB, 0xCC])])
        #expect(packet.extensionData(id: 2) == [0xAA, 0xBB, 0xCC])
        #expect(packet.payload == [1, 2, 3])
        #expect(packet.paddingLength == 0)
        #expect(packet.serialized() == bytes)
        #expect(packet.serializedSize == bytes.count)
    }

    @Test func parsesCSRCsAndPadding() throws {
        // P=1, CC=2; payload AB CD, then 3 padding octets (the last counts them).
        let bytes = hex("A2 08 00 01 00 00 00 02 00 00 00 03 11 11 11 11 22 22 22 22 AB CD 00 00 03")
        let packet = try RTPPacket(parsing: bytes)
        #expect(!packet.marker)
        #expect(packet.payloadType == 8)
        #expect(packet.csrcs == [0x1111_1111, 0x2222_2222])
        #expect(packet.payload == [0xAB, 0xCD])
        #expect(packet.paddingLength == 3)
        #expect(packet.serialized() == bytes)
        #expect(packet.serializedSize == bytes.count)
    }

    @Test func parsesTwoByteExtensionsAndPaddingBytes() throws {
        // Profile 0x1000, 2 words: id 5 len 0, id 7 len 3, one padding byte.
        let bytes = hex("90 60 00 01 00 00 00 01 00 00 00 01 10 00 00 02 05 00 07 03 AA BB CC 00 FF")
        let packet = try RTPPacket(parsing: bytes)
        #expect(packet.extensions == [RTPHeaderExtension(id: 5, data: []), RTPHeaderExtension(id: 7, data: [0xAA, 0xBB, 0xCC])])
        #expect(packet.payload == [0xFF])
        // An empty element does not fit the one-byte form: written back two-byte.
        #expect(packet.serialized() == bytes)
    }

    @Test func oneByteExtensionPaddingAndReservedID15() throws {
        // 0xBEDE, 2 words: padding byte, id 1 L=0 (1 byte), id 15 stops parsing.
        let bytes = hex("90 60 00 01 00 00 00 01 00 00 00 01 BE DE 00 02 00 10 42 F0 33 00 00 00 77")
        let packet = try RTPPacket(parsing: bytes)
        #expect(packet.extensions == [RTPHeaderExtension(id: 1, data: [0x42])])
        #expect(packet.payload == [0x77])
    }

    @Test func writesOneByteFormWhenEveryElementFits() throws {
        let packet = RTPPacket(
            payloadType: 111, sequenceNumber: 7, timestamp: 960, ssrc: 42,
            extensions: [RTPHeaderExtension(id: 1, data: [0x01]), RTPHeaderExtension(id: 3, data: [0, 0, 9])],
            payload: [0xF8, 0xFF, 0xFE])
        let bytes = packet.serialized()
        #expect(Array(bytes[12..<16]) == [0xBE, 0xDE, 0x00, 0x02])
        #expect(Array(bytes[16..<22]) == [0x10, 0x01, 0x32, 0, 0, 9])
        #expect(Array(bytes[22..<24]) == [0, 0])  // padding to 32 bits
        #expect(try RTPPacket(parsing: bytes) == packet)
        #expect(packet.serializedSize == bytes.count)
    }

    @Test func roundTripsWithAllFeatures() throws {
        let packet = RTPPacket(
            payloadType: 102, marker: true, sequenceNumber: 65535, timestamp: 0xFFFF_FFFF, ssrc: 1,
            csrcs: [9, 10, 11], extensions: [RTPHeaderExtension(id: 20, data: Array(repeating: 7, count: 20))],
            payload: Array(0..<200), paddingLength: 9)
        let bytes = packet.serialized()
        #expect(bytes.count == packet.serializedSize)
        #expect(try RTPPacket(parsing: bytes) == packet)
    }

    @Test func rejectsMalformedHeaders() {
        #expect(throws: RTPError.truncated(context: "RTP header", needed: 12, available: 3)) {
            try RTPPacket(parsing: [0x80, 0, 0])
        }
        #expect(throws: RTPError.unsupportedVersion(1)) {
            try RTPPacket(parsing: hex("40 60 00 01 00 00 00 01 00 00 00 01"))
        }
        #expect(throws: RTPError.invalidPadding) {  // padding count 0
            try RTPPacket(parsing: hex("A0 60 00 01 00 00 00 01 00 00 00 01 55 00"))
        }
        #expect(throws: RTPError.invalidPadding) {  // padding longer than the payload
            try RTPPacket(parsing: hex("A0 60 00 01 00 00 00 01 00 00 00 01 55 09"))
        }
        #expect(throws: RTPError.self) {  // CC=3 but no CSRCs
            try RTPPacket(parsing: hex("83 60 00 01 00 00 00 01 00 00 00 01 00 00 00 01"))
        }
        #expect(throws: RTPError.self) {  // extension length beyond the end
            try RTPPacket(parsing: hex("90 60 00 01 00 00 00 01 00 00 00 01 BE DE 00 04 10 01"))
        }
        #expect(throws: RTPError.self) {  // one-byte element longer than the block
            try RTPPacket(parsing: hex("90 60 00 01 00 00 00 01 00 00 00 01 BE DE 00 01 1F 01 02 03"))
        }
    }

    @Test func demultiplexesRTCPFromRTP() {
        #expect(RTCPPacket.looksLikeRTCP(hex("81 C9 00 01 00 00 00 01")))
        #expect(RTCPPacket.looksLikeRTCP(hex("8F CD 00 01")))
        #expect(!RTCPPacket.looksLikeRTCP(hex("80 60 00 01 00 00 00 01 00 00 00 01")))
        #expect(!RTCPPacket.looksLikeRTCP(hex("80 E0 00 01 00 00 00 01 00 00 00 01")))  // marker + PT 96
    }

    /// Thousands of seeded mutations: never a trap; whatever parses re-serializes to the same packet.
    @Test func fuzzParser() throws {
        var rng = SeededRandom(seed: 0x5254_5021)
        let seeds: [[UInt8]] = [
            hex("90 E0 12 34 00 00 56 78 DE AD BE EF BE DE 00 01 22 AA BB CC 01 02 03"),
            hex("A2 08 00 01 00 00 00 02 00 00 00 03 11 11 11 11 22 22 22 22 AB CD 00 00 03"),
            hex("90 60 00 01 00 00 00 01 00 00 00 01 10 00 00 02 05 00 07 03 AA BB CC 00 FF"),
            hex("B1 60 00 01 00 00 00 01 00 00 00 01 01 02 03 04 BE DE 00 02 00 10 42 F0 33 00 00 00 77 02"),
        ]
        var parsed = 0
        for iteration in 0..<6000 {
            let input = mutate(seeds[iteration % seeds.count], using: &rng)
            guard let packet = try? RTPPacket(parsing: input) else { continue }
            parsed += 1
            let again = try? RTPPacket(parsing: packet.serialized())
            #expect(again == packet, "\(input) → \(packet.serialized())")
            #expect(packet.serialized().count == packet.serializedSize)
        }
        #expect(parsed > 100)
    }
}
