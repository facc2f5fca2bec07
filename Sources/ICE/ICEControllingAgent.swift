import RTCBase
import STUN

/// The controlling, full side facing one remote candidate: the viewer in tests and the load
/// generator. Every check carries USE-CANDIDATE (aggressive nomination, as a full agent may use
/// against a lite peer, RFC 8445 §8.1.1), so a peer that moved is nominated again by the next check.
/// It answers a full peer's checks and consent checks (RFC 8445 §7.3, RFC 7675) from where it checks.
public struct ICEControllingAgent: Sendable {
    public let local: ICECredentials
    public let remote: ICECredentials
    public let remoteAddress: TransportAddress
    public let tieBreaker: UInt64
    /// A success response to a nominated check arrived.
    public private(set) var isConnected = false

    /// RFC 8445 §14.3: RTO = max(500 ms, Ta·N·pairs) = 500 ms for one pair; doubled per retransmission
    /// (RFC 8489 §6.2.1) but capped, so that checks keep going until consent times out.
    static let initialRetransmissionTimeout: Duration = .milliseconds(500)
    static let maximumRetransmissionTimeout: Duration = .seconds(4)
    /// RFC 7675 §5.1: a consent check every 5 s, randomized to 0.8...1.2 of that.
    static let consentInterval: Duration = .seconds(5)
    /// RFC 7675 §5.1: answers to any recent consent check count; remember this many transactions.
    static let outstandingLimit = 8

    private var random: SeededRandom
    private var started = false
    private var consentLost = false
    private var consentExpiry: MonotonicTime
    private var nextTransmission: MonotonicTime?
    private var retransmissionTimeout = initialRetransmissionTimeout
    /// The check being retransmitted until connected (RFC 8489 §6.2.1: same transaction ID and bytes).
    private var pendingCheck: [UInt8] = []
    private var outstandingTransactions: [[UInt8]] = []

    /// The generator seeds the agent's own deterministic generator (transaction IDs, consent jitter),
    /// so a `SeededRandom` makes a test reproducible and `SystemRandomNumberGenerator` makes it unpredictable.
    public init(local: ICECredentials, remote: ICECredentials, remoteAddress: TransportAddress,
                tieBreaker: UInt64, now: MonotonicTime, random: some RandomNumberGenerator) {
        self.local = local
        self.remote = remote
        self.remoteAddress = remoteAddress
        self.tieBreaker = tieBreaker
        var random = random
        self.random = SeededRandom(seed: random.next())
        consentExpiry = now + consentTimeout
    }

    public var nextDeadline: MonotonicTime? {
        guard started, !consentLost else { return nil }
        return earliest(nextTransmission, consentExpiry)
    }

    /// Sends the first check; the consent clock starts now.
    public mutating func start(now: MonotonicTime) -> [ICEAction] {
        guard !started else { return [] }
        started = true
        consentExpiry = now + consentTimeout
        pendingCheck = makeCheck()
        nextTransmission = now + retransmissionTimeout
        return [.send(pendingCheck, on: .host(remoteAddress))]
    }

    public mutating func handleTimeout(now: MonotonicTime) -> [ICEAction] {
        guard started, !consentLost else { return [] }
        if now >= consentExpiry {
            consentLost = true
            nextTransmission = nil
            return [.consentLost]
        }
        guard let due = nextTransmission, now >= due else { return [] }
        if isConnected {
            // RFC 7675 §5.1: each consent check is a new transaction.
            nextTransmission = now + jitteredConsentInterval()
            return [.send(makeCheck(), on: .host(remoteAddress))]
        }
        // RFC 8489 §6.2.1: retransmit the same request with a doubled timeout.
        retransmissionTimeout = min(retransmissionTimeout * 2, Self.maximumRetransmissionTimeout)
        nextTransmission = now + retransmissionTimeout
        return [.send(pendingCheck, on: .host(remoteAddress))]
    }

