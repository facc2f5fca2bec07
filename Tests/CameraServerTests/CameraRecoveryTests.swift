import RTCBase
import Testing
@testable import CameraServer

/// A camera unplugged and back (issue 20): the reopen schedule, the log lines and the status, on a
/// virtual clock.
@Suite struct CameraRecoveryTests {
    static func at(_ milliseconds: UInt64) -> MonotonicTime { MonotonicTime(milliseconds: milliseconds) }

    static func due(_ actions: [CameraRecovery.Action]) -> MonotonicTime? {
        for case let .tryReopen(at) in actions { return at }
        return nil
    }

    static func logs(_ actions: [CameraRecovery.Action]) -> [String] {
        actions.compactMap { if case let .log(line) = $0 { return line } else { return nil } }
    }

    @Test("attempts back off 100, 200, 400, 800 ms, then once a second")
    func backoff() {
        let recovery = CameraRecovery()
        #expect((0 ..< 7).map { recovery.delay(beforeAttempt: $0) } ==
                [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1), .seconds(1)])
        #expect(recovery.delay(beforeAttempt: 10_000) == .seconds(1))
    }

    @Test("a loss logs once and schedules the first attempt; failures follow the backoff")
    func lossAndAttempts() {
        var recovery = CameraRecovery()
        let lost = recovery.lost("deviceGone", at: Self.at(1_000))
        #expect(Self.logs(lost).count == 1)
        #expect(Self.logs(lost)[0].contains("camera lost: deviceGone"))
        #expect(Self.due(lost) == Self.at(1_100))
        #expect(recovery.isLost)
        var now: UInt64 = 1_100
        var dues: [UInt64] = []
        for _ in 0 ..< 6 {
            let actions = recovery.attemptFailed("open(ENOENT)", at: Self.at(now))
            now = Self.due(actions)!.nanoseconds / 1_000_000
            dues.append(now)
        }
        #expect(dues == [1_300, 1_700, 2_500, 3_500, 4_500, 5_500])
        #expect(recovery.failedAttempts == 6)
        #expect(recovery.lostSeconds(at: Self.at(5_500)) == 4.5)
    }

    @Test("a camera back within a second of its return: whenever it returns, the next attempt is at most 1 s later")
    func backWithinASecond() {
        for returnAt in stride(from: UInt64(0), through: 20_000, by: 37) {
            var recovery = CameraRecovery()
            var actions = recovery.lost("deviceGone", at: Self.at(0))
            while let due = Self.due(actions), due < Self.at(returnAt) {
                actions = recovery.attemptFailed("open(ENOENT)", at: due)
            }
            let reopenedAt = Self.due(actions)!
            #expect(reopenedAt - Self.at(returnAt) <= .seconds(1))
            let back = recovery.reopened(at: reopenedAt)
            #expect(!recovery.isLost)
            #expect(Self.logs(back).count == 1)
            #expect(recovery.lastOutage == reopenedAt - Self.at(0))
        }
    }

    @Test("a camera gone for an hour logs its failures once a minute, not every attempt")
    func quietWhileGone() {
        var recovery = CameraRecovery()
        var lines = Self.logs(recovery.lost("deviceGone", at: Self.at(0)))
        var due = Self.due(recovery.lost("deviceGone", at: Self.at(0)))!   // a second report changes nothing but the schedule
        #expect(recovery.losses == 1)
        while due < Self.at(3_600_000) {
            let actions = recovery.attemptFailed("open(ENOENT)", at: due)
            lines += Self.logs(actions)
            due = Self.due(actions)!
        }
        // ~3,600 attempts: the first failure, then every 60th.
        #expect(recovery.failedAttempts > 3_500)
        #expect(lines.count == 1 + 1 + recovery.failedAttempts / 60)
        #expect(lines[1].contains("still lost after 0.1 s (1 attempts): open(ENOENT)"))
    }

    @Test("the status says lost, for how long and why, then streaming with the outage; losses count")
    func status() {
        var recovery = CameraRecovery()
        #expect(recovery.status(at: Self.at(0)) == CameraRecoveryStatus(state: "streaming", lostSeconds: 0, losses: 0, failedReopens: 0))
        _ = recovery.lost("deviceGone", at: Self.at(10_000))
        _ = recovery.attemptFailed("open(ENOENT)", at: Self.at(10_100))
        #expect(recovery.status(at: Self.at(12_500)) ==
                CameraRecoveryStatus(state: "lost", lostSeconds: 2.5, losses: 1, failedReopens: 1, reason: "open(ENOENT)"))
        #expect(Self.logs(recovery.reopened(at: Self.at(13_000))) == ["camera back after 3.0 s (2 attempts)"])
        #expect(recovery.status(at: Self.at(14_000)) ==
                CameraRecoveryStatus(state: "streaming", lostSeconds: 0, losses: 1, failedReopens: 1, lastOutageSeconds: 3))
        _ = recovery.lost("deviceGone", at: Self.at(20_000))
        #expect(recovery.status(at: Self.at(20_000)).losses == 2)
        // Reopened while streaming, or a failure reported while streaming: nothing happens.
        var streaming = CameraRecovery()
        #expect(streaming.reopened(at: Self.at(1)) == [])
        #expect(streaming.attemptFailed("x", at: Self.at(1)) == [])
        #expect(streaming.failedAttempts == 0)
    }
}
