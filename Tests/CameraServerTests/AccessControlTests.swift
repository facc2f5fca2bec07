import RTCBase
import Testing
@testable import CameraServer

@Suite struct AccessControlTests {
    /// Every time below is virtual: the tests pass `now` in.
    let now = MonotonicTime(seconds: 100)

    /// A fresh directory with no password, its setup code made (as the daemon does at start).
    /// PBKDF2 at the format's minimum work except where the stored strength is what is tested: the
    /// same code runs, and the suite stays quick under qemu-user (arm64 stage).
    private func firstRun(iterations: Int = 1_000) throws -> (TemporaryDirectory, AccessControl, code: String) {
        let directory = TemporaryDirectory()
        let access = AccessControl(stateDirectory: directory.path, passwordIterations: iterations)
        let notice = try #require(access.prepareSetupCode())
        return (directory, access, notice.code)
    }

    @Test func firstRunChoosesAPasswordOnceWithTheSetupCodeAndItIsStoredAsPBKDF2() throws {
        let (directory, access, code) = try firstRun(iterations: AccessControl.iterations)
        #expect(!access.hasPassword)
        #expect(directory.read("setup-code") == code + "\n")
        #expect(throws: AccessControl.Failure.weakPassword("use at least 8 characters")) {
            _ = try access.setInitialPassword("short", setupCode: code, address: "a", now: now)
        }
        let token = try access.setInitialPassword("correct horse", setupCode: code.lowercased(), address: "a", now: now).cookie
        #expect(!directory.exists("setup-code"), "the used setup code is removed")
        #expect(access.isAuthenticated(cookieHeader: "a=b; \(AccessControl.cookieName)=\(token)", now: now))
        #expect(throws: AccessControl.Failure.passwordAlreadySet) {
            _ = try access.setInitialPassword("another one", setupCode: code, address: "a", now: now)
        }
        let stored = try #require(directory.read("password"))
        #expect(stored.hasPrefix("pbkdf2-sha256$100000$"))
        #expect(!stored.contains("correct horse"))
        // A restarted daemon reads it back and checks it; it makes no new setup code.
        let restarted = AccessControl(stateDirectory: directory.path)
        #expect(restarted.hasPassword)
        #expect(restarted.prepareSetupCode() == nil)
        #expect(throws: AccessControl.Failure.wrongPassword) { _ = try restarted.login(password: "wrong horse", address: "a", now: now) }
        let session = try restarted.login(password: "correct horse", address: "a", now: now).cookie
        #expect(restarted.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(session)", now: now))
        #expect(!restarted.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=forged", now: now))
        #expect(!restarted.isAuthenticated(cookieHeader: nil, now: now))
    }

    @Test func theFirstPasswordIsRefusedWithoutTheRightSetupCode() throws {
        let (directory, access, code) = try firstRun()
        #expect(throws: AccessControl.Failure.setupCodeRequired(whereToFind: access.setupCodeLocation)) {
            _ = try access.setInitialPassword("correct horse", setupCode: nil, address: "a", now: now)
        }
        #expect(access.setupCodeLocation.contains(directory.path + "/setup-code"))
        let wrong = code == "2222-2222-2222" ? "3333-3333-3333" : "2222-2222-2222"
        #expect(throws: AccessControl.Failure.wrongSetupCode(whereToFind: access.setupCodeLocation)) {
            _ = try access.setInitialPassword("correct horse", setupCode: wrong, address: "a", now: now)
        }
        #expect(!access.hasPassword)
        #expect(directory.exists("setup-code"))
        // The same code survives a restart (the file is read back), and it still works.
        let restarted = AccessControl(stateDirectory: directory.path)
        #expect(restarted.prepareSetupCode()?.code == code)
        _ = try restarted.setInitialPassword("correct horse", setupCode: code, address: "a", now: now)
    }

    @Test func wrongSetupCodesBackOffLikeLogins() throws {
        let (directory, access, code) = try firstRun()
        defer { withExtendedLifetime(directory) {} }
        for _ in 0..<AccessControl.failuresPerAddress {
            #expect(throws: AccessControl.Failure.self) {
                _ = try access.setInitialPassword("correct horse", setupCode: "ZZZZ-ZZZZ-ZZZ2", address: "198.51.100.1", now: now)
            }
        }
        #expect(throws: AccessControl.Failure.tooManyAttempts(retryAfterSeconds: 60)) {
            _ = try access.setInitialPassword("correct horse", setupCode: code, address: "198.51.100.1", now: now)
        }
        _ = try access.setInitialPassword("correct horse", setupCode: code, address: "198.51.100.1", now: now + .seconds(60))
    }

    @Test func aCopyOfTheSetupCodeGoesToAWritableBootPartitionOnly() throws {
        let state = TemporaryDirectory()
        let boot = TemporaryDirectory()
        let access = AccessControl(stateDirectory: state.path, setupCodeCopyDirectory: boot.path)
        let notice = try #require(access.prepareSetupCode())
        #expect(boot.read("rtcam-setup-code") == notice.code + "\n")
        #expect(access.setupCodeLocation.contains("boot partition"))
        _ = try access.setInitialPassword("correct horse", setupCode: notice.code, address: "a", now: now)
        #expect(!boot.exists("rtcam-setup-code"))

        let missing = AccessControl(stateDirectory: TemporaryDirectory().path, setupCodeCopyDirectory: "/nonexistent-rtcam-boot")
        let said = try #require(missing.prepareSetupCode())
        #expect(said.messages.contains { $0.contains("/nonexistent-rtcam-boot") && $0.contains("missing or not writable") })
    }

    @Test func setupCodesAreTwelveUnambiguousCharactersAndCompareLoosely() throws {
        var random = SystemRandomNumberGenerator()
        let code = SetupCode.random(using: &random)
        #expect(code.text.count == 14)
        #expect(code.text.split(separator: "-").map(\.count) == [4, 4, 4])
        #expect(!code.text.contains { "01ILO".contains($0) })
        #expect(code.matches(code.text.lowercased().replacingDashesWithSpaces))
        #expect(!code.matches(String(code.text.dropLast())))
        #expect(!code.matches(code.text + "2"))
        #expect(SetupCode(parsing: "abcd-efgh-jkmn")?.text == "ABCD-EFGH-JKMN")
        #expect(SetupCode(parsing: "ABCD-EFGH-JKM0") == nil)
        // 31^12 codes: about 59 bits.
        #expect(Double(SetupCode.alphabet.count).log2Times(12) >= 48)
    }

    @Test func failuresBackOffPerAddressExponentiallyAndTheOwnerIsExempt() throws {
        let (directory, access, code) = try firstRun()
        defer { withExtendedLifetime(directory) {} }
        let owner = try access.setInitialPassword("correct horse", setupCode: code, address: "o", now: now)
        for _ in 0..<AccessControl.failuresPerAddress {
            #expect(throws: AccessControl.Failure.wrongPassword) { _ = try access.login(password: "nope", address: "10.9.9.9", now: now) }
        }
        // Even the right password is refused while throttled; another address is not affected.
        #expect(throws: AccessControl.Failure.tooManyAttempts(retryAfterSeconds: 60)) {
            _ = try access.login(password: "correct horse", address: "10.9.9.9", now: now)
        }
        _ = try access.login(password: "correct horse", address: "10.9.9.8", now: now)
        // The owner's session is exempt, even from the throttled address.
        #expect(access.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(owner.cookie)", now: now))
        _ = try access.login(password: "correct horse", address: "10.9.9.9", exempt: true, now: now)
        // One more failure after the wait doubles it: 120 s, then 240 s, ... capped at an hour.
        #expect(throws: AccessControl.Failure.wrongPassword) { _ = try access.login(password: "nope", address: "10.9.9.9", now: now + .seconds(60)) }
        #expect(throws: AccessControl.Failure.tooManyAttempts(retryAfterSeconds: 120)) {
            _ = try access.login(password: "correct horse", address: "10.9.9.9", now: now + .seconds(60))
        }
        #expect(AccessControl.backoff(afterFailures: 7) == .seconds(240))
        #expect(AccessControl.backoff(afterFailures: 40) == AccessControl.longestBackoff)
        // Many addresses failing do not lock out a fresh one (no global limit any more).
        for index in 0..<50 { _ = try? access.login(password: "nope", address: "198.51.100.\(index)", now: now + .seconds(70)) }
        _ = try access.login(password: "correct horse", address: "fresh", now: now + .seconds(70))
        // A success forgets the address's failures.
        _ = try access.login(password: "correct horse", address: "10.9.9.9", now: now + .seconds(200))
        for _ in 0..<(AccessControl.failuresPerAddress - 1) {
            #expect(throws: AccessControl.Failure.wrongPassword) { _ = try access.login(password: "nope", address: "10.9.9.9", now: now + .seconds(201)) }
        }
    }

    @Test func sessionsEndAfterThirtyIdleMinutesOrAWeek() throws {
        let (directory, access, code) = try firstRun()
        defer { withExtendedLifetime(directory) {} }
        let cookie = "\(AccessControl.cookieName)=" + (try access.setInitialPassword("correct horse", setupCode: code, address: "a", now: now).cookie)
        // Used every 20 minutes it stays alive...
        var time = now
        for _ in 0..<5 {
            time = time + .seconds(20 * 60)
            #expect(access.isAuthenticated(cookieHeader: cookie, now: time))
        }
        // ...until 30 minutes pass unused.
        #expect(!access.isAuthenticated(cookieHeader: cookie, now: time + .seconds(30 * 60)))
        let second = try access.login(password: "correct horse", address: "a", now: now)
        let secondCookie = "\(AccessControl.cookieName)=\(second.cookie)"
        var used = now
        while used < now + .seconds(7 * 24 * 3600 - 600) {
            used = used + .seconds(25 * 60)
            _ = access.isAuthenticated(cookieHeader: secondCookie, now: used)
        }
        #expect(!access.isAuthenticated(cookieHeader: secondCookie, now: now + .seconds(7 * 24 * 3600)))
    }

    @Test func changingThePasswordOrLoggingOutEndsSessions() throws {
        let (directory, access, code) = try firstRun()
        defer { withExtendedLifetime(directory) {} }
        let first = try access.setInitialPassword("correct horse", setupCode: code, address: "a", now: now)
        let second = try access.login(password: "correct horse", address: "b", now: now)
        #expect(access.openSessionIDs(now: now) == [first.sessionID, second.sessionID])
        let mine = try access.changePassword(current: "correct horse", new: "battery staple", address: "a", exempt: true, now: now)
        #expect(access.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(mine.cookie)", now: now))
        #expect(!access.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(first.cookie)", now: now))
        #expect(!access.isAuthenticated(cookieHeader: "\(AccessControl.cookieName)=\(second.cookie)", now: now))
        #expect(access.openSessionIDs(now: now) == [mine.sessionID])
        access.logout(cookieHeader: "\(AccessControl.cookieName)=\(mine.cookie)")
        #expect(access.openSessionIDs(now: now).isEmpty)
        _ = try access.login(password: "battery staple", address: "a", now: now)
    }

    @Test func aCorruptPasswordFileLocksTheSettingsInsteadOfOpeningThem() throws {
        let directory = TemporaryDirectory()
        directory.write("password", "garbage")
        let access = AccessControl(stateDirectory: directory.path)
        #expect(access.hasPassword)
        #expect(access.loadProblem != nil)
        #expect(access.prepareSetupCode() == nil)
        #expect(throws: AccessControl.Failure.passwordAlreadySet) {
            _ = try access.setInitialPassword("correct horse", setupCode: "x", address: "a", now: now)
        }
        #expect(throws: AccessControl.Failure.wrongPassword) { _ = try access.login(password: "garbage", address: "a", now: now) }
    }

    @Test func cookieHasTheSafeAttributesAndSecureOverTLS() {
        let cookie = AccessControl.cookie(for: "abc")
        #expect(cookie.contains("HttpOnly"))
        #expect(cookie.contains("SameSite=Strict"))
        #expect(cookie.hasPrefix("rtcam_session=abc;"))
        #expect(!cookie.contains("Secure"))
        #expect(AccessControl.cookie(for: "abc", secure: true).hasSuffix("; Secure"))
        #expect(AccessControl.expiredCookie(secure: true).contains("Max-Age=0"))
    }
}

private extension String {
    var replacingDashesWithSpaces: String { String(map { $0 == "-" ? " " : $0 }) }
}

private extension Double {
    /// log2(self) × count, without Foundation: the bits of `count` symbols from an alphabet of `self`.
    func log2Times(_ count: Int) -> Double {
        var bits = 0.0
        var value = self
        while value >= 2 { value /= 2; bits += 1 }
        return (bits + (value - 1)) * Double(count)  // value - 1 ≤ log2(value) on [1, 2): a lower bound
    }
}
