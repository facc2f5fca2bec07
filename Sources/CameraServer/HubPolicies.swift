import RTCBase

// The stream hub's decisions, as values: each takes `now` and returns what to do, so they are tested
// on a virtual clock (CameraServerTests/HubPoliciesTests) and the hub only keeps the registry, the
// lock and the event loop's timers.

/// Merges keyframe requests (PLI, FIR, joining viewers, settings changes) into at most one request to
/// the encoder per `minimumInterval`. One that comes too soon is not lost: it is asked again when the
/// interval is over (one retry at a time, whatever the number of requests meanwhile).
struct KeyframeRequestPolicy: Equatable {
    enum Action: Equatable {
        case none
        /// Ask the encoder for a keyframe now.
        case askEncoder
        /// Call `retryDue(now:)` at this time (the hub schedules it on its loop).
        case retry(at: MonotonicTime)
    }

    var minimumInterval: Duration
    /// How long a request may stay unanswered before a viewer still waiting for its first keyframe
    /// makes the hub ask again.
    var unansweredAfter: Duration = .seconds(1)
    private(set) var lastRequest: MonotonicTime?
    /// When the encoder was last asked for a keyframe that has not come out yet: asking again in the
    /// meantime would only schedule a second, spurious one (and delay the next joining viewer).
    private(set) var outstandingSince: MonotonicTime?
    private(set) var retryScheduled = false

    init(minimumInterval: Duration) {
        self.minimumInterval = minimumInterval
    }

    mutating func request(now: MonotonicTime) -> Action {
        if let lastRequest, now - lastRequest < minimumInterval {
            guard !retryScheduled else { return .none }
            retryScheduled = true
            return .retry(at: lastRequest + minimumInterval)
        }
        return ask(now: now)
    }

    /// The retry `request` scheduled is due.
    mutating func retryDue(now: MonotonicTime) -> Action {
        guard retryScheduled else { return .none }
        retryScheduled = false
        return ask(now: now)
    }

    /// An encoded frame went to the viewers. A keyframe answers what was outstanding; after any other
    /// frame, a connected viewer that has had no keyframe yet (its first was lost in the encoder's
    /// reconfiguration, or dropped) gets one asked for, unless one is already on its way.
    mutating func frameSent(isKeyframe: Bool, viewerStillWaitsForKeyframe: Bool, now: MonotonicTime) -> Action {
        if isKeyframe {
            outstandingSince = nil
            return .none
        }
        guard viewerStillWaitsForKeyframe else { return .none }
        if let outstandingSince, now - outstandingSince <= unansweredAfter { return .none }
        return request(now: now)
    }

    private mutating func ask(now: MonotonicTime) -> Action {
        lastRequest = now
        outstandingSince = now
        return .askEncoder
    }
}

/// The hub keeps one event-loop timer for all sessions, at the earliest of their deadlines. This keeps
/// each session's deadline (from its last `.timeout` output) and says when the timer must move.
///
/// Outside `fire`…`rearm`, the armed time is never later than the earliest deadline, so a new
/// deadline needs one comparison (a session's outputs are taken after every datagram it gets).
struct SessionTimerSchedule<ID: Hashable> {
    private(set) var deadlines: [ID: MonotonicTime] = [:]
    /// The deadline the loop's timer is set for (nil: no timer).
    private(set) var armedFor: MonotonicTime?
    /// Between `fire` and `rearm`: the due sessions are being given their timeouts.
    private var firing = false

    /// Records a session's next deadline (nil: it needs no timeout). Returns a time when the timer
    /// must be (re)armed for it: earlier than the armed one, or none armed.
    mutating func setDeadline(_ deadline: MonotonicTime?, of id: ID) -> MonotonicTime? {
        deadlines[id] = deadline
        guard !firing, let deadline else { return nil }
        if let armedFor, armedFor <= deadline { return nil }
        armedFor = deadline
        return deadline
    }

    /// A session left. The timer may now fire with nothing due, which `fire` handles.
    mutating func remove(_ id: ID) {
        deadlines[id] = nil
    }

    /// The timer fired: the sessions whose deadline has come, earliest first. Their deadlines are
    /// forgotten until they give new ones; then `rearm()` says when the timer fires next.
    mutating func fire(now: MonotonicTime) -> [ID] {
        armedFor = nil
        firing = true
        let due = deadlines.filter { $0.value <= now }.sorted { $0.value < $1.value }.map(\.key)
        for id in due { deadlines[id] = nil }
        return due
    }

    /// After `fire` and the due sessions' new deadlines: when the timer must fire next, if at all.
    mutating func rearm() -> MonotonicTime? {
        firing = false
        armedFor = deadlines.values.min()
        return armedFor
    }
}

/// Whether a WHEP offer may become a viewer (RFC 9725 §4.2: 503 with Retry-After when the camera is full).
///
/// `maximumViewers` counts connected viewers. A session still connecting (ICE and DTLS, dropped after
/// 10 s if they do not finish) counts only against a small pending quota beside them, and one address
/// may hold only a few of those: ten offers from one host that never connects do not keep a real
/// viewer out (issue 20). Sessions from no known address (in-process callers) have no per-address cap.
struct ViewerAdmission: Equatable {
    var maximumViewers: Int
    /// Sessions that may be connecting at once beyond the free viewer places.
    var pendingQuota = 4
    /// Connecting sessions one IP address may hold.
    var pendingPerAddress = 2

