import RTCBase

/// How the talkback jitter buffer adapts (issue 17): its target delay follows the jitter of the
/// talker's packets, between `minimumTarget` and `maximumTarget`.
public struct JitterBufferConfiguration: Equatable, Sendable {
    /// The RTP clock (Opus: 48 kHz, RFC 7587 §4.1).
    public var clockRate = 48_000
    /// The least delay the buffer keeps: two 20 ms frames, enough for one late packet.
    public var minimumTarget: Duration = .milliseconds(40)
    /// The most it grows to on heavy jitter.
    public var maximumTarget: Duration = .milliseconds(300)
    /// How long a burst of jitter keeps the target up before it shrinks back.
    public var jitterWindow: Duration = .seconds(4)
    /// Silence this long with nothing to play (the talker stopped) ends the talkspurt: the buffer
    /// goes idle and fills up to its target again before the next one plays.
    public var idleAfter: Duration = .milliseconds(300)
    /// Packets whose timestamp is this far from the playout point start a new talkspurt.
    public var resynchroniseAfter: Duration = .seconds(2)
    /// At most one frame is dropped or inserted to steer the level per this interval.
    public var adjustmentInterval: Duration = .milliseconds(400)
    /// The most packets held (a bound against a talker that sends faster than real time).
    public var maximumPackets = 100
    /// Decode a lost packet from the next one's in-band FEC (LBRR, RFC 6716 §2.1.7) when it is here.
    public var useInbandFEC = true

    public init() {}
}

/// What to play next, `samples` (per channel, on the RTP clock) long.
public enum JitterBufferFrame: Equatable, Sendable {
    /// Decode this packet.
    case audio([UInt8])
    /// The packet was lost: decode its audio from the in-band FEC data of this, the next packet
    /// (opus_decode with decode_fec = 1); the next packet itself plays after it as usual.
    case recovered(fromNext: [UInt8])
    /// Nothing to decode: packet-loss concealment (a lost or late packet, or a frame inserted to let
    /// the buffer grow).
    case concealed
    /// Nothing is playing: the buffer is idle or still filling up for a talkspurt.
    case silence
}

public struct JitterBufferOutput: Equatable, Sendable {
    public var frame: JitterBufferFrame
    public var samples: Int
}

public enum JitterBufferInsertResult: Equatable, Sendable {
    case accepted
    case duplicate
    /// Its time to play has passed.
    case late
    /// Too far from the playout point: a new talkspurt started with it.
    case resynchronised
    /// Not decodable (no duration) or over the packet bound.
    case refused
}

public struct JitterBufferStatistics: Equatable, Sendable {
    public var packetsAccepted = 0
    public var duplicates = 0
    public var late = 0
    public var refused = 0
    public var resynchronisations = 0
    public var framesPlayed = 0
    public var framesRecoveredByFEC = 0
    /// Concealed because a packet was lost (later ones were here).
    public var framesConcealed = 0
    /// Concealed because the buffer was empty (late packets, or the talker stopped).
    public var framesConcealedEmpty = 0
    /// Frames of concealment inserted to grow the buffer.
    public var framesInserted = 0
    /// Frames skipped to shrink it.
    public var framesDropped = 0
    /// Times the buffer ran empty while playing.
    public var underruns = 0
    public var talkspurts = 0
    /// The longest time between two packets' arrivals within a talkspurt (a stall before rtcam).
    public var longestArrivalGap: Duration = .zero
    public init() {}
}

/// The talkback jitter buffer, sans-IO (DESIGN.md): packets with their arrival time in, one frame
/// at a time out whenever the playback side (paced by the speaker's clock) asks for the next.
///
/// - The target delay is the spread of the packets' transit times (arrival minus RTP time, RFC 3550
///   §6.4.1's D) over the last `jitterWindow`, plus one frame, within `minimumTarget...maximumTarget`:
///   it grows at once when jitter appears and shrinks back once the window has forgotten it.
/// - A talkspurt starts playing when the buffer holds the target; the level (audio buffered when a
///   frame is asked for, smoothed) is then steered towards the target one frame at a time: a frame of
///   concealment inserted when it is low, a frame dropped when it is high.
/// - A missing packet with later ones present is lost: its audio comes from the next packet's FEC, or
///   concealment; the buffer running empty conceals without moving on (the late packet still plays,
///   the delay has grown by a frame).
public struct AdaptiveJitterBuffer: Sendable {
    public let configuration: JitterBufferConfiguration
    public private(set) var statistics = JitterBufferStatistics()

    private struct Packet: Sendable {
        var timestamp: Int64
        var samples: Int
        var payload: [UInt8]
    }

    /// Held packets, by timestamp (oldest first).
    private var packets: [Packet] = []
    private var ssrc: UInt32?
    /// The last timestamp seen, widened to 64 bits (RFC 3550 timestamps wrap).
    private var lastExtendedTimestamp: Int64?
    /// While playing: the timestamp of the next frame.
    private var playout: Int64?
    /// Duration of the last frame (concealment lasts as long).
    private var frameSamples = 960
    /// Consecutive samples concealed on an empty buffer.
    private var emptySamples = 0
    /// Smoothed level in samples (exponential, about 8 frames).
    private var filteredLevel: Double = 0
    private var lastAdjustment: MonotonicTime?
    /// Arrival time and transit (arrival − RTP time, in samples) of recent packets.
    private var transits: [(arrival: MonotonicTime, transit: Int64)] = []
    private var newestArrival: MonotonicTime?

