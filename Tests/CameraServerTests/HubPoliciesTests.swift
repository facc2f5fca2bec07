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
