import RTCBase
import STUN
@testable import ICE

/// A NAT box between one private site and the simulated internet (RFC 4787 terms).
struct SimulatedNAT {
    enum Behaviour {
        /// RFC 4787 §4.1 / §5: one mapping per internal address whatever the destination.
        case endpointIndependent
        /// A mapping (or a permission) per destination address and port.
        case addressAndPortDependent
    }

    let publicIP: TransportAddress.IP
    let mapping: Behaviour
    let filtering: Behaviour
    private var nextPort: UInt16 = 40_000
    /// (internal source, destination or nil for endpoint-independent) → external port.
    private var ports: [MappingKey: UInt16] = [:]
    /// External port → internal address and the destinations it sent to (its permissions).
    private var bindings: [UInt16: (internal: TransportAddress, contacted: Set<TransportAddress>)] = [:]
    private(set) var droppedInbound = 0

    struct MappingKey: Hashable {
        var source: TransportAddress
        var destination: TransportAddress?
    }

    init(publicIP: String, mapping: Behaviour, filtering: Behaviour) {
        self.publicIP = TransportAddress.IP(parsing: publicIP)!
        self.mapping = mapping
        self.filtering = filtering
    }

    /// The source address a datagram from `source` to `destination` leaves with (making the mapping).
    mutating func outbound(from source: TransportAddress, to destination: TransportAddress) -> TransportAddress {
        let key = MappingKey(source: source, destination: mapping == .endpointIndependent ? nil : destination)
        let port: UInt16
        if let known = ports[key] {
            port = known
        } else {
            port = nextPort
            nextPort += 1
            ports[key] = port
            bindings[port] = (source, [])
        }
        bindings[port]?.contacted.insert(destination)
        return TransportAddress(ip: publicIP, port: port)
    }

    /// Where a datagram from `source` to our public `destination` goes inside, if the filter lets it.
    mutating func inbound(from source: TransportAddress, to destination: TransportAddress) -> TransportAddress? {
        guard destination.ip == publicIP, let binding = bindings[destination.port] else { droppedInbound += 1; return nil }
        if filtering == .addressAndPortDependent, !binding.contacted.contains(source) { droppedInbound += 1; return nil }
        return binding.internal
    }
}

/// A site: a LAN behind a NAT, or a host on the internet itself (no NAT).
struct SimulatedSite {
    var nat: SimulatedNAT?
    /// A firewall dropping everything that comes in from the internet (a blocked direction).
    var blocksInbound = false
    /// Everything going out to the internet is dropped.
    var blocksOutbound = false
    /// A stateful firewall without NAT: from the internet only what answers an address the site's
    /// endpoint sent to before (address-and-port-dependent filtering, no translation).
    var blocksUnsolicitedInbound = false
    var contacted: Set<[TransportAddress]> = []
    var droppedUnsolicited = 0
}

/// A TURN server's allocation for one endpoint (RFC 8656), as the agent sees it once the owner has
/// done the wrapping: what the agent sends on a relay path leaves from `relayedAddress`, and what
/// comes to `relayedAddress` from an IP with a permission reaches the agent on a relay path. Sending
/// to a peer installs its permission (the owner's CreatePermission, §9), as rtcam's hub does.
struct SimulatedRelay {
    var relayedAddress: TransportAddress
    var owner: Int
    var permissions: Set<TransportAddress.IP> = []
    var relayedOut = 0
    var relayedIn = 0
    var droppedWithoutPermission = 0
}

/// Agents on sites joined by an internet, on a virtual clock: datagrams take `oneWayDelay` (LAN or
/// internet alike), may be dropped by a seeded loss rate or a rule, and pass NATs on the way.
struct ICENetwork {
    struct Endpoint {
        var name: String
        var address: TransportAddress
        var site: Int
        var agent: ICEFullAgent
        /// Everything but `.send`, with the time.
        var events: [(MonotonicTime, ICEAction)] = []
        var sent: [(MonotonicTime, [UInt8], TransportPath)] = []
        var received: [(MonotonicTime, [UInt8], TransportPath)] = []
    }

    struct InFlight {
        var arrival: MonotonicTime
        var order: Int
        var endpoint: Int
        var datagram: [UInt8]
        var path: TransportPath
    }

    var now = MonotonicTime(seconds: 1000)
    var sites: [SimulatedSite] = []
    var endpoints: [Endpoint] = []
    var relays: [SimulatedRelay] = []
    var oneWayDelay: Duration = .milliseconds(20)
    var lossRate = 0.0
    var random = SeededRandom(seed: 7)
    /// Drops a datagram when it says so (time, sending endpoint, destination).
    var dropRule: (MonotonicTime, Int, TransportAddress) -> Bool = { _, _, _ in false }
    private var inFlight: [InFlight] = []
    private var order = 0
    private(set) var droppedByLoss = 0

