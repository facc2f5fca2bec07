import Testing
@testable import RTCBase

/// The one Annex-B scanner (H.264 Annex B), against hand-made streams and a byte-by-byte reference.
@Suite struct AnnexBByteStreamTests {
    @Test("3- and 4-byte start codes, trailing zeros, leading junk, empty units")
    func layouts() {
        let stream: [UInt8] = [9, 9, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0, 0, 1, 0x65, 4, 0, 0]
        #expect(AnnexBByteStream.units(in: stream) == [
            .init(startCodeOffset: 2, payload: 6 ..< 9),     // SPS after junk, 4-byte start code
            .init(startCodeOffset: 9, payload: 13 ..< 15),   // PPS, trailing zeros dropped
            .init(startCodeOffset: 20, payload: 23 ..< 25),  // an empty unit between is skipped
        ])
        #expect(AnnexBByteStream.units(in: []).isEmpty)
        #expect(AnnexBByteStream.units(in: [0, 0, 1]).isEmpty)
        #expect(AnnexBByteStream.units(in: [1, 2, 3]).isEmpty)
        #expect(AnnexBByteStream.units(in: [0, 0, 1, 0x41]) == [.init(startCodeOffset: 0, payload: 3 ..< 4)])
    }

    /// The obvious scan, one byte at a time.
    static func reference(_ stream: [UInt8]) -> [AnnexBByteStream.Unit] {
        var starts: [(Int, Int)] = []
        var index = 0
        while index + 2 < stream.count {
            if stream[index] == 0, stream[index + 1] == 0, stream[index + 2] == 1 {
                starts.append((index > 0 && stream[index - 1] == 0 ? index - 1 : index, index + 3))
                index += 3
            } else {
                index += 1
            }
        }
        var units: [AnnexBByteStream.Unit] = []
        for (position, start) in starts.enumerated() {
            var end = position + 1 < starts.count ? starts[position + 1].0 : stream.count
            while end > start.1, stream[end - 1] == 0 { end -= 1 }
            if end > start.1 { units.append(.init(startCodeOffset: start.0, payload: start.1 ..< end)) }
        }
        return units
    }

    @Test("random streams rich in 0 and 1 bytes: the same units as the reference scan")
    func matchesReference() {
        var random = SeededRandom(seed: 0xA11B)
        for _ in 0..<2_000 {
            let stream = (0..<Int(random.next() % 64)).map { _ in [0, 0, 0, 1, 2, 0x65][Int(random.next() % 6)] as UInt8 }
            #expect(AnnexBByteStream.units(in: stream) == Self.reference(stream), "\(stream)")
        }
    }
}
