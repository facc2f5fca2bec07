import RTCBase
import STUN

/// One allocation on a TURN server (RFC 8656), sans-IO: the owner sends what it is told to the
/// server (datagrams over UDP, stream bytes over TCP: `TURNStreamFramer` splits what comes back),
/// hands over every message the server sends (`isFromServer`), and calls `handleTimeout` at
/// `nextDeadline`. The allocation is asked for at the first `handleTimeout`, with long-term
/// credentials (RFC 8489 §9.2: the first Allocate goes without, the 401 names realm and nonce),
/// refreshed before it expires, and asked for again when lost. Peers get permissions
/// (`createPermission`, refreshed every 4 minutes) and channels (`bindChannel`, refreshed every
/// 9 minutes); `wrap` frames data for a peer (ChannelData once a channel is bound, else a Send
/// indication), and data from peers comes back as `.received`.
public struct TURNClient: Sendable {
    public enum Transport: Equatable, Sendable {
        case udp, tcp
    }

    public struct Configuration: Sendable {
        /// Over UDP, RFC 8489 §6.2.1: RTO 500 ms doubled per retransmission, Rc = 7 transmissions,
        /// then Rm = 16 × RTO for the last answer (39.5 s in all).
        public var retransmissionTimeout: Duration = .milliseconds(500)
        public var maximumTransmissions = 7
        public var lastResponseWaitFactor = 16
        /// Over TCP a request is sent once and failed after this long (RFC 8489 §6.2.2: Ti = 39.5 s).
        public var reliableTransactionTimeout: Duration = .milliseconds(39_500)
        /// Asked for in Allocate and Refresh (RFC 8656 §2.2: the default is 10 minutes).
        public var requestedLifetime: Duration = .seconds(600)
        /// Refresh this long before the allocation expires (at half its lifetime if that is shorter).
        public var refreshMargin: Duration = .seconds(60)
        /// Permissions last 300 s (RFC 8656 §9), channels 600 s (§12): refreshed well before.
        public var permissionRefreshInterval: Duration = .seconds(240)
        public var channelRefreshInterval: Duration = .seconds(540)
        /// After a failed Allocate (timeout, 486, 508, 437, bad credentials): ask again this much later,
        /// doubled after each further failure in a row up to `maximumRetryInterval` (equal by
        /// default: a fixed interval).
        public var retryInterval: Duration = .seconds(30)
        public var maximumRetryInterval: Duration = .seconds(30)
        /// 438 (stale nonce) answers in a row that a request is sent again for.
        public var maximumNonceRetries = 3
        public var software: String? = "rtcam"

        public init() {}
    }

    public enum State: Equatable, Sendable {
        /// No allocation; one is asked for at `nextDeadline`.
        case idle
        case allocating
        case allocated(relayed: TransportAddress, mapped: TransportAddress?)
        /// A Refresh with lifetime 0 is on its way.
        case releasing
        case released
    }

    public enum Failure: Equatable, Sendable {
        /// No answer (after every retransmission over UDP).
        case timedOut
        /// 401 to a request that carried credentials: the username or password is wrong.
        case unauthorized
        /// 437 to an Allocate: the server holds another allocation for this client address
        /// (RFC 8656 §7.4); a new local port would get one now, this one once that expires.
        case allocationMismatch
        /// Any other error response, e.g. 486 (quota) or 508 (capacity), retried later.
        case errorResponse(code: Int, reason: String)
    }

    public enum Action: Equatable, Sendable {
        /// Bytes for the server.
        case send([UInt8])
        case allocated(relayed: TransportAddress, mapped: TransportAddress?, lifetime: Duration)
        /// Asking for an allocation failed; asked again after `retryInterval`.
        case allocationFailed(Failure)
        /// The allocation is gone (refreshes failed until it expired, or 437); asked for again now.
        /// Permissions and channels are installed again on the new one.
        case allocationLost(Failure)
        case permissionFailed(TransportAddress.IP, Failure)
        case channelBound(UInt16, peer: TransportAddress)
        case channelFailed(UInt16, peer: TransportAddress, Failure)
        /// Application data a peer sent to the relayed address.
        case received([UInt8], from: TransportAddress)
        /// The allocation was given back (or there was none).
        case released
    }

    enum Request: Equatable {
        case allocate
        case refresh(lifetimeSeconds: UInt32)
        case createPermission(TransportAddress.IP)
        case channelBind(UInt16, TransportAddress)
    }

