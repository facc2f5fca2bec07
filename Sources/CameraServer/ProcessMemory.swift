#if canImport(Glibc)
import Glibc
#endif
internal import CProcessMemory

/// The process-wide memory settings of the daemon (issue 23: its resident set on a small board).
public enum ProcessMemory {
    /// Turns transparent huge pages off for the whole process, before any thread is started.
    ///
    /// Debian's kernels (amd64 and arm64, so also a Pi that runs Debian's kernel) boot with
    /// `transparent_hugepage=always`: an anonymous mapping's 2 MiB-aligned stretch is then filled
    /// with one huge page at its first touch. A thread stack (8 MiB) placed right under one of
    /// malloc's 64 MiB-aligned arena reservations ends on a 2 MiB boundary, so the first call that
    /// touches its top maps 2 MiB where the thread uses a few KiB: measured in the test VMs, +2 MiB
    /// of anonymous memory in some runs and not in others (where the stacks happened to land). The
    /// daemon's buffers are small or short-lived; it gains nothing from huge pages. Returns the errno
    /// when the kernel refuses (before Linux 3.15), nil when done. Programs it starts (an `exec:`
    /// source) inherit the setting.
    @discardableResult
    public static func disableTransparentHugePages() -> Int32? {
        setTransparentHugePages(disabled: true)
    }

    /// The switch both ways (tests turn it back off to compare).
    @discardableResult
    public static func setTransparentHugePages(disabled: Bool) -> Int32? {
        rtcam_set_transparent_huge_pages_disabled(disabled ? 1 : 0) == 0 ? nil : errno
    }

    /// True while `disableTransparentHugePages` is in force for this process.
    public static var transparentHugePagesDisabled: Bool {
        rtcam_transparent_huge_pages_disabled() == 1
    }

    /// The size from which glibc's malloc gives a block its own mapping, fixed: 128 KiB, glibc's
    /// starting value, and no longer raised on the fly.
    ///
    /// glibc raises the threshold to the size of any mmapped block freed (up to 32 MiB), once per
    /// process: the first x264 closed (a CPU adaptation step, the last viewer gone) moves every
    /// later encoder's picture buffers from their own mappings, given back on close, into a malloc
    /// arena, where they stay as fragments when the next encoder has another size (issue 20: a
    /// 1.4 MB step in the first minutes of the hour of joins). Fixed, x264's buffers keep their own
    /// mappings. This is affordable only because the pictures made every frame (the test pattern's,
    /// a conversion's, a scaling's, a decoded JPEG) come from FrameBufferPools: mapped and
    /// unmapped 30 times a second they cost ~110 page faults a frame at 640x480. Returns false when
    /// malloc refused.
    @discardableResult
    public static func fixMmapThreshold(bytes: Int = fixedMmapThresholdBytes) -> Bool {
        mallopt(M_MMAP_THRESHOLD, Int32(clamping: bytes)) == 1
    }

    /// What `fixMmapThreshold` sets by default.
    public static let fixedMmapThresholdBytes = 128 * 1024

    /// Gives the heap's freed pages back to the system (glibc's malloc_trim): after an idle camera
    /// dropped its encoder, whose buffers would otherwise stay in that thread's malloc arena.
    static func releaseFreedHeap() {
        _ = malloc_trim(0)
    }
}

/// What glibc's malloc holds, for telling a leak from fragmentation (issue 20's hour of join/leave):
/// a leak grows `inUseBytes`; fragmentation grows the arenas' `systemBytes` while what is in use
/// stays. Read by /metrics when the daemon runs with RTCAM_DEBUG_HEAP=1.
public struct HeapStatistics: Equatable, Sendable {
    /// One malloc arena (the main one is number 0; a thread that found the others busy got another).
    public struct Arena: Equatable, Sendable {
        public var number: Int
        /// Bytes the arena got from the system (brk or its mmapped heaps) and still has.
        public var systemBytes: Int
        /// Bytes of free chunks inside it (fastbins and the rest, the top chunk included).
        public var freeBytes: Int
        public var inUseBytes: Int { systemBytes - freeBytes }
    }

