#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import CameraServer

/// The daemon's fixed mmap threshold (issue 20): a large block freed no longer raises it, so a
/// block above 128 KiB allocated afterwards still gets its own mapping (given back when freed)
/// instead of a place in a malloc arena. With glibc's dynamic threshold the same steps give an
/// arena chunk (checked with a C program doing them with and without the mallopt).
@Suite struct MmapThresholdTests {
    /// glibc's chunk header, the word before the block: its size with flag bits, 2 = IS_MMAPPED.
    /// Read per block, so other suites allocating beside this one do not disturb it.
    static func isMappedOnItsOwn(_ block: UnsafeMutableRawPointer) -> Bool {
        block.advanced(by: -MemoryLayout<UInt>.size).load(as: UInt.self) & 2 != 0
    }

    @Test func aLargeBlockFreedDoesNotMoveTheNextOnesIntoTheArena() throws {
        #expect(ProcessMemory.fixMmapThreshold())
        // 4 MiB mapped and freed: glibc's dynamic threshold would now be 4 MiB.
        let large = try #require(malloc(4 << 20))
        #expect(Self.isMappedOnItsOwn(large))
        memset(large, 1, 4 << 20)
        free(large)
        // A 640x480 picture's size (x264's planes are larger): its own mapping all the same.
        let picture = try #require(malloc(640 * 480 * 3 / 2))
        #expect(Self.isMappedOnItsOwn(picture), "a 460 kB block came from an arena after a 4 MiB one was freed")
        free(picture)
        // Under the threshold: an arena's, as before.
        let small = try #require(malloc(64 * 1024))
        #expect(!Self.isMappedOnItsOwn(small))
        free(small)
    }
}
