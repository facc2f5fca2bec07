#if canImport(Glibc)
import Glibc
#endif
import RTCBase
import RTP
import Synchronization
import SystemSupport

/// CPU and memory accounting of the whole benchmark process (clocks and threads: SystemSupport).
enum BenchClock {
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
