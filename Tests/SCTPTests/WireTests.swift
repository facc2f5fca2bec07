import RTCBase
import SCTP
import Testing

@Suite("SCTP wire format")
struct WireTests {
    /// RFC 3720 §B.4 (the iSCSI CRC32c test vectors, the CRC SCTP uses).
    @Test func crc32cVectors() {
        #expect(CRC32c.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32c.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32c.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32c.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        #expect(CRC32c.checksum(Array("123456789".utf8)) == 0xE306_9283)  // the catalogued check value
        // Every length around the eight-byte step gives what the bytewise definition gives.
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            #expect(CRC32c.checksum(bytes) == bitwiseCRC32c(bytes))
        }
    }

    func bitwiseCRC32c(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    /// A COOKIE ACK from port 5000 to 5000 with tag 0x01020304, written out by hand: the checksum
    /// sits least significant byte first (RFC 9260 appendix A), as the iSCSI vectors show.
    @Test func handWrittenPacket() throws {
        var bytes: [UInt8] = [0x13, 0x88, 0x13, 0x88, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0x0B, 0x00, 0x00, 0x04]
        let crc = CRC32c.checksum(bytes)
        bytes[8] = UInt8(crc & 0xFF); bytes[9] = UInt8(crc >> 8 & 0xFF); bytes[10] = UInt8(crc >> 16 & 0xFF); bytes[11] = UInt8(crc >> 24)
        let packet = try SCTPPacket(parsing: bytes)
        #expect(packet == SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0x0102_0304, chunks: [.cookieAck]))
        #expect(packet.serialized() == bytes)
        var corrupted = bytes
        corrupted[5] ^= 1
        #expect(throws: SCTPError.badChecksum) { try SCTPPacket(parsing: corrupted) }
    }

    /// A DATA chunk laid out as RFC 9260 §3.3.1 draws it.
    @Test func dataChunkLayout() throws {
        let chunk = SCTPChunk.data(DataChunk(tsn: 0xA0B0_C0D0, stream: 3, ssn: 7, ppid: 51, unordered: true,
                                             beginning: true, ending: false, payload: [0x68, 0x69, 0x21][...]))
        var writer = ByteWriter()
        chunk.serialize(into: &writer)
        #expect(writer.bytes == [0x00, 0x06, 0x00, 0x13, 0xA0, 0xB0, 0xC0, 0xD0, 0x00, 0x03, 0x00, 0x07,
                                 0x00, 0x00, 0x00, 0x33, 0x68, 0x69, 0x21, 0x00])
    }

    @Test func everyChunkRoundTrips() throws {
        let chunks: [SCTPChunk] = [
            .data(DataChunk(tsn: 1, stream: 2, ssn: 3, ppid: 53, payload: [1, 2, 3, 4, 5][...])),
            .initiation(InitChunk(initiateTag: 9, advertisedReceiverWindow: 1 << 20, outboundStreams: 10, inboundStreams: 20,
                                  initialTSN: 77, parameters: [SCTPParameter(type: SCTPParameter.supportedExtensions, value: [0x82, 0xC0]),
                                                               SCTPParameter(type: SCTPParameter.forwardTSNSupported, value: [])])),
            .initiationAck(InitChunk(initiateTag: 10, advertisedReceiverWindow: 5, outboundStreams: 1, inboundStreams: 1,
                                     initialTSN: 0xFFFF_FFFF, parameters: [SCTPParameter(type: SCTPParameter.stateCookie, value: [1, 2, 3])])),
            .sack(SackChunk(cumulativeTSNAck: 100, advertisedReceiverWindow: 4096,
                            gapAckBlocks: [GapAckBlock(start: 2, end: 3), GapAckBlock(start: 6, end: 6)], duplicateTSNs: [99])),
            .heartbeat(info: [1, 2, 3, 4, 5, 6, 7]), .heartbeatAck(info: [9]),
            .abort(reflected: true, causes: [SCTPErrorCause(code: 12, information: Array("bye".utf8))]),
            .shutdown(cumulativeTSNAck: 5), .shutdownAck, .error(causes: [SCTPErrorCause(code: 6, information: [1, 2, 3, 4])]),
            .cookieEcho(cookie: [5, 6, 7]), .cookieAck, .shutdownComplete(reflected: false),
            .forwardTSN(ForwardTSNChunk(newCumulativeTSN: 12, skipped: [.init(stream: 1, ssn: 2), .init(stream: 3, ssn: 4)])),
            .reconfig([.outgoingResetRequest(requestSequence: 1, responseSequence: 2, senderLastTSN: 3, streams: [1, 2, 3])]),
            .reconfig([.response(responseSequence: 7, result: 1), .incomingResetRequest(requestSequence: 8, streams: [4])]),
            .unknown(type: 0x81, flags: 3, value: [1, 2]),
        ]
        for chunk in chunks {
            let packet = SCTPPacket(sourcePort: 5000, destinationPort: 5001, verificationTag: 42, chunks: [chunk])
            let bytes = packet.serialized()
            #expect(bytes.count == packet.serializedSize)
            #expect(bytes.count % 4 == 0)
            #expect(try SCTPPacket(parsing: bytes) == packet, "\(chunk)")
        }
        // Bundled.
        let bundle = SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 3, chunks: chunks)
        #expect(try SCTPPacket(parsing: bundle.serialized()) == bundle)
    }

    /// RFC 9260 §3.2: the chunk length leaves out the last parameter's padding.
    @Test func initLengthLeavesOutFinalPadding() {
        let chunk = SCTPChunk.initiation(InitChunk(initiateTag: 1, advertisedReceiverWindow: 1, outboundStreams: 1, inboundStreams: 1,
                                                   initialTSN: 1, parameters: [SCTPParameter(type: 7, value: [1, 2, 3, 4, 5])]))
        #expect(chunk.length == 20 + 4 + 5)
        #expect(chunk.paddedSize == 32)
    }

    @Test func truncatedAndBadLengthsThrow() {
        #expect(throws: SCTPError.self) { try SCTPPacket(parsing: [1, 2, 3], verifyChecksum: false) }
        // Chunk length 2 (< 4).
        #expect(throws: SCTPError.self) {
            try SCTPPacket(parsing: [0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 2], verifyChecksum: false)
        }
        // Chunk length past the end.
        #expect(throws: SCTPError.self) {
            try SCTPPacket(parsing: [0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 40], verifyChecksum: false)
        }
        // SACK announcing more gap blocks than it holds.
        #expect(throws: SCTPError.self) {
            try SCTPPacket(parsing: [0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 9, 0, 0],
                           verifyChecksum: false)
        }
    }
}

