import RTCBase
import Testing

@testable import RTP

@Suite("Unwrapping, history, RTX, NTP")
struct StreamToolsTests {
    @Test func sequenceNumbersUnwrapAcross65535() {
        var unwrapper = SequenceNumberUnwrapper()
        #expect(unwrapper.unwrap(65533) == 65533)
        #expect(unwrapper.unwrap(65535) == 65535)
        #expect(unwrapper.unwrap(0) == 65536)
        #expect(unwrapper.unwrap(65534) == 65534)  // reordered from before the wrap
        #expect(unwrapper.unwrap(2) == 65538)
        var value: Int64 = 0
        for step in 0..<200_000 { value = unwrapper.unwrap(UInt16(truncatingIfNeeded: 3 + step)) }
        #expect(value == 65536 + 3 + 199_999)
        var backwards = SequenceNumberUnwrapper()
        #expect(backwards.unwrap(1) == 1)
        #expect(backwards.unwrap(65535) == -1)
    }

    @Test func timestampsUnwrapAcross32Bits() {
        var unwrapper = RTPTimestampUnwrapper()
        #expect(unwrapper.unwrap(0xFFFF_FF00) == 0xFFFF_FF00)
        #expect(unwrapper.unwrap(0x0000_0100) == 0x1_0000_0100)
        #expect(unwrapper.unwrap(0xFFFF_FFF0) == 0xFFFF_FFF0)
        #expect(unwrapper.unwrap(0x7FFF_0000) == 0x1_7FFF_0000)
    }

    @Test func historyEvictsAndVerifiesSequenceNumbers() {
        var history = RTPPacketHistory(capacity: 1000)
        #expect(history.capacity == 1024)
        #expect(history.packet(sequenceNumber: 0) == nil)  // never sent
        for offset in 0..<1500 {
            let seq = UInt16(truncatingIfNeeded: 65000 + offset)
            history.store([UInt8(truncatingIfNeeded: offset), UInt8(truncatingIfNeeded: offset >> 8)], sequenceNumber: seq)
        }
        // The last 1024 are there (across the wrap), the earlier ones evicted.
        #expect(history.packet(sequenceNumber: UInt16(truncatingIfNeeded: 65000 + 1499)) == [0xDB, 0x05])
        #expect(history.packet(sequenceNumber: UInt16(truncatingIfNeeded: 65000 + 476)) == [0xDC, 0x01])
        #expect(history.packet(sequenceNumber: UInt16(truncatingIfNeeded: 65000 + 475)) == nil)
        #expect(history.packet(sequenceNumber: 65000) == nil)
        #expect(history.packet(sequenceNumber: 1234) == nil)  // same slot as a stored seq, different seq
        history.removeAll()
        #expect(history.packet(sequenceNumber: UInt16(truncatingIfNeeded: 65000 + 1499)) == nil)
    }

    @Test func rtxWrapAndUnwrapRoundTrip() throws {
        let original = RTPPacket(
            payloadType: 102, marker: true, sequenceNumber: 0xABCD, timestamp: 90000, ssrc: 0x1111,
            csrcs: [5], extensions: [RTPHeaderExtension(id: 3, data: [1, 2, 3])], payload: [9, 8, 7, 6], paddingLength: 4)
        let wrapped = try #require(RTXPacket.wrap(original: original.serialized(), rtxPayloadType: 103,
                                                  rtxSSRC: 0x2222, rtxSequenceNumber: 7))
        let rtx = try RTPPacket(parsing: wrapped)
        // RFC 4588 §4: RTX PT, SSRC, own seq; same timestamp, marker, CSRCs, extensions; OSN first.
        #expect(rtx.payloadType == 103)
        #expect(rtx.ssrc == 0x2222)
        #expect(rtx.sequenceNumber == 7)
        #expect(rtx.timestamp == 90000 && rtx.marker)
        #expect(rtx.csrcs == [5] && rtx.extensions == original.extensions)
        #expect(rtx.payload == [0xAB, 0xCD, 9, 8, 7, 6])
        #expect(rtx.paddingLength == 0)
        var expected = original
        expected.paddingLength = 0
        #expect(RTXPacket.unwrap(rtx, originalPayloadType: 102, originalSSRC: 0x1111) == expected)
        #expect(RTXPacket.wrap(original: [0x80, 0], rtxPayloadType: 1, rtxSSRC: 1, rtxSequenceNumber: 1) == nil)
        var short = rtx
        short.payload = [1]
        #expect(RTXPacket.unwrap(short, originalPayloadType: 102, originalSSRC: 0x1111) == nil)
    }

    @Test func fuzzRTXWrap() {
        var rng = SeededRandom(seed: 4588)
        let valid = RTPPacket(payloadType: 96, sequenceNumber: 1, timestamp: 2, ssrc: 3, csrcs: [4],
                              extensions: [RTPHeaderExtension(id: 1, data: [5])], payload: [6, 7, 8], paddingLength: 2).serialized()
        for _ in 0..<3000 {
            let input = mutate(valid, using: &rng)
            guard let wrapped = RTXPacket.wrap(original: input, rtxPayloadType: 97, rtxSSRC: 9, rtxSequenceNumber: 10) else {
                #expect((try? RTPPacket(parsing: input)) == nil)
                continue
            }
            let original = try? RTPPacket(parsing: input)
            let rtx = try? RTPPacket(parsing: wrapped)
            var expected = original
            expected?.paddingLength = 0
            #expect(rtx.flatMap { RTXPacket.unwrap($0, originalPayloadType: original?.payloadType ?? 0, originalSSRC: original?.ssrc ?? 0) } == expected)
        }
    }

    @Test func ntpTimeFromMonotonicClock() {
        // 2024-01-01T00:00:00Z = Unix 1704067200 → NTP seconds 3913056000; monotonic 1.5 s later.
        let offset = (1_704_067_200 + NTPTime.unixEpochOffsetSeconds) * 1_000_000_000 - 10_000_000_000
        let ntp = NTPTime(monotonic: MonotonicTime(nanoseconds: 11_500_000_000), ntpNanosecondsAtMonotonicZero: offset)
        #expect(ntp.seconds == 3_913_056_001)
        #expect(ntp.fraction == 0x8000_0000)
        #expect(ntp.middle32 == UInt32(truncatingIfNeeded: 3_913_056_001) << 16 | 0x8000)
        #expect(NTPTime(nanosecondsSince1900: 250_000_000).value == 0x4000_0000)
        // And back: exact for the 1.5 s above, within a nanosecond for any other instant.
        #expect(ntp.nanosecondsSince1900 == offset + 11_500_000_000)
        let odd: UInt64 = 3_913_056_001 * 1_000_000_000 + 123_456_789
        let roundTrip = NTPTime(nanosecondsSince1900: odd).nanosecondsSince1900
        #expect(odd - roundTrip <= 1)
    }
}
