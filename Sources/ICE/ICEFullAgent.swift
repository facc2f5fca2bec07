import RTCBase
import STUN

/// Which side nominates (RFC 8445 §2.3, §6.1.1).
public enum ICERole: Sendable, Equatable {
    case controlling, controlled
}

/// The pair media uses, as reported to the owner (e.g. /api/status).
public struct ICESelectedPair: Equatable, Sendable {
    /// rtcam's candidate as the peer sees it: the host candidate, or the server- or peer-reflexive one
    /// the success response's XOR-MAPPED-ADDRESS named.
    public var local: ICECandidate
    public var remote: ICECandidate
    /// Which base media leaves from (the media socket or the relay) and to which remote address.
    public var path: TransportPath
    /// The last round trip of a check or consent check on the pair that was not retransmitted.
    public var roundTripTime: Duration?
}

/// A full ICE agent (RFC 8445) for one data stream with one component (RTP and RTCP muxed, RFC 8843
/// BUNDLE), over the owner's one UDP socket and, when it has a relayed candidate, that TURN
/// allocation. Sans-IO: datagrams, candidates and time in, `ICEAction`s and the next deadline out.
/// rtcam runs it controlled (browsers and WHEP players control); the tests also run it controlling,
/// as the viewer.
///
/// Two bases at most (`TransportPath.LocalBase`): the socket (host candidates; server-reflexive ones
/// are replaced by it, §6.1.2.4) and the relay (the relayed candidate, §5.1.1.2). A remote candidate
/// makes one pair per base of its address family, with the best candidate of that base as local
/// candidate (the one whose priority the pair gets: a relayed pair has type preference 0, the lowest,
/// so a working direct pair always ranks above it). Pairs are named by their path: base and remote
/// address. A peer-reflexive remote candidate learned from a check is paired with the base the check
/// came in on only (§7.3.1.4).
///
/// ICE-TCP (RFC 6544): a TCP candidate of ours is a third base (`.tcp`), each connection a path
/// named by the address at its other end. rtcam's candidate is passive: a peer's active candidates
/// (port 9) are recorded but form no pair we could check; a check arriving over an accepted
/// connection is answered on it and makes a pair on that connection (its remote candidate
/// peer-reflexive, the connection's source port being the peer's ephemeral one), followed by a
/// triggered check on the same connection, then nomination and consent as on UDP. An active TCP
/// candidate of ours (the tests' viewer) pairs with the peer's passive ones, the connection named
/// by the passive address. Checks over TCP are not retransmitted (RFC 6544 §7.1: the transport is
/// reliable); TCP candidates' type preferences are below UDP's, so a working UDP pair wins.
///
/// Security, as the lite agent: a remote candidate outside `allowedRemoteIPs` is never checked and its
/// checks are not answered; `.checked` is reported for an address only after its valid check was
/// answered or our check to it succeeded; `.selected` only for a pair that is both nominated and
/// valid (our own check to it got an authenticated success response from exactly that address).
public struct ICEFullAgent: Sendable {
    public struct Configuration: Sendable {
        /// RFC 8445 §14.2: Ta, the pacing of new checks.
        public var pacingInterval: Duration = .milliseconds(50)
        /// RFC 8445 §14.3: RTO is at least 500 ms (and Ta × the pairs waiting or in progress).
        public var minimumRetransmissionTimeout: Duration = .milliseconds(500)
        /// RFC 8489 §6.2.1: Rc transmissions, then Rm × RTO for the last response.
        public var maximumTransmissions = 7
        public var lastResponseWaitFactor = 16
        /// RFC 7675 §5.1: a consent check every 5 s (randomized to 0.8...1.2), consent lost 30 s after
        /// the last response.
        public var consentInterval: Duration = .seconds(5)
        public var consentTimeout: Duration = .seconds(30)
        /// Controlling role: how long after the first valid pair a better pair may still come before
        /// the best valid one is nominated (regular nomination, §8.1.1).
        public var nominationDelay: Duration = .milliseconds(200)
        /// Bounds against a peer that trickles or sends from endless addresses.
        public var maximumRemoteCandidates = 32
        public var maximumLocalCandidates = 16
        /// IPs whose candidates may be checked and whose checks are answered (nil: any).
        public var allowedRemoteIPs: Set<TransportAddress.IP>?

        public init() {}
    }

    /// A candidate pair's state (RFC 8445 §6.1.2.6).
    public enum PairState: Sendable, Equatable {
        case frozen, waiting, inProgress, succeeded, failed
    }