    struct Transaction {
        var request: Request
        var id: [UInt8]
        var bytes: [UInt8]
        var authenticated: Bool
        var transmissions = 1
        var nonceRetries: Int
        var due: MonotonicTime
    }

    struct Permission {
        var installed = false
        /// When to send CreatePermission (again); nil while one is in flight or there is no allocation.
        var due: MonotonicTime?
    }

    struct Channel {
        var number: UInt16
        var peer: TransportAddress
        var bound = false
        var due: MonotonicTime?
    }

    public let server: TransportAddress
    public let transport: Transport
    public let configuration: Configuration
    private var credentials: TURNCredentials
    private var random: SeededRandom
    public private(set) var state: State = .idle
    private var realm: String?
    private var nonce: String?
    private var key: [UInt8]?
    private var transactions: [Transaction] = []
    private var permissions: [TransportAddress.IP: Permission] = [:]
    private var channels: [Channel] = []
    /// The next channel number to bind: never one used before by this client (a forgotten channel
    /// stays bound on the server until it expires, RFC 8656 §12).
    private var nextChannelNumber = ChannelData.channelNumbers.lowerBound
    /// Allocate requests that failed in a row (the backoff's exponent).
    private var allocationFailuresInARow = 0
    /// While idle: when to ask for an allocation. While allocated: when to refresh it.
    private var allocationDue: MonotonicTime?
    private var expiry: MonotonicTime?

    public init(server: TransportAddress, transport: Transport = .udp, credentials: TURNCredentials,
                configuration: Configuration = Configuration(), now: MonotonicTime, random: some RandomNumberGenerator) {
        self.server = server
        self.transport = transport
        self.credentials = credentials
        self.configuration = configuration
        var random = random
        self.random = SeededRandom(seed: random.next())
        allocationDue = now
    }

    public var relayedAddress: TransportAddress? {
        if case let .allocated(relayed, _) = state { relayed } else { nil }
    }

    public var mappedAddress: TransportAddress? {
        if case let .allocated(_, mapped) = state { mapped } else { nil }
    }

    public func hasPermission(for ip: TransportAddress.IP) -> Bool { permissions[ip]?.installed ?? false }

    /// The channel bound to this peer, if its ChannelBind succeeded.
    public func boundChannel(for peer: TransportAddress) -> UInt16? {
        channels.first { $0.peer == peer && $0.bound }?.number
    }

    public var nextDeadline: MonotonicTime? {
        var deadline = earliest(transactions.map(\.due).min(), allocationDue, expiry)
        for permission in permissions.values { deadline = earliest(deadline, permission.due) }
        for channel in channels { deadline = earliest(deadline, channel.due) }
        return deadline
    }

    /// Whether this message (from the server's address) is for this client: ChannelData, a Data
    /// indication, or a response to one of its transactions.
    public func isFromServer(_ message: [UInt8]) -> Bool {
        if ChannelData.looksLikeChannelData(message) {
            return ChannelData.parse(message).map { parsed in channels.contains { $0.number == parsed.channel } } ?? false
        }
        guard STUNMessage.looksLikeSTUN(message) else { return false }
        let id = message[8..<20]
        return transactions.contains { $0.id[...] == id } || (message[0] == 0x00 && message[1] == 0x17)  // Data indication
    }

    // MARK: - The owner's requests

    /// Lets `ip` send to the relayed address (RFC 8656 §9). Kept and refreshed until the client is
    /// released; sent now if there is an allocation, else once there is.
    public mutating func createPermission(for ip: TransportAddress.IP, now: MonotonicTime) -> [Action] {
        guard permissions[ip] == nil else { return [] }
        permissions[ip] = Permission(installed: false, due: isAllocated ? now : nil)
        return handleTimeout(now: now)
    }

    /// Binds the next free channel to `peer` (RFC 8656 §12), which also installs its permission.
    public mutating func bindChannel(to peer: TransportAddress, now: MonotonicTime) -> [Action] {
        guard !channels.contains(where: { $0.peer == peer }) else { return [] }
        let number = nextChannelNumber
        guard ChannelData.channelNumbers.contains(number) else { return [] }   // all used: Send indications
        nextChannelNumber &+= 1
        channels.append(Channel(number: number, peer: peer, due: isAllocated ? now : nil))
        if permissions[peer.ip] == nil { permissions[peer.ip] = Permission(installed: false, due: isAllocated ? now : nil) }
        return handleTimeout(now: now)
    }

