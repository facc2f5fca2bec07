import Glibc
import RTCBase
import STUN
import Testing
@testable import TURN

/// The client against Debian's coturn, over real sockets, in a network namespace this test makes
/// (only its loopback exists there): allocate, permission, a Send indication to a peer socket and its
/// answer back in a Data indication, a channel and ChannelData both ways, release. With `--user`
/// long-term credentials over UDP and TCP, and with `--use-auth-secret` REST credentials over UDP;
/// then coturn's 401 (wrong password), 486 (`--user-quota 1`) and 438 (`--stale-nonce=2`).
@Suite(.serialized) struct CoturnTests {
    static let turnserver: String? = ["/usr/bin/turnserver", "/usr/sbin/turnserver"].first { (path: String) in access(path, X_OK) == 0 }

    @Test(.enabled(if: turnserver != nil && getuid() == 0, "needs coturn (make install-test-packages) and root for a network namespace"))
    func allocateRelayAndChannelThroughCoturn() throws {
        let namespace = try LoopbackNamespace(turnserver: Self.turnserver!)
        defer { namespace.stop() }
        let longTerm = TURNCredentials(username: "alice", password: "wonderland")
        let restCredentials = TURNCredentials.sharedSecret("north-secret", user: "camera",
                                                            expiresAtUnixSeconds: UInt64(time(nil)) + 3600)
        let cases: [(String, TransportAddress, TURNClient.Transport, TURNCredentials, Int32)] = [
            ("UDP, --user", LoopbackNamespace.longTermServer, .udp, longTerm, namespace.udpClients[0]),
            ("UDP, --use-auth-secret", LoopbackNamespace.sharedSecretServer, .udp, restCredentials, namespace.udpClients[1]),
            ("TCP, --user", LoopbackNamespace.longTermServer, .tcp, TURNCredentials(username: "carol", password: "singer"), -1),
        ]
        for (name, server, transport, credentials, udpSocket) in cases {
            let socket = transport == .udp ? udpSocket : try namespace.connectTCP(to: server)
            defer { if transport == .tcp { close(socket) } }
            try exercise(name: name, server: server, transport: transport, credentials: credentials,
                         socket: socket, peer: namespace.peer, namespace: namespace)
        }
        // Wrong password: 401 twice, and the client says so.
        var wrong = Driver(client: TURNClient(server: LoopbackNamespace.longTermServer,
                                              credentials: TURNCredentials(username: "alice", password: "looking-glass"),
                                              now: Clock.now, random: SeededRandom(seed: 8)),
                           socket: namespace.udpClients[2])
        try wrong.run(seconds: 5) { (driver: Driver) in driver.events.contains(TURNClient.Action.allocationFailed(.unauthorized)) }

        // 486: a user may hold one allocation at a time (--user-quota 1; each case above has its own
        // user, as coturn counts a released allocation a moment longer).
        let bob = TURNCredentials(username: "bob", password: "builder")
        var first = Driver(client: TURNClient(server: LoopbackNamespace.longTermServer, credentials: bob, now: Clock.now,
                                              random: SeededRandom(seed: 9)), socket: namespace.udpClients[3])
        try first.run(seconds: 5) { $0.client.relayedAddress != nil }
        var second = Driver(client: TURNClient(server: LoopbackNamespace.longTermServer, credentials: bob, now: Clock.now,
                                               random: SeededRandom(seed: 10)), socket: namespace.udpClients[4])
        try second.run(seconds: 5) { (driver: Driver) in
            driver.events.contains { if case .allocationFailed(.errorResponse(code: 486, _)) = $0 { true } else { false } }
        }
        #expect(second.client.relayedAddress == nil && second.client.state == .idle)

        // 438: coturn's nonces last 2 s here (--stale-nonce=2, counted in whole seconds: stale 3 s
        // after it was given at the latest); a CreatePermission made after that is answered 438
        // with a new nonce and sent again with it.
        let stale = Clock.now + .milliseconds(3200)
        try first.run(seconds: 4) { _ in Clock.now >= stale }
        let sentBefore = first.sentCount
        first.perform(first.client.createPermission(for: namespace.peer.address.ip, now: Clock.now))
        try first.run(seconds: 3) { $0.client.hasPermission(for: namespace.peer.address.ip) }
        #expect(first.sentCount - sentBefore == 2)
        #expect(first.client.relayedAddress != nil && first.events.count == 1, "\(first.events)")
    }

