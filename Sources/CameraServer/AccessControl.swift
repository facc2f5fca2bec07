import DTLS
import NIOConcurrencyHelpers
import RTCBase

#if canImport(Glibc)
import Glibc
#endif

/// The settings password, the first-run setup code and login sessions. There is no default
/// password: it is chosen on first run, and only by someone who can read the setup code (the
/// journal, the state directory, or the SD card's boot partition). Stored as PBKDF2-HMAC-SHA256
/// (RFC 8018 §5.2, via mbedTLS) with a random salt; sessions are random cookies (HttpOnly,
/// SameSite=Strict, Secure over TLS) that end after `sessionIdleLimit` unused or `sessionLifetime`
/// in all. Failed logins and wrong setup codes back off per remote address, exponentially; a
/// request that already has a session is never throttled (the owner is not locked out).
/// Thread-safe: PBKDF2 is slow on purpose, so logins run on a thread pool, never on the event loop;
/// the lock is never held while hashing.
final class AccessControl: @unchecked Sendable {
    enum Failure: Error, Equatable {
        case passwordAlreadySet
        case noPasswordSet
        case weakPassword(String)
        case wrongPassword
        case tooManyAttempts(retryAfterSeconds: Int)
        /// The first password needs the setup code (`whereToFind` says where it is).
        case setupCodeRequired(whereToFind: String)
        case wrongSetupCode(whereToFind: String)
    }

    static let cookieName = "rtcam_session"
    static let iterations = 100_000
    static let sessionLifetime: Duration = .seconds(7 * 24 * 3600)
    /// A session not used for this long ends (besides the absolute `sessionLifetime`).
    static let sessionIdleLimit: Duration = .seconds(30 * 60)
    /// Free failures per address; then each further one doubles the wait, from `firstBackoff` up to `longestBackoff`.
    static let failuresPerAddress = 5
    static let firstBackoff: Duration = .seconds(60)
    static let longestBackoff: Duration = .seconds(3600)
    /// An address's failures are forgotten this long after its last one.
    static let failureMemory: Duration = .seconds(6 * 3600)
    /// At most this many addresses are remembered (the oldest are forgotten first).
    static let rememberedAddresses = 4096

    private let path: String
    private let passwordIterations: Int
    private let setupCodePaths: [String]
    private var stored: StoredPassword?
    private var sessions: [String: Session] = [:]
    private var failures: [String: FailureRecord] = [:]
    private var setupCode: SetupCode?
    private let lock = NIOLock()
    private var _loadProblem: String?
    var loadProblem: String? { lock.withLock { _loadProblem } }

    /// A login session: `id` names it to others (the hub remembers which session admitted a viewer)
    /// without revealing the cookie's secret value.
    private struct Session {
        var id: String
        var expiry: MonotonicTime
        var lastUsed: MonotonicTime
    }

    private struct FailureRecord {
        var count: Int
        var last: MonotonicTime
        var blockedUntil: MonotonicTime?
    }

    struct StoredPassword: Equatable {
        var iterations: Int
        var salt: [UInt8]
        var hash: [UInt8]

        /// "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>"
        var text: String { "pbkdf2-sha256$\(iterations)$\(Hex.encode(salt))$\(Hex.encode(hash))" }

        init(iterations: Int, salt: [UInt8], hash: [UInt8]) {
            self.iterations = iterations
            self.salt = salt
            self.hash = hash
        }

        init?(text: String) {
            let parts = text.split(separator: "$").map(String.init)
            guard parts.count == 4, parts[0] == "pbkdf2-sha256", let iterations = Int(parts[1]),
                  (1_000...10_000_000).contains(iterations),
                  let salt = Hex.decode(parts[2]), let hash = Hex.decode(parts[3]), salt.count >= 8, hash.count == 32
            else { return nil }
            self.init(iterations: iterations, salt: salt, hash: hash)
        }

        func matches(_ password: String) -> Bool {
            let candidate = MbedDigest.pbkdf2HMACSHA256(password: Array(password.utf8), salt: salt,
                                                        iterations: iterations, length: hash.count)
            return ConstantTime.equal(candidate, hash)
        }
    }