    /// mallinfo2's `arena`: the arenas' system bytes, all arenas together.
    public var arenaBytes: Int
    /// mallinfo2's `uordblks`: bytes handed out from the arenas and not freed.
    public var inUseBytes: Int
    /// mallinfo2's `fordblks`: free bytes inside the arenas.
    public var freeBytes: Int
    /// mallinfo2's `hblkhd` and `hblks`: allocations above the mmap threshold, each its own mapping.
    public var mmappedBytes: Int
    public var mmappedChunks: Int
    /// mallinfo2's `keepcost`: what malloc_trim could give back from the top of the main arena.
    public var topReleasableBytes: Int
    /// Each arena from malloc_info (empty when it could not be read).
    public var arenas: [Arena]

    /// The `<heap>` elements of malloc_info's report: each one's number, `<system type="current">`
    /// and the sizes of its `<total type="fast">` and `<total type="rest">` free chunks. The totals
    /// after the last `</heap>` (all arenas, mmapped chunks) are not an arena and are skipped.
    public static func arenas(fromMallocInfo text: String) -> [Arena] {
        var arenas: [Arena] = []
        var current: Arena?
        for line in text.split(separator: "\n") {
            let trimmed = line.drop(while: { $0 == " " })
            if trimmed.hasPrefix("<heap ") {
                current = Arena(number: attribute("nr", in: trimmed) ?? arenas.count, systemBytes: 0, freeBytes: 0)
            } else if trimmed.hasPrefix("</heap>") {
                if let arena = current { arenas.append(arena) }
                current = nil
            } else if current != nil, trimmed.hasPrefix("<total ") {
                let type = attributeText("type", in: trimmed)
                if type == "fast" || type == "rest" { current!.freeBytes += attribute("size", in: trimmed) ?? 0 }
            } else if current != nil, trimmed.hasPrefix("<system "), attributeText("type", in: trimmed) == "current" {
                current!.systemBytes = attribute("size", in: trimmed) ?? 0
            }
        }
        return arenas
    }

    private static func attributeText(_ name: String, in element: Substring) -> Substring? {
        // By UTF-8 bytes: firstRange(of:) would link _StringProcessing (Tests/check-footprint.sh).
        let key = Array(" \(name)=\"".utf8)
        let bytes = element.utf8
        var index = bytes.startIndex
        while index != bytes.endIndex {
            if bytes[index...].starts(with: key) {
                let start = bytes.index(index, offsetBy: key.count)
                guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                return element[start..<end]
            }
            index = bytes.index(after: index)
        }
        return nil
    }

    private static func attribute(_ name: String, in element: Substring) -> Int? {
        attributeText(name, in: element).flatMap { Int($0) }
    }
}

extension ProcessMemory {
    /// The heap now: mallinfo2 for the totals, malloc_info for each arena. Takes every arena's lock
    /// in turn, so it is for a debug reading (RTCAM_DEBUG_HEAP), not for every /metrics scrape.
    public static func heapStatistics() -> HeapStatistics {
        let totals = mallinfo2()
        var arenas: [HeapStatistics.Arena] = []
        var text: UnsafeMutablePointer<CChar>?
        var length = 0
        if rtcam_malloc_info_text(&text, &length) == 0, let text {
            arenas = HeapStatistics.arenas(fromMallocInfo: String(cString: text))
            free(text)
        }
        return HeapStatistics(arenaBytes: Int(totals.arena), inUseBytes: Int(totals.uordblks), freeBytes: Int(totals.fordblks),
                              mmappedBytes: Int(totals.hblkhd), mmappedChunks: Int(totals.hblks),
                              topReleasableBytes: Int(totals.keepcost), arenas: arenas)
    }
}
