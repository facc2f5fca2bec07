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
        // 4 MiB (mapped, unless an arena had that much free) and freed: glibc's dynamic threshold
        // would now be 4 MiB.
        let large = try #require(malloc(4 << 20))
        memset(large, 1, 4 << 20)
        free(large)
        // 640x480 pictures (x264's planes are larger): mapped on their own all the same. malloc
        // asks for a mapping only when no free chunk of an arena fits, and this process's arenas
        // hold large free chunks (the suites beside this one ran with the dynamic threshold), so
        // pictures are held until 4 came mapped: the free chunks they used up, the next ones must
        // be. With the dynamic threshold (4 MiB now) all 256 would come from an arena. Untouched,
        // they cost address space, not memory.
        var pictures: [UnsafeMutableRawPointer] = []
        var mapped = 0
        while mapped < 4, pictures.count < 256 {
            let picture = try #require(malloc(640 * 480 * 3 / 2))
            pictures.append(picture)
            if Self.isMappedOnItsOwn(picture) { mapped += 1 }
        }
        pictures.forEach { free($0) }
        #expect(mapped == 4, "\(mapped) of \(pictures.count) 460 kB blocks were mapped after a 4 MiB one was freed")
        // Under the threshold: an arena's, as before.
        let small = try #require(malloc(64 * 1024))
        #expect(!Self.isMappedOnItsOwn(small))
        free(small)
    }
}