    struct Pair {
        var local: ICECandidate
        var remote: ICECandidate
        var state: PairState
        /// The peer sent USE-CANDIDATE on it (controlled role), or our USE-CANDIDATE check is out
        /// (controlling role).
        var nominationRequested = false
        /// Our check succeeded: the local candidate the response's mapped address named.
        var validLocal: ICECandidate?
        /// A check on it is out now (its transaction ID).
        var transaction: [UInt8]?

        var foundation: String { local.foundation + ":" + remote.foundation }
        var path: TransportPath { TransportPath(base: local.base, remote: remote.address) }
    }

    struct Transaction {
        enum Purpose: Equatable { case check(nominating: Bool), consent }
        var id: [UInt8]
        var path: TransportPath
        var request: [UInt8]
        var purpose: Purpose
        /// Whether the request carried ICE-CONTROLLING (for a 487, §7.2.5.1).
        var sentControlling: Bool
        var firstSent: MonotonicTime
        var transmissions = 1
        var timeout: Duration
        /// When to retransmit, or (after the last transmission) when to give up.
        var due: MonotonicTime
        /// A triggered check replaced it (§7.3.1.4): no more retransmissions, a response still counts.
        var cancelled = false
    }

    public private(set) var configuration: Configuration
    public private(set) var role: ICERole
    public private(set) var local: ICECredentials
    public private(set) var remote: ICECredentials
    public let tieBreaker: UInt64
    public private(set) var localCandidates: [ICECandidate]
    public private(set) var remoteCandidates: [ICECandidate] = []
    /// The peer said a=end-of-candidates (RFC 8838 §13).
    public private(set) var remoteCandidatesComplete = false
    public private(set) var selectedPair: ICESelectedPair?
    public var selectedPath: TransportPath? { selectedPair?.path }

    private(set) var pairs: [Pair] = []
    private var triggeredQueue: [TransportPath] = []
    private var transactions: [Transaction] = []
    private var random: SeededRandom
    private var lastPacedCheck: MonotonicTime?
    private var consentExpiry: MonotonicTime
    private var nextConsentCheck: MonotonicTime?
    private var consentLost = false
    /// Controlling role: when the first pair became valid (the nomination clock).
    private var firstValidAt: MonotonicTime?
    private var peerReflexiveCount = 0
    /// The last round trip of an unrepeated check per path.
    private var lastRoundTrip: [TransportPath: Duration] = [:]

    /// The generator seeds the agent's own deterministic one (transaction IDs, consent jitter): a
    /// `SeededRandom` makes a test reproducible, `SystemRandomNumberGenerator` makes it unpredictable.
    /// The consent clock starts now: without a valid pair within the consent timeout it is lost.
    public init(role: ICERole, local: ICECredentials, remote: ICECredentials, localCandidates: [ICECandidate],
                tieBreaker: UInt64, configuration: Configuration = Configuration(), now: MonotonicTime,
                random: some RandomNumberGenerator) {
        self.role = role
        self.local = local
        self.remote = remote
        self.localCandidates = Array(localCandidates.prefix(configuration.maximumLocalCandidates))
        self.tieBreaker = tieBreaker
        self.configuration = configuration
        var random = random
        self.random = SeededRandom(seed: random.next())
        consentExpiry = now + configuration.consentTimeout
    }

    // MARK: - Candidates

    /// A candidate of ours learned after start (a server-reflexive address from the STUN client).
    /// It forms no pair of its own (its base, the socket, is already paired, §6.1.2.4); it names
    /// what the peer sees and what our checks' mapped addresses are matched against. A relayed
    /// candidate is a base of its own: the known remote candidates of its family are paired with it.
    public mutating func addLocalCandidate(_ candidate: ICECandidate) {
        guard !localCandidates.contains(where: { $0.address == candidate.address && $0.isTCP == candidate.isTCP }),
              localCandidates.count < configuration.maximumLocalCandidates else { return }
        localCandidates.append(candidate)
        guard candidate.kind == .relayed else { return }
        for remoteCandidate in remoteCandidates where remoteCandidate.kind != .peerReflexive && !remoteCandidate.isTCP {
            addPair(base: .relay, remote: remoteCandidate)
        }
    }

