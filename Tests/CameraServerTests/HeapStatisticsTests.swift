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
        let before = ProcessMemory.heapStatistics()
        #expect(!before.arenas.isEmpty)
        #expect(before.arenas.contains { $0.number == 0 })
        #expect(before.arenaBytes >= before.inUseBytes)
        // 8 MiB in small pieces (under any mmap threshold): in use grows by most of that (other
        // suites may free some of theirs meanwhile, not megabytes).
        let pieces = (0..<32768).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8) }
        defer { pieces.forEach { $0.deallocate() } }
        for piece in pieces { piece.storeBytes(of: 1, as: UInt8.self) }
        let after = ProcessMemory.heapStatistics()
        #expect(after.inUseBytes - before.inUseBytes >= 6 << 20)
        #expect(after.mmappedBytes - before.mmappedBytes < 1 << 20, "small pieces came mmapped one by one")
        // mallinfo2's arena total and malloc_info's arenas are two readings of the same arenas.
        #expect(abs(after.arenas.reduce(0) { $0 + $1.systemBytes } - after.arenaBytes) < 1 << 20)
    }
}

/// The fixed mmap threshold (issue 20): a big buffer freed must not raise it, so the next one of
/// the same size is mapped by itself again (and unmapped on free) instead of staying in an arena.
@Suite(.serialized) struct MmapThresholdTests {
    @Test func aFreedBigBufferDoesNotMoveTheNextOneIntoAnArena() {
        #expect(ProcessMemory.fixMmapThreshold())
        let size = 512 << 10   // an x264 plane at 640x480 is about 0.4 MB
        for round in 0 ..< 3 {
            let before = ProcessMemory.heapStatistics()
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            buffer.storeBytes(of: 1, as: UInt8.self)
            let holding = ProcessMemory.heapStatistics()
            buffer.deallocate()
            // glibc's dynamic threshold would have moved to 512 KiB after the first free: rounds
            // 1 and 2 would then come from an arena (mmapped bytes unchanged).
            #expect(holding.mmappedBytes - before.mmappedBytes >= size, "round \(round): not mapped by itself")
        }
    }
}
