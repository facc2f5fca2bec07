#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import CameraServer

/// The heap figures behind RTCAM_DEBUG_HEAP (issue 20): each arena out of malloc_info's report, and
/// the live reading's totals agreeing with what this process just allocated.
@Suite struct HeapStatisticsTests {
    @Test func eachHeapElementIsOneArenaAndTheClosingTotalsAreNot() {
        let report = """
        <malloc version="1">
        <heap nr="0">
        <sizes>
          <size from="33" to="48" total="96" count="2"/>
          <unsorted from="2049" to="2049" total="2049" count="1"/>
        </sizes>
        <total type="fast" count="2" size="96"/>
        <total type="rest" count="3" size="70000"/>
        <system type="current" size="1052672"/>
        <system type="max" size="2101248"/>
        <aspace type="total" size="1052672"/>
        <aspace type="mprotect" size="1052672"/>
        </heap>
        <heap nr="1">
        <sizes>
        </sizes>
        <total type="fast" count="0" size="0"/>
        <total type="rest" count="1" size="131072"/>
        <system type="current" size="135168"/>
        <system type="max" size="135168"/>
        <aspace type="total" size="135168"/>
        <aspace type="mprotect" size="135168"/>
        </heap>
        <total type="fast" count="2" size="96"/>
        <total type="rest" count="4" size="201072"/>
        <total type="mmap" count="3" size="900000"/>
        <system type="current" size="1187840"/>
        <system type="max" size="2236416"/>
        <aspace type="total" size="1187840"/>
        <aspace type="mprotect" size="1187840"/>
        </malloc>
        """
        let arenas = HeapStatistics.arenas(fromMallocInfo: report)
        #expect(arenas == [HeapStatistics.Arena(number: 0, systemBytes: 1_052_672, freeBytes: 70_096),
                           HeapStatistics.Arena(number: 1, systemBytes: 135_168, freeBytes: 131_072)])
        #expect(arenas.map(\.inUseBytes) == [982_576, 4096])
    }

    @Test func aReportWithoutHeapsHasNoArenas() {
        #expect(HeapStatistics.arenas(fromMallocInfo: "").isEmpty)
        #expect(HeapStatistics.arenas(fromMallocInfo: "<malloc version=\"1\">\n<total type=\"mmap\" count=\"0\" size=\"0\"/>\n</malloc>").isEmpty)
    }

    @Test func theLiveReadingSeesAnAllocationInUseAndItsArena() {
        let first = ProcessMemory.heapStatistics()
        #expect(!first.arenas.isEmpty)
        #expect(first.arenas.contains { $0.number == 0 })
        #expect(first.arenaBytes >= first.inUseBytes)
        // 8 MiB in small pieces (under any mmap threshold): in use grows by most of that. The figures
        // are the whole process's, and the other suites allocate and free beside this one (once
        // 7 MB in between), so the best of three readings counts.
        var grewMost = 0, mmappedGrewLeast = Int.max
        var after = first
        for _ in 0 ..< 3 where grewMost < 6 << 20 {
            let before = ProcessMemory.heapStatistics()
            let pieces = (0..<32768).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8) }
            for piece in pieces { piece.storeBytes(of: 1, as: UInt8.self) }
            after = ProcessMemory.heapStatistics()
            pieces.forEach { $0.deallocate() }
            grewMost = max(grewMost, after.inUseBytes - before.inUseBytes)
            mmappedGrewLeast = min(mmappedGrewLeast, after.mmappedBytes - before.mmappedBytes)
        }
        #expect(grewMost >= 6 << 20)
        #expect(mmappedGrewLeast < 1 << 20, "small pieces came mmapped one by one")
        // mallinfo2's arena total and malloc_info's arenas are two readings of the same arenas.
        #expect(abs(after.arenas.reduce(0) { $0 + $1.systemBytes } - after.arenaBytes) < 1 << 20)
    }
}

/// The trim after x264 changed size or a pipeline was replaced (issue 20): free chunks held
/// between live ones in an arena (what an old encoder's buffers become) must leave the resident set.
@Suite(.serialized) struct ReleaseFreedHeapTests {
    @Test func freedChunksBelowALiveOneLeaveTheResidentSet() throws {
        // 8 MiB in 64 KiB chunks (under the mmap threshold: from this thread's arena), then one more
        // that stays: freed, the 128 merge into one free chunk that the arena's top cannot take
        // back (the one above is live), as an old encoder's buffers under the new one's. The
        // resident set is the whole process's and other suites allocate beside this one: the best
        // of three tries counts.
        var releasedMost = 0
        for _ in 0 ..< 3 where releasedMost < 6 << 10 {
            let chunks = (0 ... 128).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 16) }
            for chunk in chunks { chunk.initializeMemory(as: UInt8.self, repeating: 1, count: 64 << 10) }
            defer { chunks[128].deallocate() }
            chunks[..<128].forEach { $0.deallocate() }
            let freed = try #require(Self.residentKiB())
            ProcessMemory.releaseFreedHeap()
            let trimmed = try #require(Self.residentKiB())
            releasedMost = max(releasedMost, freed - trimmed)
        }
        #expect(releasedMost >= 6 << 10, "at most \(releasedMost) KiB left the resident set at the trim")
    }

    /// This process's resident set (/proc/self/statm's second field, in pages), in KiB.
    private static func residentKiB() -> Int? {
        let descriptor = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let fields = String(decoding: buffer[..<count], as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * (sysconf(Int32(_SC_PAGESIZE)) / 1024)
    }
}
