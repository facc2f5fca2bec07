import RTCBase
import RTP

/// What a sent packet carried, as the owner tells the estimator when it leaves.
public enum SentPacketKind: Hashable, Sendable {
    case media
    case retransmission
    case padding
    /// Padding or RTX sent for a probe cluster (`ProbeCluster.id`).
    case probe(clusterID: Int)

    var probeClusterID: Int? {
        if case let .probe(clusterID) = self { return clusterID }
        return nil
    }
}

/// One sent packet as transport-wide feedback reported it.
public struct PacketResult: Equatable, Sendable {
    /// The transport-wide sequence number widened to 64 bits.
    public var sequenceNumber: Int64
    public var sendTime: MonotonicTime
    public var bytes: Int
    public var kind: SentPacketKind
    /// Arrival on the remote clock in µs (its origin is the remote's, unrelated to ours); nil: lost.
    public var arrivalMicroseconds: Int64?

    public var received: Bool { arrivalMicroseconds != nil }
}

/// Widens 16-bit sequence numbers to 64 bits around the newest one seen (RFC 3550 A.1's idea): a
/// value within half the range behind the newest is taken as older, otherwise as newer.
struct SequenceUnwrapper {
    private(set) var newest: Int64?

    /// The widened value nearest to `newest`, without moving it.
    func widened(_ value: UInt16) -> Int64 {
        guard let newest else { return Int64(value) }
        let step = Int64(Int16(bitPattern: value &- UInt16(truncatingIfNeeded: newest)))
        return newest + step
    }

    mutating func unwrap(_ value: UInt16) -> Int64 {
        let result = widened(value)
        if newest == nil || result > newest! { newest = result }
        return result
    }
}

/// Widens transport-cc's 24-bit reference time (64 ms units) the same way.
struct ReferenceTimeUnwrapper {
    private var last: Int64?

    mutating func unwrap(_ value: Int32) -> Int64 {
        let raw = Int64(value) & 0xFF_FFFF
        guard let last else { self.last = raw; return raw }
        var step = (raw - last) & 0xFF_FFFF
        if step >= 0x80_0000 { step -= 0x100_0000 }
        let result = last + step
        if result > last { self.last = result }
        return result
    }
}

/// What one feedback packet told about packets not reported before.
struct FeedbackOutcome {
    /// Newly reported packets (first report, or lost earlier and received now), in sequence order.
    var results: [PacketResult] = []
    var newlyLost = 0
    var newlyReceived = 0
    /// Reported lost before, received in this feedback (reordering across feedback packets).
    var lateArrivals = 0
    /// The highest sequence number this feedback covered that the history knew.
    var highestCovered: Int64?
}

/// The packets sent in the last few seconds, by widened transport-wide sequence number, waiting for
/// feedback. Bounded: entries older than `retention` are dropped, and so is everything if sequence
/// numbers jump (a new owner, a reset).
struct SendHistory {
    enum Report: Equatable { case none, lost, received(Int64) }

    struct Record {
        var sendTime: MonotonicTime
        var bytes: Int
        var kind: SentPacketKind
        var sent: Bool  // false: a gap the owner never sent
        var report: Report
    }

    static let retention: Duration = .seconds(5)
    static let maximumRecords = 1 << 15
    /// A jump this far ahead restarts the history instead of filling the gap.
    static let maximumGap: Int64 = 1000

    private var unwrapper = SequenceUnwrapper()
    private var referenceUnwrapper = ReferenceTimeUnwrapper()
    private var records: [Record] = []
    private var head = 0  // records[head...] are live
    private var firstSequence: Int64 = 0  // the sequence number of records[head]
    private(set) var highestReported: Int64?
    private(set) var lastSendTime: MonotonicTime?

    var count: Int { records.count - head }
    var nextSequence: Int64 { firstSequence + Int64(count) }

