import RTCBase

/// Which queue a packet waits in; earlier cases leave first.
public enum PacketPriority: Int, Comparable, CaseIterable, Sendable {
    case audio = 0
    case retransmission
    case video
    /// Padding and probe packets: probe packets leave at the probe cluster's rate (`startProbe`),
    /// plain padding only with budget to spare and nothing else queued.
    case probe
    case padding

    public static func < (lhs: PacketPriority, rhs: PacketPriority) -> Bool { lhs.rawValue < rhs.rawValue }
}

public struct PacerConfiguration: Equatable, Sendable {
    /// The bucket holds this much time at the pacing rate: a burst that fits leaves at once.
    public var burstDuration: Duration
    /// …and at least this many bytes (one full packet).
    public var minimumBurstBytes: Int
    /// When the queued video would leave later than this after it was queued, the pacer raises its
    /// rate to drain it in time (`isDrainingBacklog`). Nothing is dropped.
    public var queueDelayLimit: Duration
    public var initialPacingBitsPerSecond: Int

    public init(burstDuration: Duration = .milliseconds(40), minimumBurstBytes: Int = 1500,
                queueDelayLimit: Duration = .milliseconds(500), initialPacingBitsPerSecond: Int = 2_500_000) {
        self.burstDuration = burstDuration
        self.minimumBurstBytes = max(1, minimumBurstBytes)
        self.queueDelayLimit = queueDelayLimit
        self.initialPacingBitsPerSecond = max(1000, initialPacingBitsPerSecond)
    }
}

/// A viewer's pacer: a token bucket at the pacing rate whose depth bounds a burst, one FIFO queue per
/// priority. Sans-IO and generic over the owner's packet: the owner enqueues, asks `nextSendTime`,
/// and at that time calls `dequeue(now:)` until it returns nil.
///
/// Audio never waits for the bucket (it is debited like the rest); retransmissions, then video, wait
/// for budget; probe packets leave at the probe rate on their own schedule; padding last.
public struct Pacer<Packet> {
    struct Entry {
        var packet: Packet
        var bytes: Int
        var enqueued: MonotonicTime
    }

    struct FIFO {
        var entries: [Entry] = []
        var head = 0
        var bytes = 0

        var isEmpty: Bool { head == entries.count }
        var count: Int { entries.count - head }
        var first: Entry? { isEmpty ? nil : entries[head] }

        mutating func append(_ entry: Entry) {
            entries.append(entry)
            bytes += entry.bytes
        }

        mutating func removeFirst() -> Entry {
            let entry = entries[head]
            head += 1
            bytes -= entry.bytes
            if head == entries.count {
                entries.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 256, head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
            return entry
        }
    }

    public let configuration: PacerConfiguration
    private var queues = [FIFO](repeating: FIFO(), count: PacketPriority.allCases.count)
    public private(set) var pacingBitsPerSecond: Int
    private var budget: Double  // bytes; negative after a packet larger than what was left
    private var budgetTime: MonotonicTime?
    private var probeBitsPerSecond = 0
    private var probeNextSend: MonotonicTime?
    /// Packets and bytes sent since creation, by class, for status.
    public private(set) var sentPackets = 0
    public private(set) var sentBytes = 0

    public init(configuration: PacerConfiguration = PacerConfiguration()) {
        self.configuration = configuration
        pacingBitsPerSecond = configuration.initialPacingBitsPerSecond
        budget = 0
    }

    // MARK: Rates

    /// The pacing rate (normally the estimator's `pacingBitsPerSecond`).
    public mutating func setRates(pacingBitsPerSecond: Int, at now: MonotonicTime) {
        refill(now: now)
        self.pacingBitsPerSecond = max(1000, pacingBitsPerSecond)
        budget = min(budget, depth)
    }

    /// Probe packets queued from now on leave at `bitsPerSecond` (a `ProbeCluster`'s rate).
    public mutating func startProbe(bitsPerSecond: Int, at now: MonotonicTime) {
        probeBitsPerSecond = max(1000, bitsPerSecond)
        if probeNextSend.map({ $0 < now }) ?? true { probeNextSend = now }
    }

    /// The bucket's depth in bytes.
    public var depth: Double {
        max(Double(configuration.minimumBurstBytes),
            Double(effectiveBitsPerSecond) / 8 * configuration.burstDuration.millisecondsDouble / 1000)
    }

    /// The pacing rate, raised while queued media would otherwise wait past `queueDelayLimit`.
    public var effectiveBitsPerSecond: Int {
        guard let oldest = oldestMediaEnqueueTime, let now = budgetTime else { return pacingBitsPerSecond }
        let mediaBytes = Double(queues[PacketPriority.retransmission.rawValue].bytes + queues[PacketPriority.video.rawValue].bytes)
        let left = configuration.queueDelayLimit - (now - oldest)
        let leftSeconds = max(left.millisecondsDouble, 20) / 1000
        let needed = mediaBytes * 8 / leftSeconds
        return needed > Double(pacingBitsPerSecond) ? Int(clamping: Int64(min(needed, 1e12))) : pacingBitsPerSecond
    }

    public var isDrainingBacklog: Bool { effectiveBitsPerSecond > pacingBitsPerSecond }

    // MARK: Queue

    public mutating func enqueue(_ packet: Packet, bytes: Int, priority: PacketPriority, at now: MonotonicTime) {
        refill(now: now)
        enqueuedTotals[priority.rawValue] &+= max(0, bytes)
        queues[priority.rawValue].append(Entry(packet: packet, bytes: max(0, bytes), enqueued: now))
        if priority == .probe, probeNextSend == nil { probeNextSend = now }
    }