    mutating func addSite(_ site: SimulatedSite) -> Int {
        sites.append(site)
        return sites.count - 1
    }

    mutating func addEndpoint(name: String, address: TransportAddress, site: Int, agent: ICEFullAgent) -> Int {
        endpoints.append(Endpoint(name: name, address: address, site: site, agent: agent))
        return endpoints.count - 1
    }

    /// An allocation for `endpoint` at `relayedAddress` (a public address of the simulated internet);
    /// the caller gives the agent its relayed candidate.
    mutating func addRelay(for endpoint: Int, relayedAddress: TransportAddress) -> Int {
        relays.append(SimulatedRelay(relayedAddress: relayedAddress, owner: endpoint))
        return relays.count - 1
    }

    /// What a STUN server on the internet would tell this endpoint (RFC 8489 Binding): the mapping
    /// its NAT makes toward the server, which the test then gives the agent as a srflx candidate.
    mutating func serverReflexiveAddress(of endpoint: Int, stunServer: TransportAddress) -> TransportAddress {
        let site = endpoints[endpoint].site
        guard sites[site].nat != nil else { return endpoints[endpoint].address }
        return sites[site].nat!.outbound(from: endpoints[endpoint].address, to: stunServer)
    }

    func candidates(of endpoint: Int) -> [ICECandidate] { endpoints[endpoint].agent.localCandidates }

    /// Gives each endpoint the other's candidates (offer/answer, or trickle).
    mutating func exchangeCandidates(_ a: Int, _ b: Int) {
        for candidate in candidates(of: b) { apply(endpoints[a].agent.addRemoteCandidate(candidate, now: now), at: a) }
        for candidate in candidates(of: a) { apply(endpoints[b].agent.addRemoteCandidate(candidate, now: now), at: b) }
    }

    mutating func run(for duration: Duration) { run(until: now + duration) }

    mutating func run(until end: MonotonicTime) {
        while true {
            let nextArrival = inFlight.min { ($0.arrival, $0.order) < ($1.arrival, $1.order) }
            let nextTimer = endpoints.indices.compactMap { index in endpoints[index].agent.nextDeadline.map { ($0, index) } }
                .min { $0.0 < $1.0 }
            let next = earliest(nextArrival?.arrival, nextTimer?.0)
            guard let next, next <= end else { break }
            now = max(now, next)
            if let arrival = nextArrival, arrival.arrival <= now {
                inFlight.removeAll { $0.order == arrival.order }
                endpoints[arrival.endpoint].received.append((now, arrival.datagram, arrival.path))
                apply(endpoints[arrival.endpoint].agent.receive(arrival.datagram, on: arrival.path, now: now),
                      at: arrival.endpoint)
            } else if let (_, index) = nextTimer {
                apply(endpoints[index].agent.handleTimeout(now: now), at: index)
            }
        }
        now = end
    }

    mutating func apply(_ actions: [ICEAction], at index: Int) {
        for action in actions {
            guard case let .send(datagram, path) = action else { endpoints[index].events.append((now, action)); continue }
            endpoints[index].sent.append((now, datagram, path))
            send(datagram, from: index, on: path)
        }
    }

    /// Routes one datagram: on the LAN to a neighbour, else out through the site's NAT, across the
    /// internet to a public endpoint, a relay or into another site's NAT; on a relay path, out of
    /// the endpoint's relayed address. Private addresses of other sites have no route.
    private mutating func send(_ datagram: [UInt8], from index: Int, on path: TransportPath) {
        let destination = path.remote
        if dropRule(now, index, destination) { return }
        if lossRate > 0, Double.random(in: 0..<1, using: &random) < lossRate { droppedByLoss += 1; return }
        if path.base == .relay {
            // The leg to the TURN server is the owner's (wrapped, through its NAT): not modelled.
            guard let relay = relays.firstIndex(where: { $0.owner == index }) else { return }
            relays[relay].permissions.insert(destination.ip)
            relays[relay].relayedOut += 1
            acrossInternet(datagram, from: relays[relay].relayedAddress, leaving: nil, to: destination)
            return
        }
        let siteIndex = endpoints[index].site
        var source = endpoints[index].address
        if let neighbour = endpoints.indices.first(where: {
            $0 != index && endpoints[$0].site == siteIndex && endpoints[$0].address == destination
        }) {
            deliver(datagram, to: neighbour, on: .host(source))
            return
        }
        if sites[siteIndex].blocksOutbound { return }
        if sites[siteIndex].nat != nil { source = sites[siteIndex].nat!.outbound(from: source, to: destination) }
        if sites[siteIndex].blocksUnsolicitedInbound { sites[siteIndex].contacted.insert([source, destination]) }
        acrossInternet(datagram, from: source, leaving: siteIndex, to: destination)
    }