    /// The bytes for the server that carry `payload` to `peer`: ChannelData on its bound channel
    /// (padded over TCP), else a Send indication (RFC 8656 §11); nil without an allocation or a
    /// permission (asked for or installed) for the peer's address, which the server would drop.
    public mutating func wrap(_ payload: [UInt8], to peer: TransportAddress) -> [UInt8]? {
        guard isAllocated, permissions[peer.ip] != nil else { return nil }
        if let channel = boundChannel(for: peer) {
            return ChannelData.frame(payload, channel: channel, padded: transport == .tcp)
        }
        let id = random.bytes(12)
        return STUNMessage(method: TURNMethod.send, messageClass: .indication, transactionID: id,
                           attributes: [.xorPeerAddress(peer, transactionID: id), .data(payload)])
            .serialized(integrityKey: nil, fingerprint: false)
    }

    /// Stops refreshing the permission for `ip` and the channels to peers at it (a viewer that left):
    /// the server drops them when they expire (RFC 8656 §9: 5 minutes, §12: 10 minutes). A channel
    /// number is not used again by this client.
    public mutating func forget(_ ip: TransportAddress.IP) {
        permissions[ip] = nil
        channels.removeAll { $0.peer.ip == ip }
        transactions.removeAll {
            switch $0.request {
            case let .createPermission(target): return target == ip
            case let .channelBind(_, peer): return peer.ip == ip
            case .allocate, .refresh: return false
            }
        }
    }

    /// Credentials for the requests from now on (coturn's REST credentials expire: the owner makes
    /// new ones before an allocation is asked for again).
    public mutating func replaceCredentials(_ new: TURNCredentials) {
        credentials = new
        if let realm { key = new.integrityKey(realm: realm) }
    }

    /// Permissions asked for or installed (for status and tests).
    public var permissionCount: Int { permissions.count }

    /// Gives the allocation back (a Refresh with lifetime 0, RFC 8656 §8); `.released` follows.
    public mutating func release(now: MonotonicTime) -> [Action] {
        transactions.removeAll()
        permissions.removeAll()
        channels.removeAll()
        allocationDue = nil
        expiry = nil
        guard isAllocated else {
            state = .released
            return [.released]
        }
        state = .releasing
        return [start(.refresh(lifetimeSeconds: 0), now: now)]
    }

    // MARK: - Time

    public mutating func handleTimeout(now: MonotonicTime) -> [Action] {
        var actions: [Action] = []
        for index in transactions.indices.reversed() where transactions[index].due <= now {
            if transport == .udp, transactions[index].transmissions < configuration.maximumTransmissions {
                transactions[index].transmissions += 1
                let count = transactions[index].transmissions
                transactions[index].due = now + (count == configuration.maximumTransmissions
                    ? configuration.retransmissionTimeout * configuration.lastResponseWaitFactor
                    : configuration.retransmissionTimeout * (1 << (count - 1)))
                actions.append(.send(transactions[index].bytes))
            } else {
                let failed = transactions.remove(at: index)
                actions += fail(failed.request, .timedOut, now: now)
            }
        }
        switch state {
        case .idle:
            if let due = allocationDue, due <= now {
                allocationDue = nil
                state = .allocating
                actions.append(start(.allocate, now: now))
            }
        case .allocated:
            if let expiry, expiry <= now {
                actions += loseAllocation(.timedOut, now: now)
                return actions + handleTimeout(now: now)
            }
            if let due = allocationDue, due <= now {
                allocationDue = nil
                actions.append(start(.refresh(lifetimeSeconds: requestedLifetimeSeconds), now: now))
            }
            for (ip, permission) in permissions {
                guard let due = permission.due, due <= now else { continue }
                permissions[ip]?.due = nil
                actions.append(start(.createPermission(ip), now: now))
            }
            for index in channels.indices {
                guard let due = channels[index].due, due <= now else { continue }
                channels[index].due = nil
                actions.append(start(.channelBind(channels[index].number, channels[index].peer), now: now))
            }
        case .allocating, .releasing, .released:
            break
        }
        return actions
    }

    // MARK: - Messages from the server