    /// A remote candidate from the offer or trickled (RFC 8838). Refused (`.rejected`) when its IP is
    /// not allowed, its family has no local candidate, or too many are known; a known address is
    /// updated from peer-reflexive to what the peer signalled. May send the first check at once.
    public mutating func addRemoteCandidate(_ candidate: ICECandidate, now: MonotonicTime) -> [ICEAction] {
        guard !consentLost else { return [.rejected(reason: "agent stopped")] }
        if let refusal = insertRemote(candidate) { return [.rejected(reason: refusal)] }
        return runPacing(now: now)
    }

    /// Adds a remote candidate and its pairs (one per base, or only `learnedOn` for a peer-reflexive
    /// one a check revealed); the reason when it is refused.
    private mutating func insertRemote(_ candidate: ICECandidate, learnedOn: TransportPath.LocalBase? = nil) -> String? {
        if let allowed = configuration.allowedRemoteIPs, !allowed.contains(candidate.address.ip) {
            return "remote candidate \(candidate.address) is not an allowed address"
        }
        // A TCP and a UDP candidate may share an address (one port number for both): two candidates.
        if let index = remoteCandidates.firstIndex(where: { $0.address == candidate.address && $0.isTCP == candidate.isTCP }) {
            if remoteCandidates[index].kind == .peerReflexive, candidate.kind != .peerReflexive {
                remoteCandidates[index] = candidate
                for pair in pairs.indices where pairs[pair].remote.address == candidate.address && pairs[pair].remote.isTCP == candidate.isTCP {
                    pairs[pair].remote = candidate
                }
            }
            // Known, but perhaps not yet on this base (signalled after a check from another base
            // revealed it, or revealed on a second base).
            for base in pairedBases(of: remoteCandidates[index], learnedOn: learnedOn) { addPair(base: base, remote: remoteCandidates[index]) }
            return nil
        }
        guard remoteCandidates.count < configuration.maximumRemoteCandidates else {
            return "more than \(configuration.maximumRemoteCandidates) remote candidates"
        }
        if learnedOn == nil, candidate.tcpType == .active || candidate.tcpType == .simultaneousOpen {
            // RFC 6544 §6.2: an active candidate pairs with our passive one, but its connection (from
            // a port it has not told) is the peer's to open: its checks, once they come over it, make
            // the pair (receiveRequest). Recorded only if we have a passive candidate to offer it.
            guard localCandidates.contains(where: { $0.tcpType == .passive && $0.address.ip.isSameFamily(as: candidate.address.ip) }) else {
                return "no passive TCP candidate of the family of \(candidate.address)"
            }
            remoteCandidates.append(candidate)
            return nil
        }
        let bases = pairedBases(of: candidate, learnedOn: learnedOn).filter {
            baseCandidate($0, for: candidate.address.ip, remoteTCPType: candidate.tcpType) != nil
        }
        guard !bases.isEmpty else {
            return "no local candidate of the family of \(candidate.address)"
        }
        remoteCandidates.append(candidate)
        for base in bases { addPair(base: base, remote: candidate) }
        return nil
    }

    /// The bases a remote candidate is paired on: the one its check came in on, or for a signalled
    /// UDP candidate the socket and the relay, for a passive TCP one an active TCP candidate's
    /// connection (an active TCP candidate of the peer's is paired only once a check comes over a
    /// connection it opened).
    private func pairedBases(of candidate: ICECandidate, learnedOn: TransportPath.LocalBase?) -> [TransportPath.LocalBase] {
        if let learnedOn { return [learnedOn] }
        switch candidate.tcpType {
        case nil: return [.host, .relay]
        case .passive: return localCandidates.contains { $0.tcpType == .active } ? [.tcp] : []
        case .active, .simultaneousOpen: return []
        }
    }

    /// The pair of `remote` on `base`, unless there is one, the base has no candidate of its family,
    /// or the base is a relay on a public address and the remote address a private one: no relay on
    /// the internet reaches another site's LAN, and a send it cannot route may even end the
    /// allocation (coturn 4.6 closes one whose relay socket gets ENETUNREACH).
    private mutating func addPair(base: TransportPath.LocalBase, remote candidate: ICECandidate) {
        guard pairIndex(TransportPath(base: base, remote: candidate.address)) == nil,
              let localCandidate = baseCandidate(base, for: candidate.address.ip, remoteTCPType: candidate.tcpType) else { return }
        if base == .relay, !localCandidate.address.ip.isPrivate, candidate.address.ip.isPrivate { return }
        var pair = Pair(local: localCandidate, remote: candidate, state: .waiting)
        // RFC 8445 §6.1.2.6: one pair per foundation starts Waiting, the others Frozen.
        if pairs.contains(where: { $0.foundation == pair.foundation && $0.state != .failed }) { pair.state = .frozen }
        pairs.append(pair)
    }

