public import RTCBase
import Synchronization

/// A few picture-sized buffers kept for reuse by the one stage that fills them (the test pattern, a
/// YUYV conversion, a scaling step), so that a frame of several hundred kB is not allocated and
/// freed 30 times a second.
///
/// Why it matters (issue 20): glibc serves a block that large with its own mmap, which costs a page
/// fault per 4 KiB touched on every frame, unless its dynamic threshold has risen past it, and then
/// the frames churn through a malloc arena and fragment it. With the frames reused the daemon can
/// fix the threshold (`ProcessMemory.fixMmapThreshold`) and have neither.
///
/// `take` hands out a `PooledFrameBuffer` that nobody else holds; the caller fills it through
/// `mutableBytes` before it wraps it in a frame. Its memory comes back here only when the last
/// reference to it is gone (a frame still encoded, or kept for a snapshot, keeps its buffer), so a
/// buffer in use is never handed out again. At most `capacity` buffers are kept; one returned
/// beyond that, or of another size than the pool now makes, is freed. Safe from any thread (a
/// frame may be dropped by another one than the producer's).
public final class FrameBufferPool: Sendable {
    /// The most buffers kept while nobody uses them.
    public let capacity: Int
    private let state: Mutex<State>

    private struct State: @unchecked Sendable {   // the pointers are owned by the pool alone
        var byteCount = 0
        var kept: [UnsafeMutableRawPointer] = []
        var counts = Counts()
    }

    /// What the pool did since it was made (tests, debugging).
    public struct Counts: Equatable, Sendable {
        /// Buffers allocated from the heap.
        public var allocated = 0
        /// Buffers handed out again instead.
        public var reused = 0
        /// Buffers freed (returned beyond the capacity or of an old size, or dropped by `releaseKept`).
        public var freed = 0
    }

    /// The alignment of every buffer (x264 and the conversions read whole cache lines).
    public static let alignment = 64

    public init(capacity: Int = 2) {
        precondition(capacity >= 0, "a pool keeps zero or more buffers")
        self.capacity = capacity
        state = Mutex(State())
    }

    deinit {
        state.withLock { state in
            for pointer in state.kept { pointer.deallocate() }
            state.kept.removeAll()
        }
    }

    /// A buffer of `byteCount` bytes that only the caller holds; its contents are whatever the last
    /// user left (every caller here overwrites the whole picture). Buffers kept at another size are
    /// freed first: the pool follows the size it is asked for (CPU adaptation changes it).
    public func take(byteCount: Int) -> PooledFrameBuffer {
        precondition(byteCount > 0, "a frame buffer holds at least one byte")
        let reused: UnsafeMutableRawPointer? = state.withLock { state in
            if state.byteCount != byteCount {
                for pointer in state.kept { pointer.deallocate() }
                state.counts.freed += state.kept.count
                state.kept.removeAll()
                state.byteCount = byteCount
            }
            guard let pointer = state.kept.popLast() else {
                state.counts.allocated += 1
                return nil
            }
            state.counts.reused += 1
            return pointer
        }
        let pointer = reused ?? UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: Self.alignment)
        return PooledFrameBuffer(pointer: pointer, byteCount: byteCount, pool: self)
    }

    /// Frees the buffers kept (nobody watches any more: idle RSS); later `take`s allocate again.
    public func releaseKept() {
        state.withLock { state in
            for pointer in state.kept { pointer.deallocate() }
            state.counts.freed += state.kept.count
            state.kept.removeAll()
        }
    }

    /// How many buffers wait to be reused.
    public var keptCount: Int { state.withLock { $0.kept.count } }

    public var counts: Counts { state.withLock { $0.counts } }

    fileprivate func giveBack(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        let keep = state.withLock { state in
            guard byteCount == state.byteCount, state.kept.count < capacity else {
                state.counts.freed += 1
                return false
            }
            state.kept.append(pointer)
            return true
        }
        if !keep { pointer.deallocate() }
    }
}

/// One buffer of a `FrameBufferPool`: valid and unchanged for as long as this object lives (what
/// `VideoFrameBuffer` promises), back to the pool when it goes. Fill it through `mutableBytes` only
/// between `take` and handing it to a frame.
public final class PooledFrameBuffer: VideoFrameBuffer, @unchecked Sendable {
    public let mutableBytes: UnsafeMutableRawBufferPointer
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(mutableBytes) }
    private let pool: FrameBufferPool

    fileprivate init(pointer: UnsafeMutableRawPointer, byteCount: Int, pool: FrameBufferPool) {
        mutableBytes = UnsafeMutableRawBufferPointer(start: pointer, count: byteCount)
        self.pool = pool
    }

    deinit { pool.giveBack(mutableBytes.baseAddress!, byteCount: mutableBytes.count) }
}

extension RawVideoFrame {
    /// A packed I420 picture drawn by `fill` straight into a buffer of `pool` (≥ width*height*3/2
    /// bytes; `fill` must write all of them).
    public static func i420(width: Int, height: Int, from pool: FrameBufferPool, captureTime: MonotonicTime,
                            sequenceNumber: UInt64, fill: (UnsafeMutableRawBufferPointer) throws(MediaSourceError) -> Void)
        throws(MediaSourceError) -> RawVideoFrame {
        guard width > 0, height > 0 else { throw .invalidDimensions(width: width, height: height) }
        let buffer = pool.take(byteCount: PixelFormat.i420.packedByteCount(width: width, height: height))
        try fill(buffer.mutableBytes)
        return try RawVideoFrame(width: width, height: height, pixelFormat: .i420, storage: .buffer(buffer),
                                 planes: PixelFormat.i420.packedPlaneLayouts(width: width, height: height),
                                 captureTime: captureTime, sequenceNumber: sequenceNumber)
    }
}