    enum Decision: Equatable {
        case admit
        case full(limit: Int)
        case tooManyPending(limit: Int)
        case stopping
    }

    func decide(connected: Int, pending: Int, pendingFromAddress: Int?, stopping: Bool) -> Decision {
        if stopping { return .stopping }
        if connected >= maximumViewers { return .full(limit: maximumViewers) }
        if let pendingFromAddress, pendingFromAddress >= pendingPerAddress { return .tooManyPending(limit: pendingPerAddress) }
        if connected + pending >= maximumViewers + pendingQuota { return .full(limit: maximumViewers) }
        return .admit
    }

    /// A session finished connecting while `connectedOthers` viewers were connected: it stays only under the limit.
    func keepsConnected(connectedOthers: Int) -> Bool {
        connectedOthers < maximumViewers
    }
}

/// One encoder for every viewer (issue 24): it follows the weakest viewer's bandwidth estimate down
/// to a floor (a share of the configured bitrate) and back up. A viewer whose link is below the
/// floor does not drag the others down: it is left out of the choice while another viewer is above
/// the floor (it gets the reduced layer, ReducedLayerPolicy; where the source cannot make one, its
/// own pacer drops what waits too long and it restarts at keyframes), and reported as such. When
/// every viewer is below the floor, the best of them decides.
struct EncoderBitratePolicy: Equatable {
    /// The configured video bitrate: the ceiling.
    var configuredKbps: Int
    /// The floor as a share of the configured bitrate (the setting, default 40 %).
    var floorShare: Double = 0.4
    /// What audio and RTCP take of a viewer's estimate before video (Opus at up to 64 kb/s).
    var audioKbps: Int = 64
    /// Video gets this share of what is left: room for retransmissions (the estimate itself keeps
    /// its own margin: AIMD decreases to 85 % of what arrived).
    var videoShare: Double = 0.95
    /// Raising the bitrate waits this long after the last change (a drop is applied at once).
    var raiseInterval: Duration = .seconds(1)
    /// Changes smaller than this share of the current cap are not worth a reconfiguration.
    var hysteresis: Double = 0.05

    /// Below this an H.264 stream is no use to anyone (x264 takes it, the picture is mush).
    static let minimumKbps = 100

    /// The cap now (nil: none, the encoder runs at the configured bitrate).
    private(set) var capKbps: Int?
    private(set) var lastChange: MonotonicTime?
    /// A raise that had to wait for `raiseInterval`: the owner calls `update` again then (the
    /// estimates may not move again to prompt it).
    private(set) var deferredRaise: MonotonicTime?

    init(configuredKbps: Int) {
        self.configuredKbps = configuredKbps
    }

    var floorKbps: Int { max(1, Int(Double(configuredKbps) * min(1, max(0, floorShare)))) }

    /// What video can take of a viewer's estimate.
    func videoKbps(forEstimate bitsPerSecond: Int) -> Int {
        Int(Double(max(0, bitsPerSecond / 1000 - audioKbps)) * videoShare)
    }

    /// Whether a viewer with this estimate is below the floor (left out of the choice).
    func isBelowFloor(estimate bitsPerSecond: Int) -> Bool { videoKbps(forEstimate: bitsPerSecond) < floorKbps }

    /// The viewers' current estimates (bits/s; viewers without one — no transport-cc and no REMB —
    /// are not in the list): the new cap to give the encoder, or nil when it stays as it is.
    mutating func update(estimates: [Int], now: MonotonicTime) -> Int?? {
        let video = estimates.map(videoKbps(forEstimate:))
        // The weakest viewer at or above the floor decides; when every viewer is below it, nobody
        // is served better by a higher rate than the best of them takes, so that one decides.
        let chosen = video.filter { $0 >= floorKbps }.min() ?? video.max()
        var target: Int?
        if let chosen, chosen < configuredKbps { target = max(chosen, Self.minimumKbps) }
        deferredRaise = nil
        guard target != capKbps else { return nil }
        let current = capKbps ?? configuredKbps
        let next = target ?? configuredKbps
        if next > current {
            if let lastChange, now - lastChange < raiseInterval {
                deferredRaise = lastChange + raiseInterval
                return nil
            }
            if target != nil, Double(next - current) < Double(current) * hysteresis { return nil }
        } else if Double(current - next) < Double(current) * hysteresis {
            return nil
        }
        capKbps = target
        lastChange = now
        return .some(target)
    }

    /// The settings changed the ceiling: a cap at or above it goes.
    mutating func configure(kbps: Int) -> Int?? {
        configuredKbps = kbps
        guard let capKbps, capKbps >= kbps else { return nil }
        self.capKbps = nil
        return .some(nil)
    }