    /// One message from the server: a datagram over UDP, or one `TURNStreamFramer` message over TCP.
    public mutating func receive(_ message: [UInt8], now: MonotonicTime) -> [Action] {
        if let (number, payload) = ChannelData.parse(message) {
            guard let channel = channels.first(where: { $0.number == number }) else { return [] }
            return [.received(Array(payload), from: channel.peer)]
        }
        guard let parsed = try? STUNMessage(parsing: message) else { return [] }
        if parsed.fingerprint != nil, !STUNMessage.hasValidFingerprint(message) { return [] }
        switch parsed.messageClass {
        case .indication:
            guard parsed.method == TURNMethod.data, isAllocated, let peer = parsed.xorPeerAddress, let data = parsed.data
            else { return [] }
            return [.received(data, from: peer)]
        case .request:
            return []
        case .successResponse, .errorResponse:
            guard let index = transactions.firstIndex(where: { $0.id == parsed.transactionID }) else { return [] }
            let transaction = transactions[index]
            let code = parsed.errorCode?.code
            // RFC 8489 §9.2.5: a response to an authenticated request must carry a valid
            // MESSAGE-INTEGRITY, except the 401 and 438 that say the credentials need renewing.
            if transaction.authenticated, code != TURNErrorCode.unauthorized, code != TURNErrorCode.staleNonce {
                guard let key, parsed.messageIntegrity != nil, STUNMessage.hasValidIntegrity(message, key: key) else { return [] }
            }
            transactions.remove(at: index)
            if parsed.messageClass == .successResponse {
                return succeed(transaction.request, parsed, now: now)
            }
            return handleError(transaction, parsed, now: now)
        }
    }

    // MARK: - Transactions

    private var isAllocated: Bool {
        if case .allocated = state { true } else { false }
    }

    private var requestedLifetimeSeconds: UInt32 {
        UInt32(clamping: configuration.requestedLifetime.components.seconds)
    }

    /// Sends `request` as a new transaction: with credentials once the realm and nonce are known.
    private mutating func start(_ request: Request, now: MonotonicTime, nonceRetries: Int = 0) -> Action {
        let id = random.bytes(12)
        var attributes: [STUNAttribute]
        let method: UInt16
        switch request {
        case .allocate:
            method = TURNMethod.allocate
            attributes = [.requestedTransportUDP, .lifetime(seconds: requestedLifetimeSeconds)]
        case let .refresh(lifetime):
            method = TURNMethod.refresh
            attributes = [.lifetime(seconds: lifetime)]
        case let .createPermission(ip):
            method = TURNMethod.createPermission
            attributes = [.xorPeerAddress(TransportAddress(ip: ip, port: 0), transactionID: id)]
        case let .channelBind(number, peer):
            method = TURNMethod.channelBind
            attributes = [.channelNumber(number), .xorPeerAddress(peer, transactionID: id)]
        }
        if let software = configuration.software { attributes.append(.software(software)) }
        var integrityKey: [UInt8]?
        if let realm, let nonce, let key {
            attributes += [.username(credentials.username), .realm(realm), .nonce(nonce)]
            integrityKey = key
        }
        let bytes = STUNMessage(method: method, messageClass: .request, transactionID: id, attributes: attributes)
            .serialized(integrityKey: integrityKey, fingerprint: true)
        let wait = transport == .udp ? configuration.retransmissionTimeout : configuration.reliableTransactionTimeout
        transactions.append(Transaction(request: request, id: id, bytes: bytes, authenticated: integrityKey != nil,
                                        nonceRetries: nonceRetries, due: now + wait))
        return .send(bytes)
    }

    private mutating func succeed(_ request: Request, _ response: STUNMessage, now: MonotonicTime) -> [Action] {
        switch request {
        case .allocate:
            guard state == .allocating, let relayed = response.xorRelayedAddress else {
                return fail(request, .errorResponse(code: 500, reason: "Allocate success without XOR-RELAYED-ADDRESS"), now: now)
            }
            let lifetime = Duration.seconds(response.lifetimeSeconds ?? requestedLifetimeSeconds)
            state = .allocated(relayed: relayed, mapped: response.xorMappedAddress)
            allocationFailuresInARow = 0
            scheduleRefresh(lifetime: lifetime, now: now)
            // Permissions and channels asked for before (or on a lost allocation) go in now.
            for ip in permissions.keys { permissions[ip] = Permission(installed: false, due: now) }
            for index in channels.indices { channels[index].bound = false; channels[index].due = now }
            return [.allocated(relayed: relayed, mapped: response.xorMappedAddress, lifetime: lifetime)]
                + handleTimeout(now: now)
        case let .refresh(lifetime):
            if lifetime == 0 || state == .releasing {
                state = .released
                return [.released]
            }
            scheduleRefresh(lifetime: .seconds(response.lifetimeSeconds ?? lifetime), now: now)
            return []
        case let .createPermission(ip):
            guard permissions[ip] != nil else { return [] }
            permissions[ip] = Permission(installed: true, due: now + configuration.permissionRefreshInterval)
            return []
        case let .channelBind(number, peer):
            guard let index = channels.firstIndex(where: { $0.number == number }) else { return [] }
            let wasBound = channels[index].bound
            channels[index].bound = true
            channels[index].due = now + configuration.channelRefreshInterval
            // RFC 8656 §12: a ChannelBind installs or refreshes the peer's permission too.
            if permissions[peer.ip] != nil {
                permissions[peer.ip] = Permission(installed: true, due: now + configuration.permissionRefreshInterval)
            }
            return wasBound ? [] : [.channelBound(number, peer: peer)]
        }
    }