    /// Lets checks to and from `ip` through from now on (a candidate trickled by the peer that
    /// authenticated the offer, RFC 8838); no effect when any IP is allowed.
    public mutating func allowRemoteIP(_ ip: TransportAddress.IP) {
        configuration.allowedRemoteIPs?.insert(ip)
    }

    /// The peer has no more candidates (a=end-of-candidates).
    public mutating func endOfRemoteCandidates() { remoteCandidatesComplete = true }

    /// The TCP connection with `remote` at its other end closed: its pair failed and its checks are
    /// void (a new connection from the same address starts again from the peer's check). A selected
    /// pair on it loses its consent in due course, as a silent UDP one does.
    public mutating func tcpConnectionClosed(remote: TransportAddress) {
        let path = TransportPath.tcp(remote)
        transactions.removeAll { $0.path == path }
        triggeredQueue.removeAll { $0 == path }
        if let index = pairIndex(path) {
            pairs[index].state = .failed
            pairs[index].transaction = nil
        }
    }

    /// The state of the pair on `path` (for tests and status).
    public func pairState(on path: TransportPath) -> PairState? {
        pairIndex(path).map { pairs[$0].state }
    }

    /// The state of the host-base pair whose remote candidate is at `address`.
    public func pairState(remote address: TransportAddress) -> PairState? { pairState(on: .host(address)) }

    // MARK: - Restart

    /// ICE restart (RFC 8445 §9): new credentials on both sides; the remote candidates, pairs and
    /// checks start over (the peer trickles its candidates again), our own candidates stay.
    public mutating func restart(local: ICECredentials, remote: ICECredentials, now: MonotonicTime) {
        self.local = local
        self.remote = remote
        remoteCandidates = []
        remoteCandidatesComplete = false
        pairs = []
        triggeredQueue = []
        transactions = []
        selectedPair = nil
        nextConsentCheck = nil
        firstValidAt = nil
        lastRoundTrip = [:]
        localCandidates.removeAll { $0.kind == .peerReflexive }
        consentLost = false
        consentExpiry = now + configuration.consentTimeout
    }

    // MARK: - Time

    public var nextDeadline: MonotonicTime? {
        guard !consentLost else { return nil }
        var deadline = earliest(consentExpiry, nextConsentCheck, transactions.lazy.map(\.due).min())
        if hasPacedWork { deadline = earliest(deadline, nextPacingSlot) }
        if let nomination = nominationDue { deadline = earliest(deadline, nomination) }
        return deadline
    }

    public mutating func handleTimeout(now: MonotonicTime) -> [ICEAction] {
        guard !consentLost else { return [] }
        if now >= consentExpiry {
            consentLost = true  // RFC 7675 §5.1: stop sending; reported once
            transactions = []
            return [.consentLost]
        }
        var actions: [ICEAction] = []
        retransmitOrFail(now: now, into: &actions)
        if let due = nominationDue, now >= due { nominateBestValidPair() }
        actions += runPacing(now: now)
        if let due = nextConsentCheck, now >= due, let selected = selectedPair {
            // RFC 7675 §5.1: each consent check is a new transaction.
            actions.append(sendRequest(on: selected.path, purpose: .consent, local: selected.local, now: now))
            nextConsentCheck = now + jittered(configuration.consentInterval)
        }
        return actions
    }

    // MARK: - Receive

    /// A datagram that came in on `path`: from `path.remote`, to the socket or through the relay.
    public mutating func receive(_ datagram: [UInt8], on path: TransportPath, now: MonotonicTime) -> [ICEAction] {
        guard !consentLost else { return [.rejected(reason: "consent already lost")] }
        guard datagram.count >= STUNMessage.headerLength else { return [.rejected(reason: "too short for STUN")] }
        // RFC 8489 §5: the class bits are 0x0110 of the type; a request has neither.
        if datagram[0] & 0x01 == 0, datagram[1] & 0x10 == 0 {
            return receiveRequest(datagram, on: path, now: now)
        }
        return receiveResponse(datagram, on: path, now: now)
    }

    /// A datagram from `source` straight to the socket (the host base).
    public mutating func receive(_ datagram: [UInt8], from source: TransportAddress, now: MonotonicTime) -> [ICEAction] {
        receive(datagram, on: .host(source), now: now)
    }

