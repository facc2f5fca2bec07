import DTLS
import NIOConcurrencyHelpers
import RTCBase

/// The settings password and login sessions. There is no default password: it is chosen on first
/// run. Stored as PBKDF2-HMAC-SHA256 (RFC 8018 §5.2, via mbedTLS) with a random salt; sessions are
/// random cookies (HttpOnly, SameSite=Strict); failed logins are rate limited per address and overall.
/// Thread-safe: PBKDF2 is slow on purpose, so logins run on a thread pool, never on the event loop;
/// the lock is never held while hashing.
final class AccessControl: @unchecked Sendable {
    enum Failure: Error, Equatable {
        case passwordAlreadySet
        case noPasswordSet
        case weakPassword(String)
        case wrongPassword
        case tooManyAttempts(retryAfterSeconds: Int)
    }

    static let cookieName = "rtcam_session"
    static let iterations = 100_000
    static let sessionLifetime: Duration = .seconds(7 * 24 * 3600)
    /// At most this many failed logins per address per window, and a few times that overall.
    static let failuresPerAddress = 5
    static let failuresOverall = 20
    static let failureWindow: Duration = .seconds(60)

    private let path: String
    private var stored: StoredPassword?
    private var sessions: [String: MonotonicTime] = [:]
    private var failures: [(address: String, time: MonotonicTime)] = []
    private let lock = NIOLock()
    private var _loadProblem: String?
    var loadProblem: String? { lock.withLock { _loadProblem } }

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
            // Constant time: every byte is compared whatever the first difference.
            var difference: UInt8 = 0
            for (a, b) in zip(candidate, hash) { difference |= a ^ b }
            return difference == 0 && candidate.count == hash.count
        }
    }

    init(stateDirectory: String) {
        path = stateDirectory + "/password"
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

    static func check(newPassword: String) throws(Failure) {
        let length = newPassword.count
        guard length >= 8 else { throw .weakPassword("use at least 8 characters") }
        guard length <= 256 else { throw .weakPassword("use at most 256 characters") }
    }

    /// First run only: choose the password. Returns a session so the person stays logged in.
    func setInitialPassword(_ password: String, now: MonotonicTime) throws -> String {
        guard !hasPassword else { throw Failure.passwordAlreadySet }
        try Self.check(newPassword: password)
        let entry = Self.hash(password)
        return try lock.withLock {
            guard stored == nil else { throw Failure.passwordAlreadySet }  // lost a race with another first visitor
            try save(entry)
            return newSession(now: now)
        }
    }

    /// Changes the password (the current one is checked) and returns a fresh session for the caller;
    /// every other session ends.
    func changePassword(current: String, new: String, address: String, now: MonotonicTime) throws -> String {
        try Self.check(newPassword: new)
        try verify(current, address: address, now: now)
        let entry = Self.hash(new)
        return try lock.withLock {
            try save(entry)
            sessions.removeAll()
            return newSession(now: now)
        }
    }

    /// Checks the password and opens a session (its cookie value).
    func login(password: String, address: String, now: MonotonicTime) throws(Failure) -> String {
        try verify(password, address: address, now: now)
        return lock.withLock { newSession(now: now) }
    }

    func logout(cookieHeader: String?) {
        guard let token = Self.sessionToken(in: cookieHeader) else { return }
        lock.withLock { sessions[token] = nil }
    }

    func isAuthenticated(cookieHeader: String?, now: MonotonicTime) -> Bool {
        guard let token = Self.sessionToken(in: cookieHeader) else { return false }
        return lock.withLock {
            guard let expiry = sessions[token] else { return false }
            guard now < expiry else {
                sessions[token] = nil
                return false
            }
            return true
        }
    }

    private func verify(_ password: String, address: String, now: MonotonicTime) throws(Failure) {
        let (current, throttled): (StoredPassword?, Failure?) = lock.withLock {
            if let failure = throttleFailure(address: address, now: now) { return (nil, failure) }
            return (stored, nil)
        }
        if let throttled { throw throttled }
        guard let current else { throw .noPasswordSet }
        guard current.matches(password) else {  // slow on purpose, outside the lock
            lock.withLock { failures.append((address, now)) }
            throw .wrongPassword
        }
    }

    static func cookie(for token: String) -> String {
        "\(cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(sessionLifetime.components.seconds)"
    }

    static let expiredCookie = "\(cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"

    // MARK: - Internals

    /// Called with the lock held: whether this address (or everyone) failed too often lately.
    private func throttleFailure(address: String, now: MonotonicTime) -> Failure? {
        failures.removeAll { now - $0.time >= Self.failureWindow }
        let mine = failures.filter { $0.address == address }
        let limited: [(address: String, time: MonotonicTime)]
        if mine.count >= Self.failuresPerAddress { limited = mine }
        else if failures.count >= Self.failuresOverall { limited = failures }
        else { return nil }
        let oldest = limited.map(\.time).min() ?? now
        let wait = Self.failureWindow - (now - oldest)
        return .tooManyAttempts(retryAfterSeconds: max(1, Int(wait.components.seconds) + 1))
    }

    private static func hash(_ password: String) -> StoredPassword {
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
    private func newSession(now: MonotonicTime) -> String {
        sessions = sessions.filter { $0.value > now }
        var random = SystemRandomNumberGenerator()
        let token = Hex.encode(random.bytes(32))
        sessions[token] = now + Self.sessionLifetime
        return token
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
