import RTCBase
import Testing
@testable import CameraServer

private func at(_ milliseconds: UInt64) -> MonotonicTime { MonotonicTime(milliseconds: milliseconds) }

/// Keyframe requests merged to at most one per interval, on a virtual clock.
@Suite struct KeyframeRequestPolicyTests {
    @Test("the first request goes to the encoder; requests within 300 ms become one retry when the interval ends")
    func merging() {
        var policy = KeyframeRequestPolicy(minimumInterval: .milliseconds(300))
        #expect(policy.request(now: at(1_000)) == .askEncoder)
        #expect(policy.request(now: at(1_050)) == .retry(at: at(1_300)))
        // Ten more PLIs from ten viewers: still the one retry.
        for offset in UInt64(1)...10 { #expect(policy.request(now: at(1_050 + offset * 10)) == .none) }
        #expect(policy.retryDue(now: at(1_300)) == .askEncoder)
        // The retry counted as a request: the next one waits for its interval.
        #expect(policy.request(now: at(1_400)) == .retry(at: at(1_600)))
        #expect(policy.retryDue(now: at(1_600)) == .askEncoder)
        #expect(policy.retryDue(now: at(1_700)) == .none, "a retry fires once")
        #expect(policy.request(now: at(2_000)) == .askEncoder)
    }

    @Test("a connected viewer without a keyframe gets one asked for, unless one is on its way (1 s)")
    func waitingViewer() {
        var policy = KeyframeRequestPolicy(minimumInterval: .milliseconds(300))
        #expect(policy.frameSent(isKeyframe: false, viewerStillWaitsForKeyframe: false, now: at(0)) == .none)
        #expect(policy.frameSent(isKeyframe: false, viewerStillWaitsForKeyframe: true, now: at(10)) == .askEncoder)
        // Frames keep coming while the encoder works on it: not asked again within 1 s.
        for frame in UInt64(1)...30 {
            #expect(policy.frameSent(isKeyframe: false, viewerStillWaitsForKeyframe: true, now: at(10 + frame * 33)) == .none)
        }
        // It never came (the encoder was replaced meanwhile): asked again.
        #expect(policy.frameSent(isKeyframe: false, viewerStillWaitsForKeyframe: true, now: at(1_100)) == .askEncoder)
        // The keyframe answers it; the next waiting viewer is served at once (interval permitting).
        #expect(policy.frameSent(isKeyframe: true, viewerStillWaitsForKeyframe: true, now: at(1_133)) == .none)
        #expect(policy.outstandingSince == nil)
        #expect(policy.frameSent(isKeyframe: false, viewerStillWaitsForKeyframe: true, now: at(1_166)) == .retry(at: at(1_400)))
    }
}

/// The hub's one timer for all sessions.
@Suite struct SessionTimerScheduleTests {
    @Test("armed for the earliest deadline; later ones need no re-arming; an earlier one moves it")
    func arming() {
        var schedule = SessionTimerSchedule<String>()
        #expect(schedule.setDeadline(at(1_000), of: "a") == at(1_000))
        #expect(schedule.setDeadline(at(2_000), of: "b") == nil)
        #expect(schedule.setDeadline(nil, of: "c") == nil)
        #expect(schedule.setDeadline(at(500), of: "c") == at(500))
        #expect(schedule.armedFor == at(500))
    }

