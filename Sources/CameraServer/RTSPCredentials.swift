import NIOConcurrencyHelpers
import RTSP

/// The secrets RTSP's Digest authentication accepts (RFC 2617: the server needs HA1 =
/// MD5("rtcam":realm:secret) of each, which the PBKDF2 password hash and the tokens' SHA-256 cannot
/// give): the viewing password's HA1, recorded when it is set, changed or logged in with, and each
/// viewing token's, recorded when it is made. Kept in `rtsp-digest` (0600) in the state directory.
/// Tokens made before this existed work for RTSP once made again. MD5 HA1 is weaker than PBKDF2 for
/// a guessable password: tokens (24 random bytes) are the credential to give an NVR.
final class RTSPCredentials: @unchecked Sendable {  // state under `lock`
    static let username = "rtcam"
    private let path: String
    private let lock = NIOLock()
    private var passwordHA1: String?
    private var tokenHA1s: [String: String] = [:]
    let authenticator = DigestAuthenticator(realm: "rtcam")

    init(stateDirectory: String) {
        path = stateDirectory + "/rtsp-digest"
        for line in (StateFiles.read(path) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == "password" { passwordHA1 = String(fields[1]) }
            if fields.count == 3, fields[0] == "token" { tokenHA1s[String(fields[1])] = String(fields[2]) }
        }
    }

    /// The HA1s that may view now, for tokens that still exist (`tokenIDs`).
    func accepted(tokenIDs: Set<String>, includePassword: Bool) -> [String] {
        lock.withLock {
            tokenHA1s.filter { tokenIDs.contains($0.key) }.map(\.value).sorted() + (includePassword ? passwordHA1.map { [$0] } ?? [] : [])
        }
    }

    func setPassword(_ password: String) {
        let ha1 = authenticator.ha1(username: Self.username, secret: password)
        lock.withLock {
            guard passwordHA1 != ha1 else { return }
            passwordHA1 = ha1
            save()
        }
    }

    func setToken(id: String, value: String) {
        let ha1 = authenticator.ha1(username: Self.username, secret: value)
        lock.withLock {
            tokenHA1s[id] = ha1
            save()
        }
    }

    func removeToken(id: String) {
        lock.withLock {
            guard tokenHA1s.removeValue(forKey: id) != nil else { return }
            save()
        }
    }

    /// Under the lock.
    private func save() {
        var text = passwordHA1.map { "password \($0)\n" } ?? ""
        for (id, ha1) in tokenHA1s.sorted(by: { $0.key < $1.key }) { text += "token \(id) \(ha1)\n" }
        try? StateFiles.writeAtomically(path, contents: text, mode: 0o600)
    }
}
