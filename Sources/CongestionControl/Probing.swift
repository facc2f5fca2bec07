import RTCBase

/// A burst the owner sends above the estimate to measure what the path carries: at least
/// `minimumPackets` packets and `minimumBytes` bytes of padding or RTX, each recorded as sent with
/// `SentPacketKind.probe(clusterID: id)`, paced at `bitsPerSecond` (`Pacer.startProbe`).
public struct ProbeCluster: Equatable, Sendable {
    public var id: Int
    public var bitsPerSecond: Int
    public var minimumPackets: Int
    public var minimumBytes: Int

    public init(id: Int, bitsPerSecond: Int, minimumPackets: Int, minimumBytes: Int) {
        self.id = id
        self.bitsPerSecond = bitsPerSecond
        self.minimumPackets = minimumPackets
        self.minimumBytes = minimumBytes
    }
}

/// When to probe and how high: at start 3× then 6× the start rate; further (2× the result) while a
/// probe finds at least 70 % of what it asked for; and, while the estimate is below the maximum and
/// no overuse was seen for three seconds, every few seconds at 2× the estimate, so capacity that comes
/// back after a drop is found in seconds rather than by 8 %/s growth.
struct ProbeController {
    struct Tracking {
        var cluster: ProbeCluster
        var takenAt: MonotonicTime
        var firstSequence: Int64?
        var lastSequence: Int64?
        var packetsSent = 0
        var bytesSent = 0
        var lastSend: MonotonicTime?

        var doneSending: Bool { packetsSent >= cluster.minimumPackets && bytesSent >= cluster.minimumBytes }
    }

    static let duration: Duration = .milliseconds(30)
    static let minimumPackets = 6
    static let successRatio = 0.7
    static let periodicInterval: Duration = .seconds(3)
    static let periodicIntervalAfterFailure: Duration = .seconds(5)
    static let quietAfterOveruse: Duration = .seconds(3)
    /// A cluster without a result this long after it was taken is given up.
    static let resultTimeout: Duration = .seconds(2)

    let enabled: Bool
    let maximum: Double
    private(set) var pending: [ProbeCluster] = []
    private(set) var tracking: [Tracking] = []
    private var nextID = 1
    private(set) var nextPeriodicProbe: MonotonicTime?
    private(set) var clustersTaken = 0
    private(set) var lastResult: Double?

    init(enabled: Bool, start: Double, maximum: Double, now: MonotonicTime) {
        self.enabled = enabled
        self.maximum = maximum
        guard enabled else { return }
        for factor in [3.0, 6.0] {
            let rate = min(start * factor, maximum)
            if rate <= start { break }
            if let last = pending.last, Double(last.bitsPerSecond) >= rate { break }
            offer(rate)
        }
        nextPeriodicProbe = now + Self.periodicInterval
    }

    private mutating func offer(_ bitsPerSecond: Double) {
        let rate = Int(min(bitsPerSecond, maximum))
        let bytes = Int(Double(rate) * Self.duration.millisecondsDouble / 8000)
        pending.append(ProbeCluster(id: nextID, bitsPerSecond: rate, minimumPackets: Self.minimumPackets,
                                    minimumBytes: max(bytes, 1)))
        nextID = nextID == Int.max ? 1 : nextID + 1
    }

    var isBusy: Bool { !pending.isEmpty || !tracking.isEmpty }

    mutating func take(now: MonotonicTime) -> ProbeCluster? {
        guard !pending.isEmpty else { return nil }
        let cluster = pending.removeFirst()
        tracking.append(Tracking(cluster: cluster, takenAt: now))
        clustersTaken += 1
        return cluster
    }

    mutating func packetSent(clusterID: Int, sequence: Int64, bytes: Int, at time: MonotonicTime) {
        guard let index = tracking.firstIndex(where: { $0.cluster.id == clusterID }) else { return }
        if tracking[index].firstSequence == nil { tracking[index].firstSequence = sequence }
        tracking[index].firstSequence = min(tracking[index].firstSequence!, sequence)
        tracking[index].lastSequence = max(tracking[index].lastSequence ?? sequence, sequence)
        tracking[index].packetsSent += 1
        tracking[index].bytesSent += max(0, bytes)
        tracking[index].lastSend = time
    }