    @Test("firing gives the due sessions, earliest first; their new deadlines and the others decide the next firing")
    func firing() {
        var schedule = SessionTimerSchedule<String>()
        _ = schedule.setDeadline(at(1_000), of: "a")
        _ = schedule.setDeadline(at(900), of: "b")
        _ = schedule.setDeadline(at(1_500), of: "c")
        #expect(schedule.fire(now: at(1_000)) == ["b", "a"])
        // While the due sessions run, a later deadline of theirs must not arm the timer past "c".
        #expect(schedule.setDeadline(at(3_000), of: "a") == nil)
        #expect(schedule.setDeadline(nil, of: "b") == nil)
        #expect(schedule.rearm() == at(1_500))
        #expect(schedule.fire(now: at(1_500)) == ["c"])
        #expect(schedule.rearm() == at(3_000))
        // Fired early (a session left): nothing due, the same time again.
        schedule.remove("a")
        #expect(schedule.fire(now: at(2_000)).isEmpty)
        #expect(schedule.rearm() == nil)
        #expect(schedule.setDeadline(at(4_000), of: "d") == at(4_000))
    }
}

@Suite struct ViewerAdmissionTests {
    @Test func limitAndShutdown() {
        let admission = ViewerAdmission(maximumViewers: 2, pendingQuota: 0)
        #expect(admission.decide(connected: 0, pending: 0, pendingFromAddress: 0, stopping: false) == .admit)
        #expect(admission.decide(connected: 1, pending: 0, pendingFromAddress: 0, stopping: false) == .admit)
        #expect(admission.decide(connected: 2, pending: 0, pendingFromAddress: 0, stopping: false) == .full(limit: 2))
        #expect(admission.decide(connected: 1, pending: 1, pendingFromAddress: nil, stopping: false) == .full(limit: 2))
        #expect(admission.decide(connected: 0, pending: 0, pendingFromAddress: 0, stopping: true) == .stopping)
    }

    @Test("connecting sessions: a few per address, a small quota beside the viewers, never past the viewer limit once connected")
    func pendingQuota() {
        let admission = ViewerAdmission(maximumViewers: 1, pendingQuota: 4, pendingPerAddress: 2)
        // One host's ten offers: the third from it is refused, another host still gets in.
        #expect(admission.decide(connected: 0, pending: 1, pendingFromAddress: 1, stopping: false) == .admit)
        #expect(admission.decide(connected: 0, pending: 2, pendingFromAddress: 2, stopping: false) == .tooManyPending(limit: 2))
        #expect(admission.decide(connected: 0, pending: 2, pendingFromAddress: 0, stopping: false) == .admit)
        // Many hosts fill the quota (viewer places + 4), then the camera is full until they time out.
        #expect(admission.decide(connected: 0, pending: 5, pendingFromAddress: 0, stopping: false) == .full(limit: 1))
        // A connected viewer at the limit: no new session at all; a pending one that connects second leaves.
        #expect(admission.decide(connected: 1, pending: 0, pendingFromAddress: 0, stopping: false) == .full(limit: 1))
        #expect(admission.keepsConnected(connectedOthers: 0) && !admission.keepsConnected(connectedOthers: 1))
        // In-process callers (no address) have no per-address cap.
        #expect(admission.decide(connected: 0, pending: 3, pendingFromAddress: nil, stopping: false) == .admit)
    }
}

@Suite struct EncoderBitratePolicyTests {
    let start = MonotonicTime(seconds: 100)

    @Test("the encoder follows the weakest viewer at once when it drops, back up at most once a second")
    func followsTheWeakest() {
        var policy = EncoderBitratePolicy(configuredKbps: 2500)
        // Estimates well above the configured bitrate: no cap.
        #expect(policy.update(estimates: [5_000_000, 8_000_000], now: start) == nil)
        #expect(policy.capKbps == nil)
        // One viewer's link drops to 1.6 Mb/s: (1600 − 64) × 0.95 = 1459 kb/s at once.
        #expect(policy.update(estimates: [5_000_000, 1_600_000], now: start + .milliseconds(100)) == .some(1459))
        // It recovers a little 0.5 s later: not yet (raises wait a second), and the owner is told when to ask again...
        #expect(policy.update(estimates: [5_000_000, 2_000_000], now: start + .milliseconds(600)) == nil)
        #expect(policy.deferredRaise == start + .milliseconds(1100))
        // ...then it is raised.
        #expect(policy.update(estimates: [5_000_000, 2_000_000], now: start + .milliseconds(1200)) == .some(1839))
        #expect(policy.deferredRaise == nil)
        // Small wobbles (< 5 %) are no reconfiguration.
        #expect(policy.update(estimates: [5_000_000, 1_980_000], now: start + .milliseconds(1300)) == nil)
        // Everyone is fast again: the cap goes.
        #expect(policy.update(estimates: [5_000_000, 9_000_000], now: start + .seconds(3)) == .some(nil))
        #expect(policy.capKbps == nil)
    }

