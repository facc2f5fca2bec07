import RTCBase

/// Receiver-side statistics of one RTP source: sequence tracking (RFC 3550 §A.1), loss and
/// interarrival jitter for report blocks (§6.4.1, §A.3, §A.8), LSR/DLSR, and the list of missing
/// sequence numbers to NACK (RFC 4585 §6.2.1) with a retry limit.
public struct ReceiveStatistics: Sendable {
    public let ssrc: UInt32
    public let clockRate: UInt32
    /// A missing packet is NACKed again only after this long (about one round trip).
    public var nackRetryInterval: Duration
    /// A missing packet is NACKed at most this many times.
    public var maxNACKsPerPacket: Int
    /// Missing packets this many sequence numbers behind the highest one are forgotten.
    public var nackHistoryLength: Int

    // RFC 3550 §A.1: a jump of this many is a new sequence, accepted after two sequential packets.
    static let maxDropout: UInt16 = 3000
    static let maxMisorder: UInt16 = 100

    private var started = false
    private var highestSequence: UInt16 = 0
    private var highestExtended: Int64 = 0  // cycles + highest seq (§A.1 cycles | max_seq)
    private var baseExtended: Int64 = 0
    private var badSequence: UInt16?
    /// Packets received, duplicates included (§A.3).
    public private(set) var packetsReceived: Int64 = 0
    private var expectedPrior: Int64 = 0
    private var receivedPrior: Int64 = 0

    private var lastTransit: Int32?
    private var jitterQ4: UInt32 = 0  // 16 × jitter, the integer form of §A.8

    private var lastSRCompact: UInt32 = 0
    private var lastSRArrival: MonotonicTime?

    private struct Missing {
        var sequence: Int64  // extended
        var nackCount: Int
        var lastNACK: MonotonicTime?
    }

    /// Sorted by extended sequence number.
    private var missing: [Missing] = []

    public init(ssrc: UInt32, clockRate: UInt32, nackRetryInterval: Duration = .milliseconds(20),
                maxNACKsPerPacket: Int = 10, nackHistoryLength: Int = 1000) {
        self.ssrc = ssrc
        self.clockRate = clockRate
        self.nackRetryInterval = nackRetryInterval
        self.maxNACKsPerPacket = maxNACKsPerPacket
        self.nackHistoryLength = max(1, nackHistoryLength)
    }

    /// Extended highest sequence number received (RFC 3550 §6.4.1), valid after the first packet.
    public var extendedHighestSequence: UInt32 { UInt32(truncatingIfNeeded: highestExtended) }

    /// Cumulative number lost: expected − received (§A.3), negative with duplicates.
    public var cumulativeLost: Int64 { started ? highestExtended - baseExtended + 1 - packetsReceived : 0 }

    /// Interarrival jitter in RTP timestamp units (§6.4.1).
    public var jitter: UInt32 { jitterQ4 >> 4 }

    /// Missing sequence numbers still waiting for a retransmission.
    public var missingSequenceNumberCount: Int { missing.count }

    public mutating func packetReceived(sequenceNumber: UInt16, rtpTimestamp: UInt32, arrival: MonotonicTime) {
        guard started else {
            restart(at: sequenceNumber)
            packetsReceived = 1
            updateJitter(rtpTimestamp: rtpTimestamp, arrival: arrival)
            return
        }
        // §A.1 update_seq
        let forward = sequenceNumber &- highestSequence
        if forward == 0 {
            packetsReceived += 1  // duplicate
        } else if forward < Self.maxDropout {
            let newHighest = highestExtended + Int64(forward)
            noteGap(from: highestExtended + 1, to: newHighest)
            highestExtended = newHighest
            highestSequence = sequenceNumber
            packetsReceived += 1
            badSequence = nil
            updateJitter(rtpTimestamp: rtpTimestamp, arrival: arrival)
            forgetOldMissing()
        } else if forward > 0 &- Self.maxMisorder {
            // Late or retransmitted packet: no longer missing. Jitter only follows in-order packets,
            // so retransmissions do not count as network jitter.
            let extended = highestExtended - Int64(0 &- forward)
            removeMissing(extended)
            packetsReceived += 1
        } else if let bad = badSequence, bad == sequenceNumber {
            // Two sequential packets after a large jump: the source restarted (§A.1).
            restart(at: sequenceNumber)
            packetsReceived = 1
            updateJitter(rtpTimestamp: rtpTimestamp, arrival: arrival)
        } else {
            badSequence = sequenceNumber &+ 1
        }
    }

    private mutating func restart(at sequenceNumber: UInt16) {
        started = true
        highestSequence = sequenceNumber
        highestExtended = Int64(sequenceNumber)
        baseExtended = highestExtended
        badSequence = nil
        expectedPrior = 0
        receivedPrior = 0
        lastTransit = nil
        jitterQ4 = 0
        missing.removeAll()
    }