    public mutating func receive(_ datagram: [UInt8], from source: TransportAddress, now: MonotonicTime) -> [ICEAction] {
        guard started, !consentLost else { return [.rejected(reason: "agent not running")] }
        if datagram.count >= STUNMessage.headerLength, datagram[0] == 0x00, datagram[1] == 0x01 {
            return answer(datagram, from: source)
        }
        guard let response = try? STUNMessage(parsing: datagram),
              response.messageClass == .successResponse || response.messageClass == .errorResponse,
              response.method == STUNMessage.bindingMethod
        else { return [.rejected(reason: "not a Binding response")] }
        guard let transaction = outstandingTransactions.firstIndex(of: response.transactionID) else {
            return [.rejected(reason: "unknown transaction")]
        }
        // RFC 8445 §7.2.5.2.1: the response must come from where the request went (symmetric).
        guard source == remoteAddress else { return [.rejected(reason: "response from \(source), not \(remoteAddress)")] }
        if response.fingerprint != nil, !STUNMessage.hasValidFingerprint(datagram) {
            return [.rejected(reason: "bad FINGERPRINT")]
        }
        if response.messageClass == .errorResponse {
            // RFC 8445 §7.2.5.1: 487 would ask us to switch roles; against a lite peer we stay
            // controlling. Error responses carry no proof (401 has no MESSAGE-INTEGRITY), so they only
            // get reported; the check goes on until answered or consent times out.
            let code = response.errorCode.map { "\($0.code) \($0.reason)" } ?? "without ERROR-CODE"
            return [.rejected(reason: "error response \(code)")]
        }
        // RFC 8445 §7.2.5.2: the responder signs with its own password.
        guard STUNMessage.hasValidIntegrity(datagram, key: remote.integrityKey) else {
            return [.rejected(reason: "bad MESSAGE-INTEGRITY")]
        }
        outstandingTransactions.remove(at: transaction)
        consentExpiry = now + consentTimeout  // RFC 7675 §5.1
        guard !isConnected else { return [] }
        isConnected = true
        pendingCheck = []
        nextTransmission = now + jitteredConsentInterval()
        return [.selected(.host(remoteAddress))]
    }

    /// A full peer's check (its triggered check, then its consent checks): answered when valid and
    /// from the one address this agent checks; it changes nothing here (this agent always nominates).
    private func answer(_ datagram: [UInt8], from source: TransportAddress) -> [ICEAction] {
        guard source == remoteAddress else { return [.rejected(reason: "check from \(source), not \(remoteAddress)")] }
        switch BindingRequestCheck.verify(datagram, on: .host(source), local: local, remote: remote) {
        case let .refused(actions):
            return actions
        case let .valid(request):
            return [.send(BindingRequestCheck.successResponse(to: request, from: source, key: local.integrityKey), on: .host(source))]
        }
    }

    /// RFC 8445 §7.2.2 / §7.1: USERNAME "remoteUfrag:localUfrag", PRIORITY of a peer-reflexive
    /// candidate (§5.1.2.1: type preference 110, local preference 65535, component 1),
    /// ICE-CONTROLLING with our tie-breaker, USE-CANDIDATE, MESSAGE-INTEGRITY with the remote
    /// password and FINGERPRINT.
    private mutating func makeCheck() -> [UInt8] {
        let transactionID = random.bytes(12)
        outstandingTransactions.append(transactionID)
        if outstandingTransactions.count > Self.outstandingLimit { outstandingTransactions.removeFirst() }
        let peerReflexivePriority: UInt32 = 110 << 24 | 65535 << 8 | (256 - 1)
        let request = STUNMessage(messageClass: .request, transactionID: transactionID, attributes: [
            .username("\(remote.ufrag):\(local.ufrag)"),
            .priority(peerReflexivePriority),
            .iceControlling(tieBreaker),
            .useCandidate,
        ])
        return request.serialized(integrityKey: remote.integrityKey, fingerprint: true)
    }

    private mutating func jitteredConsentInterval() -> Duration {
        Self.consentInterval * Double.random(in: 0.8...1.2, using: &random)
    }
}
