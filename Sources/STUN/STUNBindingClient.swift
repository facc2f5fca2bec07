import RTCBase

/// Asks STUN servers what address the owner's socket has on their side (RFC 8489 §3, Binding over
/// UDP): the server-reflexive address a full ICE agent offers (RFC 8445 §5.1.1.2). Sans-IO: the
/// owner sends what it is told from its socket, hands over the datagrams `isResponse` claims, and
/// calls `handleTimeout` at `nextDeadline`. Every server is asked at start, again every
/// `refreshInterval`, and after a failed transaction sooner (`retryInterval`); a server that stops
/// answering loses its address.
public struct STUNBindingClient: Sendable {
    public struct Configuration: Sendable {
        /// RFC 8489 §6.2.1: RTO 500 ms, doubled per retransmission, Rc = 7 transmissions, then
        /// Rm = 16 × RTO for the last answer (39.5 s in all).
        public var retransmissionTimeout: Duration = .milliseconds(500)
        public var maximumTransmissions = 7
        public var lastResponseWaitFactor = 16
        /// NAT bindings of UDP last two minutes at least (RFC 4787 REQ-5); asking every minute keeps
        /// the mapping fresh and notices a new public address.
        public var refreshInterval: Duration = .seconds(60)
        public var retryInterval: Duration = .seconds(10)

        public init() {}
    }

    /// What the owner is asked to do, or told.
    public enum Action: Equatable, Sendable {
        case send([UInt8], to: TransportAddress)
        /// The set of server-reflexive addresses changed (learned, moved, or lost); the new list.
        case addressesChanged([TransportAddress])
    }

    struct Server {
        var address: TransportAddress
        var mapped: TransportAddress?
        var transaction: [UInt8]?
        var request: [UInt8] = []
        var transmissions = 0
        /// When to retransmit, give up, or ask again.
        var due: MonotonicTime
    }

    public let configuration: Configuration
    private var servers: [Server]
    /// The servers asked, in the order given.
    public var serverAddresses: [TransportAddress] { servers.map(\.address) }
    private var random: SeededRandom

    /// Servers are asked from the first `handleTimeout` on (`nextDeadline` is `now`).
    public init(servers: [TransportAddress], configuration: Configuration = Configuration(), now: MonotonicTime,
                random: some RandomNumberGenerator) {
        self.configuration = configuration
        self.servers = servers.map { Server(address: $0, due: now) }
        var random = random
        self.random = SeededRandom(seed: random.next())
    }

    /// The distinct server-reflexive addresses known now, in server order.
    public var addresses: [TransportAddress] {
        var seen = Set<TransportAddress>()
        return servers.compactMap(\.mapped).filter { seen.insert($0).inserted }
    }

    public var nextDeadline: MonotonicTime? { servers.map(\.due).min() }

    /// Whether this datagram is a Binding response to one of our requests (by transaction ID): the
    /// owner hands those over and nothing else.
    public func isResponse(_ datagram: [UInt8]) -> Bool {
        guard datagram.count >= STUNMessage.headerLength, datagram[0] == 0x01,
              datagram[1] == 0x01 || datagram[1] == 0x11 else { return false }
        let id = datagram[8..<20]
        return servers.contains { $0.transaction.map { $0[...] == id } ?? false }
    }

    public mutating func handleTimeout(now: MonotonicTime) -> [Action] {
        let before = addresses
        var actions: [Action] = []
        for index in servers.indices where servers[index].due <= now {
            if servers[index].transaction == nil {
                // Time to ask (again): a new transaction.
                let id = random.bytes(12)
                servers[index].transaction = id
                servers[index].request = STUNMessage(messageClass: .request, transactionID: id)
                    .serialized(integrityKey: nil, fingerprint: true)
                servers[index].transmissions = 1
                servers[index].due = now + configuration.retransmissionTimeout
                actions.append(.send(servers[index].request, to: servers[index].address))
            } else if servers[index].transmissions < configuration.maximumTransmissions {
                servers[index].transmissions += 1
                let wait = servers[index].transmissions == configuration.maximumTransmissions
                    ? configuration.retransmissionTimeout * configuration.lastResponseWaitFactor
                    : configuration.retransmissionTimeout * (1 << (servers[index].transmissions - 1))
                servers[index].due = now + wait
                actions.append(.send(servers[index].request, to: servers[index].address))
            } else {
                // RFC 8489 §6.2.1: the transaction failed; the mapping is no longer known.
                servers[index].transaction = nil
                servers[index].mapped = nil
                servers[index].due = now + configuration.retryInterval
            }
        }
        if addresses != before { actions.append(.addressesChanged(addresses)) }
        return actions
    }

    /// A datagram `isResponse` claimed. Only a success response from the server asked, naming an
    /// address (XOR-MAPPED-ADDRESS, RFC 8489 §14.2), counts; an error response ends the transaction
    /// like a timeout would.
    public mutating func receive(_ datagram: [UInt8], from source: TransportAddress, now: MonotonicTime) -> [Action] {
        guard let message = try? STUNMessage(parsing: datagram), message.method == STUNMessage.bindingMethod,
              let index = servers.firstIndex(where: { $0.transaction == message.transactionID }),
              servers[index].address == source else { return [] }
        if message.fingerprint != nil, !STUNMessage.hasValidFingerprint(datagram) { return [] }
        let before = addresses
        servers[index].transaction = nil
        if message.messageClass == .successResponse, let mapped = message.xorMappedAddress {
            servers[index].mapped = mapped
            servers[index].due = now + configuration.refreshInterval
        } else {
            servers[index].mapped = nil
            servers[index].due = now + configuration.retryInterval
        }
        return addresses != before ? [.addressesChanged(addresses)] : []
    }
}
