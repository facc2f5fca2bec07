import RTCBase

/// A camera that went away (a USB unplug, a driver unbound) and its way back, as a value: the video
/// thread tells it what happened and asks it when to try the device again; /api/status and the log
/// read it. No clock or device in here: the thread passes `now` and does the reopening.
///
/// Reopen attempts back off from `firstDelay`, doubling, to at most `longestDelay`, so a camera
/// that comes back is streaming again within `longestDelay` of its return (plus the reopen itself),
/// while a camera gone for good costs one open(2) a `longestDelay`. Failures are logged at the first
/// attempt and then once every `logEvery` attempts, not once a second for hours.
struct CameraRecovery: Equatable, Sendable {
    enum State: Equatable, Sendable {
        case streaming
        /// Lost at `since`; `attempts` reopens failed since; the next one is due at `nextAttempt`.
        case lost(since: MonotonicTime, attempts: Int, nextAttempt: MonotonicTime, reason: String)
    }

    /// What the caller does next (and whether it logs).
    enum Action: Equatable, Sendable {
        /// Wait until then, then call `attemptFailed` or `reopened` after trying.
        case tryReopen(at: MonotonicTime)
        /// Log this line at `error` (lost, still lost) or `notice` (back), then go on.
        case log(String)
    }

    let firstDelay: Duration
    let longestDelay: Duration
    let logEvery: Int
    private(set) var state: State = .streaming
    /// Times the camera went away since start.
    private(set) var losses = 0
    /// Failed reopen attempts since start.
    private(set) var failedAttempts = 0
    /// How long the last outage lasted, from the loss to the reopen that worked.
    private(set) var lastOutage: Duration?

    init(firstDelay: Duration = .milliseconds(100), longestDelay: Duration = .seconds(1), logEvery: Int = 60) {
        self.firstDelay = firstDelay
        self.longestDelay = max(longestDelay, firstDelay)
        self.logEvery = max(1, logEvery)
    }

    var isLost: Bool { if case .lost = state { return true } else { return false } }

    /// The wait before attempt number `attempt` (0 = the first after the loss).
    func delay(beforeAttempt attempt: Int) -> Duration {
        var wait = firstDelay
        for _ in 0 ..< min(attempt, 32) {
            wait = wait * 2
            if wait >= longestDelay { return longestDelay }
        }
        return min(wait, longestDelay)
    }

    /// The camera stopped delivering (`reason`: the error). Returns the log line and the first attempt.
    /// A loss reported while already lost (the reopened device failed at once) keeps counting attempts.
    mutating func lost(_ reason: String, at now: MonotonicTime) -> [Action] {
        if case let .lost(since, attempts, _, _) = state {
            let next = now + delay(beforeAttempt: attempts)
            state = .lost(since: since, attempts: attempts, nextAttempt: next, reason: reason)
            return [.tryReopen(at: next)]
        }
        losses += 1
        let next = now + firstDelay
        state = .lost(since: now, attempts: 0, nextAttempt: next, reason: reason)
        return [.log("camera lost: \(reason); reopening it when it comes back"), .tryReopen(at: next)]
    }

    /// A reopen did not work (`reason`: why, e.g. the node does not exist yet).
    mutating func attemptFailed(_ reason: String, at now: MonotonicTime) -> [Action] {
        guard case let .lost(since, attempts, _, _) = state else { return [] }
        failedAttempts += 1
        let made = attempts + 1
        let next = now + delay(beforeAttempt: made)
        state = .lost(since: since, attempts: made, nextAttempt: next, reason: reason)
        var actions: [Action] = []
        if made == 1 || made % logEvery == 0 {
            actions.append(.log("camera still lost after \(Self.seconds(now - since)) s (\(made) attempts): \(reason)"))
        }
        actions.append(.tryReopen(at: next))
        return actions
    }

    /// The camera streams again.
    mutating func reopened(at now: MonotonicTime) -> [Action] {
        guard case let .lost(since, attempts, _, _) = state else { return [] }
        let outage = now - since
        lastOutage = outage
        state = .streaming
        return [.log("camera back after \(Self.seconds(outage)) s (\(attempts + 1) attempts)")]
    }

    /// Seconds the camera has been gone (0 while streaming).
    func lostSeconds(at now: MonotonicTime) -> Double {
        guard case let .lost(since, _, _, _) = state else { return 0 }
        return (now - since).millisecondsDouble / 1000
    }

    /// What /api/status says about the camera.
    func status(at now: MonotonicTime) -> CameraRecoveryStatus {
        let reason: String?
        if case let .lost(_, _, _, why) = state { reason = why } else { reason = nil }
        return CameraRecoveryStatus(state: isLost ? "lost" : "streaming", lostSeconds: lostSeconds(at: now),
                                    losses: losses, failedReopens: failedAttempts,
                                    lastOutageSeconds: lastOutage.map { $0.millisecondsDouble / 1000 }, reason: reason)
    }

    private static func seconds(_ duration: Duration) -> String {
        let tenths = Int((duration.millisecondsDouble / 100).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// The camera's part of /api/status (`camera`): `state` is "streaming" or "lost".
struct CameraRecoveryStatus: Equatable, Sendable {
    var state: String
    var lostSeconds: Double
    var losses: Int
    var failedReopens: Int
    var lastOutageSeconds: Double?
    var reason: String?
}