    public init(configuration: JitterBufferConfiguration = JitterBufferConfiguration()) {
        self.configuration = configuration
    }

    public var isPlaying: Bool { playout != nil }

    /// The delay the buffer aims for now.
    public var targetDelay: Duration { samplesToDuration(targetSamples) }

    /// Audio held from the playout point to the end of the newest packet.
    public var bufferedDelay: Duration { samplesToDuration(bufferedSamples) }

    /// The jitter seen over the window: spread of transit times.
    public var jitterSpread: Duration { samplesToDuration(transitSpread) }

    // MARK: - Input

    /// A packet of the talker: RTP `timestamp`, its `samples` per channel (from the Opus TOC), and
    /// when it arrived. A new SSRC starts over.
    @discardableResult
    public mutating func insert(ssrc: UInt32, timestamp: UInt32, samples: Int, payload: [UInt8],
                                arrival: MonotonicTime) -> JitterBufferInsertResult {
        guard samples > 0, samples <= configuration.clockRate / 8 else {  // ≤ 120 ms (RFC 6716 §3.2.5)
            statistics.refused += 1
            return .refused
        }
        if self.ssrc != ssrc {
            self.ssrc = ssrc
            reset()
            lastExtendedTimestamp = nil
        }
        let previous = lastExtendedTimestamp
        let extended = extend(timestamp)
        if let newestArrival, arrival > newestArrival, arrival - newestArrival > statistics.longestArrivalGap,
           arrival - newestArrival < .seconds(1) {
            statistics.longestArrivalGap = arrival - newestArrival
        }
        recordTransit(extended, arrival: arrival)
        var result = JitterBufferInsertResult.accepted
        let resync = Int64(durationToSamples(configuration.resynchroniseAfter))
        if let playout {
            if extended + Int64(samples) <= playout {
                if abs(extended - playout) > resync { return startOver(with: extended, samples, payload, arrival: arrival) }
                statistics.late += 1
                return .late
            }
            if extended - playout > resync { return startOver(with: extended, samples, payload, arrival: arrival) }
        } else if let oldest = packets.first, abs(extended - oldest.timestamp) > resync {
            return startOver(with: extended, samples, payload, arrival: arrival)
        } else if packets.isEmpty, let previous, abs(extended - previous) > resync {
            // Idle, and the talker's clock moved on (a new talkspurt after a pause): the jitter
            // history of the last one would make this one's transit times look far off.
            return startOver(with: extended, samples, payload, arrival: arrival)
        }
        var index = packets.count
        while index > 0, packets[index - 1].timestamp >= extended {
            if packets[index - 1].timestamp == extended {
                statistics.duplicates += 1
                return .duplicate
            }
            index -= 1
        }
        if packets.count >= configuration.maximumPackets {
            // Over the bound: the oldest goes (a talker faster than real time, or a flood).
            packets.removeFirst()
            statistics.refused += 1
            result = .refused
            if index > 0 { index -= 1 }
        }
        packets.insert(Packet(timestamp: extended, samples: samples, payload: payload), at: index)
        statistics.packetsAccepted += 1
        return result
    }

    private mutating func startOver(with timestamp: Int64, _ samples: Int, _ payload: [UInt8],
                                    arrival: MonotonicTime) -> JitterBufferInsertResult {
        statistics.resynchronisations += 1
        reset()
        lastExtendedTimestamp = timestamp
        recordTransit(timestamp, arrival: arrival)
        packets = [Packet(timestamp: timestamp, samples: samples, payload: payload)]
        statistics.packetsAccepted += 1
        return .resynchronised
    }

    /// Forgets every packet and the jitter history (a new talker or talkspurt).
    public mutating func reset() {
        packets.removeAll(keepingCapacity: true)
        transits.removeAll(keepingCapacity: true)
        playout = nil
        emptySamples = 0
        filteredLevel = 0
        lastAdjustment = nil
        newestArrival = nil
    }

    // MARK: - Output

