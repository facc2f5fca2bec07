import RTCBase
import RTP

#if canImport(Glibc)
import Glibc
#endif

/// The only clock reads in rtcam: the server (and the benchmarks) read CLOCK_MONOTONIC (the base V4L2
/// and ALSA timestamps use) and pass `now` into the sans-IO core.
public enum MonotonicClock {
    /// CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID): what the video thread spends
    /// in the encoder and the test pattern, for /api/status and the overhead benchmark.
    public static func threadCPUNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    public static func now() -> MonotonicTime {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonotonicTime(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }

    /// Nanoseconds since 1900-01-01 (NTP's epoch) at MonotonicTime.zero, from one reading of both
    /// clocks; Sender Reports add monotonic time to it (RTP.NTPTime).
    public static func ntpNanosecondsAtMonotonicZero() -> UInt64 {
        var wall = timespec()
        var mono = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        let wallNanoseconds = (UInt64(wall.tv_sec) + NTPTime.unixEpochOffsetSeconds) * 1_000_000_000 + UInt64(wall.tv_nsec)
        let monoNanoseconds = UInt64(mono.tv_sec) * 1_000_000_000 + UInt64(mono.tv_nsec)
        return wallNanoseconds - monoNanoseconds
    }

    /// Sleeps until an absolute CLOCK_MONOTONIC instant (pacing without drift).
    public static func sleep(until deadline: MonotonicTime) {
        DedicatedThread.sleep(until: deadline.nanoseconds)
    }
}
