import RTCBase

/// One talker at a time (issue 17), sans-IO: who holds the floor, until when. A claim is granted
/// when the floor is free, expired, or already the claimant's; the holder's lease is renewed by
/// each claim and by each of its packets, so a talker whose page went away without releasing loses
/// the floor `lease` after its last packet.
public struct TalkFloor<Talker: Hashable & Sendable>: Sendable {
    public enum Claim: Equatable, Sendable {
        case granted
        /// Someone else is talking.
        case busy
    }

    public var lease: Duration
    public private(set) var holder: Talker?
    private var expiry = MonotonicTime.zero

    public init(lease: Duration = .seconds(5)) {
        self.lease = lease
    }

    /// The holder now (nil when the floor is free or its lease ran out).
    public func holder(at now: MonotonicTime) -> Talker? {
        guard let holder, now < expiry else { return nil }
        return holder
    }

    public mutating func claim(_ talker: Talker, now: MonotonicTime) -> Claim {
        if let current = holder(at: now), current != talker { return .busy }
        holder = talker
        expiry = now + lease
        return .granted
    }

    /// Gives the floor back; false when `talker` did not hold it.
    @discardableResult
    public mutating func release(_ talker: Talker) -> Bool {
        guard holder == talker else { return false }
        holder = nil
        return true
    }

    /// Whether audio from `talker` is played: only the holder's, which renews its lease.
    public mutating func admitAudio(from talker: Talker, now: MonotonicTime) -> Bool {
        guard holder(at: now) == talker else { return false }
        expiry = now + lease
        return true
    }
}

/// Half duplex (issue 17): the camera's microphone is muted while talkback plays and `holdAfter`
/// after the last audible frame has left the speaker, so the talker does not hear themselves.
public struct HalfDuplexGate: Equatable, Sendable {
    public var holdAfter: Duration
    /// Until when the microphone is muted (nil: never muted yet).
    public private(set) var mutedUntil: MonotonicTime?

    public init(holdAfter: Duration = .milliseconds(200)) {
        self.holdAfter = holdAfter
    }

    /// Audible talkback is playing until `playedUntil` (when the speaker will have played what was
    /// written so far).
    public mutating func talkbackPlays(until playedUntil: MonotonicTime) {
        let end = playedUntil + holdAfter
        if let mutedUntil, mutedUntil >= end { return }
        mutedUntil = end
    }

    /// Whether microphone audio captured from `start` for `duration` is muted (any overlap mutes it).
    public func mutes(capturedAt start: MonotonicTime, duration: Duration = .milliseconds(20)) -> Bool {
        guard let mutedUntil else { return false }
        return start < mutedUntil
    }
}

/// Speaker volume, 0...100 %, as a gain on the samples: a dB-linear taper (0 % is silence, 100 %
/// leaves the samples as decoded, 50 % is −20 dB), applied with saturation.
public struct SpeakerVolume: Equatable, Sendable {
    public let percent: Int
    public let gain: Float

    public init(percent: Int) {
        let clamped = max(0, min(100, percent))
        self.percent = clamped
        if clamped == 0 {
            gain = 0
        } else if clamped == 100 {
            gain = 1
        } else {
            // −40 dB at 0 %, 0 dB at 100 %.
            let decibels = Float(clamped - 100) * 0.4
            gain = Self.power10(decibels / 20)
        }
    }

    public func apply(to samples: inout [Int16]) {
        guard gain != 1 else { return }
        for index in samples.indices {
            let scaled = Float(samples[index]) * gain
            samples[index] = Int16(max(-32768, min(32767, scaled.rounded())))
        }
    }

    /// 10^x without Foundation's pow: e^(x ln 10) by its series (|x| ≤ 2 here).
    static func power10(_ x: Float) -> Float {
        let y = Double(x) * 2.302585092994046
        var term = 1.0, sum = 1.0
        for n in 1..<40 {
            term *= y / Double(n)
            sum += term
        }
        return Float(sum)
    }
}