    func exercise(name: String, server: TransportAddress, transport: TURNClient.Transport, credentials: TURNCredentials,
                  socket: Int32, peer: UDPEndpoint, namespace: LoopbackNamespace) throws {
        let started = Clock.now
        var driver = Driver(client: TURNClient(server: server, transport: transport, credentials: credentials,
                                               now: started, random: SeededRandom(seed: 19)), socket: socket)
        try driver.run(seconds: 5) { $0.client.relayedAddress != nil }
        let allocatedAfter = Clock.now - started
        let relayed = try #require(driver.client.relayedAddress)
        #expect(relayed.ip == .v4(127, 0, 0, 1) && (50000...50199).contains(relayed.port), "\(name): relayed \(relayed)")
        #expect(driver.client.mappedAddress?.ip == .v4(127, 0, 0, 1), "\(name)")

        // A permission, then data both ways in Send and Data indications.
        driver.perform(driver.client.createPermission(for: peer.address.ip, now: Clock.now))
        try driver.run(seconds: 3) { $0.client.hasPermission(for: peer.address.ip) }
        let hello: [UInt8] = Array("hello through a Send indication".utf8)
        let wrapped = driver.client.wrap(hello, to: peer.address)
        let sendIndication = try #require(wrapped)
        #expect(STUNMessage.looksLikeSTUN(sendIndication))
        driver.send(sendIndication)
        let (atPeer, from) = try #require(peer.receive(timeoutMilliseconds: 2000), "\(name): nothing reached the peer")
        #expect(atPeer == hello && from == relayed, "\(name)")
        let answer: [UInt8] = Array("answer in a Data indication".utf8)
        peer.send(answer, to: relayed)
        try driver.run(seconds: 2) { $0.events.contains(.received(answer, from: peer.address)) }

        // A channel, then ChannelData both ways; round trips timed.
        driver.perform(driver.client.bindChannel(to: peer.address, now: Clock.now))
        try driver.run(seconds: 3) { $0.events.contains(.channelBound(0x4000, peer: peer.address)) }
        var roundTrips: [Duration] = []
        for index in 0..<50 {
            let payload: [UInt8] = Array(repeating: UInt8(index), count: 101 + index)  // odd sizes: TCP padding
            let sentAt = Clock.now
            let wrappedPayload = driver.client.wrap(payload, to: peer.address)
            let framed = try #require(wrappedPayload)
            #expect(framed[0] == 0x40 && framed.count == (transport == .tcp ? (4 + payload.count + 3) & ~3 : 4 + payload.count))
            driver.send(framed)
            let (echoed, source) = try #require(peer.receive(timeoutMilliseconds: 2000), "\(name): ChannelData \(index) lost")
            #expect(echoed == payload && source == relayed)
            peer.send(echoed.reversed(), to: relayed)
            let reply = Array(payload.reversed())
            try driver.run(seconds: 2) { $0.events.last == .received(reply, from: peer.address) }
            roundTrips.append(Clock.now - sentAt)
        }
        let sorted = roundTrips.sorted()
        print("coturn \(name): allocated in \(allocatedAfter), relay \(relayed), 50 ChannelData round trips: median \(sorted[25]), max \(sorted[49])")
        #expect(sorted[25] < .milliseconds(50), "\(name)")

        driver.perform(driver.client.release(now: Clock.now))
        try driver.run(seconds: 3) { $0.events.contains(.released) }
        #expect(!driver.events.contains { if case .allocationFailed = $0 { true } else if case .allocationLost = $0 { true } else { false } },
                "\(name): \(driver.events)")
    }
}