    @Test("a viewer below the floor does not drag the others down; if all are below, the best of them decides")
    func floor() {
        var policy = EncoderBitratePolicy(configuredKbps: 2500)
        #expect(policy.floorKbps == 1000)
        #expect(policy.isBelowFloor(estimate: 500_000) && !policy.isBelowFloor(estimate: 1_300_000))
        // A 500 kb/s viewer beside a fast one: the fast one keeps the configured bitrate.
        #expect(policy.update(estimates: [500_000, 6_000_000], now: start) == nil)
        // A 1.3 Mb/s one decides: (1300 − 64) × 0.95 = 1174.
        #expect(policy.update(estimates: [500_000, 1_300_000, 6_000_000], now: start) == .some(1174))
        // Only slow viewers: the best of them decides ((500 − 64) × 0.95 = 414), nobody gains from more.
        #expect(policy.update(estimates: [500_000, 300_000], now: start + .seconds(2)) == .some(414))
        // One viewer alone on a weak link is followed all the way down (to 100 kb/s at the least).
        #expect(policy.update(estimates: [100_000], now: start + .seconds(2)) == .some(100))
        // Viewers without an estimate (no transport-cc, no REMB) do not count; nobody left: no cap.
        #expect(policy.update(estimates: [], now: start + .seconds(4)) == .some(nil))
    }

    @Test("a new configured bitrate below the cap removes it; nobody watching resets it")
    func settingsAndReset() {
        var policy = EncoderBitratePolicy(configuredKbps: 4000)
        #expect(policy.update(estimates: [3_000_000], now: start) == .some(2789))
        #expect(policy.configure(kbps: 3000) == nil)          // still under the new ceiling
        #expect(policy.configure(kbps: 2000) == .some(nil))   // the ceiling is lower: no cap needed
        #expect(policy.update(estimates: [1_500_000], now: start + .seconds(2)) == .some(1364))
        #expect(policy.reset() == .some(nil))
        #expect(policy.reset() == nil)
    }
}

@Suite struct EncoderBitrateTests {
    @Test("the encoder runs at the smaller of the configured bitrate and the cap; each change is reported once")
    func effective() {
        var bitrate = EncoderBitrate(configuredKbps: 2500, capKbps: 1200)
        #expect(bitrate.effectiveKbps == 1200)
        #expect(bitrate.takeChange(configured: nil, cap: 1200) == nil)
        #expect(bitrate.takeChange(configured: nil, cap: 900) == 900)
        #expect(bitrate.takeChange(configured: nil, cap: 900) == nil)
        #expect(bitrate.takeChange(configured: nil, cap: nil) == 2500)      // the cap went
        #expect(bitrate.takeChange(configured: 800, cap: nil) == 800)       // settings: always applied
        #expect(bitrate.takeChange(configured: nil, cap: 1000) == nil)      // a cap above the settings changes nothing
        #expect(bitrate.takeChange(configured: 3000, cap: 1000) == 1000)
    }
}

/// The second, smaller encoding (issue 24): made while a viewer is below the floor beside one that
/// is not, with hysteresis, and freed a few seconds after the last slow viewer is gone.
@Suite struct ReducedLayerPolicyTests {
    // Configured 2,500 kb/s: floor 1,000 kb/s of video, the reduced layer's ceiling 625 kb/s.
    static let floor = 1000
    static let ceiling = ReducedLayerPolicy<String>.ceilingKbps(configuredKbps: 2500, floorKbps: 1000)

    static func update(_ policy: inout ReducedLayerPolicy<String>, _ kbps: [String: Int], viewers: Int? = nil,
                       at milliseconds: UInt64) -> [ReducedLayerPolicy<String>.Change] {
        policy.update(videoKbps: kbps, connectedViewers: viewers ?? kbps.count, floorKbps: floor,
                      ceilingKbps: ceiling, now: at(milliseconds))
    }