    /// RFC 8445 §7.3: answer a valid check, learn a peer-reflexive candidate, trigger a check back.
    private mutating func receiveRequest(_ datagram: [UInt8], on path: TransportPath, now: MonotonicTime) -> [ICEAction] {
        let source = path.remote
        if let allowed = configuration.allowedRemoteIPs, !allowed.contains(source.ip) {
            return [.rejected(reason: "check from \(path), not an allowed address")]
        }
        if path.base == .relay, baseCandidate(.relay, for: source.ip) == nil {
            return [.rejected(reason: "check via a relay we have no candidate on")]
        }
        if path.base == .tcp, !localCandidates.contains(where: { $0.isTCP && $0.address.ip.isSameFamily(as: source.ip) }) {
            return [.rejected(reason: "check over TCP, and we have no TCP candidate")]
        }
        let request: STUNMessage
        switch BindingRequestCheck.verify(datagram, on: path, local: local, remote: remote) {
        case let .valid(valid): request = valid
        case let .refused(actions): return actions
        }
        // RFC 8445 §7.3.1.1: role conflict.
        switch role {
        case .controlled:
            if let theirs = request.iceControlled {
                if tieBreaker >= theirs { switchRole(to: .controlling) } else {
                    return BindingRequestCheck.errorResponse(to: request, on: path, code: 487, phrase: "Role Conflict",
                                                             key: local.integrityKey, reason: "peer is controlled too")
                }
            }
        case .controlling:
            if let theirs = request.iceControlling {
                if tieBreaker >= theirs {
                    return BindingRequestCheck.errorResponse(to: request, on: path, code: 487, phrase: "Role Conflict",
                                                             key: local.integrityKey, reason: "peer is controlling too")
                }
                switchRole(to: .controlled)
            }
        }
        var actions: [ICEAction] = [.send(BindingRequestCheck.successResponse(to: request, from: source, key: local.integrityKey),
                                          on: path)]
        reportChecked(path, into: &actions)
        // RFC 8445 §7.3.1.3: an unknown source is a peer-reflexive candidate with the request's PRIORITY,
        // paired with the base the check came in on (§7.3.1.4); a known one gets a pair on this base.
        if pairIndex(path) == nil {
            let known = remoteCandidates.first { $0.address == source && $0.isTCP == (path.base == .tcp) }
            if known == nil { peerReflexiveCount += 1 }
            let priority = request.priority ?? ICECandidate.priority(kind: .peerReflexive, localPreference: 65535)
            let learned = known ?? ICECandidate(address: source, kind: .peerReflexive, priority: priority,
                                                foundation: "prflx\(peerReflexiveCount)",
                                                tcpType: path.base == .tcp ? .active : nil)
            if let refusal = insertRemote(learned, learnedOn: path.base) { actions.append(.rejected(reason: refusal)) }
        }
        guard let index = pairIndex(path) else { return actions }
        // RFC 8445 §7.3.1.4: a triggered check back, unless the pair already works.
        switch pairs[index].state {
        case .succeeded:
            break
        case .inProgress:
            if let id = pairs[index].transaction, let transaction = transactions.firstIndex(where: { $0.id == id }) {
                transactions[transaction].cancelled = true
            }
            pairs[index].state = .waiting
            enqueueTriggered(path)
        case .waiting, .frozen, .failed:
            pairs[index].state = .waiting
            enqueueTriggered(path)
        }
        // RFC 8445 §7.3.1.5: the controlling side nominates; the pair is selected once it is valid too.
        if role == .controlled, request.hasUseCandidate {
            pairs[index].nominationRequested = true
            if pairs[index].state == .succeeded { select(index, now: now, into: &actions) }
        }
        return actions + runPacing(now: now)
    }

