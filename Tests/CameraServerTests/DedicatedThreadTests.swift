#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import CameraServer
import SystemSupport

@Suite struct DedicatedThreadNameTests {
    private static func ownName() -> String {
        let descriptor = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return "" }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        return String(decoding: buffer.prefix(max(0, count)), as: UTF8.self).trimmingNewline()
    }

    @Test("a dedicated thread carries its name (cut to the kernel's 15 bytes), as top -H and the benchmarks see it")
    func threadsAreNamed() {
        let names = Mutex<[String]>([])
        for name in ["rtcam-video", "a-name-longer-than-fifteen"] {
            let thread = DedicatedThread.start(name: name) { names.withLock { $0.append(Self.ownName()) } }
            #expect(thread.join(timeout: .seconds(5)))
        }
        #expect(names.withLock { $0 } == ["rtcam-video", "a-name-longer-t"])
    }
}

private extension String {
    func trimmingNewline() -> String { hasSuffix("\n") ? String(dropLast()) : self }
}
