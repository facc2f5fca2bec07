import RTCBase

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900-01-01 in the high 32 bits, the fraction
/// in the low 32. rtcam never reads the wall clock here: the caller gives the offset between its
/// monotonic clock and NTP time.
public struct NTPTime: Comparable, Hashable, Sendable {
    public var value: UInt64

    /// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (the Unix epoch).
    public static let unixEpochOffsetSeconds: UInt64 = 2_208_988_800

    public init(value: UInt64) { self.value = value }

    /// NTP time of `monotonic`, given the NTP time of monotonic zero in nanoseconds since 1900
    /// (the daemon: wall-clock Unix ns + 2_208_988_800 s − monotonic ns, read once at start).
    public init(monotonic: MonotonicTime, ntpNanosecondsAtMonotonicZero offset: UInt64) {
        self.init(nanosecondsSince1900: offset &+ monotonic.nanoseconds)
    }

    public init(nanosecondsSince1900 nanoseconds: UInt64) {
        let seconds = nanoseconds / 1_000_000_000
        let fraction = (nanoseconds % 1_000_000_000) << 32 / 1_000_000_000
        value = seconds << 32 | fraction
    }

    /// Back to nanoseconds since 1900 (the fraction rounded down).
    public var nanosecondsSince1900: UInt64 {
        (value >> 32) * 1_000_000_000 + ((value & 0xFFFF_FFFF) * 1_000_000_000) >> 32
    }

    public var seconds: UInt32 { UInt32(truncatingIfNeeded: value >> 32) }
    public var fraction: UInt32 { UInt32(truncatingIfNeeded: value) }

    /// The middle 32 bits (16.16 fixed point), as in LSR and DLSR (RFC 3550 §6.4.1).
    public var middle32: UInt32 { UInt32(truncatingIfNeeded: value >> 16) }

    public static func < (lhs: NTPTime, rhs: NTPTime) -> Bool { lhs.value < rhs.value }
}
