import DTLS
import NIOConcurrencyHelpers

/// Named viewing tokens for third-party WHEP players (`Authorization: Bearer <token>`,
/// draft-ietf-wish-whep / RFC 9725 §4.5). The value is shown once, at creation; only its SHA-256 is
/// kept, in `<state>/viewing-tokens` (one token a line: id, hash, name, tab-separated). A file that
/// cannot be read admits no token (it never opens viewing) and is kept as `.corrupt` on the next save.
final class ViewingTokens: @unchecked Sendable {
    enum Failure: Error, Equatable {
        case invalidName(String)
        case tooMany(limit: Int)
        case unknownToken
        case saveFailed(String)
    }

    struct Entry: Equatable, Sendable {
        var id: String
        var hash: [UInt8]
        var name: String
    }

    static let prefix = "rtcam_"
    static let limit = 100

    private let path: String
    private var entries: [Entry] = []
    private var keepCorruptFileOnSave = false
    private let lock = NIOLock()
    private(set) var loadProblem: String?

    init(stateDirectory: String) {
        path = stateDirectory + "/viewing-tokens"
        guard StateFiles.exists(path) else { return }
        guard let text = StateFiles.read(path), let parsed = Self.parse(text) else {
            loadProblem = "\(path) is unreadable or corrupt; no viewing token is accepted until a new one is made"
            keepCorruptFileOnSave = true
            return
        }
        entries = parsed
    }

    var list: [(id: String, name: String)] { lock.withLock { entries.map { ($0.id, $0.name) } } }

    /// Makes a token; returns its id and its value (shown once; only the hash is kept).
    func create(name rawName: String) throws(Failure) -> (id: String, value: String) {
        let name = try Self.checkedName(rawName)
        var random = SystemRandomNumberGenerator()
        let value = Self.prefix + Hex.encode(random.bytes(24))
        let entry = Entry(id: Hex.encode(random.bytes(6)), hash: MbedDigest.sha256(Array(value.utf8)), name: name)
        lock.lock()
        defer { lock.unlock() }
        guard entries.count < Self.limit else { throw .tooMany(limit: Self.limit) }
        try save(entries + [entry])
        return (entry.id, value)
    }

    func revoke(id: String) throws(Failure) {
        lock.lock()
        defer { lock.unlock() }
        guard entries.contains(where: { $0.id == id }) else { throw .unknownToken }
        try save(entries.filter { $0.id != id })
    }

    /// A token's name as kept: spaces and tabs trimmed, 1 to 64 characters, no control characters.
    static func checkedName(_ rawName: String) throws(Failure) -> String {
        let name = rawName.trimmingSpaces
        guard !name.isEmpty, name.count <= 64 else { throw .invalidName("a token's name is 1 to 64 characters") }
        guard name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw .invalidName("a token's name cannot hold control characters")
        }
        return name
    }

    /// The id of the token `value` is, or nil. Every stored hash is compared, in constant time each.
    func tokenID(forValue value: String) -> String? {
        guard value.hasPrefix(Self.prefix), value.utf8.count < 200 else { return nil }
        let hash = MbedDigest.sha256(Array(value.utf8))
        return lock.withLock {
            var found: String?
            for entry in entries where ConstantTime.equal(entry.hash, hash) { found = entry.id }
            return found
        }
    }

    /// The token in an `Authorization: Bearer <token>` header (RFC 6750 §2.1), if it is a valid one.
    func tokenID(authorizationHeader: String?) -> String? {
        guard let value = Self.bearerToken(in: authorizationHeader) else { return nil }
        return tokenID(forValue: value)
    }

    var ids: Set<String> { lock.withLock { Set(entries.map(\.id)) } }

    static func bearerToken(in header: String?) -> String? {
        guard let header else { return nil }
        let trimmed = header.trimmingSpaces
        guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
        let value = String(trimmed.dropFirst(7)).trimmingSpaces
        return value.isEmpty ? nil : value
    }

    // MARK: - File

    static func parse(_ text: String) -> [Entry]? {
        var result: [Entry] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3, !fields[0].isEmpty, let hash = Hex.decode(fields[1]), hash.count == 32 else { return nil }
            result.append(Entry(id: fields[0], hash: hash, name: fields[2]))
        }
        return result
    }

    static func serialize(_ entries: [Entry]) -> String {
        entries.map { "\($0.id)\t\(Hex.encode($0.hash))\t\($0.name)\n" }.joined()
    }

    /// Called with the lock held.
    private func save(_ newEntries: [Entry]) throws(Failure) {
        do {
            if keepCorruptFileOnSave, StateFiles.exists(path) { try StateFiles.rename(path, to: path + ".corrupt") }
            try StateFiles.writeAtomically(path, contents: Self.serialize(newEntries), mode: 0o600)
        } catch {
            throw .saveFailed("could not save the viewing tokens: \(error)")
        }
        keepCorruptFileOnSave = false
        loadProblem = nil
        entries = newEntries
    }
}
