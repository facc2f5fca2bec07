import RTCBase
import STUN
@testable import TURN

/// Just enough of a TURN server (RFC 8656) in memory to answer `TURNClient`, with knobs for the
/// error paths: long-term credentials with a nonce that can change, queued Allocate errors, an
/// allocation that can be forgotten, and a record of what the relay sent to peers.
struct FakeTURNServer {
    static let clientAddress = TransportAddress(host: "198.51.100.7", port: 40000)!
    static let relayedAddress = TransportAddress(host: "192.0.2.1", port: 50000)!

    var realm = "rtcam.test"
    var nonce = "nonce-1"
    var users = ["alice": "wonderland"]
    /// The next Allocates are answered with these error codes, in order.
    var allocateErrors: [Int] = []
    /// Requests and indications are swallowed while true (a dead server or a lost path).
    var silent = false
    var maximumLifetime: UInt32 = 3600

    private(set) var allocated = false
    private(set) var lifetime: UInt32 = 0
    private(set) var permissions: Set<TransportAddress.IP> = []
    private(set) var channels: [UInt16: TransportAddress] = [:]
    /// Every request that arrived: method, authenticated or not, the nonce it carried.
    private(set) var requests: [(method: UInt16, authenticated: Bool, nonce: String?)] = []
    /// What the relay sent on to peers, and how it arrived (true: ChannelData).
    private(set) var relayedToPeers: [(peer: TransportAddress, payload: [UInt8], viaChannel: Bool)] = []

    func key(for username: String) -> [UInt8]? {
        users[username].map { MD5.digest(Array("\(username):\(realm):\($0)".utf8)) }
    }

    mutating func forgetAllocation() {
        allocated = false
        permissions = []
        channels = [:]
    }

    /// One message from the client; the answers to send back.
    mutating func handle(_ bytes: [UInt8]) -> [[UInt8]] {
        if silent { return [] }
        if let (number, payload) = ChannelData.parse(bytes) {
            if allocated, let peer = channels[number] { relayedToPeers.append((peer, Array(payload), true)) }
            return []
        }
        guard let request = try? STUNMessage(parsing: bytes) else { return [] }
        if request.messageClass == .indication {
            if request.method == TURNMethod.send, allocated, let peer = request.xorPeerAddress, let data = request.data,
               permissions.contains(peer.ip) {
                relayedToPeers.append((peer, data, false))
            }
            return []
        }
        guard request.messageClass == .request else { return [] }
        let authenticated = request.messageIntegrity != nil
        requests.append((request.method, authenticated, request.nonce))
        // RFC 8489 §9.2.4: credentials first, then the nonce, then the method.
        guard authenticated, let username = request.username, let key = key(for: username),
              STUNMessage.hasValidIntegrity(bytes, key: key) else {
            return [error(401, "Unauthorized", to: request, key: nil, withNonce: true)]
        }
        guard request.nonce == nonce, request.realm == realm else {
            return [error(438, "Stale Nonce", to: request, key: nil, withNonce: true)]
        }
        switch request.method {
        case TURNMethod.allocate:
            if !allocateErrors.isEmpty {
                return [error(allocateErrors.removeFirst(), "Refused", to: request, key: key)]
            }
            if allocated { return [error(437, "Allocation Mismatch", to: request, key: key)] }
            allocated = true
            lifetime = min(request.lifetimeSeconds ?? 600, maximumLifetime)
            let id = request.transactionID
            return [success(to: request, key: key, attributes: [
                .unknown(type: TURNAttributeType.xorRelayedAddress, value: STUNAttribute.xorAddressValue(Self.relayedAddress, transactionID: id)),
                .xorMappedAddress(Self.clientAddress), .lifetime(seconds: lifetime),
            ])]
        case TURNMethod.refresh:
            guard allocated else { return [error(437, "Allocation Mismatch", to: request, key: key)] }
            lifetime = min(request.lifetimeSeconds ?? 600, maximumLifetime)
            if lifetime == 0 { forgetAllocation() }
            return [success(to: request, key: key, attributes: [.lifetime(seconds: lifetime)])]
        case TURNMethod.createPermission:
            guard allocated else { return [error(437, "Allocation Mismatch", to: request, key: key)] }
            guard let peer = request.xorPeerAddress else { return [error(400, "Bad Request", to: request, key: key)] }
            permissions.insert(peer.ip)
            return [success(to: request, key: key, attributes: [])]
        case TURNMethod.channelBind:
            guard allocated else { return [error(437, "Allocation Mismatch", to: request, key: key)] }
            guard let peer = request.xorPeerAddress, let number = request.channelNumber,
                  ChannelData.channelNumbers.contains(number) else { return [error(400, "Bad Request", to: request, key: key)] }
            channels[number] = peer
            permissions.insert(peer.ip)
            return [success(to: request, key: key, attributes: [])]
        default:
            return [error(400, "Bad Request", to: request, key: key)]
        }
    }

