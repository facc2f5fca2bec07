import RTCBase
import Testing
@testable import CameraServer

@Suite struct AccessControlTests {
    let now = MonotonicTime(seconds: 100)

    @Test func firstRunChoosesAPasswordOnceAndItIsStoredAsPBKDF2() throws {
        let directory = TemporaryDirectory()
        let access = AccessControl(stateDirectory: directory.path)
        #expect(!access.hasPassword)
        #expect(throws: AccessControl.Failure.weakPassword("use at least 8 characters")) {
            _ = try access.setInitialPassword("short", now: now)
        }
        let token = try access.setInitialPassword("correct horse", now: now)
        #expect(access.isAuthenticated(cookieHeader: "a=b; \(AccessControl.cookieName)=\(token)", now: now))
        #expect(throws: AccessControl.Failure.passwordAlreadySet) { _ = try access.setInitialPassword("another one", now: now) }
        let stored = try #require(directory.read("password"))
        #expect(stored.hasPrefix("pbkdf2-sha256$100000$"))
        #expect(!stored.contains("correct horse"))
        // A restarted daemon reads it back and checks it.
        let restarted = AccessControl(stateDirectory: directory.path)
        #expect(restarted.hasPassword)
        #expect(throws: AccessControl.Failure.wrongPassword) { _ = try restarted.login(password: "wrong horse", address: "a", now: now) }
        let session = try restarted.login(password: "correct horse", address: "a", now: now)
        #expect(restarted.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(session)", now: now))
        #expect(!restarted.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(session)", now: now + .seconds(8 * 24 * 3600)))
        #expect(!restarted.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=forged", now: now))
        #expect(!restarted.isAuthenticated(cookieHeader: nil, now: now))
    }

    @Test func rateLimitsFailedLoginsPerAddressAndOverall() throws {
        let directory = TemporaryDirectory()
        let access = AccessControl(stateDirectory: directory.path)
        _ = try access.setInitialPassword("correct horse", now: now)
        for _ in 0..<AccessControl.failuresPerAddress {
            #expect(throws: AccessControl.Failure.wrongPassword) { _ = try access.login(password: "nope", address: "10.9.9.9", now: now) }
        }
        // Even the right password is refused while throttled; another address is not affected.
        #expect(throws: AccessControl.Failure.tooManyAttempts(retryAfterSeconds: 61)) {
            _ = try access.login(password: "correct horse", address: "10.9.9.9", now: now)
        }
        _ = try access.login(password: "correct horse", address: "10.9.9.8", now: now)
        // After the window the address may try again.
        _ = try access.login(password: "correct horse", address: "10.9.9.9", now: now + .seconds(61))
        // Many addresses together hit the overall limit.
        for index in 0..<AccessControl.failuresOverall {
            _ = try? access.login(password: "nope", address: "198.51.100.\(index)", now: now + .seconds(70))
        }
        #expect(throws: AccessControl.Failure.self) { _ = try access.login(password: "correct horse", address: "fresh", now: now + .seconds(70)) }
    }

    @Test func changingThePasswordEndsOtherSessions() throws {
        let directory = TemporaryDirectory()
        let access = AccessControl(stateDirectory: directory.path)
        let first = try access.setInitialPassword("correct horse", now: now)
        let second = try access.login(password: "correct horse", address: "b", now: now)
        let mine = try access.changePassword(current: "correct horse", new: "battery staple", address: "a", now: now)
        #expect(access.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(mine)", now: now))
        #expect(!access.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(first)", now: now))
        #expect(!access.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(second)", now: now))
        _ = try access.login(password: "battery staple", address: "a", now: now)
    }

    @Test func aCorruptPasswordFileLocksTheSettingsInsteadOfOpeningThem() throws {
        let directory = TemporaryDirectory()
        directory.write("password", "garbage")
        let access = AccessControl(stateDirectory: directory.path)
        #expect(access.hasPassword)
        #expect(access.loadProblem != nil)
        #expect(throws: AccessControl.Failure.passwordAlreadySet) { _ = try access.setInitialPassword("correct horse", now: now) }
        #expect(throws: AccessControl.Failure.wrongPassword) { _ = try access.login(password: "garbage", address: "a", now: now) }
    }

    @Test func cookieHasTheSafeAttributes() {
        let cookie = AccessControl.cookie(for: "abc")
        #expect(cookie.contains("HttpOnly"))
        #expect(cookie.contains("SameSite=Strict"))
        #expect(cookie.hasPrefix("rtcam_session=abc;"))
    }
}