    /// RFC 8445 §7.2.5: a response to one of our checks or consent checks.
    private mutating func receiveResponse(_ datagram: [UInt8], on path: TransportPath, now: MonotonicTime) -> [ICEAction] {
        guard let response = try? STUNMessage(parsing: datagram),
              response.messageClass == .successResponse || response.messageClass == .errorResponse,
              response.method == STUNMessage.bindingMethod
        else { return [.rejected(reason: "not a Binding response")] }
        guard let index = transactions.firstIndex(where: { $0.id == response.transactionID }) else {
            return [.rejected(reason: "unknown transaction")]
        }
        let transaction = transactions[index]
        // RFC 8445 §7.2.5.2.1: only from where the request went, on the base it left from; anything
        // else is not its answer.
        guard path == transaction.path else {
            return [.rejected(reason: "response from \(path), not \(transaction.path)")]
        }
        if response.fingerprint != nil, !STUNMessage.hasValidFingerprint(datagram) {
            return [.rejected(reason: "bad FINGERPRINT")]
        }
        // RFC 8445 §7.2.5.2: signed with the peer's password; an unsigned error (a 400 or 401) proves
        // nothing and changes nothing: the check goes on until it times out.
        guard STUNMessage.hasValidIntegrity(datagram, key: remote.integrityKey) else {
            return [.rejected(reason: "\(response.messageClass == .errorResponse ? "unsigned error" : "bad MESSAGE-INTEGRITY") from \(path)")]
        }
        transactions.remove(at: index)
        let pair = pairIndex(path)
        if response.messageClass == .errorResponse {
            let code = response.errorCode?.code ?? 0
            guard let pair else { return [.rejected(reason: "error response \(code)")] }
            if code == 487 {
                // RFC 8445 §7.2.5.1: take the other role than the one the request claimed, check again.
                switchRole(to: transaction.sentControlling ? .controlled : .controlling)
                pairs[pair].state = .waiting
                pairs[pair].transaction = nil
                enqueueTriggered(path)
                return [.rejected(reason: "487 Role Conflict: now \(role)")] + runPacing(now: now)
            }
            if pairs[pair].transaction == transaction.id {
                pairs[pair].state = .failed
                pairs[pair].transaction = nil
            }
            return [.rejected(reason: "error response \(code) from \(path)")]
        }
        var actions: [ICEAction] = []
        let roundTrip = transaction.transmissions == 1 ? now - transaction.firstSent : nil
        if let selected = selectedPair, selected.path == path {
            consentExpiry = now + configuration.consentTimeout  // RFC 7675 §5.1
            if let roundTrip { selectedPair?.roundTripTime = roundTrip }
        }
        guard let pair, case let .check(nominating) = transaction.purpose else { return actions }
        // RFC 8445 §7.2.5.3: the pair is valid; its local candidate is what the mapped address names.
        let mapped = response.xorMappedAddress ?? pairs[pair].local.address
        let localCandidate = localCandidate(mappedTo: mapped, sentFrom: pairs[pair].local)
        if pairs[pair].transaction == transaction.id { pairs[pair].transaction = nil }
        pairs[pair].state = .succeeded
        pairs[pair].validLocal = localCandidate
        if firstValidAt == nil { firstValidAt = now }
        if selectedPair == nil { consentExpiry = now + configuration.consentTimeout }
        lastRoundTrip[path] = roundTrip ?? lastRoundTrip[path]
        // RFC 8445 §7.2.5.3.3: pairs of the same foundation may go now.
        let foundation = pairs[pair].foundation
        for other in pairs.indices where pairs[other].state == .frozen && pairs[other].foundation == foundation {
            pairs[other].state = .waiting
        }
        reportChecked(path, into: &actions)
        // RFC 8445 §7.2.5.3.4 (controlled: the peer nominated it) and §8.1.1 (controlling: our
        // USE-CANDIDATE check succeeded).
        if (role == .controlled && pairs[pair].nominationRequested) || (role == .controlling && nominating) {
            select(pair, now: now, into: &actions)
        }
        return actions
    }

    // MARK: - Sending checks

    /// The next check in the pacing slot (RFC 8445 §6.1.4.2): a triggered one first, else the
    /// highest-priority Waiting pair, else a Frozen one unfrozen. Ordinary checks stop once a pair is
    /// selected; triggered ones go on (the peer may move and nominate another pair).
    private mutating func runPacing(now: MonotonicTime) -> [ICEAction] {
        guard hasPacedWork, now >= nextPacingSlot else { return [] }
        let index: Int
        if let path = triggeredQueue.first {
            triggeredQueue.removeFirst()
            // A pair whose cancelled check was answered meanwhile needs no new one (else two agents
            // whose checks cross would trigger each other forever).
            guard let found = pairIndex(path), pairs[found].state != .succeeded else { return runPacing(now: now) }
            index = found
        } else if let waiting = bestPair(in: .waiting) {
            index = waiting
        } else if let frozen = bestPair(in: .frozen) {
            index = frozen
        } else {
            return []
        }
        lastPacedCheck = now
        pairs[index].state = .inProgress
        let action = sendRequest(on: pairs[index].path, purpose: .check(nominating: pairs[index].nominationRequested
                                                                         && role == .controlling),
                                 local: pairs[index].local, now: now)
        pairs[index].transaction = transactions.last?.id
        return [action]
    }

