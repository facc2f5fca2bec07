import MediaSources
import RTCBase
import Testing

/// The exec source's splitter: a program's stdout, in whatever pieces the pipe gives, back into the
/// access units the encoder made.
@Suite struct AccessUnitSplitterTests {
    /// Feeds `stream` in pieces of the sizes `pieceSize` returns; then the quiet flush.
    static func split(_ stream: [UInt8], pieceSize: (Int) -> Int, quietAtEnd: Bool = true,
                      splitter: inout AccessUnitSplitter) -> [[UInt8]] {
        var units: [[UInt8]] = []
        var offset = 0
        var piece = 0
        while offset < stream.count {
            let count = min(max(1, pieceSize(piece)), stream.count - offset)
            units += stream[offset ..< offset + count].withUnsafeBytes { splitter.append($0) }
            offset += count
            piece += 1
        }
        if quietAtEnd, let last = splitter.streamWentQuiet() { units.append(last) }
        return units
    }

    static func split(_ stream: [UInt8], pieceSize: (Int) -> Int) -> [[UInt8]] {
        var splitter = AccessUnitSplitter()
        return split(stream, pieceSize: pieceSize, splitter: &splitter)
    }

    @Test("x264's 40 pictures come back as they were, in one piece, byte by byte, and in random pieces")
    func encoderOutputRoundTrips() throws {
        let encoded = try EncodedTestStream.make(count: 40, forceKeyframeAt: [13])
        let expected = encoded.frames.map(\.accessUnit)
        #expect(Self.split(encoded.stream, pieceSize: { _ in Int.max }) == expected)
        #expect(Self.split(encoded.stream, pieceSize: { _ in 1 }) == expected)
        var random = SeededRandom(seed: 0x5117)
        for _ in 0 ..< 20 {
            let sizes = (0 ..< 4000).map { _ in 1 + Int(random.next() % 700) }
            #expect(Self.split(encoded.stream, pieceSize: { sizes[$0 % sizes.count] }) == expected)
        }
    }

    @Test("pictures of several slices stay one access unit (first_mb_in_slice > 0 continues the picture)")
    func multiSlicePictures() throws {
        let encoded = try EncodedTestStream.make(count: 12, width: 640, height: 480, bitrateKbps: 2000, maxSliceBytes: 600)
        let sliceCounts = encoded.frames.map { AnnexB.nalUnits(in: $0.accessUnit).filter { $0.type == 1 || $0.type == 5 }.count }
        #expect(sliceCounts.allSatisfy { $0 > 1 }, "the encoder made several slices per picture: \(sliceCounts)")
        #expect(Self.split(encoded.stream, pieceSize: { 100 + $0 % 37 }) == encoded.frames.map(\.accessUnit))
    }

    @Test("a picture is handed out as soon as the next one starts, or when the stream goes quiet")
    func whenAPictureIsComplete() throws {
        let encoded = try EncodedTestStream.make(count: 3)
        var splitter = AccessUnitSplitter()
        let first = encoded.frames[0].accessUnit, second = encoded.frames[1].accessUnit
        #expect(first.withUnsafeBytes { splitter.append($0) }.isEmpty, "not known complete yet")
        // The next picture's start code and header alone do not decide: the slice's first byte does.
        #expect(second.prefix(5).withUnsafeBytes { splitter.append($0) }.isEmpty)
        #expect(second.dropFirst(5).withUnsafeBytes { splitter.append($0) } == [first])
        #expect(splitter.streamWentQuiet() == second)
        #expect(splitter.streamWentQuiet() == nil, "nothing pending")
    }

    @Test("an access unit delimiter, SEI or parameter sets after a picture begin the next access unit")
    func nonVCLUnitsBeginTheNext() {
        let slice: [UInt8] = [0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21]           // IDR, first_mb 0
        let secondSlice: [UInt8] = [0, 0, 1, 0x65, 0x40, 0x12]             // same picture, first_mb > 0
        let delimiter: [UInt8] = [0, 0, 0, 1, 0x09, 0xF0]
        let sei: [UInt8] = [0, 0, 1, 0x06, 0x05, 0x01, 0x80]
        let nextSlice: [UInt8] = [0, 0, 1, 0x41, 0x9A, 0x02]                 // non-IDR, first_mb 0
        let stream = delimiter + slice + secondSlice + delimiter + sei + nextSlice + sei + nextSlice + nextSlice
        let units = Self.split(stream, pieceSize: { _ in 3 })
        #expect(units == [delimiter + slice + secondSlice, delimiter + sei + nextSlice, sei + nextSlice, nextSlice])
    }

    @Test("garbage before the first start code is dropped and counted; garbage without start codes stays bounded")
    func garbage() throws {
        let encoded = try EncodedTestStream.make(count: 4)
        var splitter = AccessUnitSplitter(maximumUnitBytes: 64 << 10)
        let junk: [UInt8] = Array("rpicam-vid: some text on stdout\n".utf8)
        let units = Self.split(junk + encoded.stream, pieceSize: { _ in 500 }, splitter: &splitter)
        #expect(units == encoded.frames.map(\.accessUnit))
        #expect(splitter.bytesDiscarded == junk.count)

        var random = SeededRandom(seed: 0xBAD)
        var noise = random.bytes(1 << 20)
        for index in noise.indices where noise[index] < 2 { noise[index] = 7 }   // no start code at all
        var bounded = AccessUnitSplitter(maximumUnitBytes: 64 << 10)
        let none = Self.split(noise, pieceSize: { _ in 4096 }, splitter: &bounded)
        #expect(none.isEmpty)
        #expect(bounded.oversizedUnitsDropped > 0 && bounded.bytesDiscarded >= (1 << 20) - (64 << 10))
        // Random bytes with start codes in them never trap, and what comes out starts with one.
        var splitterForRandom = AccessUnitSplitter(maximumUnitBytes: 64 << 10)
        for _ in 0 ..< 200 {
            var chunk = random.bytes(1 + Int(random.next() % 3000))
            if chunk.count > 8 { chunk.replaceSubrange(0 ..< 4, with: [0, 0, 1, UInt8(truncatingIfNeeded: random.next())]) }
            for unit in chunk.withUnsafeBytes({ splitterForRandom.append($0) }) {
                #expect(unit.starts(with: [0, 0, 1]) || unit.starts(with: [0, 0, 0, 1]))
            }
        }
    }

    @Test("after reset (the program restarted) nothing of the old stream is left")
    func resetForgets() throws {
        let encoded = try EncodedTestStream.make(count: 3)
        var splitter = AccessUnitSplitter()
        _ = encoded.frames[0].accessUnit.prefix(300).withUnsafeBytes { splitter.append($0) }
        splitter.reset()
        let units = Self.split(encoded.stream, pieceSize: { _ in 64 }, splitter: &splitter)
        #expect(units == encoded.frames.map(\.accessUnit))
    }
}
