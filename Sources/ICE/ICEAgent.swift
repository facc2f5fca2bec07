import RTCBase

/// The agent a session runs (`--ice`): lite (RFC 8445 §2.5; answers checks only, for a camera on a
/// public address) or full (checks both ways, so it gets through NATs). Both speak `ICEAction`, so
/// the session drives either the same way.
public enum ICEAgent: Sendable {
    case lite(ICELiteAgent)
    case full(ICEFullAgent)

    public var nextDeadline: MonotonicTime? {
        switch self {
        case let .lite(agent): return agent.nextDeadline
        case let .full(agent): return agent.nextDeadline
        }
    }

    public mutating func receive(_ datagram: [UInt8], on path: TransportPath, now: MonotonicTime) -> [ICEAction] {
        switch self {
        case var .lite(agent):
            defer { self = .lite(agent) }
            return agent.receive(datagram, on: path, now: now)
        case var .full(agent):
            defer { self = .full(agent) }
            return agent.receive(datagram, on: path, now: now)
        }
    }

    /// The TCP connection with `remote` at its other end closed (ICE-TCP; a lite agent has no pairs).
    public mutating func tcpConnectionClosed(remote: TransportAddress) {
        guard case var .full(agent) = self else { return }
        agent.tcpConnectionClosed(remote: remote)
        self = .full(agent)
    }

    public mutating func handleTimeout(now: MonotonicTime) -> [ICEAction] {
        switch self {
        case var .lite(agent):
            defer { self = .lite(agent) }
            return agent.handleTimeout(now: now)
        case var .full(agent):
            defer { self = .full(agent) }
            return agent.handleTimeout(now: now)
        }
    }

    /// A remote candidate (offer or trickle); a lite agent learns addresses from checks only.
    public mutating func addRemoteCandidate(_ candidate: ICECandidate, now: MonotonicTime) -> [ICEAction] {
        guard case var .full(agent) = self else { return [] }
        defer { self = .full(agent) }
        return agent.addRemoteCandidate(candidate, now: now)
    }

    public mutating func endOfRemoteCandidates() {
        guard case var .full(agent) = self else { return }
        agent.endOfRemoteCandidates()
        self = .full(agent)
    }

    /// Lets checks to and from this IP through (a trickled candidate's, RFC 8838).
    public mutating func allowRemoteIP(_ ip: TransportAddress.IP) {
        guard case var .full(agent) = self else { return }
        agent.allowRemoteIP(ip)
        self = .full(agent)
    }

    /// ICE restart (RFC 8445 §9): a lite agent starts afresh; a full one keeps its own candidates.
    public mutating func restart(local: ICECredentials, remote: ICECredentials, now: MonotonicTime) {
        switch self {
        case .lite:
            self = .lite(ICELiteAgent(local: local, remote: remote, now: now))
        case var .full(agent):
            agent.restart(local: local, remote: remote, now: now)
            self = .full(agent)
        }
    }

    /// The pair media uses (full agent), with candidate types and round trip.
    public var selectedPair: ICESelectedPair? {
        guard case let .full(agent) = self else { return nil }
        return agent.selectedPair
    }
}

/// `--ice full|lite`.
public enum ICEMode: String, Sendable, CaseIterable {
    case full, lite
}
