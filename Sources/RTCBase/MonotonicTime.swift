/// A point on the monotonic clock (CLOCK_MONOTONIC, the base of V4L2 and ALSA timestamps), in
/// nanoseconds. The protocol core never reads a clock: the server's loop reads it and passes it in,
/// and tests pass a virtual one.
public struct MonotonicTime: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static let zero = MonotonicTime(nanoseconds: 0)

    public init(milliseconds: UInt64) { self.nanoseconds = milliseconds * 1_000_000 }

    public init(seconds: UInt64) { self.nanoseconds = seconds * 1_000_000_000 }

    public static func < (lhs: MonotonicTime, rhs: MonotonicTime) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func + (lhs: MonotonicTime, rhs: Duration) -> MonotonicTime {
        let ns = rhs.nanosecondsClamped
        if ns >= 0 { return MonotonicTime(nanoseconds: lhs.nanoseconds &+ UInt64(ns)) }
        let back = UInt64(-ns)
        return MonotonicTime(nanoseconds: lhs.nanoseconds > back ? lhs.nanoseconds - back : 0)
    }

    public static func - (lhs: MonotonicTime, rhs: Duration) -> MonotonicTime { lhs + (.zero - rhs) }

    /// Signed distance `lhs - rhs`.
    public static func - (lhs: MonotonicTime, rhs: MonotonicTime) -> Duration {
        if lhs >= rhs { return .nanoseconds(Int64(clamping: lhs.nanoseconds - rhs.nanoseconds)) }
        return .zero - .nanoseconds(Int64(clamping: rhs.nanoseconds - lhs.nanoseconds))
    }

    public var milliseconds: UInt64 { nanoseconds / 1_000_000 }

    public var description: String {
        "\(nanoseconds / 1_000_000_000).\(String(nanoseconds % 1_000_000_000 / 1_000_000).leftPadded(to: 3))s"
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to Int64.
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = product.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    public var millisecondsDouble: Double { Double(nanosecondsClamped) / 1_000_000 }
}


/// The earliest of optional deadlines.
public func earliest(_ deadlines: MonotonicTime?...) -> MonotonicTime? {
    deadlines.compactMap { $0 }.min()
}
