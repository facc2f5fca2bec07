#if canImport(Glibc)
import Glibc
#endif
import DTLS
import Logging
import NIOCore
import RTCBase

/// The HTTPS server's key and certificate: the user's own (`--tls-cert`, `--tls-key`), or a
/// self-signed ECDSA P-256 one made on first start and kept in the state directory (0600), for the
/// names a browser on the LAN reaches the camera by. When those names change (a new host name, a
/// new address from DHCP), a new certificate is made.
enum HTTPSIdentity {
    struct Loaded {
        /// Private key PEM and certificate chain PEM.
        var pem: String
        /// Where it came from, for the log: "own certificate /etc/…", "self-signed (made now)".
        var origin: String
    }

    static let certificateFile = "https-certificate.pem"
    /// The names the self-signed certificate was made for, one a line (compared at start).
    static let namesFile = "https-certificate.names"

    /// The host name, `<host name>.local` (mDNS), `localhost`, and every interface address that is not
    /// link-local (a browser reaches a camera by these).
    static func names(hostName: String, addresses: [TransportAddress.IP]) -> [SubjectAltName] {
        var names: [SubjectAltName] = []
        func add(_ name: SubjectAltName) { if !names.contains(name) { names.append(name) } }
        let host = hostName.lowercased()
        if !host.isEmpty, host != "localhost" {
            add(.dns(host))
            if !host.hasSuffix(".local") { add(.dns(host + ".local")) }
        }
        add(.dns("localhost"))
        for address in addresses {
            switch address {
            case let .v4(a, b, c, d):
                guard !(a == 169 && b == 254) else { continue }   // link-local (RFC 3927)
                add(.ip([a, b, c, d]))
            case let .v6(bytes):
                guard bytes.count == 16, !(bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80) else { continue }   // fe80::/10
                add(.ip(bytes))
            }
        }
        if !addresses.contains(.v4(127, 0, 0, 1)) { add(.ip([127, 0, 0, 1])) }
        return names
    }

    /// This machine's host name (gethostname), "rtcam" when it has none.
    static func hostName() -> String { RequestPolicy.machineHostName() ?? "rtcam" }

    /// The user's certificate and key, read and checked; or the self-signed one for `names`, made
    /// or renewed when missing, unreadable or made for other names.
    static func load(stateDirectory: String, certificatePath: String?, keyPath: String?, names: [SubjectAltName],
                     logger: Logger) throws -> Loaded {
        if certificatePath != nil || keyPath != nil {
            guard let certificatePath, let keyPath else {
                throw DaemonError.certificate("--tls-cert and --tls-key go together")
            }
            guard let chain = StateFiles.read(certificatePath) else {
                throw DaemonError.certificate("cannot read the TLS certificate \(certificatePath)")
            }
            guard let key = StateFiles.read(keyPath) else {
                throw DaemonError.certificate("cannot read the TLS key \(keyPath)")
            }
            return Loaded(pem: key + "\n" + chain, origin: "own certificate \(certificatePath)")
        }
        if let own = StateFiles.read(stateDirectory + "/" + HTTPSCertificateSwitch.ownFile) {
            return Loaded(pem: own, origin: "own certificate from the settings page")
        }
        let path = stateDirectory + "/" + certificateFile
        let namesPath = stateDirectory + "/" + namesFile
        let wanted = names.map(\.description).joined(separator: "\n") + "\n"
        if let pem = StateFiles.read(path), StateFiles.read(namesPath) == wanted {
            return Loaded(pem: pem, origin: "self-signed \(path)")
        }
        var random = SystemRandomNumberGenerator()
        let certificate: DTLSCertificate
        do {
            certificate = try DTLSCertificate.generate(subjectAltNames: names, random: &random)
        } catch {
            throw DaemonError.certificate("could not make the HTTPS certificate: \(error)")
        }
        do {
            try StateFiles.writeAtomically(path, contents: certificate.pem, mode: 0o600)
            try StateFiles.writeAtomically(namesPath, contents: wanted, mode: 0o644)
        } catch {
            logger.warning("could not save the HTTPS certificate to \(path): \(error) (a new one is made at every start)")
        }
        let listed = names.map(\.description).joined(separator: ", ")
        return Loaded(pem: certificate.pem, origin: "self-signed, made now for \(listed)")
    }
}

/// Which certificate the HTTPS listener presents, switched from the settings page: the user's own
/// (kept in the state directory, 0600) or the self-signed one. New connections take the new one at
/// once; open ones keep theirs. Used on the HTTPS listener's event loop only (mbedTLS's state is).
final class HTTPSCertificateSwitch {
    enum Failure: Error, CustomStringConvertible {
        /// --tls-cert/--tls-key were given: the command line decides.
        case fixedByCommandLine
        case invalid(String)
        case notSaved(String)

        var description: String {
            switch self {
            case .fixedByCommandLine: return "the certificate is set by --tls-cert and --tls-key; change it there"
            case let .invalid(reason): return reason
            case let .notSaved(reason): return "could not save the certificate: \(reason)"
            }
        }
    }

    static let ownFile = "https-own-certificate.pem"

    let context: NIOLoopBoundBox<TLSServerContext>
    private let stateDirectory: String
    private let names: [SubjectAltName]
    private let fixedByCommandLine: Bool
    private let logger: Logger
    /// The fingerprint of the certificate in use ("AB:CD:…").
    private(set) var fingerprint: String

    init(context: NIOLoopBoundBox<TLSServerContext>, stateDirectory: String, names: [SubjectAltName],
         fixedByCommandLine: Bool, logger: Logger) {
        self.context = context
        self.stateDirectory = stateDirectory
        self.names = names
        self.fixedByCommandLine = fixedByCommandLine
        self.logger = logger
        fingerprint = DTLSCertificate.sdpFingerprint(context.value.fingerprintSHA256)
    }

    /// Presents `chain` (PEM, leaf first) with `key` (PEM) from now on, and keeps them for restarts.
    func useOwn(chain: String, key: String) throws(Failure) -> String {
        guard !fixedByCommandLine else { throw .fixedByCommandLine }
        let pem = key + "\n" + chain
        try install(pem: pem, origin: "own certificate from the settings page")
        do {
            try StateFiles.writeAtomically(stateDirectory + "/" + Self.ownFile, contents: pem, mode: 0o600)
        } catch {
            throw .notSaved("\(error)")
        }
        return fingerprint
    }

    /// Back to the self-signed certificate for the camera's names.
    func useSelfSigned() throws(Failure) -> String {
        guard !fixedByCommandLine else { throw .fixedByCommandLine }
        do {
            try StateFiles.remove(stateDirectory + "/" + Self.ownFile)
            let identity = try HTTPSIdentity.load(stateDirectory: stateDirectory, certificatePath: nil, keyPath: nil,
                                                  names: names, logger: logger)
            try install(pem: identity.pem, origin: identity.origin)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .invalid("\(error)")
        }
        return fingerprint
    }

    private func install(pem: String, origin: String) throws(Failure) {
        var random = SystemRandomNumberGenerator()
        do {
            context.value = try TLSServerContext(pem: pem, random: &random)
        } catch {
            throw .invalid("\(error)")
        }
        fingerprint = DTLSCertificate.sdpFingerprint(context.value.fingerprintSHA256)
        logger.notice("HTTPS now presents the \(origin); certificate SHA-256 \(fingerprint)")
    }
}