    private var hasPacedWork: Bool {
        if !triggeredQueue.isEmpty { return true }
        guard selectedPair == nil else { return false }
        return pairs.contains { $0.state == .waiting || $0.state == .frozen }
    }

    private var nextPacingSlot: MonotonicTime {
        lastPacedCheck.map { $0 + configuration.pacingInterval } ?? .zero
    }

    /// Controlling role: when to nominate (nil: nothing to nominate yet, or done).
    private var nominationDue: MonotonicTime? {
        guard role == .controlling, selectedPair == nil, let firstValidAt,
              !pairs.contains(where: \.nominationRequested) else { return nil }
        // Nothing better can come: nominate now; else give better pairs the nomination delay.
        guard let best = bestValidPair else { return nil }
        let bestPriority = pairPriority(pairs[best])
        let betterPending = pairs.contains {
            ($0.state == .waiting || $0.state == .frozen || $0.state == .inProgress) && pairPriority($0) > bestPriority
        }
        return betterPending ? firstValidAt + configuration.nominationDelay : firstValidAt
    }

    private mutating func nominateBestValidPair() {
        guard let best = bestValidPair else { return }
        pairs[best].nominationRequested = true
        pairs[best].state = .waiting
        enqueueTriggered(pairs[best].path)
    }

    private var bestValidPair: Int? {
        pairs.indices.filter { pairs[$0].state == .succeeded }.max { pairPriority(pairs[$0]) < pairPriority(pairs[$1]) }
    }

    private mutating func sendRequest(on path: TransportPath, purpose: Transaction.Purpose, local localCandidate: ICECandidate,
                                      now: MonotonicTime) -> ICEAction {
        let id = random.bytes(12)
        // RFC 8445 §7.2.2 / §7.1: USERNAME "remoteUfrag:localUfrag", PRIORITY of a peer-reflexive
        // candidate of this base (§7.1.1), our role and tie-breaker, USE-CANDIDATE when nominating,
        // MESSAGE-INTEGRITY with the peer's password and FINGERPRINT.
        var attributes: [STUNAttribute] = [
            .username("\(remote.ufrag):\(local.ufrag)"),
            .priority(ICECandidate.peerReflexivePriority(like: localCandidate)),
            role == .controlling ? .iceControlling(tieBreaker) : .iceControlled(tieBreaker),
        ]
        if purpose == .check(nominating: true) { attributes.append(.useCandidate) }
        let request = STUNMessage(messageClass: .request, transactionID: id, attributes: attributes)
            .serialized(integrityKey: remote.integrityKey, fingerprint: true)
        // RFC 8445 §14.3: RTO = max(500 ms, Ta × pairs waiting or in progress).
        let active = pairs.filter { $0.state == .waiting || $0.state == .inProgress }.count
        let timeout = max(configuration.minimumRetransmissionTimeout, configuration.pacingInterval * active)
        // Over TCP the request is sent once (RFC 6544 §7.1): its answer may take the whole Rm × RTO.
        let firstWait = purpose == .consent ? configuration.consentTimeout
            : path.base == .tcp ? timeout * configuration.lastResponseWaitFactor : timeout
        transactions.append(Transaction(id: id, path: path, request: request, purpose: purpose,
                                        sentControlling: role == .controlling, firstSent: now, timeout: timeout,
                                        due: now + firstWait))
        return .send(request, on: path)
    }

    /// RFC 8489 §6.2.1: the same request again after RTO, 2·RTO, 4·RTO…; after the last one Rm × RTO
    /// for its answer, then the check failed. Consent checks are not repeated: the next one is new.
    private mutating func retransmitOrFail(now: MonotonicTime, into actions: inout [ICEAction]) {
        var index = 0
        while index < transactions.count {
            var transaction = transactions[index]
            guard transaction.due <= now else { index += 1; continue }
            if transaction.purpose != .consent, !transaction.cancelled, transaction.path.base != .tcp,
               transaction.transmissions < configuration.maximumTransmissions {
                transaction.transmissions += 1
                let wait = transaction.transmissions == configuration.maximumTransmissions
                    ? transaction.timeout * configuration.lastResponseWaitFactor
                    : transaction.timeout * (1 << (transaction.transmissions - 1))
                transaction.due = now + wait
                transactions[index] = transaction
                actions.append(.send(transaction.request, on: transaction.path))
                index += 1
                continue
            }
            transactions.remove(at: index)
            if let pair = pairIndex(transaction.path), pairs[pair].transaction == transaction.id,
               pairs[pair].state == .inProgress {
                pairs[pair].state = .failed
                pairs[pair].transaction = nil
                pairs[pair].nominationRequested = pairs[pair].nominationRequested && role == .controlled
            }
        }
    }

