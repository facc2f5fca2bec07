import MediaSources
import RTCBase
import Testing

/// The buffers the per-frame pictures are drawn into (issue 20): reused once let go of, never while
/// a frame still holds one, and never more kept than the pool's capacity.
@Suite struct FrameBufferPoolTests {
    static let pictureBytes = 640 * 480 * 3 / 2

    @Test func aBufferLetGoOfIsHandedOutAgainInsteadOfANewOne() {
        let pool = FrameBufferPool(capacity: 2)
        var addresses: Set<UnsafeMutableRawPointer> = []
        for _ in 0 ..< 100 {
            let buffer = pool.take(byteCount: Self.pictureBytes)
            #expect(buffer.bytes.count == Self.pictureBytes)
            #expect(Int(bitPattern: buffer.bytes.baseAddress!) % FrameBufferPool.alignment == 0)
            addresses.insert(buffer.mutableBytes.baseAddress!)
        }
        #expect(addresses.count == 1, "one buffer in use at a time needs one buffer")
        #expect(Self.figures(pool) == [1, 99, 0])
        #expect(pool.keptCount == 1)
    }

    @Test func aBufferStillHeldIsNeverHandedOutAgain() throws {
        let pool = FrameBufferPool(capacity: 2)
        let source = try TestPatternSource(width: 320, height: 240)
        // Frame 1 is kept (a snapshot, a frame x264 still encodes) while frames 2 and 3 are made.
        let held = source.frame(at: .init(nanoseconds: 1_000_000_000), index: 1, pool: pool)
        let heldBytes = held.packedBytes()
        var seen: [UnsafeRawPointer] = [held.storage.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) }]
        for index in 2 ... 3 {
            let next = source.frame(at: .init(nanoseconds: UInt64(index) * 700_000_000), index: UInt64(index), pool: pool)
            let address = next.storage.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) }
            #expect(address != seen[0], "frame \(index) was drawn over the held frame 1")
            seen.append(address)
        }
        #expect(held.packedBytes() == heldBytes, "the held frame's picture changed")
        #expect(TestPatternDecoder.readTimestamp(from: held) == 1000)
        #expect(seen[1] == seen[2], "frame 2's buffer, let go of, was not reused for frame 3")
        #expect(pool.counts.allocated == 2)
    }

    @Test func atMostCapacityBuffersAreKept() {
        let pool = FrameBufferPool(capacity: 3)
        var held = (0 ..< 10).map { _ in pool.take(byteCount: 4096) }
        #expect(Set(held.map { $0.mutableBytes.baseAddress! }).count == 10)
        held.removeAll()
        #expect(pool.keptCount == 3)
        #expect(Self.figures(pool) == [10, 0, 7])
        pool.releaseKept()
        #expect(pool.keptCount == 0)
        #expect(pool.counts.freed == 10)
    }

    @Test func anotherSizeFreesTheKeptOnesAndAnOldSizeReturnedIsNotKept() {
        let pool = FrameBufferPool(capacity: 2)
        let old = pool.take(byteCount: Self.pictureBytes)
        do { _ = pool.take(byteCount: Self.pictureBytes) }   // one kept at the full size
        #expect(pool.keptCount == 1)
        let smaller = pool.take(byteCount: 320 * 240 * 3 / 2)   // the CPU adaptation's smaller size
        #expect(pool.keptCount == 0)
        #expect(smaller.bytes.count == 320 * 240 * 3 / 2)
        _ = consume old   // a frame of the old size let go of after the change: freed, not kept
        #expect(pool.keptCount == 0)
        #expect(pool.counts.freed == 2)
    }

    @Test func aBufferOutlivesItsPoolsOwner() throws {
        var pool: FrameBufferPool? = FrameBufferPool()
        let frame = try TestPatternSource(width: 320, height: 240)
            .frame(at: .init(nanoseconds: 2_000_000_000), index: 7, pool: pool!)
        pool = nil   // the producer is gone; the frame (and with it the pool's memory) lives on
        #expect(TestPatternDecoder.readTimestamp(from: frame) == 2000)
    }

    @Test func pooledPicturesAreTheSameAsArrayOnes() throws {
        let pool = FrameBufferPool()
        let source = try TestPatternSource(width: 640, height: 480)
        let time = MonotonicTime(nanoseconds: 3_456_000_000)
        let pooled = source.frame(at: time, index: 5, pool: pool)
        let array = source.frame(at: time, index: 5)
        #expect(pooled.packedBytes() == array.packedBytes())
        #expect(pooled.sequenceNumber == 5 && pooled.captureTime == time)
        let scaledPooled = try PictureScaling.i420(scaling: pooled, toWidth: 480, height: 360, pool: pool)
        let scaledArray = try PictureScaling.i420(scaling: array, toWidth: 480, height: 360)
        #expect(scaledPooled.packedBytes() == scaledArray.packedBytes())
        // YUYV made from the pattern, converted both ways.
        let yuyv = try Self.yuyv(from: array)
        let convertedPooled = try PixelConversion.i420(fromYUYV: yuyv, pool: FrameBufferPool())
        #expect(convertedPooled.packedBytes() == (try PixelConversion.i420(fromYUYV: yuyv)).packedBytes())
    }

    /// Allocated, reused, freed.
    static func figures(_ pool: FrameBufferPool) -> [Int] {
        let counts = pool.counts
        return [counts.allocated, counts.reused, counts.freed]
    }

    static func yuyv(from frame: RawVideoFrame) throws -> RawVideoFrame {
        let bytes = frame.packedBytes()
        let (width, height) = (frame.width, frame.height)
        var packed = [UInt8](repeating: 0, count: width * height * 2)
        for y in 0 ..< height {
            for x in 0 ..< width {
                packed[(y * width + x) * 2] = bytes[y * width + x]
                let chroma = width * height + (y / 2) * (width / 2) + x / 2
                packed[(y * width + x) * 2 + 1] = x % 2 == 0 ? bytes[chroma] : bytes[chroma + width * height / 4]
            }
        }
        return try RawVideoFrame(width: width, height: height, pixelFormat: .yuyv, bytes: packed,
                                 captureTime: frame.captureTime, sequenceNumber: frame.sequenceNumber)
    }
}
