import DTLS
import RTCBase

enum Fixtures {
    static let clientCertificate: DTLSCertificate = {
        var random = SeededRandom(seed: 0xC11E)
        return try! DTLSCertificate.generate(commonName: "viewer", random: &random)
    }()
    static let serverCertificate: DTLSCertificate = {
        var random = SeededRandom(seed: 0x5E7E)
        return try! DTLSCertificate.generate(commonName: "rtcam", random: &random)
    }()
}

/// A client and a server endpoint joined by an in-memory, zero-latency link on a virtual clock.
/// Datagrams can be dropped or rewritten per direction by their index in that direction.
final class LinkedPair {
    let client: DTLSEndpoint
    let server: DTLSEndpoint
    let start: MonotonicTime
    var clock: MonotonicTime
    var clientEvents: [DTLSEvent] = []
    var serverEvents: [DTLSEvent] = []
    /// Every datagram each side emitted, dropped ones included.
    var fromClient: [[UInt8]] = []
    var fromServer: [[UInt8]] = []
    var dropFromClient: (Int) -> Bool = { _ in false }
    var dropFromServer: (Int) -> Bool = { _ in false }
    var rewriteFromClient: (Int, [UInt8]) -> [UInt8] = { $1 }
    var rewriteFromServer: (Int, [UInt8]) -> [UInt8] = { $1 }

    init(clientProfiles: [SRTPProfile] = [.aeadAes128Gcm, .aes128CmHmacSha1_80],
         serverProfiles: [SRTPProfile] = [.aeadAes128Gcm, .aes128CmHmacSha1_80],
         clientExpects: [UInt8] = Fixtures.serverCertificate.fingerprintSHA256,
         serverExpects: [UInt8] = Fixtures.clientCertificate.fingerprintSHA256,
         seed: UInt64 = 42, start: MonotonicTime = MonotonicTime(seconds: 1000)) throws {
        var random = SeededRandom(seed: seed)
        self.start = start
        clock = start
        client = try DTLSEndpoint(role: .client, certificate: Fixtures.clientCertificate,
                                  remoteFingerprintSHA256: clientExpects, profiles: clientProfiles,
                                  now: start, random: &random)
        server = try DTLSEndpoint(role: .server, certificate: Fixtures.serverCertificate,
                                  remoteFingerprintSHA256: serverExpects, profiles: serverProfiles,
                                  now: start, random: &random)
    }

    var clientConnected: SRTPKeyingMaterial? { Self.keys(in: clientEvents) }
    var serverConnected: SRTPKeyingMaterial? { Self.keys(in: serverEvents) }
    var clientFailure: DTLSError? { Self.failure(in: clientEvents) }
    var serverFailure: DTLSError? { Self.failure(in: serverEvents) }
    var allDatagrams: [[UInt8]] { fromClient + fromServer }

    static func keys(in events: [DTLSEvent]) -> SRTPKeyingMaterial? {
        for case .connected(let keys) in events { return keys }
        return nil
    }

    static func failure(in events: [DTLSEvent]) -> DTLSError? {
        for case .failed(let error) in events { return error }
        return nil
    }

    private func finished(_ events: [DTLSEvent]) -> Bool {
        events.contains { if case .connected = $0 { return true }; if case .failed = $0 { return true }; return false }
    }

    /// Moves datagrams until neither side has anything to send, then jumps the clock to the next
    /// deadline; stops when both sides finished the handshake or `limit` of virtual time passed.
    func run(limit: Duration = .seconds(60)) {
        client.start(now: clock)
        server.start(now: clock)
        pump(limit: limit)
    }

    func pump(limit: Duration = .seconds(60)) {
        for _ in 0..<100_000 {
            var moved = false
            while let datagram = client.pollTransmit() {
                moved = true
                let index = fromClient.count
                fromClient.append(datagram)
                if !dropFromClient(index) { server.receive(rewriteFromClient(index, datagram), now: clock) }
            }
            while let datagram = server.pollTransmit() {
                moved = true
                let index = fromServer.count
                fromServer.append(datagram)
                if !dropFromServer(index) { client.receive(rewriteFromServer(index, datagram), now: clock) }
            }
            while let event = client.pollEvent() { clientEvents.append(event) }
            while let event = server.pollEvent() { serverEvents.append(event) }
            if moved { continue }
            if finished(clientEvents) && finished(serverEvents) { return }
            guard let next = earliest(client.nextDeadline, server.nextDeadline), next - start <= limit else { return }
            clock = max(clock, next)
            client.handleTimeout(now: clock)
            server.handleTimeout(now: clock)
        }
    }
}

func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { $0.isHexDigit })
    return stride(from: 0, to: digits.count - 1, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

/// DTLS record header (RFC 6347 §4.1): type(1) version(2) epoch(2) seq(6) length(2); the first
/// handshake message type follows at offset 13 (RFC 6347 §4.2.2).
enum Record {
    static let handshake: UInt8 = 22
    static let helloVerifyRequest: UInt8 = 3
    static func firstHandshakeType(_ datagram: [UInt8]) -> UInt8? {
        datagram.count > 13 && datagram[0] == handshake ? datagram[13] : nil
    }
}
