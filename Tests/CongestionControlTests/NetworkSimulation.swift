import RTCBase
import RTP

@testable import CongestionControl

// A sender (30 fps video sized to the target with encoder lag, 20 ms audio, 1,150-byte packets through
// the pacer), a bottleneck link (a rate that can step, a drop-tail queue bounded in ms, propagation
// delay, random loss, cross traffic) and a receiver that answers with transport-wide feedback
// serialized to RTCP and parsed back; all on one virtual clock in nanoseconds.

/// The bottleneck: a FIFO served at `rate(at:)`, drop-tail when a packet would wait longer than
/// `queueLimit`, then `propagation` to the far end.
struct BottleneckLink {
    var rateSteps: [(at: Int64, bitsPerSecond: Double)]
    var queueLimit: Int64  // ns of waiting at which packets are dropped
    var propagation: Int64
    var lossProbability: Double
    var random: SeededRandom
    private(set) var freeAt: Int64 = 0
    private(set) var dropped = 0
    private(set) var randomlyLost = 0

    init(rateSteps: [(at: Int64, bitsPerSecond: Double)], queueLimit: Int64, propagation: Int64,
         lossProbability: Double = 0, seed: UInt64 = 1) {
        self.rateSteps = rateSteps
        self.queueLimit = queueLimit
        self.propagation = propagation
        self.lossProbability = lossProbability
        random = SeededRandom(seed: seed)
    }

    func rate(at time: Int64) -> Double {
        var rate = rateSteps[0].bitsPerSecond
        for step in rateSteps where step.at <= time { rate = step.bitsPerSecond }
        return rate
    }

    /// The queueing delay a packet entering now would see.
    func queueDelay(at time: Int64) -> Int64 { max(0, freeAt - time) }

    /// When the packet reaches the far end, nil if lost or dropped.
    mutating func send(bytes: Int, at time: Int64, lossy: Bool = true) -> Int64? {
        if lossy, lossProbability > 0, Double(random.next() >> 11) / Double(1 << 53) < lossProbability {
            randomlyLost += 1
            return nil
        }
        let wait = queueDelay(at: time)
        if wait > queueLimit {
            dropped += 1
            return nil
        }
        let start = max(time, freeAt)
        let transmission = Int64(Double(bytes * 8) / rate(at: start) * 1e9)
        freeAt = start + transmission
        return freeAt + propagation
    }
}

/// What the far end received, answered as transport-cc feedback every `interval`.
struct FeedbackReceiver {
    var clockOffset: Int64 = 7_777_000_000_000  // the remote clock has its own origin
    var mediaSSRC: UInt32 = 0x1234
    private var arrivals: [Int64: Int64] = [:]  // widened seq -> remote arrival ns
    private var unwrapper = SequenceUnwrapper()
    private var nextToReport: Int64?
    private var highestReceived: Int64?
    private var count: UInt8 = 0

    mutating func received(sequenceNumber: UInt16, at time: Int64) {
        let sequence = unwrapper.unwrap(sequenceNumber)
        if let next = nextToReport, sequence < next { return }  // already reported lost
        arrivals[sequence] = time + clockOffset
        highestReceived = max(highestReceived ?? sequence, sequence)
        if nextToReport == nil { nextToReport = sequence }
    }