    /// What the relay sends the client when `peer` sends `payload` to the relayed address: nothing
    /// without a permission, ChannelData on a bound channel, else a Data indication.
    func fromPeer(_ payload: [UInt8], peer: TransportAddress, transactionID: [UInt8]) -> [UInt8]? {
        guard allocated, permissions.contains(peer.ip) else { return nil }
        if let number = channels.first(where: { $0.value == peer })?.key {
            return ChannelData.frame(payload, channel: number, padded: false)
        }
        return STUNMessage(method: TURNMethod.data, messageClass: .indication, transactionID: transactionID,
                           attributes: [.xorPeerAddress(peer, transactionID: transactionID), .data(payload)])
            .serialized(integrityKey: nil, fingerprint: false)
    }

    private func success(to request: STUNMessage, key: [UInt8], attributes: [STUNAttribute]) -> [UInt8] {
        STUNMessage(method: request.method, messageClass: .successResponse, transactionID: request.transactionID,
                    attributes: attributes).serialized(integrityKey: key, fingerprint: true)
    }

    private func error(_ code: Int, _ reason: String, to request: STUNMessage, key: [UInt8]?, withNonce: Bool = false) -> [UInt8] {
        var attributes: [STUNAttribute] = [.errorCode(code: code, reason: reason)]
        if withNonce { attributes += [.realm(realm), .nonce(nonce)] }
        return STUNMessage(method: request.method, messageClass: .errorResponse, transactionID: request.transactionID,
                           attributes: attributes).serialized(integrityKey: key, fingerprint: true)
    }
}

/// The client and the fake server joined by a lossless, instant path on a virtual clock; every
/// action other than `.send` is logged with its time.
struct Harness {
    var client: TURNClient
    var server = FakeTURNServer()
    var now: MonotonicTime
    var events: [(time: MonotonicTime, action: TURNClient.Action)] = []
    /// Every message the client sent the server.
    var sent: [[UInt8]] = []

    init(transport: TURNClient.Transport = .udp, credentials: TURNCredentials = TURNCredentials(username: "alice", password: "wonderland"),
         configuration: TURNClient.Configuration = TURNClient.Configuration(), start: MonotonicTime = MonotonicTime(seconds: 1000)) {
        now = start
        client = TURNClient(server: TransportAddress(host: "192.0.2.1", port: 3478)!, transport: transport,
                            credentials: credentials, configuration: configuration, now: start, random: SeededRandom(seed: 19))
    }

    mutating func deliver(_ actions: [TURNClient.Action]) {
        var queue = actions
        while !queue.isEmpty {
            let action = queue.removeFirst()
            guard case let .send(bytes) = action else { events.append((now, action)); continue }
            sent.append(bytes)
            for answer in server.handle(bytes) {
                precondition(client.isFromServer(answer))
                queue += client.receive(answer, now: now)
            }
        }
    }

    /// Runs every deadline up to and including `end`.
    mutating func run(until end: MonotonicTime) {
        while let deadline = client.nextDeadline, deadline <= end {
            now = max(now, deadline)
            deliver(client.handleTimeout(now: now))
        }
        now = max(now, end)
    }

    mutating func call(_ body: (inout TURNClient, MonotonicTime) -> [TURNClient.Action]) {
        deliver(body(&client, now))
    }

    /// `.received` events, in order.
    var received: [([UInt8], TransportAddress)] {
        events.compactMap { if case let .received(bytes, from) = $0.action { (bytes, from) } else { nil } }
    }
}
