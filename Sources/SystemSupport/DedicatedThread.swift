#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import RTCBase

/// A named OS thread for work that must not run on the event loop (the daemon's capture, encoding, and
/// sending each encoded frame to the viewers; the load generator's workers). Its owner joins it when it stops it, so that nothing of it
/// runs (or hands a frame to sessions already closed) after `stop` returns.
public final class DedicatedThread: @unchecked Sendable {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private var thread = pthread_t()
    /// Set by the thread as its last act (glibc's pthread_timedjoin_np is not visible to Swift).
    private let finished = ConditionLock(value: false)
    private var joined = false   // only the owner's thread calls join

    private init() {}

    /// Starts `body` on a new thread named `name` (what `top -H` and /proc/PID/task/*/comm show;
    /// the kernel keeps 15 bytes of it).
    public static func start(name: String = "rtcam-worker", _ body: @escaping @Sendable () -> Void) -> DedicatedThread {
        let handle = DedicatedThread()
        let box = Unmanaged.passRetained(Box {
            DedicatedThread.nameCallingThread(name)
            body()
            handle.finished.lock()
            handle.finished.unlock(withValue: true)
        }).toOpaque()
        let result = pthread_create(&handle.thread, nil, { argument in
            Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box)
        precondition(result == 0, "pthread_create failed: \(result)")
        return handle
    }

    /// Waits up to `timeout` for the thread to end. Returns false if it did not (a device read
    /// that hangs): the thread is then detached, left to end on its own.
    @discardableResult
    public func join(timeout: Duration) -> Bool {
        guard !joined else { return true }
        joined = true
        guard finished.lock(whenValue: true, timeoutSeconds: timeout.millisecondsDouble / 1000) else {
            pthread_detach(thread)
            return false
        }
        finished.unlock()
        pthread_join(thread, nil)   // it has run its last line: this returns at once
        return true
    }

    /// Waits for the thread to end, however long it takes.
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    deinit {
        if !joined { pthread_detach(thread) }
    }

    /// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module does not define; the
    /// kernel's own interface for the calling thread is /proc/thread-self/comm (Linux 3.17).
    private static func nameCallingThread(_ name: String) {
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
    }

    /// Asks for SCHED_FIFO at `priority` (1...99) for the calling thread: for a thread that must
    /// meet a device's deadline on a loaded machine (talkback playback). Needs CAP_SYS_NICE or an
    /// RLIMIT_RTPRIO (systemd: LimitRTPRIO=); returns the errno when refused (the thread then runs
    /// as it was). Such a thread must block on its device or sleep: it would starve the others if it spun.
    public static func requestRealtimePriority(_ priority: Int32) -> Int32 {
        var parameters = sched_param()
        parameters.sched_priority = priority
        return pthread_setschedparam(pthread_self(), SCHED_FIFO, &parameters)
    }

    /// Sleeps until an absolute CLOCK_MONOTONIC time (frame pacing without drift).
    public static func sleep(until deadline: UInt64) {
        var spec = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &spec, nil) == EINTR {}
    }
}