    /// The feedback for everything since the last one, on the wire and back.
    mutating func feedback() -> [UInt8]? {
        guard let first = nextToReport, let last = highestReceived, last >= first else { return nil }
        let end = min(last, first + 0xFFFE)
        var reference: Int64?
        for sequence in first...end where arrivals[sequence] != nil {
            reference = arrivals[sequence]
            break
        }
        guard let reference else { return nil }
        let referenceTime = reference / 64_000_000  // 64 ms units
        var previous = referenceTime * 64_000_000
        var statuses: [TransportCCFeedback.PacketStatus] = []
        for sequence in first...end {
            if let arrival = arrivals[sequence] {
                let units = (arrival - previous) / 250_000
                let delta = Int16(clamping: units)
                previous += Int64(delta) * 250_000
                statuses.append(.init(sequenceNumber: UInt16(truncatingIfNeeded: sequence), receiveDelta: delta))
                arrivals[sequence] = nil
            } else {
                statuses.append(.init(sequenceNumber: UInt16(truncatingIfNeeded: sequence), receiveDelta: nil))
            }
        }
        nextToReport = end + 1
        let feedback = TransportCCFeedback(senderSSRC: 1, mediaSSRC: mediaSSRC,
                                           baseSequenceNumber: UInt16(truncatingIfNeeded: first),
                                           referenceTime: Int32(truncatingIfNeeded: referenceTime & 0xFF_FFFF),
                                           feedbackPacketCount: count, packets: statuses)
        count &+= 1
        return RTCPPacket.transportCC(feedback).serialized()
    }
}

/// Percentile of a sample (nearest rank).
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[rank]
}

func kbps(_ bitsPerSecond: Double) -> String { "\(Int((bitsPerSecond / 1000).rounded())) kb/s" }
func seconds(_ ns: Int64) -> String {
    let tenths = (ns + 50_000_000) / 100_000_000
    return "\(tenths / 10).\(tenths % 10) s"
}

/// One viewer's whole loop: encoder → pacer → link → receiver → feedback → estimator.
struct CallSimulation {
    enum Packet {
        case video(bytes: Int)
        case audio
        case probe(cluster: Int, bytes: Int)
    }

    struct Sample {
        var time: Int64
        var target: Int
        var queueDelay: Int64
        var oneWayDelay: Int64?
    }

    static let second: Int64 = 1_000_000_000
    static let millisecond: Int64 = 1_000_000
    static let packetBytes = 1150
    static let audioBytes = 120
    /// RTP/SRTP/UDP/IPv4 headers around each payload, counted on the link and by the estimator.
    static let overheadBytes = 40

    var now: Int64 = 1_000_000_000
    var estimator: SendSideBandwidthEstimator
    var pacer = Pacer<Packet>()
    var link: BottleneckLink
    var receiver = FeedbackReceiver()
    var feedbackInterval: Int64 = 75_000_000
    var useTransportFeedback = true
    /// Mangles feedback on its way back: return nil to lose it; may return garbage.
    var feedbackFilter: ((inout SeededRandom, [UInt8]) -> [[UInt8]])?
    var filterRandom = SeededRandom(seed: 99)
    /// A REMB value the receiver sends every second, if any (REMB-only peers).
    var rembSchedule: ((Int64) -> Int?)?
    /// Cross traffic through the same bottleneck, bits/s over time.
    var crossTraffic: ((Int64) -> Double)?

    private var transportSequence: UInt16 = 65_000  // wraps early on
    private var encoderTarget: Double
    private var nextFrame: Int64
    private var nextAudio: Int64
    private var nextFeedback: Int64
    private var nextREMB: Int64
    private var nextCross: Int64
    private var frameIndex = 0
    private var inFlight: [(arrival: Int64, sequence: UInt16, sent: Int64, isMedia: Bool)] = []
    private var feedbackInFlight: [(arrival: Int64, datagram: [UInt8])] = []
    private(set) var samples: [Sample] = []
    private(set) var mediaDelays: [(sent: Int64, delay: Int64)] = []
    private(set) var deliveredMediaBytes: [(time: Int64, bytes: Int)] = []
    private(set) var probesSent = 0
    private var nextSample: Int64 = 0
    private var pacerStalled = false
    private(set) var parseFailures = 0

    init(configuration: BandwidthEstimatorConfiguration, link: BottleneckLink) {
        estimator = SendSideBandwidthEstimator(configuration: configuration, now: MonotonicTime(nanoseconds: UInt64(now)))
        self.link = link
        encoderTarget = Double(configuration.startBitsPerSecond)
        nextFrame = now
        nextAudio = now
        nextFeedback = now + feedbackInterval
        nextREMB = now
        nextCross = now
        pacer.setRates(pacingBitsPerSecond: estimator.pacingBitsPerSecond, at: time(now))
    }

