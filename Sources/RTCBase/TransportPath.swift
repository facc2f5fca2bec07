/// Which way a datagram goes between rtcam and a peer: from which of rtcam's bases (RFC 8445 §5.1.1:
/// the address a candidate's datagrams really leave from) to which remote address. A remote address
/// alone no longer names a path once rtcam has two bases: the same viewer candidate can be reached
/// straight from the media socket and through the TURN server's relayed address (RFC 8656), and
/// those are two candidate pairs with their own checks, consent and media.
public struct TransportPath: Hashable, Sendable, CustomStringConvertible {
    /// rtcam's end of the path.
    public enum LocalBase: Hashable, Sendable {
        /// The media socket itself (host candidates, and the server-reflexive ones whose base it is).
        case host
        /// The TURN allocation's relayed address: datagrams go to the TURN server wrapped (Send
        /// indication or ChannelData) and come back unwrapped from Data indications or ChannelData.
        case relay
        /// A TCP connection (ICE-TCP, RFC 6544) whose other end is the path's remote address: for
        /// rtcam one accepted on its passive candidate's listening port (the remote address is the
        /// viewer's ephemeral one); for an active agent (the tests' viewer) the one it opened to the
        /// remote passive candidate. Datagrams on it are framed by their length (RFC 4571).
        case tcp
    }

    public var base: LocalBase
    public var remote: TransportAddress

    public init(base: LocalBase, remote: TransportAddress) {
        self.base = base
        self.remote = remote
    }

    /// Straight from the media socket to `remote`.
    public static func host(_ remote: TransportAddress) -> TransportPath { TransportPath(base: .host, remote: remote) }

    /// Through the TURN allocation to `remote`.
    public static func relay(_ remote: TransportAddress) -> TransportPath { TransportPath(base: .relay, remote: remote) }

    /// Over the TCP connection with `remote` at its other end.
    public static func tcp(_ remote: TransportAddress) -> TransportPath { TransportPath(base: .tcp, remote: remote) }

    public var isRelayed: Bool { base == .relay }

    public var description: String {
        switch base {
        case .host: "\(remote)"
        case .relay: "\(remote) via relay"
        case .tcp: "\(remote) over TCP"
        }
    }
}