    mutating func record(sequenceNumber: UInt16, bytes: Int, kind: SentPacketKind, at time: MonotonicTime) {
        let sequence = unwrapper.unwrap(sequenceNumber)
        lastSendTime = time
        let entry = Record(sendTime: time, bytes: max(0, bytes), kind: kind, sent: true, report: .none)
        if count == 0 || sequence > nextSequence + Self.maximumGap || sequence < firstSequence {
            if count == 0 || sequence > nextSequence + Self.maximumGap {
                records.removeAll(keepingCapacity: true)
                head = 0
                firstSequence = sequence
                records.append(entry)
            }
            // Older than the whole history: nothing to keep it for.
            prune(now: time)
            return
        }
        if sequence < nextSequence {
            // Sent again under a number already used: the newer send wins.
            let index = head + Int(sequence - firstSequence)
            records[index] = entry
        } else {
            while nextSequence < sequence {
                records.append(Record(sendTime: time, bytes: 0, kind: .padding, sent: false, report: .none))
            }
            records.append(entry)
        }
        prune(now: time)
    }

    /// Bytes sent after `time` (the newest records back to it).
    func bytesSent(after time: MonotonicTime) -> Int {
        var total = 0
        var index = records.count - 1
        while index >= head, records[index].sendTime > time {
            if records[index].sent { total += records[index].bytes }
            index -= 1
        }
        return total
    }

    private mutating func prune(now: MonotonicTime) {
        while head < records.count,
              count > Self.maximumRecords || now - records[head].sendTime > Self.retention {
            head += 1
            firstSequence += 1
        }
        if head > 1024, head * 2 > records.count {
            records.removeFirst(head)
            head = 0
        }
    }

    func record(at sequence: Int64) -> Record? {
        guard sequence >= firstSequence, sequence < nextSequence else { return nil }
        let record = records[head + Int(sequence - firstSequence)]
        return record.sent ? record : nil
    }

    /// Packets in `range` the history still holds, with what was reported of them.
    func records(in range: ClosedRange<Int64>) -> [(sequence: Int64, record: Record)] {
        let lower = max(range.lowerBound, firstSequence), upper = min(range.upperBound, nextSequence - 1)
        guard lower <= upper else { return [] }
        var result: [(Int64, Record)] = []
        for sequence in lower...upper {
            let record = records[head + Int(sequence - firstSequence)]
            if record.sent { result.append((sequence, record)) }
        }
        return result
    }

    /// Applies one feedback packet: arrival times on the remote clock for the packets it reports
    /// received, lost for the others. Reports of packets the history no longer (or never) had are
    /// skipped, and a packet already reported received is not reported again.
    mutating func apply(_ feedback: TransportCCFeedback) -> FeedbackOutcome {
        var outcome = FeedbackOutcome()
        guard count > 0, !feedback.packets.isEmpty else { return outcome }
        let base = unwrapper.widened(feedback.baseSequenceNumber)
        var arrival = referenceUnwrapper.unwrap(feedback.referenceTime) * 64_000
        for (offset, status) in feedback.packets.enumerated() {
            if let delta = status.receiveDelta { arrival += Int64(delta) * 250 }
            let sequence = base + Int64(offset)
            guard sequence >= firstSequence, sequence < nextSequence else { continue }
            let index = head + Int(sequence - firstSequence)
            guard records[index].sent else { continue }
            outcome.highestCovered = sequence
            let previous = records[index].report
            if status.receiveDelta != nil {
                if case .received = previous { continue }
                records[index].report = .received(arrival)
                if previous == .lost { outcome.lateArrivals += 1 } else { outcome.newlyReceived += 1 }
                outcome.results.append(result(sequence, records[index], arrival: arrival))
            } else if previous == .none {
                records[index].report = .lost
                outcome.newlyLost += 1
                outcome.results.append(result(sequence, records[index], arrival: nil))
            }
        }
        if let covered = outcome.highestCovered, highestReported == nil || covered > highestReported! {
            highestReported = covered
        }
        return outcome
    }

    private func result(_ sequence: Int64, _ record: Record, arrival: Int64?) -> PacketResult {
        PacketResult(sequenceNumber: sequence, sendTime: record.sendTime, bytes: record.bytes, kind: record.kind,
                     arrivalMicroseconds: arrival)
    }
}