    /// The next frame to play; `now` is when the speaker wants it (steering is rate-limited by it).
    public mutating func nextFrame(now: MonotonicTime) -> JitterBufferOutput {
        guard var position = playout else { return startIfFilled(now: now) }
        // Packets wholly before the playout point (reordered ones that came too late) are gone.
        while let first = packets.first, first.timestamp + Int64(first.samples) <= position { packets.removeFirst() }

        let level = bufferedSamples
        filteredLevel += (Double(level) - filteredLevel) / 8
        let target = Double(targetSamples)
        let hysteresis = Double(frameSamples) * 1.5
        let mayAdjust = lastAdjustment.map { now - $0 >= configuration.adjustmentInterval } ?? true

        guard let first = packets.first else {
            // Empty: conceal, and do not move on (a late packet still plays when it comes).
            if emptySamples == 0 { statistics.underruns += 1 }
            emptySamples += frameSamples
            if emptySamples >= durationToSamples(configuration.idleAfter) {
                playout = nil
                emptySamples = 0
                return JitterBufferOutput(frame: .silence, samples: frameSamples)
            }
            statistics.framesConcealedEmpty += 1
            return JitterBufferOutput(frame: .concealed, samples: frameSamples)
        }
        emptySamples = 0

        if first.timestamp > position {
            // The packet for now is missing, later ones are here: lost (or too late to wait for).
            let gap = Int(first.timestamp - position)
            let samples = min(gap, frameSamples)
            playout = position + Int64(samples)
            if configuration.useInbandFEC, gap <= frameSamples, first.timestamp == position + Int64(samples) {
                statistics.framesRecoveredByFEC += 1
                return JitterBufferOutput(frame: .recovered(fromNext: first.payload), samples: samples)
            }
            statistics.framesConcealed += 1
            return JitterBufferOutput(frame: .concealed, samples: samples)
        }

        if mayAdjust, filteredLevel < target - hysteresis {
            // Low: one frame of concealment before this packet lets the level grow by a frame.
            lastAdjustment = now
            filteredLevel += Double(frameSamples)
            statistics.framesInserted += 1
            return JitterBufferOutput(frame: .concealed, samples: frameSamples)
        }
        if mayAdjust, filteredLevel > target + hysteresis, packets.count >= 2,
           packets[1].timestamp == first.timestamp + Int64(first.samples) {
            // High: skip this packet, play the next.
            lastAdjustment = now
            filteredLevel -= Double(first.samples)
            statistics.framesDropped += 1
            packets.removeFirst()
            position = first.timestamp + Int64(first.samples)
        }
        let packet = packets.removeFirst()
        frameSamples = packet.samples
        playout = max(position, packet.timestamp) + Int64(packet.samples)
        statistics.framesPlayed += 1
        return JitterBufferOutput(frame: .audio(packet.payload), samples: packet.samples)
    }

    private mutating func startIfFilled(now: MonotonicTime) -> JitterBufferOutput {
        guard let first = packets.first, bufferedSamplesFrom(first.timestamp) >= targetSamples else {
            return JitterBufferOutput(frame: .silence, samples: frameSamples)
        }
        statistics.talkspurts += 1
        // A backlog (packets that came in a burst) beyond the target is skipped: latency stays low.
        while packets.count >= 2, bufferedSamplesFrom(packets[1].timestamp) >= targetSamples { packets.removeFirst() }
        playout = packets[0].timestamp
        filteredLevel = Double(bufferedSamples)
        lastAdjustment = now
        return nextFrame(now: now)
    }

    // MARK: - Level and target

    private var bufferedSamples: Int {
        guard let playout else { return packets.first.map { bufferedSamplesFrom($0.timestamp) } ?? 0 }
        return bufferedSamplesFrom(playout)
    }

    private func bufferedSamplesFrom(_ start: Int64) -> Int {
        guard let last = packets.last else { return 0 }
        return max(0, Int(last.timestamp + Int64(last.samples) - start))
    }

    private var transitSpread: Int {
        guard let first = transits.first else { return 0 }
        var low = first.transit, high = first.transit
        for entry in transits {
            low = min(low, entry.transit)
            high = max(high, entry.transit)
        }
        return Int(high - low)
    }

    private var targetSamples: Int {
        let wanted = transitSpread + frameSamples
        let low = durationToSamples(configuration.minimumTarget)
        let high = max(low, durationToSamples(configuration.maximumTarget))
        return min(max(wanted, low), high)
    }

    private mutating func recordTransit(_ timestamp: Int64, arrival: MonotonicTime) {
        let arrivalSamples = Int64((Double(arrival.nanoseconds) * Double(configuration.clockRate) / 1e9).rounded())
        transits.append((arrival, arrivalSamples - timestamp))
        if let newest = newestArrival, newest > arrival {} else { newestArrival = arrival }
        let horizon = (newestArrival ?? arrival) - configuration.jitterWindow
        var drop = 0
        while drop < transits.count - 1, transits[drop].arrival < horizon { drop += 1 }
        if drop > 0 { transits.removeFirst(drop) }
        if transits.count > 1000 { transits.removeFirst(transits.count - 1000) }
    }

    private mutating func extend(_ timestamp: UInt32) -> Int64 {
        guard let last = lastExtendedTimestamp else {
            lastExtendedTimestamp = Int64(timestamp)
            return Int64(timestamp)
        }
        let delta = Int64(Int32(bitPattern: timestamp &- UInt32(truncatingIfNeeded: last)))
        let extended = last + delta
        if extended > last { lastExtendedTimestamp = extended }
        return extended
    }

    private func durationToSamples(_ duration: Duration) -> Int {
        Int(duration.nanosecondsClamped * Int64(configuration.clockRate) / 1_000_000_000)
    }

    private func samplesToDuration(_ samples: Int) -> Duration {
        .nanoseconds(Int64(samples) * 1_000_000_000 / Int64(configuration.clockRate))
    }
}
