#if canImport(Glibc)
import Glibc
#endif
import DTLS
import RTCBase
import TURN

/// `--turn turn:HOST:PORT[?transport=udp]` and its credentials, as the daemon resolved them.
struct RelayServerConfiguration: Equatable, Sendable {
    enum Credentials: Equatable, Sendable {
        /// A long-term username and password (coturn `user=NAME:PASSWORD`).
        case longTerm(user: String, password: String)
        /// coturn's shared secret (`use-auth-secret`, `static-auth-secret=`): time-limited REST
        /// credentials are made from it (TURNCredentials.sharedSecret), `user` named in them.
        case sharedSecret(String, user: String)
    }

    /// The server's address (IPv4: the media socket's family the server is reached in).
    var server: TransportAddress
    /// As configured, for the log and /api/status.
    var spelled: String
    var credentials: Credentials
    /// UDP from the media socket, or a TCP or TLS connection of its own.
    var transport: TURNServerSpelling.Transport = .udp
    /// The host name of the URL: what a `turns:` server's certificate must name (and the SNI).
    var serverName = ""
    /// `--turn-ca`: the CA (PEM) a `turns:` server's certificate must chain to; nil: the system's.
    var trustedCAFile: String?
}

/// The hub's TURN allocation on the media socket (issue 19): made at start and kept (refreshed,
/// asked for again with a backoff when lost), so an answer never waits for it; its relayed address
/// is offered as a `typ relay` candidate while it is live. Owned by the hub, under its lock; the
/// protocol is TURNClient's (sans-IO), the wall clock for REST credentials is read here.
struct MediaRelay {
    let configuration: RelayServerConfiguration
    var client: TURNClient
    /// Over TCP or TLS: the connection's state (the hub connects it); nil over UDP.
    let stream: TURNStreamLink?
    /// The IPs each viewer has a permission for (so a viewer leaving forgets only its own).
    private var peersByViewer: [String: Set<TransportAddress.IP>] = [:]

    /// REST credentials are made valid for a day and made again before each new Allocate.
    static let sharedSecretLifetimeSeconds: UInt64 = 24 * 3600

    init(configuration: RelayServerConfiguration, tlsContext: TLSClientContext? = nil, tlsProblem: String? = nil,
         now: MonotonicTime) {
        self.configuration = configuration
        stream = configuration.transport == .udp ? nil
            : TURNStreamLink(transport: configuration.transport, tlsContext: tlsContext, problem: tlsProblem)
        client = Self.makeClient(configuration, now: now)
    }

    private static func makeClient(_ configuration: RelayServerConfiguration, now: MonotonicTime) -> TURNClient {
        var turn = TURNClient.Configuration()
        // An answer never waits for the relay, so a failed Allocate is asked again soon, then less
        // and less often (a server that is down is not hammered).
        turn.retryInterval = .seconds(2)
        turn.maximumRetryInterval = .seconds(60)
        return TURNClient(server: configuration.server, transport: configuration.transport == .udp ? .udp : .tcp,
                          credentials: credentials(for: configuration.credentials),
                          configuration: turn, now: now, random: SystemRandomNumberGenerator())
    }

    /// When the TURN client wants `handleTimeout`: never while a TCP or TLS connection is not up
    /// (its first Allocate goes when the connection is ready).
    var nextDeadline: MonotonicTime? {
        if let stream, stream.phase != .ready { return nil }
        return client.nextDeadline
    }

    /// A new connection to the server is up: a new client (its Allocate due now), with the
    /// permissions every viewer still has asked for again (installed once the allocation is made).
    /// The Allocate to send is among the actions.
    mutating func restartClient(now: MonotonicTime) -> [TURNClient.Action] {
        client = Self.makeClient(configuration, now: now)
        var actions: [TURNClient.Action] = []
        let peers = peersByViewer.values.reduce(into: Set<TransportAddress.IP>()) { $0.formUnion($1) }
        for ip in peers { actions += client.createPermission(for: ip, now: now) }
        return actions + client.handleTimeout(now: now)
    }

    static func credentials(for credentials: RelayServerConfiguration.Credentials) -> TURNCredentials {
        switch credentials {
        case let .longTerm(user, password):
            return TURNCredentials(username: user, password: password)
        case let .sharedSecret(secret, user):
            var wall = timespec()
            clock_gettime(CLOCK_REALTIME, &wall)
            return TURNCredentials.sharedSecret(secret, user: user,
                                                expiresAtUnixSeconds: UInt64(max(0, wall.tv_sec)) + sharedSecretLifetimeSeconds)
        }
    }

    /// The relayed address and what the server saw rtcam at, while the allocation is live.
    var relayedCandidate: (relayed: TransportAddress, mapped: TransportAddress)? {
        guard let relayed = client.relayedAddress else { return nil }
        return (relayed, client.mappedAddress ?? relayed)
    }

    /// An Allocate failed or the allocation was lost: REST credentials are made afresh for the next.
    mutating func renewCredentialsIfTimeLimited() {
        if case .sharedSecret = configuration.credentials {
            client.replaceCredentials(Self.credentials(for: configuration.credentials))
        }
    }

    /// A permission for `ip` on behalf of `viewer` (RFC 8656 §9); the CreatePermission to send, if new.
    mutating func permit(_ ip: TransportAddress.IP, for viewer: String, now: MonotonicTime) -> [TURNClient.Action] {
        // The relayed address is IPv4 unless asked otherwise (RFC 8656 §7.1): it relays to its family
        // only. A relay on a public address reaches no private one (and a server that denies them
        // would answer 403, asked again every retry interval): none for those.
        guard ip.isIPv6 == (client.relayedAddress?.ip.isIPv6 ?? false) else { return [] }
        if ip.isPrivate, !(client.relayedAddress ?? configuration.server).ip.isPrivate { return [] }
        peersByViewer[viewer, default: []].insert(ip)
        return client.createPermission(for: ip, now: now)
    }

    /// The viewer left: the permissions and channels no other viewer uses are no longer refreshed.
    mutating func viewerLeft(_ viewer: String) {
        guard let peers = peersByViewer.removeValue(forKey: viewer) else { return }
        let stillUsed = peersByViewer.values.reduce(into: Set<TransportAddress.IP>()) { $0.formUnion($1) }
        for ip in peers where !stillUsed.contains(ip) { client.forget(ip) }
    }

    /// How many viewers' permissions the relay keeps (status and tests).
    var viewersWithPermissions: Int { peersByViewer.count }
}
