import Glibc
import RTCBase
import Synchronization
import Testing
import V4L2

/// Every kernel-driver suite is nested in this one: they share vivid (formats are per device, not
/// per open file) and one of them unbinds it, so they run one at a time, and only in the test VM.
@Suite("Kernel drivers (vivid, vicodec, snd-aloop in board/qemu-x86_64's VM)", .serialized,
       .enabled(if: KernelDriverEnvironment.isInsideTestVM, "needs the test VM: board/qemu-x86_64/test-kernel-drivers.sh"))
enum KernelDrivers {}

/// vivid's capture node and vicodec's encoder node, by their `/sys/class/video4linux/*/name`.
enum NodeName {
    static let camera = "vivid-000-vid-cap"
    static let encoder = "stateful-encoder"
}

struct KernelDriverTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// CLOCK_MONOTONIC, the clock of V4L2 and ALSA timestamps.
func monotonicNow() -> MonotonicTime {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return MonotonicTime(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func milliseconds(_ duration: Duration) -> Double { seconds(duration) * 1000 }

/// A small text file (sysfs attribute), trailing newline removed; nil if it cannot be read.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard count >= 0 else { return nil }
    var text = String(decoding: buffer.prefix(count), as: UTF8.self)
    while text.hasSuffix("\n") { text.removeLast() }
    return text
}

/// Writes `text` to a sysfs attribute (e.g. a driver's bind/unbind file).
func writeSysfs(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw KernelDriverTestError("open \(path): errno \(errno)") }
    defer { close(fd) }
    let written = text.utf8CString.withUnsafeBytes { write(fd, $0.baseAddress, $0.count - 1) }
    guard written == text.utf8.count else { throw KernelDriverTestError("write '\(text)' to \(path): errno \(errno)") }
}

/// The device node whose video4linux name is `name` ("/dev/videoN"), or nil.
func videoNode(named name: String) -> String? {
    guard let directory = opendir("/sys/class/video4linux") else { return nil }
    defer { closedir(directory) }
    while let entry = readdir(directory) {
        let node = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard node.hasPrefix("video") else { continue }
        if readSmallFile("/sys/class/video4linux/\(node)/name") == name { return "/dev/" + node }
    }
    return nil
}

func requireNode(_ name: String) throws -> String {
    guard let path = videoNode(named: name) else { throw KernelDriverTestError("no video4linux node named \(name)") }
    return path
}

/// poll(2) one fd; true when any of `events` (or an error/hang-up) is reported before the timeout.
func waitFor(_ fd: Int32, events: Int16 = Int16(POLLIN), milliseconds: Int32) -> Bool {
    var entry = pollfd(fd: fd, events: events, revents: 0)
    while true {
        let ready = poll(&entry, 1, milliseconds)
        if ready >= 0 { return ready > 0 }
        if errno != EINTR { return false }
    }
}

func sleepMilliseconds(_ ms: UInt32) { usleep(ms * 1000) }

// MARK: V4L2 helpers

/// What a test keeps of one delivered frame (the frame itself goes back to the driver).
struct FrameRecord {
    var sequence: UInt32
    var captureTime: MonotonicTime
    var readAt: MonotonicTime
    var timestampSource: V4L2TimestampSource
    var bytesUsed: Int
    var dmabufFDs: [Int32]
}

/// Streams from a started capture for `duration`: waits for a frame, reads the freshest, lets
/// `inspect` look at it, releases it. Returns what was delivered, in order.
func streamFrames(_ capture: V4L2Capture, for duration: Duration,
                  inspect: (V4L2Frame) throws -> Void = { _ in }) throws -> [FrameRecord] {
    var records: [FrameRecord] = []
    let end = monotonicNow() + duration
    while monotonicNow() < end {
        guard let fd = capture.fileDescriptor else { throw KernelDriverTestError("capture not streaming: \(capture.state)") }
        guard waitFor(fd, milliseconds: 200) else { continue }
        let now = monotonicNow()
        guard let frame = try capture.readFreshestFrame(now: now) else { continue }
        records.append(FrameRecord(sequence: frame.sequence, captureTime: frame.captureTime, readAt: now,
                                   timestampSource: frame.timestampSource, bytesUsed: frame.bytesUsed, dmabufFDs: frame.dmabufFDs))
        defer { try? capture.release(frame) }
        try inspect(frame)
    }
    return records
}

/// The longest time between two consecutive reads (a stalled guest shows as one long gap).
func longestGap(_ times: [MonotonicTime]) -> Duration {
    zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? .zero
}

/// `streamFrames` over a window in which the guest kept running: when two reads lie further apart
/// than `maxGap` (TCG's vCPUs went unscheduled on a busy host) the window is measured again, up to
/// three times. Returns the last window, its length in seconds and how many were discarded.
func streamSteadily(_ capture: V4L2Capture, for duration: Duration, maxGap: Duration) throws
    -> (frames: [FrameRecord], seconds: Double, discarded: Int) {
    var discarded = 0
    while true {
        let started = monotonicNow()
        let frames = try streamFrames(capture, for: duration)
        let elapsed = seconds(monotonicNow() - started)
        let gap = longestGap([started] + frames.map(\.readAt))
        if gap <= maxGap || discarded == 2 { return (frames, elapsed, discarded) }
        discarded += 1
        print("the guest stalled \(milliseconds(gap)) ms between two frames: measuring again")
    }
}

/// Waits (up to `timeout`) for the next frame and returns it, held by the caller.
func nextFrame(_ capture: V4L2Capture, timeout: Duration = .seconds(2)) throws -> V4L2Frame {
    let end = monotonicNow() + timeout
    while monotonicNow() < end {
        guard let fd = capture.fileDescriptor else { throw KernelDriverTestError("capture not streaming: \(capture.state)") }
        guard waitFor(fd, milliseconds: 200) else { continue }
        if let frame = try capture.readFreshestFrame(now: monotonicNow()) { return frame }
    }
    throw KernelDriverTestError("no frame within \(timeout)")
}

// MARK: programs

/// Runs a guest program (busybox: rmmod, modprobe) and returns its exit status (128 + signal if killed).
func runProgram(_ arguments: [String]) throws -> Int32 {
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    var environment: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/bin:/sbin:/usr/bin:/usr/sbin"), nil]
    defer { for pointer in argv + environment { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, arguments[0], nil, nil, &argv, &environment)
    guard spawned == 0 else { throw KernelDriverTestError("posix_spawn \(arguments[0]): \(spawned)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw KernelDriverTestError("waitpid: errno \(errno)") }
    }
    return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}

// MARK: threads

/// A POSIX thread running one closure (the audio tests' player runs beside the capturing test).
final class TestThread: Sendable {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private let handle: pthread_t

    init(_ run: @escaping @Sendable () -> Void) throws {
        let body = Unmanaged.passRetained(Body(run)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            let body = Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue()
            body.run()
            return nil
        }, body)
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(body).release()
            throw KernelDriverTestError("pthread_create: \(result)")
        }
        handle = thread
    }

    func join() { pthread_join(handle, nil) }
}

extension V4L2FormatRequest {
    /// What most kernel-driver tests capture: vivid's webcam at 640x480 YU12, 25 fps (vicodec takes
    /// YU12 at that size too).
    static let vividVGA = V4L2FormatRequest(width: 640, height: 480, preferredPixelFormats: [.yuv420], framesPerSecond: 25)
}