    /// Clusters whose packets were all sent and covered by feedback: taken out for evaluation.
    mutating func takeReported(highestReported: Int64?, now: MonotonicTime) -> [Tracking] {
        var ready: [Tracking] = []
        tracking.removeAll { entry in
            if now - entry.takenAt > Self.resultTimeout {
                ready.append(entry)  // evaluated as it is: likely no result
                return true
            }
            guard let last = entry.lastSequence, let highestReported, highestReported >= last else { return false }
            let finished = entry.doneSending || (entry.lastSend.map { now - $0 > .milliseconds(100) } ?? false)
            if finished { ready.append(entry) }
            return finished
        }
        return ready
    }

    /// What a cluster measured (nil: no usable result), with the estimate after it.
    mutating func result(_ measured: Double?, for cluster: ProbeCluster, estimate: Double, at now: MonotonicTime) {
        guard enabled else { return }
        let asked = Double(cluster.bitsPerSecond)
        if let measured { lastResult = measured }
        let succeeded = measured.map { $0 >= Self.successRatio * asked } ?? false
        let higherPlanned = (pending.map(\.bitsPerSecond) + tracking.map(\.cluster.bitsPerSecond)).contains { $0 > cluster.bitsPerSecond }
        if succeeded, let measured, asked < maximum, !higherPlanned {
            offer(min(2 * measured, maximum))
        }
        nextPeriodicProbe = now + (succeeded ? Self.periodicInterval : Self.periodicIntervalAfterFailure)
    }

    mutating func handleTimeout(now: MonotonicTime, estimate: Double, lastOveruse: MonotonicTime?, usage: BandwidthUsage) {
        guard enabled else { return }
        tracking.removeAll { now - $0.takenAt > Self.resultTimeout * 2 }
        guard let due = nextPeriodicProbe, now >= due else { return }
        // Not while a queue drains (underuse) or the path is busy with something else.
        guard !isBusy, estimate < 0.9 * maximum, usage == .normal else {
            nextPeriodicProbe = now + Self.periodicInterval
            return
        }
        if let lastOveruse, now - lastOveruse < Self.quietAfterOveruse {
            nextPeriodicProbe = lastOveruse + Self.quietAfterOveruse
            return
        }
        offer(min(2 * estimate, maximum))
        nextPeriodicProbe = now + Self.periodicInterval
    }

    /// gcc's probe measurement: over every packet sent within the cluster's sequence range (media
    /// between probe packets shares the path), the send rate and the receive rate; the smaller is
    /// what the path carried, and a receive rate clearly below the send rate means the probe filled
    /// the path (then 95 % of it).
    static func measure(_ records: [(sequence: Int64, record: SendHistory.Record)], cluster: ProbeCluster) -> Double? {
        guard records.count >= 2 else { return nil }
        let probeReceived = records.filter {
            if case .received = $0.record.report, $0.record.kind.probeClusterID == cluster.id { return true }
            return false
        }.count
        guard Double(probeReceived) >= 0.8 * Double(cluster.minimumPackets) else { return nil }
        let bySend = records.sorted { $0.record.sendTime < $1.record.sendTime }
        let sendSpan = (bySend.last!.record.sendTime - bySend.first!.record.sendTime).millisecondsDouble / 1000
        let sentBytes = bySend.dropLast().reduce(0) { $0 + $1.record.bytes }
        var arrivals: [(arrival: Int64, bytes: Int)] = []
        for entry in records {
            if case let .received(arrival) = entry.record.report { arrivals.append((arrival, entry.record.bytes)) }
        }
        guard arrivals.count >= 2 else { return nil }
        arrivals.sort { $0.arrival < $1.arrival }
        let receiveSpan = Double(arrivals.last!.arrival - arrivals.first!.arrival) / 1_000_000
        let receivedBytes = arrivals.dropFirst().reduce(0) { $0 + $1.bytes }
        guard sendSpan >= 0.001, receiveSpan >= 0.001 else { return nil }
        let sendRate = Double(sentBytes) * 8 / sendSpan
        let receiveRate = Double(receivedBytes) * 8 / receiveSpan
        guard sendRate.isFinite, receiveRate.isFinite, receiveRate <= 2 * sendRate else { return nil }
        if receiveRate < 0.9 * sendRate { return 0.95 * receiveRate }
        return min(sendRate, receiveRate)
    }
}