    func time(_ ns: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: UInt64(ns)) }

    var target: Int { estimator.targetBitsPerSecond }

    /// Runs until `end` (ns on the simulation clock).
    mutating func run(until end: Int64) {
        while now < end {
            var next = min(nextFrame, nextAudio, nextFeedback, end)
            if rembSchedule != nil { next = min(next, nextREMB) }
            if crossTraffic != nil { next = min(next, nextCross) }
            if let send = pacer.nextSendTime {
                next = min(next, max(Int64(send.nanoseconds), pacerStalled ? now + 1000 : now))
            }
            if let deadline = estimator.nextDeadline { next = min(next, max(Int64(deadline.nanoseconds), now)) }
            if let arrival = inFlight.first?.arrival { next = min(next, arrival) }
            if let arrival = feedbackInFlight.map(\.arrival).min() { next = min(next, arrival) }
            now = max(now, next)
            step()
        }
    }

    private mutating func step() {
        let t = time(now)
        if now >= nextFrame { produceFrame() }
        if now >= nextAudio {
            pacer.enqueue(.audio, bytes: Self.audioBytes, priority: .audio, at: t)
            nextAudio += 20 * Self.millisecond
        }
        if let cross = crossTraffic, now >= nextCross {
            let rate = cross(now)
            if rate > 0 { _ = link.send(bytes: 1200, at: now, lossy: false) }
            nextCross += rate > 0 ? Int64(1200 * 8 / rate * 1e9) : 10 * Self.millisecond
        }
        // Packets leaving the pacer now.
        pacerStalled = false
        while let send = pacer.nextSendTime, Int64(send.nanoseconds) <= now {
            guard let packet = pacer.dequeue(now: t) else { pacerStalled = true; break }
            transmit(packet)
        }
        // Arrivals at the receiver.
        while let first = inFlight.first, first.arrival <= now {
            inFlight.removeFirst()
            if useTransportFeedback { receiver.received(sequenceNumber: first.sequence, at: first.arrival) }
            if first.isMedia { mediaDelays.append((first.sent, first.arrival - first.sent)) }
        }
        if now >= nextFeedback {
            nextFeedback += feedbackInterval
            if useTransportFeedback, let datagram = receiver.feedback() {
                let datagrams = feedbackFilter.map { $0(&filterRandom, datagram) } ?? [datagram]
                let propagation = link.propagation
                for (index, datagram) in datagrams.enumerated() {
                    feedbackInFlight.append((now + propagation + Int64(index), datagram))
                }
            }
        }
        if rembSchedule != nil, now >= nextREMB {
            nextREMB += Self.second
            if let value = rembSchedule?(now) {
                estimator.receiverEstimatedMaximum(bitsPerSecond: value, at: t)
            }
        }
        var index = 0
        while index < feedbackInFlight.count {
            if feedbackInFlight[index].arrival <= now {
                let datagram = feedbackInFlight.remove(at: index).datagram
                deliverFeedback(datagram)
            } else {
                index += 1
            }
        }
        if let deadline = estimator.nextDeadline, Int64(deadline.nanoseconds) <= now {
            estimator.handleTimeout(now: t)
        }
        while let cluster = estimator.takeProbeCluster(now: t) {
            let count = max(cluster.minimumPackets, (cluster.minimumBytes + Self.packetBytes - 1) / Self.packetBytes)
            pacer.startProbe(bitsPerSecond: cluster.bitsPerSecond, at: t)
            for _ in 0..<count { pacer.enqueue(.probe(cluster: cluster.id, bytes: Self.packetBytes), bytes: Self.packetBytes, priority: .probe, at: t) }
            probesSent += 1
        }
        pacer.setRates(pacingBitsPerSecond: estimator.pacingBitsPerSecond, at: t)
        if now >= nextSample {
            samples.append(Sample(time: now, target: estimator.targetBitsPerSecond, queueDelay: link.queueDelay(at: now),
                                  oneWayDelay: nil))
            nextSample = now + 10 * Self.millisecond
        }
    }

    private mutating func produceFrame() {
        // Encoder lag: the encoder's rate follows the target with a 200 ms time constant.
        let dt = 1.0 / 30
        // The encoder gets the target less audio and packet overhead, as the daemon should set it.
        let audio = Double((Self.audioBytes + Self.overheadBytes) * 8 * 50)
        let videoShare = max(Double(estimator.targetBitsPerSecond) - audio, 50_000) * Double(Self.packetBytes) / Double(Self.packetBytes + Self.overheadBytes)
        encoderTarget += (videoShare - encoderTarget) * min(1, dt / 0.2)
        var bytes = Int(encoderTarget / 30 / 8)
        if frameIndex % 90 == 0 { bytes *= 3 }  // a keyframe every 3 s
        frameIndex += 1
        while bytes > 0 {
            let size = min(bytes, Self.packetBytes)
            pacer.enqueue(.video(bytes: size), bytes: size, priority: .video, at: time(now))
            bytes -= size
        }
        nextFrame += Self.second / 30
    }

    private mutating func transmit(_ packet: Packet) {
        let bytes: Int, kind: SentPacketKind, isMedia: Bool
        switch packet {
        case let .video(size): (bytes, kind, isMedia) = (size, .media, true)
        case .audio: (bytes, kind, isMedia) = (Self.audioBytes, .media, false)
        case let .probe(cluster, size): (bytes, kind, isMedia) = (size, .probe(clusterID: cluster), false)
        }
        let sequence = transportSequence
        transportSequence &+= 1
        let wire = bytes + Self.overheadBytes
        if useTransportFeedback {
            estimator.packetSent(transportSequenceNumber: sequence, bytes: wire, kind: kind, at: time(now))
        }
        if let arrival = link.send(bytes: wire, at: now) {
            inFlight.append((arrival, sequence, now, isMedia))
            if isMedia { deliveredMediaBytes.append((arrival, bytes)) }
        }
    }

    private mutating func deliverFeedback(_ datagram: [UInt8]) {
        guard let packets = try? RTCPPacket.parseCompound(datagram) else {
            parseFailures += 1
            return
        }
        for packet in packets {
            if case let .transportCC(feedback) = packet { estimator.transportFeedback(feedback, at: time(now)) }
        }
    }

    // MARK: Measurements

    /// The target at a time (the last sample at or before it).
    func target(at time: Int64) -> Int {
        var value = samples.first?.target ?? 0
        for sample in samples where sample.time <= time { value = sample.target }
        return value
    }

    /// First time at or after `from` the target is at most `limit`.
    func firstTime(from: Int64, where predicate: (Int) -> Bool) -> Int64? {
        samples.first { $0.time >= from && predicate($0.target) }?.time
    }

    /// Queueing delay seen by media packets sent in a window: the one-way delay minus propagation.
    func mediaQueueDelays(from: Int64, to: Int64) -> [Double] {
        mediaDelays.filter { $0.sent >= from && $0.sent < to }.map { Double($0.delay - link.propagation) / 1e6 }
    }

    func meanTarget(from: Int64, to: Int64) -> Double {
        let values = samples.filter { $0.time >= from && $0.time < to }.map { Double($0.target) }
        return values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    /// Media goodput delivered in a window, bits/s.
    func deliveredBitsPerSecond(from: Int64, to: Int64) -> Double {
        let bytes = deliveredMediaBytes.filter { $0.time >= from && $0.time < to }.reduce(0) { $0 + $1.bytes }
        return Double(bytes) * 8 / (Double(to - from) / 1e9)
    }
}
