import RTCBase

/// When an encoder's periodic IDR is made (issue 24): every `interval` pictures, as x264's
/// `i_keyint_max` would, except while a viewer's link is in a congestion episode
/// (`CongestionResponse.isDraining`). A keyframe is several P-frames' worth of bits; made while the
/// link's queue drains after a rate step, it waits behind that queue and delays every picture after
/// it (the step at twelve moments of a 3 s keyframe cycle: 500 ms of freeze with an IDR 250 ms
/// after the step, against 290 ms without one). So the periodic one waits until the episode is
/// over, at most `longestHold`. Keyframes a viewer needs (a join, PLI, FIR) are not this schedule's:
/// the owner forces them at once, and any IDR restarts the count.
///
/// Sans-IO: the owner asks `keyframeDue` before each picture and reports each picture made.
public struct KeyframeSchedule: Sendable {
    /// Pictures from one IDR to the next scheduled one.
    public var interval: Int
    /// A periodic IDR waits for a congestion episode's end at most this long after it was due (a
    /// link that stays congested still gets one now and then: a receiver that lost a reference
    /// recovers at it even without asking).
    public var longestHold: Duration

    /// Pictures made since the last IDR (nil: none yet, the first picture is one).
    public private(set) var picturesSinceKeyframe: Int?
    /// Since when the due IDR waits (nil: none waits).
    public private(set) var heldSince: MonotonicTime?
    /// Scheduled IDRs that were held back at least one picture.
    public private(set) var holds = 0

    public init(interval: Int, longestHold: Duration = .seconds(4)) {
        self.interval = max(1, interval)
        self.longestHold = longestHold
    }

    /// Whether the next picture should be a scheduled IDR. `congested`: some viewer's link is in a
    /// congestion episode now.
    public mutating func keyframeDue(congested: Bool, now: MonotonicTime) -> Bool {
        if congested, heldSince == nil, periodicIDRDue {
            heldSince = now
            holds += 1
        }
        return isDue(congested: congested, now: now)
    }

    /// What `keyframeDue` would answer, without starting a hold.
    public func isDue(congested: Bool, now: MonotonicTime) -> Bool {
        guard picturesSinceKeyframe != nil else { return true }   // the first picture
        guard periodicIDRDue else { return false }
        guard congested else { return true }
        return now - (heldSince ?? now) >= longestHold
    }

    /// The interval has passed since the last IDR (none yet: not periodic, the first picture's).
    private var periodicIDRDue: Bool { picturesSinceKeyframe.map { $0 + 1 >= interval } ?? false }

    /// A picture was made (an IDR or not, scheduled or forced).
    public mutating func pictureMade(isKeyframe: Bool) {
        if isKeyframe {
            picturesSinceKeyframe = 0
            heldSince = nil
        } else {
            picturesSinceKeyframe = (picturesSinceKeyframe ?? 0) + 1
        }
    }

    /// The encoder was made again (a new size or rate), its IDRs every `interval` pictures now: its
    /// first picture is an IDR of its own.
    public mutating func restart(interval: Int) {
        self.interval = max(1, interval)
        picturesSinceKeyframe = nil
        heldSince = nil
    }
}
