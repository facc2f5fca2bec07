#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import CameraServer

/// The daemon's switch for transparent huge pages (issue 23): one touched byte of a 2 MiB-aligned
/// anonymous stretch must cost a page, not 2 MiB, once the switch is on.
@Suite(.serialized) struct ProcessMemoryTests {
    @Test func theSwitchIsReadBackBothWays() {
        let before = ProcessMemory.transparentHugePagesDisabled
        defer { ProcessMemory.setTransparentHugePages(disabled: before) }
        #expect(ProcessMemory.disableTransparentHugePages() == nil)
        #expect(ProcessMemory.transparentHugePagesDisabled)
        #expect(ProcessMemory.setTransparentHugePages(disabled: false) == nil)
        #expect(!ProcessMemory.transparentHugePagesDisabled)
    }

    @Test func oneTouchedByteCostsOnePageWhileHugePagesAreOff() throws {
        let before = ProcessMemory.transparentHugePagesDisabled
        defer { ProcessMemory.setTransparentHugePages(disabled: before) }
        let pageKiB = sysconf(Int32(_SC_PAGESIZE)) / 1024

        // Allowed first (the stretch asks for a huge page, as `always` gives one unasked), where the
        // kernel has them at all: the stretch is then one huge page. Not asserted: a fragmented
        // machine, a kernel without THP or qemu-user (madvise is a no-op there) give none.
        ProcessMemory.setTransparentHugePages(disabled: false)
        let allowed = try residentAfterTouchingOneByte()

        ProcessMemory.disableTransparentHugePages()
        let refused = try residentAfterTouchingOneByte()
        if let refused {
            #expect(refused.anonHugePagesKiB == 0, "a huge page although the process turned them off: \(refused)")
            #expect(refused.residentKiB <= 16 * pageKiB, "one byte touched, \(refused.residentKiB) KiB resident")
        }
        if let allowed, allowed.anonHugePagesKiB > 0 {
            // The kernel gave a huge page when allowed: the comparison is a real one.
            #expect(allowed.residentKiB >= 2048)
            #expect(refused != nil, "the refused stretch was not found in /proc/self/smaps")
        }
    }

    struct Resident: CustomStringConvertible {
        var residentKiB: Int
        var anonHugePagesKiB: Int
        var description: String { "Rss \(residentKiB) KiB, AnonHugePages \(anonHugePagesKiB) KiB" }
    }

    /// Maps 4 MiB, asks for huge pages on its 2 MiB-aligned middle (MADV_HUGEPAGE), writes one byte
    /// there and reads that mapping's Rss and AnonHugePages back; nil where /proc/self/smaps does
    /// not list it (qemu-user).
    private func residentAfterTouchingOneByte() throws -> Resident? {
        let hugePage = 2 << 20
        let length = 2 * hugePage
        let mapped = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        try #require(mapped != UnsafeMutableRawPointer(bitPattern: -1), "mmap failed: errno \(errno)")
        defer { munmap(mapped, length) }
        let start = (Int(bitPattern: mapped) + hugePage - 1) & ~(hugePage - 1)
        let stretch = try #require(UnsafeMutableRawPointer(bitPattern: start))
        _ = madvise(stretch, hugePage, MADV_HUGEPAGE)
        stretch.storeBytes(of: 1, as: UInt8.self)
        return Self.smapsEntry(containing: UInt(start))
    }

    /// The Rss and AnonHugePages of the /proc/self/smaps mapping that holds `address`.
    private static func smapsEntry(containing address: UInt) -> Resident? {
        var found: Resident?
        var inside = false
        for line in readProcSelfSmaps().split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
               let low = UInt(line[..<dash], radix: 16), let high = UInt(line[line.index(after: dash)..<space], radix: 16) {
                if inside { break }
                inside = low <= address && address < high
                if inside { found = Resident(residentKiB: 0, anonHugePagesKiB: 0) }
                continue
            }
            guard inside else { continue }
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = Int(fields[1]) else { continue }
            if fields[0] == "Rss:" { found?.residentKiB = kib }
            if fields[0] == "AnonHugePages:" { found?.anonHugePagesKiB = kib }
        }
        return found
    }

    private static func readProcSelfSmaps() -> String {
        let descriptor = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return "" }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
