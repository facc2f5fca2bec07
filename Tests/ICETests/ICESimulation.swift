import RTCBase
import STUN
@testable import ICE

/// A lite agent (rtcam) and a controlling agent (viewer) passing datagrams through arrays, on a
/// virtual clock, with no delay. Requests and responses can be dropped, and the viewer's apparent
/// source address can be changed (NAT rebinding / network switch).
struct ICELink {
    static let liteAddress = TransportAddress(host: "192.168.1.10", port: 50000)!
    static let firstViewerAddress = TransportAddress(host: "192.168.1.20", port: 61000)!
    static let liteCredentials = ICECredentials(ufrag: "lite", password: "litePasswordLitePassword")
    static let viewerCredentials = ICECredentials(ufrag: "view", password: "viewerPasswordViewerPass")

    var now = MonotonicTime(seconds: 1000)
    var lite: ICELiteAgent
    var viewer: ICEControllingAgent
    var viewerAddress = ICELink.firstViewerAddress
    /// Drop viewer→lite datagrams while this says so.
    var dropRequest: (MonotonicTime) -> Bool = { _ in false }
    /// Drop lite→viewer datagrams while this says so.
    var dropResponse: (MonotonicTime) -> Bool = { _ in false }

    /// Everything but `.send`, with the time it happened.
    var liteEvents: [(MonotonicTime, ICEAction)] = []
    /// Addresses the lite agent reported as checked (a success response sent to them).
    var liteCheckedAddresses: Set<TransportAddress> = []
    var viewerEvents: [(MonotonicTime, ICEAction)] = []
    var viewerSends: [(MonotonicTime, [UInt8])] = []
    var liteSends: [(MonotonicTime, [UInt8])] = []
    var checksDeliveredToLite: [MonotonicTime] = []

    init(liteKnowsRemote: Bool = true, viewerUsesLitePassword password: String? = nil, seed: UInt64 = 1) {
        lite = ICELiteAgent(local: Self.liteCredentials, remote: liteKnowsRemote ? Self.viewerCredentials : nil, now: now)
        var remote = Self.liteCredentials
        if let password { remote.password = password }
        viewer = ICEControllingAgent(local: Self.viewerCredentials, remote: remote, remoteAddress: Self.liteAddress,
                                     tieBreaker: 0x1234_5678_9ABC_DEF0, now: now, random: SeededRandom(seed: seed))
    }

    mutating func start() { handleViewer(viewer.start(now: now)) }

    /// Advances the clock deadline by deadline until `end`, then sets it to `end`.
    mutating func run(until end: MonotonicTime) {
        while let next = earliest(lite.nextDeadline, viewer.nextDeadline), next <= end {
            now = max(now, next)
            handleViewer(viewer.handleTimeout(now: now))
            handleLite(lite.handleTimeout(now: now))
        }
        now = end
    }

    mutating func run(for duration: Duration) { run(until: now + duration) }

    private mutating func handleViewer(_ actions: [ICEAction]) {
        for action in actions {
            guard case let .send(datagram, path) = action else { viewerEvents.append((now, action)); continue }
            viewerSends.append((now, datagram))
            guard path == .host(Self.liteAddress), !dropRequest(now) else { continue }
            checksDeliveredToLite.append(now)
            handleLite(lite.receive(datagram, from: viewerAddress, now: now))
        }
    }

    private mutating func handleLite(_ actions: [ICEAction]) {
        for action in actions {
            if case let .checked(path) = action { liteCheckedAddresses.insert(path.remote); continue }
            guard case let .send(datagram, path) = action else { liteEvents.append((now, action)); continue }
            liteSends.append((now, datagram))
            // Only the viewer's current address reaches it (the old NAT binding is gone).
            guard path == .host(viewerAddress), !dropResponse(now) else { continue }
            handleViewer(viewer.receive(datagram, from: Self.liteAddress, now: now))
        }
    }
}