    // MARK: - Helpers

    private mutating func select(_ index: Int, now: MonotonicTime, into actions: inout [ICEAction]) {
        let pair = pairs[index]
        guard selectedPair?.path != pair.path else { return }
        selectedPair = ICESelectedPair(local: pair.validLocal ?? pair.local, remote: pair.remote, path: pair.path,
                                       roundTripTime: lastRoundTrip[pair.path])
        consentExpiry = now + configuration.consentTimeout
        nextConsentCheck = now + jittered(configuration.consentInterval)
        actions.append(.selected(pair.path))
    }

    private mutating func reportChecked(_ path: TransportPath, into actions: inout [ICEAction]) {
        // Reported every time, as the lite agent does: the owner keeps the most recent ones.
        actions.append(.checked(path))
    }

    private mutating func enqueueTriggered(_ path: TransportPath) {
        if !triggeredQueue.contains(path) { triggeredQueue.append(path) }
    }

    /// RFC 8445 §7.2.5.1 / §6.1.2.3: priorities depend on the role.
    private mutating func switchRole(to newRole: ICERole) {
        role = newRole
    }

    /// RFC 8445 §6.1.2.3: 2^32·MIN(G,D) + 2·MAX(G,D) + (G>D ? 1 : 0), G the controlling side's
    /// candidate priority and D the controlled side's.
    func pairPriority(_ pair: Pair) -> UInt64 {
        let ours = UInt64(pair.local.priority), theirs = UInt64(pair.remote.priority)
        let (g, d) = role == .controlling ? (ours, theirs) : (theirs, ours)
        return (1 << 32) * min(g, d) + 2 * max(g, d) + (g > d ? 1 : 0)
    }

    private func bestPair(in state: PairState) -> Int? {
        pairs.indices.filter { pairs[$0].state == state }.max { pairPriority(pairs[$0]) < pairPriority(pairs[$1]) }
    }

    private func pairIndex(_ path: TransportPath) -> Int? {
        pairs.firstIndex { $0.path == path }
    }

    /// The candidate a check to this family leaves from on `base`: the best host candidate (the
    /// socket's), the relayed one (see the type's comment), or the TCP host candidate that pairs with
    /// the remote one's type: our active one with a passive one, else (a connection the peer opened)
    /// our passive one.
    private func baseCandidate(_ base: TransportPath.LocalBase, for ip: TransportAddress.IP,
                               remoteTCPType: ICECandidate.TCPType? = nil) -> ICECandidate? {
        let matching: (ICECandidate) -> Bool
        switch base {
        case .host: matching = { $0.kind == .host && !$0.isTCP }
        case .relay: matching = { $0.kind == .relayed }
        case .tcp:
            let wanted: ICECandidate.TCPType = remoteTCPType == .passive ? .active : .passive
            matching = { $0.kind == .host && $0.tcpType == wanted }
        }
        return localCandidates.filter { matching($0) && $0.address.ip.isSameFamily(as: ip) }.max { $0.priority < $1.priority }
    }

    /// RFC 8445 §7.2.5.3.1: a mapped address that is none of our candidates is a new peer-reflexive
    /// one, with the priority our check announced.
    private mutating func localCandidate(mappedTo mapped: TransportAddress, sentFrom base: ICECandidate) -> ICECandidate {
        if let known = localCandidates.first(where: { $0.address == mapped && $0.isTCP == base.isTCP }) { return known }
        let learned = ICECandidate(address: mapped, kind: .peerReflexive, priority: ICECandidate.peerReflexivePriority(like: base),
                                   foundation: "prflx-\(mapped)", relatedAddress: base.address, tcpType: base.tcpType)
        addLocalCandidate(learned)
        return learned
    }

    private mutating func jittered(_ interval: Duration) -> Duration {
        interval * Double.random(in: 0.8...1.2, using: &random)
    }
}