    /// What happened to the setup code at start, for the journal (the daemon logs each line).
    struct SetupCodeNotice {
        var code: String
        var messages: [String]
    }

    /// `setupCodeCopyDirectory`: where a copy of the setup code goes too, if it exists and is
    /// writable (the daemon passes the Raspberry Pi image's boot partition, /boot/firmware).
    /// `passwordIterations`: PBKDF2's work for a new password (tests that are not about the hash's
    /// strength use the format's minimum, 1,000: under qemu-user a 100,000-iteration hash takes seconds).
    init(stateDirectory: String, setupCodeCopyDirectory: String? = nil, passwordIterations: Int = AccessControl.iterations) {
        self.passwordIterations = passwordIterations
        path = stateDirectory + "/password"
        var codePaths = [stateDirectory + "/setup-code"]
        if let setupCodeCopyDirectory { codePaths.append(setupCodeCopyDirectory + "/rtcam-setup-code") }
        setupCodePaths = codePaths
        guard StateFiles.exists(path) else { return }
        if let text = StateFiles.read(path), let parsed = StoredPassword(text: text.trimmingSpaces.trimmingNewlines) {
            stored = parsed
        } else {
            // Never fall back to "no password" silently: that would let anyone set a new one.
            _loadProblem = "\(path) is unreadable or corrupt; the settings stay locked until it is removed by hand"
            stored = StoredPassword(iterations: 1_000, salt: Array(repeating: 0, count: 8), hash: Array(repeating: 0, count: 32))
        }
    }

    var hasPassword: Bool { lock.withLock { stored != nil } }

    /// Where a person finds the setup code (for the error message and the page).
    var setupCodeLocation: String {
        lock.withLock { setupCodeLocationLocked }
    }

    private var setupCodeLocationLocked: String {
        var places = "the journal (journalctl -u rtcam) and the file \(setupCodePaths[0])"
        if let copy = setupCodePaths.dropFirst().first, StateFiles.exists(copy) {
            places += ", and on the SD card's boot partition as rtcam-setup-code"
        }
        return places
    }

    /// While no password exists: the one-time code the first password needs, kept across restarts
    /// in `<state>/setup-code` (0600) and copied to the boot partition when it is writable (best effort).
    /// Nil when a password is set (a preset hash from the image skips the code).
    func prepareSetupCode() -> SetupCodeNotice? {
        lock.withLock {
            guard stored == nil else { return nil }
            var messages: [String] = []
            let code: SetupCode
            if let text = StateFiles.read(setupCodePaths[0], maximumSize: 256), let saved = SetupCode(parsing: text) {
                code = saved
            } else {
                var random = SystemRandomNumberGenerator()
                code = SetupCode.random(using: &random)
                do {
                    try StateFiles.writeAtomically(setupCodePaths[0], contents: code.text + "\n", mode: 0o600)
                } catch {
                    messages.append("could not save the setup code to \(setupCodePaths[0]): \(error)")
                }
            }
            for copy in setupCodePaths.dropFirst() {
                let directory = String(copy[..<(copy.lastIndex(of: "/") ?? copy.startIndex)])
                guard !directory.isEmpty, StateFiles.isWritableDirectory(directory) else {
                    messages.append("no copy of the setup code on the boot partition (\(directory) is missing or not writable)")
                    continue
                }
                do {
                    try StateFiles.writeAtomically(copy, contents: code.text + "\n", mode: 0o600)
                    messages.append("setup code copied to \(copy) (best effort: the boot partition may be FAT, readable by anyone with the SD card)")
                } catch {
                    messages.append("could not copy the setup code to \(copy): \(error)")
                }
            }
            setupCode = code
            return SetupCodeNotice(code: code.text, messages: messages)
        }
    }

    static func check(newPassword: String) throws(Failure) {
        let length = newPassword.count
        guard length >= 8 else { throw .weakPassword("use at least 8 characters") }
        guard length <= 256 else { throw .weakPassword("use at most 256 characters") }
    }