enum Clock {
    static var now: MonotonicTime {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonotonicTime(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs a `TURNClient` on a socket to its server: UDP datagrams, or a TCP stream split by `TURNStreamFramer`.
struct Driver {
    var client: TURNClient
    let socket: Int32
    var framer = TURNStreamFramer()
    var events: [TURNClient.Action] = []
    /// Messages sent to the server.
    var sentCount = 0

    init(client: TURNClient, socket: Int32) {
        self.client = client
        self.socket = socket
    }

    mutating func send(_ bytes: [UInt8]) {
        sentCount += 1
        if client.transport == .udp {
            _ = sendDatagram(socket, bytes, to: client.server)
        } else {
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    mutating func perform(_ actions: [TURNClient.Action]) {
        for action in actions {
            if case let .send(bytes) = action { send(bytes) } else { events.append(action) }
        }
    }

    /// Reads, and runs the client's deadlines, until `done` holds or `seconds` pass.
    mutating func run(seconds: Int, until done: (Driver) -> Bool) throws {
        let end = Clock.now + .seconds(seconds)
        perform(client.handleTimeout(now: Clock.now))
        while !done(self) {
            let now = Clock.now
            guard now < end else { throw TestFailure(description: "timed out; events \(events)") }
            let deadline = earliest(client.nextDeadline, end, now + .milliseconds(50))!
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let wait = deadline > now ? Int32((deadline - now).components.attoseconds / 1_000_000_000_000_000) + 1 : 0
            if poll(&poller, 1, wait) > 0 {
                if client.transport == .udp {
                    while let (bytes, source) = receiveDatagram(socket, timeoutMilliseconds: 0) {
                        if source == client.server, client.isFromServer(bytes) { perform(client.receive(bytes, now: Clock.now)) }
                    }
                } else {
                    var buffer = [UInt8](repeating: 0, count: 65536)
                    let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                    guard count > 0 else { throw TestFailure(description: "the TCP connection closed") }
                    for message in framer.append(buffer[..<count]) where client.isFromServer(message) {
                        perform(client.receive(message, now: Clock.now))
                    }
                }
            }
            perform(client.handleTimeout(now: Clock.now))
        }
    }
}

/// A UDP socket on 127.0.0.1 of the namespace.
struct UDPEndpoint {
    let socket: Int32
    let address: TransportAddress

    func send(_ bytes: [UInt8], to destination: TransportAddress) { _ = sendDatagram(socket, bytes, to: destination) }
    func receive(timeoutMilliseconds: Int32) -> ([UInt8], TransportAddress)? { receiveDatagram(socket, timeoutMilliseconds: timeoutMilliseconds) }
}

func socketAddress(_ address: TransportAddress) -> sockaddr_in {
    var raw = sockaddr_in()
    raw.sin_family = sa_family_t(AF_INET)
    raw.sin_port = address.port.bigEndian
    if case let .v4(a, b, c, d) = address.ip {
        withUnsafeMutableBytes(of: &raw.sin_addr) { $0.copyBytes(from: [a, b, c, d]) }
    }
    return raw
}

func transportAddress(_ raw: sockaddr_in) -> TransportAddress {
    let bytes = withUnsafeBytes(of: raw.sin_addr) { Array($0) }
    return TransportAddress(ip: .v4(bytes[0], bytes[1], bytes[2], bytes[3]), port: UInt16(bigEndian: raw.sin_port))
}

func sendDatagram(_ socket: Int32, _ bytes: [UInt8], to destination: TransportAddress) -> Int {
    var raw = socketAddress(destination)
    return withUnsafePointer(to: &raw) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            bytes.withUnsafeBytes { sendto(socket, $0.baseAddress, $0.count, 0, address, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}

func receiveDatagram(_ socket: Int32, timeoutMilliseconds: Int32) -> ([UInt8], TransportAddress)? {
    var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
    guard poll(&poller, 1, timeoutMilliseconds) > 0 else { return nil }
    var buffer = [UInt8](repeating: 0, count: 65536)
    var raw = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let count = withUnsafeMutablePointer(to: &raw) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            buffer.withUnsafeMutableBytes { recvfrom(socket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT), address, &length) }
        }
    }
    guard count >= 0 else { return nil }
    return (Array(buffer[..<count]), transportAddress(raw))
}

/// A network namespace with only `lo` (up), made on a thread of its own so that no other test's
/// thread moves; two coturn instances and the test's sockets are made inside it and stay there.
final class LoopbackNamespace: @unchecked Sendable {
    static let longTermServer = TransportAddress(host: "127.0.0.1", port: 3478)!
    static let sharedSecretServer = TransportAddress(host: "127.0.0.1", port: 3479)!

    private(set) var udpClients: [Int32] = []
    private(set) var peer = UDPEndpoint(socket: -1, address: TransportAddress(ip: .v4(0, 0, 0, 0), port: 0))
    private var tcpSockets: [Int32] = []
    private var processes: [pid_t] = []
    private var failure: String?
    let directory: String

    init(turnserver: String) throws {
        var template = Array("/tmp/rtcam-turn-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } }
        guard let made else { throw TestFailure(description: "mkdtemp failed") }
        directory = made
        runOnNewThread { self.setUp(turnserver: turnserver) }
        if let failure {
            stop()
            throw TestFailure(description: failure)
        }
    }

    private func setUp(turnserver: String) {
        typealias Unshare = @convention(c) (Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare") else { failure = "no unshare"; return }
        let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET, which Glibc's Swift module does not export
        guard unsafeBitCast(symbol, to: Unshare.self)(cloneNewNet) == 0 else { failure = "unshare(CLONE_NEWNET): errno \(errno)"; return }
        guard let ip = spawn(["ip", "link", "set", "lo", "up"], log: "/dev/null"), wait(for: ip) == 0 else {
            failure = "ip link set lo up failed"
            return
        }
        let common = ["-n", "--no-cli", "--no-tls", "--no-dtls", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
                      "--realm", "rtcam.test", "--allow-loopback-peers", "--simple-log", "--no-stdout-log"]
        let instances: [[String]] = [
            ["--listening-port", "3478", "--min-port", "50000", "--max-port", "50099", "--lt-cred-mech", "--user", "alice:wonderland",
             "--user", "bob:builder", "--user", "carol:singer",
             "--user-quota", "1", "--stale-nonce=2",
             "--userdb", "\(directory)/long-term.db", "--pidfile", "\(directory)/long-term.pid", "--log-file", "\(directory)/long-term.log"],
            ["--listening-port", "3479", "--min-port", "50100", "--max-port", "50199", "--use-auth-secret",
             "--static-auth-secret", "north-secret",
             "--userdb", "\(directory)/rest.db", "--pidfile", "\(directory)/rest.pid", "--log-file", "\(directory)/rest.log"],
        ]
        for arguments in instances {
            guard let pid = spawn([turnserver] + common + arguments, log: "/dev/null") else { failure = "cannot start coturn"; return }
            processes.append(pid)
        }
        udpClients = (0..<5).map { _ in udpSocket().socket }
        peer = udpSocket()
        // TCP sockets are made here too (connected later, once coturn listens).
        for _ in 0..<1 { tcpSockets.append(Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)) }
    }

    /// Connects one of the namespace's TCP sockets, retrying while coturn starts.
    func connectTCP(to server: TransportAddress) throws -> Int32 {
        guard let socket = tcpSockets.popLast() else { throw TestFailure(description: "no TCP socket left") }
        var raw = socketAddress(server)
        let end = Clock.now + .seconds(5)
        while Clock.now < end {
            let result = withUnsafePointer(to: &raw) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if result == 0 { return socket }
            usleep(50_000)
        }
        throw TestFailure(description: "coturn does not accept TCP on \(server)")
    }

    private func udpSocket() -> UDPEndpoint {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var raw = socketAddress(TransportAddress(ip: .v4(127, 0, 0, 1), port: 0))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &raw) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                _ = bind(socket, address, length)
                _ = getsockname(socket, address, &length)
            }
        }
        return UDPEndpoint(socket: socket, address: transportAddress(raw))
    }

    func stop() {
        for pid in processes {
            kill(pid, SIGKILL)  // coturn takes its time over SIGTERM; it keeps nothing worth a clean exit here
            _ = wait(for: pid)
        }
        processes = []
        for socket in udpClients + [peer.socket] + tcpSockets where socket >= 0 { close(socket) }
        if let rm = spawn(["rm", "-rf", directory], log: "/dev/null") { _ = wait(for: rm) }
    }
}

func spawn(_ arguments: [String], log: String) -> pid_t? {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid = pid_t()
    return posix_spawnp(&pid, arguments[0], &actions, nil, &argv, environ) == 0 ? pid : nil
}

func wait(for pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status >> 8) & 0xFF
}

/// Runs `body` on a new POSIX thread and waits for it.
func runOnNewThread(_ body: @escaping () -> Void) {
    final class Work { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
    let context = Unmanaged.passRetained(Work(body)).toOpaque()
    var thread = pthread_t()
    pthread_create(&thread, nil, { raw in
        Unmanaged<Work>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context)
    pthread_join(thread, nil)
}