    /// RFC 3550 §6.4.1 / §A.8: D = (Rj − Ri) − (Sj − Si); J += (|D| − J) / 16, kept as 16·J.
    private mutating func updateJitter(rtpTimestamp: UInt32, arrival: MonotonicTime) {
        let transit = Int32(bitPattern: rtpUnits(arrival) &- rtpTimestamp)
        if let previous = lastTransit {
            let difference = transit &- previous
            let magnitude = Int64(difference).magnitude
            let updated = Int64(jitterQ4) + Int64(magnitude) - Int64((UInt64(jitterQ4) + 8) >> 4)
            jitterQ4 = UInt32(clamping: updated)
        }
        lastTransit = transit
    }

    /// The arrival time in RTP timestamp units (wrapping).
    private func rtpUnits(_ time: MonotonicTime) -> UInt32 {
        let nanoseconds = time.nanoseconds
        let rate = UInt64(clockRate)
        let units = nanoseconds / 1_000_000_000 * rate + nanoseconds % 1_000_000_000 * rate / 1_000_000_000
        return UInt32(truncatingIfNeeded: units)
    }

    // MARK: NACK list (RFC 4585 §6.2.1)

    private mutating func noteGap(from first: Int64, to end: Int64) {
        guard first < end else { return }
        let start = max(first, end - Int64(nackHistoryLength))
        missing.reserveCapacity(missing.count + Int(end - start))
        for sequence in start..<end { missing.append(Missing(sequence: sequence, nackCount: 0, lastNACK: nil)) }
    }

    private mutating func forgetOldMissing() {
        let oldest = highestExtended - Int64(nackHistoryLength)
        guard let first = missing.first, first.sequence < oldest else { return }
        let keep = missing.firstIndex { $0.sequence >= oldest } ?? missing.count
        missing.removeFirst(keep)
    }

    private mutating func removeMissing(_ sequence: Int64) {
        var low = 0
        var high = missing.count
        while low < high {
            let middle = (low + high) / 2
            if missing[middle].sequence < sequence { low = middle + 1 } else { high = middle }
        }
        if low < missing.count, missing[low].sequence == sequence { missing.remove(at: low) }
    }

    /// Sequence numbers to NACK now, in order: each missing packet at once, then again every
    /// `nackRetryInterval` until it arrives, was NACKed `maxNACKsPerPacket` times, or falls
    /// `nackHistoryLength` behind.
    public mutating func missingSequenceNumbers(now: MonotonicTime) -> [UInt16] {
        var result: [UInt16] = []
        var kept = 0
        for index in missing.indices {
            var entry = missing[index]
            if entry.lastNACK.map({ now - $0 >= nackRetryInterval }) ?? true {
                result.append(UInt16(truncatingIfNeeded: entry.sequence))
                entry.nackCount += 1
                entry.lastNACK = now
            }
            if entry.nackCount < maxNACKsPerPacket {
                missing[kept] = entry
                kept += 1
            }
        }
        missing.removeLast(missing.count - kept)
        return result
    }

    /// When `missingSequenceNumbers(now:)` will next have something to send: nil when nothing is
    /// missing, `.zero` when a packet was never NACKed yet (due at once).
    public var nextNACKTime: MonotonicTime? {
        var earliest: MonotonicTime?
        for entry in missing {
            guard let last = entry.lastNACK else { return .zero }
            let due = last + nackRetryInterval
            if earliest.map({ due < $0 }) ?? true { earliest = due }
        }
        return earliest
    }

    // MARK: Reports (RFC 3550 §6.4)

    /// Remembers the SR for LSR/DLSR (RFC 3550 §6.4.1).
    public mutating func senderReportReceived(ntp: UInt64, arrival: MonotonicTime) {
        lastSRCompact = NTPTime(value: ntp).middle32
        lastSRArrival = arrival
    }

    /// A report block for this source; starts a new interval for "fraction lost" (§A.3).
    public mutating func reportBlock(now: MonotonicTime) -> ReportBlock {
        let expected = started ? highestExtended - baseExtended + 1 : 0
        let expectedInterval = expected - expectedPrior
        let receivedInterval = packetsReceived - receivedPrior
        expectedPrior = expected
        receivedPrior = packetsReceived
        let lostInterval = expectedInterval - receivedInterval
        let fraction: UInt8 = expectedInterval == 0 || lostInterval <= 0
            ? 0 : UInt8(clamping: (lostInterval << 8) / expectedInterval)
        var delay: UInt32 = 0
        if let arrival = lastSRArrival, now > arrival {
            // DLSR in 1/65536 s.
            let elapsed = now.nanoseconds - arrival.nanoseconds
            delay = UInt32(clamping: elapsed / 1_000_000_000 * 65536 + elapsed % 1_000_000_000 * 65536 / 1_000_000_000)
        }
        return ReportBlock(
            ssrc: ssrc,
            fractionLost: fraction,
            cumulativeLost: Int32(clamping: min(max(cumulativeLost, -0x80_0000), 0x7F_FFFF)),
            highestSequence: extendedHighestSequence,
            jitter: jitter,
            lastSR: lastSRArrival == nil ? 0 : lastSRCompact,
            delaySinceLastSR: delay)
    }
}