    /// From a public `source` (a NAT's mapping, a public endpoint, a relayed address) to `destination`.
    private mutating func acrossInternet(_ datagram: [UInt8], from source: TransportAddress, leaving siteIndex: Int?,
                                         to destination: TransportAddress) {
        if let relay = relays.firstIndex(where: { $0.relayedAddress == destination }) {
            // RFC 8656 §9: only from an IP the owner made a permission for.
            guard relays[relay].permissions.contains(source.ip) else { relays[relay].droppedWithoutPermission += 1; return }
            relays[relay].relayedIn += 1
            deliver(datagram, to: relays[relay].owner, on: .relay(source))
            return
        }
        for site in sites.indices where site != siteIndex {
            if sites[site].nat == nil {
                guard let target = endpoints.indices.first(where: { endpoints[$0].site == site && endpoints[$0].address == destination })
                else { continue }
                if sites[site].blocksInbound { return }
                if sites[site].blocksUnsolicitedInbound, !sites[site].contacted.contains([destination, source]) {
                    sites[site].droppedUnsolicited += 1
                    return
                }
                deliver(datagram, to: target, on: .host(source))
                return
            }
            guard sites[site].nat!.publicIP == destination.ip else { continue }
            if sites[site].blocksInbound { return }
            guard let inside = sites[site].nat!.inbound(from: source, to: destination),
                  let target = endpoints.indices.first(where: { endpoints[$0].site == site && endpoints[$0].address == inside })
            else { return }
            deliver(datagram, to: target, on: .host(source))
            return
        }
    }

    private mutating func deliver(_ datagram: [UInt8], to endpoint: Int, on path: TransportPath) {
        order += 1
        inFlight.append(InFlight(arrival: now + oneWayDelay, order: order, endpoint: endpoint, datagram: datagram, path: path))
    }

    func selections(of endpoint: Int) -> [TransportAddress] { selectedPaths(of: endpoint).map(\.remote) }

    func selectedPaths(of endpoint: Int) -> [TransportPath] {
        endpoints[endpoint].events.compactMap { if case let .selected(path) = $0.1 { path } else { nil } }
    }

    func firstSelection(of endpoint: Int) -> MonotonicTime? {
        endpoints[endpoint].events.first { if case .selected = $0.1 { true } else { false } }?.0
    }

    func consentLosses(of endpoint: Int) -> [MonotonicTime] {
        endpoints[endpoint].events.compactMap { $0.1 == .consentLost ? $0.0 : nil }
    }

    /// The requests an endpoint sent (checks and consent checks), with time and destination.
    func requestsSent(by endpoint: Int) -> [(MonotonicTime, STUNMessage, TransportAddress)] {
        requestsSentOnPaths(by: endpoint).map { ($0.0, $0.1, $0.2.remote) }
    }

    func requestsSentOnPaths(by endpoint: Int) -> [(MonotonicTime, STUNMessage, TransportPath)] {
        endpoints[endpoint].sent.compactMap { time, datagram, path in
            guard let message = try? STUNMessage(parsing: datagram), message.messageClass == .request else { return nil }
            return (time, message, path)
        }
    }
}

/// Two parties as the tests set them up: the camera (rtcam, controlled) and the viewer (controlling).
enum ICEParty {
    static let cameraCredentials = ICECredentials(ufrag: "cam1", password: "cameraPasswordCameraPass")
    static let viewerCredentials = ICECredentials(ufrag: "view", password: "viewerPasswordViewerPass")

    /// The camera's agent (`camera`) or the viewer's, in the role given.
    static func agent(_ role: ICERole, camera: Bool, host: TransportAddress, tieBreaker: UInt64, seed: UInt64,
                      configuration: ICEFullAgent.Configuration = ICEFullAgent.Configuration(),
                      now: MonotonicTime = MonotonicTime(seconds: 1000)) -> ICEFullAgent {
        return ICEFullAgent(role: role, local: camera ? cameraCredentials : viewerCredentials,
                            remote: camera ? viewerCredentials : cameraCredentials,
                            localCandidates: [ICECandidate(address: host, kind: .host, localPreference: 65535, foundation: "1")],
                            tieBreaker: tieBreaker, configuration: configuration, now: now, random: SeededRandom(seed: seed))
    }

    static func serverReflexive(_ address: TransportAddress, base: TransportAddress) -> ICECandidate {
        ICECandidate(address: address, kind: .serverReflexive, localPreference: 65535, foundation: "2", relatedAddress: base)
    }
}