/// Packets written by another implementation (aiortc 1.16's serialize_packet, run once here; the
/// generator is in the comment of each): the same fields give the same bytes, checksum included.
@Suite("SCTP wire vectors from aiortc")
struct CrossImplementationVectors {
    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    @Test func vectors() throws {
        let cases: [(String, SCTPPacket)] = [
            // InitChunk(initiate_tag=0x01020304, rwnd=131072, streams 65535/65535, initial_tsn=0xFFFFFFF0,
            // params [(0xC000, b""), (0x8008, [0x82, 0xC0])]), vtag 0
            ("1388138800000000c52278000100001e0102030400020000fffffffffffffff0c00000048008000682c00000",
             SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0, chunks: [
                .initiation(InitChunk(initiateTag: 0x0102_0304, advertisedReceiverWindow: 131_072, outboundStreams: 65_535,
                                      inboundStreams: 65_535, initialTSN: 0xFFFF_FFF0,
                                      parameters: [SCTPParameter(type: 0xC000, value: []), SCTPParameter(type: 0x8008, value: [0x82, 0xC0])])),
             ])),
            // DataChunk(flags=B|E, tsn=0xFFFFFFF0, stream 1, ssn 2, ppid 51, b"hello")
            ("13881388cafebabed8e99f8000030015fffffff0000100020000003368656c6c6f000000",
             SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0xCAFE_BABE, chunks: [
                .data(DataChunk(tsn: 0xFFFF_FFF0, stream: 1, ssn: 2, ppid: 51, payload: Array("hello".utf8)[...])),
             ])),
            // SackChunk(cumulative 100, rwnd 65536, gaps [(2,3),(5,5)], duplicates [99])
            ("13881388cafebabe78eafbac0300001c000000640001000000020001000200030005000500000063",
             SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0xCAFE_BABE, chunks: [
                .sack(SackChunk(cumulativeTSNAck: 100, advertisedReceiverWindow: 65_536,
                                gapAckBlocks: [GapAckBlock(start: 2, end: 3), GapAckBlock(start: 5, end: 5)], duplicateTSNs: [99])),
             ])),
            // ForwardTsnChunk(cumulative 200, streams [(1, 7)])
            ("13881388cafebabeb8aec73dc000000c000000c800010007",
             SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0xCAFE_BABE, chunks: [
                .forwardTSN(ForwardTSNChunk(newCumulativeTSN: 200, skipped: [.init(stream: 1, ssn: 7)])),
             ])),
            // ReconfigChunk([StreamResetOutgoingParam(request 10, response 20, last_tsn 30, streams [1, 3, 5])])
            ("13881388cafebabed818bf9d8200001a000d00160000000a000000140000001e0001000300050000",
             SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0xCAFE_BABE, chunks: [
                .reconfig([.outgoingResetRequest(requestSequence: 10, responseSequence: 20, senderLastTSN: 30, streams: [1, 3, 5])]),
             ])),
        ]
        for (hex, packet) in cases {
            let wire = Self.bytes(hex)
            #expect(packet.serialized() == wire, "\(hex)")
            #expect(try SCTPPacket(parsing: wire) == packet)
        }
    }
}