    /// First run only: choose the password, with the setup code. Returns a session so the person
    /// stays logged in; the setup code files are removed.
    func setInitialPassword(_ password: String, setupCode candidate: String?, address: String,
                            now: MonotonicTime) throws -> (cookie: String, sessionID: String) {
        guard !hasPassword else { throw Failure.passwordAlreadySet }
        try checkSetupCode(candidate, address: address, now: now)
        try Self.check(newPassword: password)
        let entry = Self.hash(password, iterations: passwordIterations)
        return try lock.withLock {
            guard stored == nil else { throw Failure.passwordAlreadySet }  // lost a race with another first visitor
            try save(entry)
            setupCode = nil
            for file in setupCodePaths { unlink(file) }
            return newSession(now: now)
        }
    }

    private func checkSetupCode(_ candidate: String?, address: String, now: MonotonicTime) throws(Failure) {
        let (code, throttled, location): (SetupCode?, Failure?, String) = lock.withLock {
            (setupCode, throttleFailure(address: address, now: now), setupCodeLocationLocked)
        }
        if let throttled { throw throttled }
        guard let candidate, !candidate.isEmpty else { throw .setupCodeRequired(whereToFind: location) }
        guard let code, code.matches(candidate) else {
            lock.withLock { recordFailure(address: address, now: now) }
            throw .wrongSetupCode(whereToFind: location)
        }
    }

    /// Changes the password (the current one is checked) and returns a fresh session for the caller;
    /// every other session ends.
    func changePassword(current: String, new: String, address: String, exempt: Bool,
                        now: MonotonicTime) throws -> (cookie: String, sessionID: String) {
        try Self.check(newPassword: new)
        try verify(current, address: address, exempt: exempt, now: now)
        let entry = Self.hash(new, iterations: passwordIterations)
        return try lock.withLock {
            try save(entry)
            sessions.removeAll()
            return newSession(now: now)
        }
    }

    /// Checks the password and opens a session (its cookie value and its id).
    func login(password: String, address: String, exempt: Bool = false,
               now: MonotonicTime) throws(Failure) -> (cookie: String, sessionID: String) {
        try verify(password, address: address, exempt: exempt, now: now)
        return lock.withLock { newSession(now: now) }
    }

    func logout(cookieHeader: String?) {
        guard let token = Self.sessionToken(in: cookieHeader) else { return }
        lock.withLock { sessions[token] = nil }
    }

    func isAuthenticated(cookieHeader: String?, now: MonotonicTime) -> Bool {
        session(cookieHeader: cookieHeader, now: now) != nil
    }

    /// The id of the live session the cookie names (its use counts: the idle clock restarts), or nil.
    func session(cookieHeader: String?, now: MonotonicTime) -> String? {
        guard let token = Self.sessionToken(in: cookieHeader) else { return nil }
        return lock.withLock {
            guard let session = sessions[token] else { return nil }
            guard now < session.expiry, now - session.lastUsed < Self.sessionIdleLimit else {
                sessions[token] = nil
                return nil
            }
            sessions[token]?.lastUsed = now
            return session.id
        }
    }

    /// The ids of sessions not ended by logout, a password change or their absolute lifetime. A viewer
    /// admitted by a session keeps watching while its session is in this set (watching makes no
    /// HTTP requests, so the idle limit does not apply to it).
    func openSessionIDs(now: MonotonicTime) -> Set<String> {
        lock.withLock { Set(sessions.values.filter { now < $0.expiry }.map(\.id)) }
    }

    private func verify(_ password: String, address: String, exempt: Bool, now: MonotonicTime) throws(Failure) {
        let (current, throttled): (StoredPassword?, Failure?) = lock.withLock {
            if !exempt, let failure = throttleFailure(address: address, now: now) { return (nil, failure) }
            return (stored, nil)
        }
        if let throttled { throw throttled }
        guard let current else { throw .noPasswordSet }
        guard current.matches(password) else {  // slow on purpose, outside the lock
            if !exempt { lock.withLock { recordFailure(address: address, now: now) } }
            throw .wrongPassword
        }
        if !exempt { lock.withLock { failures[address] = nil } }
    }