    public var queuedBytes: Int { queues.reduce(0) { $0 + $1.bytes } }

    /// Bytes of one class enqueued since creation (what the source gave the pacer, whether it has
    /// left or not): `CongestionResponse` measures the source's own rate from it.
    public func enqueuedBytes(_ priority: PacketPriority) -> Int { enqueuedTotals[priority.rawValue] }
    private var enqueuedTotals = [Int](repeating: 0, count: PacketPriority.allCases.count)
    public var queuedPackets: Int { queues.reduce(0) { $0 + $1.count } }

    public func queuedBytes(_ priority: PacketPriority) -> Int { queues[priority.rawValue].bytes }

    /// How long the oldest queued packet (any class) has waited.
    public func oldestQueuedAge(now: MonotonicTime) -> Duration? {
        let oldest = queues.compactMap { $0.first?.enqueued }.min()
        return oldest.map { now >= $0 ? now - $0 : .zero }
    }

    /// How long the oldest packet of one class has waited.
    public func oldestQueuedAge(_ priority: PacketPriority, now: MonotonicTime) -> Duration? {
        queues[priority.rawValue].first.map { now >= $0.enqueued ? now - $0.enqueued : .zero }
    }

    /// Empties one class's queue (the owner gives up on what waited too long); returns how many
    /// packets were dropped.
    @discardableResult
    public mutating func removeAll(_ priority: PacketPriority) -> Int {
        let count = queues[priority.rawValue].count
        queues[priority.rawValue] = FIFO()
        return count
    }

    private var oldestMediaEnqueueTime: MonotonicTime? {
        [queues[PacketPriority.retransmission.rawValue].first?.enqueued, queues[PacketPriority.video.rawValue].first?.enqueued]
            .compactMap { $0 }.min()
    }

    /// The queue time expected for what is queued now at the current rate.
    public var expectedQueueTime: Duration {
        .nanoseconds(Int64(Double(queuedBytes) * 8 / Double(max(effectiveBitsPerSecond, 1)) * 1e9))
    }

    // MARK: Sending

    /// When the next packet may leave (at or before now: at once); nil while nothing is queued.
    public var nextSendTime: MonotonicTime? {
        let anchor = budgetTime ?? .zero
        if !queues[PacketPriority.audio.rawValue].isEmpty { return anchor }
        var times: [MonotonicTime] = []
        if let entry = queues[PacketPriority.retransmission.rawValue].first ?? queues[PacketPriority.video.rawValue].first {
            times.append(budgetReady(for: entry.bytes, from: anchor))
        }
        if !queues[PacketPriority.probe.rawValue].isEmpty { times.append(max(probeNextSend ?? anchor, anchor)) }
        if let entry = queues[PacketPriority.padding.rawValue].first { times.append(budgetReady(for: entry.bytes, from: anchor)) }
        return times.min()
    }

    /// The next packet to send at `now`, or nil when none may leave yet.
    public mutating func dequeue(now: MonotonicTime) -> Packet? {
        refill(now: now)
        if let entry = take(.audio) { return entry.packet }
        for priority in [PacketPriority.retransmission, .video] {
            if let head = queues[priority.rawValue].first {
                if budget >= min(Double(head.bytes), depth) - 0.001 { return take(priority)!.packet }
                break  // lower media classes wait behind it
            }
        }
        if let head = queues[PacketPriority.probe.rawValue].first, let due = probeNextSend, now >= due {
            let rate = Double(max(probeBitsPerSecond, pacingBitsPerSecond))
            let spacing = Duration.nanoseconds(Int64(Double(head.bytes) * 8 / rate * 1e9))
            probeNextSend = (due < now - .milliseconds(5) ? now : due) + spacing
            let entry = queues[PacketPriority.probe.rawValue].removeFirst()
            sentPackets += 1
            sentBytes += entry.bytes
            return entry.packet
        }
        if queues[PacketPriority.retransmission.rawValue].isEmpty, queues[PacketPriority.video.rawValue].isEmpty,
           let head = queues[PacketPriority.padding.rawValue].first, budget >= min(Double(head.bytes), depth) - 0.001 {
            return take(.padding)!.packet
        }
        return nil
    }

    private mutating func take(_ priority: PacketPriority) -> Entry? {
        guard !queues[priority.rawValue].isEmpty else { return nil }
        let entry = queues[priority.rawValue].removeFirst()
        budget -= Double(entry.bytes)
        sentPackets += 1
        sentBytes += entry.bytes
        return entry
    }

    private func budgetReady(for bytes: Int, from anchor: MonotonicTime) -> MonotonicTime {
        let needed = min(Double(bytes), depth) - budget
        guard needed > 0 else { return anchor }
        let seconds = needed * 8 / Double(max(effectiveBitsPerSecond, 1))
        return anchor + .nanoseconds(Int64(min(seconds, 3600) * 1e9) + 1)
    }

    private mutating func refill(now: MonotonicTime) {
        guard let last = budgetTime else {
            budgetTime = now
            budget = depth  // an idle link: the first burst may leave at once
            return
        }
        guard now > last else { return }
        let seconds = (now - last).millisecondsDouble / 1000
        budget = min(depth, budget + Double(effectiveBitsPerSecond) / 8 * seconds)
        budgetTime = now
    }
}