    private mutating func handleError(_ transaction: Transaction, _ response: STUNMessage, now: MonotonicTime) -> [Action] {
        let code = response.errorCode?.code ?? 0
        let reason = response.errorCode?.reason ?? ""
        switch code {
        case TURNErrorCode.unauthorized where !transaction.authenticated:
            // RFC 8489 §9.2.4: the server's realm and nonce; ask again with credentials.
            guard let realm = response.realm, let nonce = response.nonce else {
                return fail(transaction.request, .errorResponse(code: code, reason: reason), now: now)
            }
            self.realm = realm
            self.nonce = nonce
            key = credentials.integrityKey(realm: realm)
            return [start(transaction.request, now: now)]
        case TURNErrorCode.unauthorized:
            return fail(transaction.request, .unauthorized, now: now)
        case TURNErrorCode.staleNonce:
            // RFC 8489 §9.2.5: the same request with the new nonce (a few times in a row at most).
            guard let nonce = response.nonce, transaction.nonceRetries < configuration.maximumNonceRetries else {
                return fail(transaction.request, .errorResponse(code: code, reason: reason), now: now)
            }
            self.nonce = nonce
            if let realm = response.realm, realm != self.realm {
                self.realm = realm
                key = credentials.integrityKey(realm: realm)
            }
            return [start(transaction.request, now: now, nonceRetries: transaction.nonceRetries + 1)]
        case TURNErrorCode.allocationMismatch:
            if transaction.request == .allocate { return fail(transaction.request, .allocationMismatch, now: now) }
            // RFC 8656 §7.4 (and §8, §9, §12): no allocation for this 5-tuple any more.
            if case .refresh = transaction.request, state == .releasing { state = .released; return [.released] }
            return loseAllocation(.allocationMismatch, now: now) + handleTimeout(now: now)
        default:
            return fail(transaction.request, .errorResponse(code: code, reason: reason), now: now)
        }
    }

    /// A request ended without success.
    private mutating func fail(_ request: Request, _ failure: Failure, now: MonotonicTime) -> [Action] {
        switch request {
        case .allocate:
            guard state == .allocating else { return [] }
            state = .idle
            // Backoff: retryInterval, then doubled per failure in a row up to the maximum.
            var wait = configuration.retryInterval
            for _ in 0 ..< min(allocationFailuresInARow, 16) where wait < configuration.maximumRetryInterval { wait = wait * 2 }
            allocationDue = now + min(wait, max(configuration.retryInterval, configuration.maximumRetryInterval))
            allocationFailuresInARow += 1
            return [.allocationFailed(failure)]
        case .refresh:
            if state == .releasing {
                state = .released
                return [.released]
            }
            // Try again before it expires; `handleTimeout` declares it lost at expiry.
            if isAllocated, let expiry { allocationDue = min(now + configuration.retryInterval, expiry) }
            return []
        case let .createPermission(ip):
            guard permissions[ip] != nil else { return [] }
            permissions[ip]?.due = now + configuration.retryInterval
            return [.permissionFailed(ip, failure)]
        case let .channelBind(number, peer):
            guard let index = channels.firstIndex(where: { $0.number == number }) else { return [] }
            channels[index].due = now + configuration.retryInterval
            return [.channelFailed(number, peer: peer, failure)]
        }
    }

    private mutating func scheduleRefresh(lifetime: Duration, now: MonotonicTime) {
        expiry = now + lifetime
        let margin = lifetime > configuration.refreshMargin * 2 ? configuration.refreshMargin : lifetime / 2
        allocationDue = now + lifetime - margin
    }

    /// Forgets the allocation and everything on it, keeping the permissions and channels wanted,
    /// and asks for a new one at once.
    private mutating func loseAllocation(_ failure: Failure, now: MonotonicTime) -> [Action] {
        transactions.removeAll()
        state = .idle
        expiry = nil
        allocationDue = now
        for ip in permissions.keys { permissions[ip] = Permission(installed: false, due: nil) }
        for index in channels.indices { channels[index].bound = false; channels[index].due = nil }
        return [.allocationLost(failure)]
    }
}