    @Test func startsForASlowViewerBesideAFastOneAndFollowsItsLink() {
        #expect(Self.ceiling == 625)
        var policy = ReducedLayerPolicy<String>()
        #expect(Self.update(&policy, ["fast": 3000, "slow": 2000], at: 1_000) == [])
        #expect(policy.layer(of: "slow") == .full)
        // The slow viewer's link falls to 500 kb/s (~400 of video): the layer starts at 3/4 of it.
        #expect(Self.update(&policy, ["fast": 3000, "slow": 400], at: 2_000) == [.start(kbps: 300)])
        #expect(policy.layer(of: "slow") == .reduced)
        #expect(policy.layer(of: "fast") == .full)
        // Its bitrate follows the slow link down at once, up only after a second, never above the ceiling.
        #expect(Self.update(&policy, ["fast": 3000, "slow": 300], at: 2_100) == [.retarget(kbps: 225)])
        #expect(Self.update(&policy, ["fast": 3000, "slow": 305], at: 2_200) == [], "a 2 % change is not worth it")
        #expect(Self.update(&policy, ["fast": 3000, "slow": 900], at: 2_500) == [], "a raise waits")
        #expect(Self.update(&policy, ["fast": 3000, "slow": 900], at: 3_200) == [.retarget(kbps: 625)])
        // A link under the minimum: still the minimum a picture needs.
        #expect(Self.update(&policy, ["fast": 3000, "slow": 20], at: 3_300) == [.retarget(kbps: 100)])
    }

    @Test func aViewerNearTheFloorDoesNotFlap() {
        var policy = ReducedLayerPolicy<String>()
        _ = Self.update(&policy, ["fast": 3000, "slow": 990], at: 1_000)
        #expect(policy.layer(of: "slow") == .reduced)
        // Wandering around the floor (±10 %): it stays where it is until 1.25 × the floor.
        for (index, kbps) in [1010, 1090, 950, 1100, 1240].enumerated() {
            _ = Self.update(&policy, ["fast": 3000, "slow": kbps], at: 1_100 + UInt64(index) * 100)
            #expect(policy.layer(of: "slow") == .reduced, "at \(kbps) kb/s")
        }
        _ = Self.update(&policy, ["fast": 3000, "slow": 1250], at: 2_000)
        #expect(policy.layer(of: "slow") == .full)
        // And back only under the floor again.
        _ = Self.update(&policy, ["fast": 3000, "slow": 1050], at: 2_100)
        #expect(policy.layer(of: "slow") == .full)
    }

    @Test func stopsAFewSecondsAfterTheLastSlowViewerIsGone() {
        var policy = ReducedLayerPolicy<String>()
        #expect(Self.update(&policy, ["fast": 3000, "slow": 400], at: 1_000) == [.start(kbps: 300)])
        // The slow viewer leaves: everyone is on the full layer at once, the encoder lingers 5 s.
        #expect(Self.update(&policy, ["fast": 3000], at: 2_000) == [])
        #expect(policy.stopDue == at(7_000))
        #expect(policy.isRunning)
        #expect(Self.update(&policy, ["fast": 3000], at: 6_999) == [])
        #expect(Self.update(&policy, ["fast": 3000], at: 7_000) == [.stop])
        #expect(!policy.isRunning && policy.stopDue == nil)
        // A new slow viewer starts it again; one back within the linger keeps it (no stop, no new x264).
        #expect(Self.update(&policy, ["fast": 3000, "slow": 400], at: 8_000) == [.start(kbps: 300)])
        #expect(Self.update(&policy, ["fast": 3000], at: 9_000) == [])
        #expect(Self.update(&policy, ["fast": 3000, "slow": 395], at: 12_000) == [])
        #expect(Self.update(&policy, ["fast": 3000, "slow": 395], at: 15_000) == [], "no stop due any more")
        #expect(policy.stopDue == nil && policy.layer(of: "slow") == .reduced)
        #expect(policy.reset() == [.stop])
    }

    @Test func noSecondEncodingWhenEveryViewerIsSlow() {
        var policy = ReducedLayerPolicy<String>()
        // One viewer, or only slow ones: the one encoder follows the best of them down instead.
        #expect(Self.update(&policy, ["slow": 400], at: 1_000) == [])
        #expect(Self.update(&policy, ["slow": 400, "slower": 300], at: 1_100) == [])
        #expect(policy.layer(of: "slow") == .full)
        // A viewer with no estimate (no feedback) is not slow: it is on the full layer.
        #expect(Self.update(&policy, ["slow": 400], viewers: 2, at: 1_200) == [.start(kbps: 300)])
    }
}
