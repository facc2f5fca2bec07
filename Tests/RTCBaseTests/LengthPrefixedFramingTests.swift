import Testing
@testable import RTCBase

/// RFC 4571 framing, as ICE-TCP (RFC 6544) uses it: whole frames out of reads cut anywhere, and the
/// bounds a hostile peer meets.
@Suite struct LengthPrefixedFramingTests {
    @Test func framesCarryTheirLengthBigEndian() {
        #expect(LengthPrefixedFraming.frame([7, 8, 9]) == [0, 3, 7, 8, 9])
        #expect(LengthPrefixedFraming.frame([UInt8]()) == [0, 0])
        let large = [UInt8](repeating: 0xAB, count: 300)
        #expect(LengthPrefixedFraming.frame(large)?.prefix(2) == [1, 44])
        #expect(LengthPrefixedFraming.frame([UInt8](repeating: 0, count: 65_535))?.count == 65_537)
        #expect(LengthPrefixedFraming.frame([UInt8](repeating: 0, count: 65_536)) == nil)
        var stream: [UInt8] = [1]
        #expect(!LengthPrefixedFraming.append([UInt8](repeating: 0, count: 70_000), to: &stream))
        #expect(stream == [1])
    }

    /// A stream of frames of many sizes, read in pieces of seeded random sizes (one byte up to
    /// several frames): the same frames come out, in order, every time.
    @Test func randomCutsGiveBackTheSameFrames() throws {
        var random = SeededRandom(seed: 4571)
        for round in 0..<50 {
            let frames: [[UInt8]] = (0..<40).map { index in
                let length = [1, 2, 20, 1200, 1500, 9000][Int(random.next() % 6)]
                return (0..<length).map { UInt8(truncatingIfNeeded: $0 &+ index &+ round) }
            }
            let stream = frames.flatMap { LengthPrefixedFraming.frame($0)! }
            var deframer = LengthPrefixedDeframer()
            var out: [[UInt8]] = []
            var offset = 0
            var largestBuffered = 0
            while offset < stream.count {
                let piece = 1 + Int(random.next() % 4000)
                let end = min(stream.count, offset + piece)
                out += try deframer.append(stream[offset..<end])
                largestBuffered = max(largestBuffered, deframer.bufferedByteCount)
                offset = end
            }
            #expect(out == frames, "round \(round)")
            #expect(deframer.bufferedByteCount == 0)
            #expect(largestBuffered <= 9002)
        }
    }

    @Test func oneByteAtATimeAndEmptyFrames() throws {
        let stream: [UInt8] = [0, 2, 5, 6, 0, 0, 0, 1, 9]
        var deframer = LengthPrefixedDeframer()
        var out: [[UInt8]] = []
        for byte in stream { out += try deframer.append([byte]) }
        #expect(out == [[5, 6], [9]])
        #expect(deframer.emptyFrames == 1)
        var whole = LengthPrefixedDeframer()
        #expect(try whole.append(stream) == [[5, 6], [9]])
        #expect(try whole.append([]) == [])
    }

    /// A length above the bound is refused as soon as the two length bytes are in, before any of the
    /// frame is buffered; the deframer then stays broken (the stream's boundaries are lost).
    @Test func anOversizedFrameBreaksTheStream() throws {
        var deframer = LengthPrefixedDeframer(maximumFrameLength: 1500)
        #expect(throws: LengthPrefixedFramingError.frameTooLong(length: 1501, maximum: 1500)) {
            _ = try deframer.append([0, 1, 0xAA, 5, 0xDD])   // a good frame, then 0x05DD = 1501
        }
        #expect(deframer.isBroken && deframer.bufferedByteCount == 0)
        #expect(throws: LengthPrefixedFramingError.broken) { _ = try deframer.append([0, 1, 1]) }
        // Exactly at the bound is fine, held until complete.
        var atBound = LengthPrefixedDeframer(maximumFrameLength: 1500)
        #expect(try atBound.append([5, 0xDC] + [UInt8](repeating: 1, count: 1000)) == [])
        #expect(atBound.bufferedByteCount == 1002)
        #expect(try atBound.append([UInt8](repeating: 1, count: 500)).map(\.count) == [1500])
        #expect(LengthPrefixedFramingError.frameTooLong(length: 70000, maximum: 1500).description.contains("70000"))
    }

    @Test func tooManyFramesInOneRead() throws {
        var deframer = LengthPrefixedDeframer(maximumFramesPerRead: 3)
        let four = (0..<4).flatMap { _ in [0, 1, 7] as [UInt8] }
        #expect(throws: LengthPrefixedFramingError.tooManyFrames(maximum: 3)) { _ = try deframer.append(four) }
        var enough = LengthPrefixedDeframer(maximumFramesPerRead: 3)
        #expect(try enough.append(four.prefix(9)).count == 3)
        #expect(try enough.append(four.suffix(3)).count == 1)
    }
}
