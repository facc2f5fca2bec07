import DTLS
import RTCBase
import Testing
@testable import CameraServer

@Suite struct HTTPSIdentityTests {
    @Test("the names a browser reaches the camera by: host, host.local, localhost, addresses but link-local ones")
    func names() {
        let names = HTTPSIdentity.names(hostName: "Garden-Cam", addresses: [
            .v4(192, 168, 1, 20), .v4(169, 254, 3, 4), .v4(127, 0, 0, 1),
            .v6([0xFE, 0x80] + Array(repeating: 0, count: 13) + [1]),
            .v6([0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [7]),
            .v4(192, 168, 1, 20),
        ])
        #expect(names == [.dns("garden-cam"), .dns("garden-cam.local"), .dns("localhost"), .ip([192, 168, 1, 20]),
                          .ip([127, 0, 0, 1]), .ip([0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [7])])
        #expect(HTTPSIdentity.names(hostName: "cam.local", addresses: []) == [.dns("cam.local"), .dns("localhost"), .ip([127, 0, 0, 1])])
    }

    @Test("made once, kept while the names stay, made anew when they change; the user's own files are taken as they are")
    func keptAndRenewed() throws {
        let directory = try TemporaryDirectory()
        let first = try HTTPSIdentity.load(stateDirectory: directory.path, certificatePath: nil, keyPath: nil,
                                           names: [.dns("cam"), .ip([10, 0, 0, 2])], logger: .init(label: "test"))
        #expect(first.origin.hasPrefix("self-signed, made now"))
        let again = try HTTPSIdentity.load(stateDirectory: directory.path, certificatePath: nil, keyPath: nil,
                                           names: [.dns("cam"), .ip([10, 0, 0, 2])], logger: .init(label: "test"))
        #expect(again.pem == first.pem && again.origin.hasPrefix("self-signed /"))
        let moved = try HTTPSIdentity.load(stateDirectory: directory.path, certificatePath: nil, keyPath: nil,
                                           names: [.dns("cam"), .ip([10, 0, 0, 3])], logger: .init(label: "test"))
        #expect(moved.pem != first.pem)
        var random = SystemRandomNumberGenerator()
        #expect(try TLSServerContext(pem: moved.pem, random: &random).fingerprintSHA256.count == 32)
        #expect(throws: (any Error).self) {
            try HTTPSIdentity.load(stateDirectory: directory.path, certificatePath: directory.path + "/missing.pem",
                                   keyPath: directory.path + "/missing.key", names: [], logger: .init(label: "test"))
        }
    }

    @Test("a key that does not belong to the certificate is refused with the reason")
    func mismatchedKey() throws {
        var random = SystemRandomNumberGenerator()
        let one = try DTLSCertificate.generate(subjectAltNames: [.dns("a")], random: &random).pem
        let other = try DTLSCertificate.generate(subjectAltNames: [.dns("b")], random: &random).pem
        /// Key PEM lines, then certificate PEM lines (DTLSCertificate's layout).
        func split(_ pem: String) -> (key: String, certificate: String) {
            let lines = pem.split(separator: "\n", omittingEmptySubsequences: false)
            let start = lines.firstIndex { $0 == "-----BEGIN CERTIFICATE-----" } ?? lines.endIndex
            return (lines[..<start].joined(separator: "\n") + "\n", lines[start...].joined(separator: "\n"))
        }
        let key = split(one).key
        let certificate = split(other).certificate
        #expect {
            try TLSServerContext(pem: key + certificate, random: &random)
        } throws: { error in
            if case let .invalidCertificate(reason) = error as? DTLSError { reason.hasPrefix("key does not match") } else { false }
        }
    }
}