    /// Nobody watches: the next viewers start from the configured bitrate.
    mutating func reset() -> Int?? {
        guard capKbps != nil else { return nil }
        capKbps = nil
        lastChange = nil
        return .some(nil)
    }
}

/// The second, smaller encoding (issue 24): a viewer whose link is below the one encoder's floor
/// gets it instead of what its link lets through of the full stream (1.9 fps behind 500 kb/s).
///
/// It exists only while such a viewer exists beside one that is not: a camera watched only from
/// slow links has its one encoder follow the best of them down (EncoderBitratePolicy) and needs no
/// second. A viewer goes to it when what video can take of its estimate is under the floor and
/// comes back when that is at least `leaveAboveFloorFactor` times the floor (hysteresis: an
/// estimate wandering around the floor does not flap between layers, each switch costing a
/// keyframe). The encoding stops `lingerAfterLastViewer` after the last viewer left it (a viewer
/// that comes back a moment later finds it still there, with no new x264 to open).
///
/// Its bitrate follows the weakest of its viewers (`linkShare` of what video can take of its
/// estimate), up to `ceilingKbps` (a quarter of the pixels of the full size: a quarter of the
/// configured bitrate, and never above the floor).
struct ReducedLayerPolicy<ID: Hashable>: Equatable {
    var leaveAboveFloorFactor = 1.25
    /// A slow viewer sits at the edge of its link, where the delay-based estimate saws above it by
    /// a fifth and more (a 500 kb/s link read as 635 kb/s): taking all of it filled the queue, and
    /// the resends that followed made freezes of a second and more. Three quarters leave room.
    var linkShare = 0.75
    var lingerAfterLastViewer: Duration = .seconds(5)
    /// Raising its bitrate waits this long after the last change; changes under this share are skipped.
    var raiseInterval: Duration = .seconds(1)
    var hysteresis = 0.05

    enum Change: Equatable {
        /// Start the reduced encoding at this bitrate (its first picture is an IDR).
        case start(kbps: Int)
        /// Its bitrate moves (x264 reconfigures, no new IDR).
        case retarget(kbps: Int)
        /// Free it: nobody has been on it for `lingerAfterLastViewer`.
        case stop
    }

    /// Viewers whose link is below the floor (with the hysteresis above).
    private(set) var slowViewers: Set<ID> = []
    /// The reduced encoding runs, at this bitrate (nil: it does not).
    private(set) var runningKbps: Int?
    /// Nobody needs it: it stops then unless someone does again (the owner calls `update` at that time).
    private(set) var stopDue: MonotonicTime?
    private var lastChange: MonotonicTime?
    private var wanted = false

    var isRunning: Bool { runningKbps != nil }

    /// Which layer a viewer should be on now.
    func layer(of id: ID) -> VideoLayer {
        wanted && isRunning && slowViewers.contains(id) ? .reduced : .full
    }

    /// Its bitrate at most: a quarter of the configured one, under the floor.
    static func ceilingKbps(configuredKbps: Int, floorKbps: Int) -> Int {
        max(EncoderBitratePolicy.minimumKbps, min(configuredKbps / 4, floorKbps))
    }

    /// The connected viewers with an estimate: what video can take of it (kb/s, keyed by viewer),
    /// and how many viewers are connected (one without an estimate stays on the full layer). What
    /// to tell the encoders.
    mutating func update(videoKbps: [ID: Int], connectedViewers: Int, floorKbps: Int, ceilingKbps: Int,
                         now: MonotonicTime) -> [Change] {
        slowViewers = slowViewers.filter { videoKbps[$0] != nil }
        for (id, kbps) in videoKbps {
            if slowViewers.contains(id) {
                if Double(kbps) >= Double(floorKbps) * leaveAboveFloorFactor { slowViewers.remove(id) }
            } else if kbps < floorKbps {
                slowViewers.insert(id)
            }
        }
        wanted = !slowViewers.isEmpty && connectedViewers > slowViewers.count
        guard wanted else {
            guard isRunning else { return [] }
            let due = stopDue ?? now + lingerAfterLastViewer
            stopDue = due
            guard now >= due else { return [] }
            runningKbps = nil
            stopDue = nil
            lastChange = nil
            return [.stop]
        }
        stopDue = nil
        let weakest = slowViewers.compactMap { videoKbps[$0] }.min().map { Int(Double($0) * linkShare) } ?? ceilingKbps
        let target = max(EncoderBitratePolicy.minimumKbps, min(ceilingKbps, weakest))
        guard let running = runningKbps else {
            runningKbps = target
            lastChange = now
            return [.start(kbps: target)]
        }
        guard target != running, Double(abs(target - running)) >= Double(running) * hysteresis else { return [] }
        if target > running, let lastChange, now - lastChange < raiseInterval { return [] }
        runningKbps = target
        lastChange = now
        return [.retarget(kbps: target)]
    }

    /// Nobody watches: it stops at once.
    mutating func reset() -> [Change] {
        slowViewers = []
        wanted = false
        stopDue = nil
        lastChange = nil
        guard isRunning else { return [] }
        runningKbps = nil
        return [.stop]
    }
}
