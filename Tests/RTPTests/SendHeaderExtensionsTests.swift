import RTCBase
import Testing
@testable import RTP

@Suite("Header extensions written per viewer")
struct SendHeaderExtensionsTests {
    private func parsed(_ block: [UInt8]) throws -> RTPPacket {
        var packet = RTPFixedHeader.serialized(payloadType: 96, marker: false, sequenceNumber: 1, timestamp: 2, ssrc: 3,
                                               payload: [0xAA])
        packet[0] |= 0x10
        packet.insert(contentsOf: block, at: RTPFixedHeader.size)
        return try RTPPacket(parsing: packet)
    }

    @Test("each negotiated element in the one-byte form, padded to 32 bits, parsed back by RFC 8285's rules")
    func allElements() throws {
        let extensions = SendHeaderExtensions(transportSequenceNumberID: 4, absoluteSendTimeID: 2, playoutDelayID: 14)
        var block: [UInt8] = []
        extensions.write(into: &block, transportSequenceNumber: 65535, sendTimeNanoseconds: 64_250_000_000, playoutDelay: true)
        #expect(block.count == 16 && block.count <= SendHeaderExtensions.maximumBlockSize)
        let packet = try parsed(block)
        #expect(packet.extensionData(id: 4) == [0xFF, 0xFF])
        // abs-send-time wraps every 64 s: 64.25 s → 0.25 s = 2^16.
        #expect(packet.extensionData(id: 2) == [0x01, 0x00, 0x00])
        #expect(packet.extensionData(id: 14) == [0, 0, 0])
        #expect(packet.payload == [0xAA])
    }

    @Test("only what applies: no playout-delay on audio, no sequence number without one, nothing at all is no block")
    func onlyWhatApplies() throws {
        var block: [UInt8] = [1, 2, 3]
        SendHeaderExtensions().write(into: &block, transportSequenceNumber: 1, sendTimeNanoseconds: 1, playoutDelay: true)
        #expect(block.isEmpty)
        let delayOnly = SendHeaderExtensions(playoutDelayID: 5)
        delayOnly.write(into: &block, transportSequenceNumber: 1, sendTimeNanoseconds: 1, playoutDelay: false)
        #expect(block.isEmpty)
        let twcc = SendHeaderExtensions(transportSequenceNumberID: 3, playoutDelayID: 5)
        twcc.write(into: &block, transportSequenceNumber: 0x0102, sendTimeNanoseconds: nil, playoutDelay: false)
        #expect(block == [0xBE, 0xDE, 0, 1, 0x31, 0x01, 0x02, 0])
        #expect(try parsed(block).extensionData(id: 3) == [1, 2])
    }

    @Test("abs-capture-time: 8 bytes of NTP time (L = 7), the block padded to 24 at most, and only on packets that have room")
    func absoluteCaptureTime() throws {
        let extensions = SendHeaderExtensions(transportSequenceNumberID: 4, absoluteSendTimeID: 2, playoutDelayID: 14,
                                              absoluteCaptureTimeID: 6)
        var block: [UInt8] = []
        let ntp: UInt64 = 0xE9AB_CDEF_8000_0001
        extensions.write(into: &block, transportSequenceNumber: 7, sendTimeNanoseconds: 0, playoutDelay: true, absoluteCaptureTime: ntp)
        #expect(block.count == SendHeaderExtensions.maximumBlockSize)
        let packet = try parsed(block)
        #expect(packet.extensionData(id: 6) == [0xE9, 0xAB, 0xCD, 0xEF, 0x80, 0x00, 0x00, 0x01])
        #expect(packet.extensionData(id: 4) == [0, 7] && packet.extensionData(id: 14) == [0, 0, 0])
        // Not due on this packet: the block stays at its usual size.
        extensions.write(into: &block, transportSequenceNumber: 7, sendTimeNanoseconds: 0, playoutDelay: true)
        #expect(block.count == SendHeaderExtensions.maximumBlockSizeWithoutCaptureTime)
        // 1162 bytes (a full fragment: 12 + 1150) + 24 + 16 > 1200; a shorter one fits.
        #expect(!SendHeaderExtensions.fitsAbsoluteCaptureTime(packetBytes: 12 + 1150))
        #expect(SendHeaderExtensions.fitsAbsoluteCaptureTime(packetBytes: 1160))
    }

    @Test("ids outside the one-byte form's 1...14 are not written")
    func invalidIDs() {
        let extensions = SendHeaderExtensions(transportSequenceNumberID: 15, absoluteSendTimeID: 0, playoutDelayID: 200)
        #expect(extensions.isEmpty)
    }

    @Test("abs-send-time is the send time in 6.18 fixed point modulo 64 s, even after days of uptime")
    func absoluteSendTime() throws {
        let extensions = SendHeaderExtensions(absoluteSendTimeID: 1)
        var block: [UInt8] = []
        for (nanoseconds, expected) in [(UInt64(0), UInt32(0)), (1_000_000_000, 1 << 18), (63_999_999_999, 0xFF_FFFF),
                                        (UInt64(10 * 86_400) * 1_000_000_000 + 500_000_000, 1 << 17)] {
            extensions.write(into: &block, transportSequenceNumber: nil, sendTimeNanoseconds: nanoseconds, playoutDelay: false)
            let data = try #require(try parsed(block).extensionData(id: 1))
            #expect(UInt32(data[0]) << 16 | UInt32(data[1]) << 8 | UInt32(data[2]) == expected)
        }
    }
}
