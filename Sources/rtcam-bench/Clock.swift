#if canImport(Glibc)
import Glibc
#endif
import RTCBase
import RTP
import Synchronization

/// Clocks and CPU accounting for the benchmarks. The bench is a program with I/O, so unlike the
/// sans-IO core it reads clocks itself; `now` is then passed into the viewer sessions.
enum BenchClock {
    /// CLOCK_MONOTONIC, the clock rtcam stamps capture times with (same machine, same clock).
    static func now() -> MonotonicTime {
        MonotonicTime(nanoseconds: read(CLOCK_MONOTONIC))
    }

    /// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), nanoseconds.
    static func threadCPU() -> UInt64 { read(CLOCK_THREAD_CPUTIME_ID) }

    /// User + system CPU of the whole process so far (getrusage(RUSAGE_SELF)), nanoseconds.
    static func processCPU() -> (user: UInt64, system: UInt64) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func ns(_ value: timeval) -> UInt64 { UInt64(value.tv_sec) * 1_000_000_000 + UInt64(value.tv_usec) * 1000 }
        return (ns(usage.ru_utime), ns(usage.ru_stime))
    }

    /// Peak resident set (getrusage ru_maxrss), kilobytes.
    static func peakRSSKilobytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss)
    }

    /// Sleeps until an absolute CLOCK_MONOTONIC instant (pacing without drift).
    static func sleep(until deadline: MonotonicTime) {
        var spec = timespec(tv_sec: Int(deadline.nanoseconds / 1_000_000_000),
                            tv_nsec: Int(deadline.nanoseconds % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &spec, nil) == EINTR {}
    }

    /// Nanoseconds since 1900 at monotonic zero, read the way the daemon reads it
    /// (CLOCK_REALTIME − CLOCK_MONOTONIC), so that the daemon's Sender Report NTP timestamps
    /// convert back to this machine's CLOCK_MONOTONIC.
    static func ntpNanosecondsAtMonotonicZero() -> UInt64 {
        read(CLOCK_REALTIME) + NTPTime.unixEpochOffsetSeconds * 1_000_000_000 - read(CLOCK_MONOTONIC)
    }

    private static func read(_ clock: clockid_t) -> UInt64 {
        var spec = timespec()
        clock_gettime(clock, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}

/// A detached-or-joined OS thread for the load generator's workers.
final class WorkerThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private var thread = pthread_t()

    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(&thread, nil, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(result == 0, "pthread_create failed: \(result)")
    }

    func join() { pthread_join(thread, nil) }
}

/// Statistics over a list of samples.
struct Percentiles {
    let count: Int
    let p50: Double
    let p95: Double
    let p99: Double
    let minimum: Double
    let maximum: Double
    let mean: Double

    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        count = sorted.count
        func at(_ fraction: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            // Nearest rank.
            let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
            return sorted[min(max(rank, 0), sorted.count - 1)]
        }
        p50 = at(0.50)
        p95 = at(0.95)
        p99 = at(0.99)
        minimum = sorted.first ?? 0
        maximum = sorted.last ?? 0
        mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
    }

    var json: JSONValue {
        .object([("count", .int(count)), ("p50", .double(p50)), ("p95", .double(p95)), ("p99", .double(p99)),
                 ("min", .double(minimum)), ("max", .double(maximum)), ("mean", .double(mean))])
    }
}

/// A flag one thread raises and others poll.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func stop() { flag.store(true, ordering: .relaxed) }
    var isStopped: Bool { flag.load(ordering: .relaxed) }
}