    static func cookie(for token: String, secure: Bool = false) -> String {
        "\(cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(sessionLifetime.components.seconds)"
            + (secure ? "; Secure" : "")
    }

    static func expiredCookie(secure: Bool = false) -> String {
        "\(cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" + (secure ? "; Secure" : "")
    }

    // MARK: - Internals

    /// Called with the lock held: whether this address must wait before trying again.
    private func throttleFailure(address: String, now: MonotonicTime) -> Failure? {
        guard let record = failures[address] else { return nil }
        if now - record.last >= Self.failureMemory {
            failures[address] = nil
            return nil
        }
        guard let until = record.blockedUntil, now < until else { return nil }
        let wait = until - now
        let seconds = Int(wait.components.seconds) + (wait.components.attoseconds > 0 ? 1 : 0)
        return .tooManyAttempts(retryAfterSeconds: max(1, seconds))
    }

    /// Called with the lock held: one more failure from `address`; past the free ones, the wait doubles each time.
    private func recordFailure(address: String, now: MonotonicTime) {
        if failures[address] == nil, failures.count >= Self.rememberedAddresses {
            failures = failures.filter { now - $0.value.last < Self.failureMemory }
            if failures.count >= Self.rememberedAddresses,
               let oldest = failures.min(by: { $0.value.last < $1.value.last })?.key {
                failures[oldest] = nil
            }
        }
        var record = failures[address] ?? FailureRecord(count: 0, last: now, blockedUntil: nil)
        record.count += 1
        record.last = now
        if record.count >= Self.failuresPerAddress {
            record.blockedUntil = now + Self.backoff(afterFailures: record.count)
        }
        failures[address] = record
    }

    /// The wait after `count` failures in a row: `firstBackoff` at the limit, doubling, capped.
    static func backoff(afterFailures count: Int) -> Duration {
        let doublings = min(max(0, count - failuresPerAddress), 16)
        let wait = firstBackoff * (1 << doublings)
        return wait < longestBackoff ? wait : longestBackoff
    }

    private static func hash(_ password: String, iterations: Int) -> StoredPassword {
        var random = SystemRandomNumberGenerator()
        let salt = random.bytes(16)
        let hash = MbedDigest.pbkdf2HMACSHA256(password: Array(password.utf8), salt: salt,
                                               iterations: iterations, length: 32)
        return StoredPassword(iterations: iterations, salt: salt, hash: hash)
    }

    /// Called with the lock held.
    private func save(_ entry: StoredPassword) throws {
        try StateFiles.writeAtomically(path, contents: entry.text + "\n", mode: 0o600)
        stored = entry
        _loadProblem = nil
    }

    /// Called with the lock held.
    private func newSession(now: MonotonicTime) -> (cookie: String, sessionID: String) {
        sessions = sessions.filter { now < $0.value.expiry }
        var random = SystemRandomNumberGenerator()
        let token = Hex.encode(random.bytes(32))
        let id = Hex.encode(random.bytes(8))
        sessions[token] = Session(id: id, expiry: now + Self.sessionLifetime, lastUsed: now)
        return (token, id)
    }

    static func sessionToken(in cookieHeader: String?) -> String? {
        guard let cookieHeader else { return nil }
        for pair in cookieHeader.split(separator: ";") {
            let trimmed = pair.trimmingSpaces
            if trimmed.hasPrefix(cookieName + "=") {
                let value = String(trimmed.dropFirst(cookieName.count + 1))
                return value.isEmpty ? nil : value
            }
        }
        return nil
    }
}

/// Comparisons whose time does not depend on where the inputs differ.
enum ConstantTime {
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

enum Hex {
    static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }

    static func decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(characters.count / 2)
        var index = 0
        while index < characters.count {
            guard let high = value(characters[index]), let low = value(characters[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func value(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return character - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension String {
    var trimmingNewlines: String {
        var slice = Substring(self)
        while let last = slice.last, last == "\n" || last == "\r" { slice = slice.dropLast() }
        return String(slice)
    }
}
