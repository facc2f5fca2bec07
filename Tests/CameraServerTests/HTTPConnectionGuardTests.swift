@testable import CameraServer
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTCBase
import SystemSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ConnectionAdmissionTests {
    @Test("per address, in all, and the reserve kept for addresses that hold almost nothing")
    func caps() {
        var limits = HTTPLimits()
        limits.maximumConnections = 10
        limits.maximumConnectionsPerAddress = 4
        limits.reservedConnections = 3
        limits.reservedForAddressesBelow = 1
        var admission = ConnectionAdmission(limits: limits)
        let a = TransportAddress.IP.v4(192, 0, 2, 1), b = TransportAddress.IP.v4(192, 0, 2, 2)
        for _ in 0..<4 { #expect(admission.open(from: a) == .admit) }
        #expect(admission.open(from: a) == .tooManyFromAddress)
        for _ in 0..<3 { #expect(admission.open(from: b) == .admit) }
        // 7 of 10 open: the last 3 go only to addresses that hold none.
        #expect(admission.open(from: b) == .full)
        let newcomers = (10...12).map { TransportAddress.IP.v4(192, 0, 2, UInt8($0)) }
        for address in newcomers { #expect(admission.open(from: address) == .admit) }
        #expect(admission.open(from: .v4(192, 0, 2, 99)) == .full)
        admission.closed(from: a)
        #expect(admission.total == 9 && admission.byAddress[a] == 3)
        #expect(admission.open(from: a) == .full, "a is not below the reserve's bar")
        #expect(admission.open(from: .v4(192, 0, 2, 99)) == .admit)
        admission.closed(from: .v4(203, 0, 113, 1))  // never opened: nothing changes
        #expect(admission.total == 10)
    }

    @Test("an IPv6 host is its /64: new addresses in the same /64 share one cap, another /64 has its own")
    func ipv6HostsAreTheirSlash64() throws {
        var limits = HTTPLimits()
        limits.maximumConnectionsPerAddress = 3
        var admission = ConnectionAdmission(limits: limits)
        let sameHost = try (1...4).map { try #require(TransportAddress.IP(parsing: "2001:db8:1:2:aaaa:bbbb:cccc:\($0)")) }
        for address in sameHost.prefix(3) { #expect(admission.open(from: address) == .admit) }
        #expect(admission.open(from: sameHost[3]) == .tooManyFromAddress, "a fourth address of the same /64")
        let neighbour = try #require(TransportAddress.IP(parsing: "2001:db8:1:3::1"))
        #expect(admission.open(from: neighbour) == .admit, "the next /64 is another host")
        admission.closed(from: sameHost[3])   // closing under any of its addresses gives the host's back
        #expect(admission.open(from: sameHost[0]) == .admit)
        // IPv4 through the dual-stack socket (v4-mapped) is the IPv4 address, not a /64 of ::ffff:0:0/96.
        let mapped = try #require(TransportAddress.IP(parsing: "::ffff:192.0.2.1"))
        let other = try #require(TransportAddress.IP(parsing: "::ffff:192.0.2.2"))
        for _ in 0..<3 { #expect(admission.open(from: mapped) == .admit) }
        #expect(admission.open(from: .v4(192, 0, 2, 1)) == .tooManyFromAddress)
        #expect(admission.open(from: other) == .admit)
    }
}

/// The guard on real sockets (loopback), with short timeouts: slow requests and idle connections are
/// closed, a request's headers are bounded, one address holds at most its share.
@Suite(.serialized) struct HTTPConnectionGuardTests {
    final class OKRouter: HTTPRouting {
        func respond(to request: HTTPRequest, remote: SocketAddress?) -> EventLoopFuture<HTTPResponse> {
            MultiThreadedEventLoopGroup.currentEventLoop!.makeSucceededFuture(.text(.ok, "ok"))
        }
    }

    /// Collects what a client connection receives.
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox<[UInt8]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLockedValue { $0 += Array(buffer.readableBytesView) }
        }
        var text: String { String(decoding: received.withLockedValue { $0 }, as: UTF8.self) }
    }

    final class Server {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let limiter: HTTPConnectionLimiter
        let channel: Channel
        let router = OKRouter()

        init(_ limits: HTTPLimits) throws {
            let limiter = HTTPConnectionLimiter(limits: limits)
            self.limiter = limiter
            let router = self.router
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 64)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try HTTPServerPipeline.configure(channel, router: router, limiter: limiter)
                    }
                }
                .bind(host: "127.0.0.1", port: 0).wait()
        }

        var port: Int { channel.localAddress!.port! }

        func connect() throws -> (Channel, Collector) {
            let collector = Collector()
            let client = try ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
                }
                .connect(host: "127.0.0.1", port: port).wait()
            return (client, collector)
        }

        deinit {
            try? channel.close().wait()
            try? group.syncShutdownGracefully()
        }
    }

    /// Seconds until `channel` closes, at most `limit` (nil: still open then).
    static func secondsUntilClosed(_ channel: Channel, limit: Double) -> Double? {
        let start = MonotonicClock.now()
        while (MonotonicClock.now() - start).millisecondsDouble < limit * 1000 {
            if !channel.isActive { return (MonotonicClock.now() - start).millisecondsDouble / 1000 }
            sleepMilliseconds(10)
        }
        return nil
    }

    static func sleepMilliseconds(_ milliseconds: Int) {
        var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        _ = nanosleep(&request, nil)
    }

    static func send(_ text: String, on channel: Channel) throws {
        try channel.writeAndFlush(channel.allocator.buffer(string: text)).wait()
    }

    @Test("a slow request is closed at the request timeout even though bytes keep coming; a whole one is answered")
    func requestTimeout() throws {
        var limits = HTTPLimits()
        limits.requestTimeout = .milliseconds(400)
        let server = try Server(limits)
        let (slow, _) = try server.connect()
        let start = MonotonicClock.now()
        try Self.send("GET / HTTP/1.1\r\n", on: slow)
        var closedAfter: Double?
        for header in 0..<40 {
            if !slow.isActive { closedAfter = (MonotonicClock.now() - start).millisecondsDouble / 1000; break }
            try? Self.send("X-\(header): a\r\n", on: slow)
            Self.sleepMilliseconds(50)
        }
        // Up to 20 s: the server and client share one event loop thread, which the parallel suites
        // starved for seconds in a CI rehearsal (the connection was still open 5 s in); what matters
        // is that it is closed, not how soon a starved timer fires.
        let seconds = try #require(closedAfter ?? Self.secondsUntilClosed(slow, limit: 20))
        #expect(seconds >= 0.35 && seconds < 20)
        #expect(server.limiter.counters.requestTimeouts == 1)

        let (good, collector) = try server.connect()
        try Self.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", on: good)
        #expect(Self.secondsUntilClosed(good, limit: 0.2) == nil)
        #expect(collector.text.hasPrefix("HTTP/1.1 200 OK"))
    }

    @Test("a keep-alive connection idle after its response is closed at the idle timeout, not at the request timeout")
    func idleTimeout() throws {
        var limits = HTTPLimits()
        limits.requestTimeout = .milliseconds(300)
        limits.idleTimeout = .milliseconds(1200)
        let server = try Server(limits)
        let (client, collector) = try server.connect()
        try Self.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n", on: client)
        Self.sleepMilliseconds(100)
        #expect(collector.text.hasPrefix("HTTP/1.1 200 OK"))
        // The bound is generous: the server and this client share one event loop thread, which a
        // loaded machine (the parallel suite beside other jobs: load 7 on 2 cores) can starve for
        // seconds; what is checked is that the idle timer, not the request timer, closes it.
        let seconds = try #require(Self.secondsUntilClosed(client, limit: 20),
                                   "still open after 20 s: \(server.limiter.counters)")
        #expect(seconds >= 0.9)
        #expect(server.limiter.counters.idleTimeouts == 1 && server.limiter.counters.requestTimeouts == 0)
    }

    @Test("headers over 16 KiB: 400 and closed")
    func headerLimit() throws {
        let server = try Server(HTTPLimits())
        let (client, collector) = try server.connect()
        try Self.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 17 * 1024))\r\n\r\n", on: client)
        #expect(Self.secondsUntilClosed(client, limit: 3) != nil)
        #expect(collector.text.hasPrefix("HTTP/1.1 400"))
    }

    @Test("one address holds at most its share of connections; the extra ones are closed at once")
    func perAddressCap() throws {
        var limits = HTTPLimits()
        limits.maximumConnectionsPerAddress = 3
        let server = try Server(limits)
        let held = try (0..<3).map { _ in try server.connect().0 }
        let extra = try server.connect().0
        #expect(Self.secondsUntilClosed(extra, limit: 3) != nil)
        #expect(held.allSatisfy { $0.isActive })
        #expect(server.limiter.counters.refusedPerAddress == 1 && server.limiter.counters.open == 3)
        try held[0].close().wait()
        // The server sees the close a moment later; then the place is free again.
        var reopened: Channel?
        for _ in 0..<100 where reopened == nil {
            Self.sleepMilliseconds(20)
            if server.limiter.counters.open == 2 { reopened = try server.connect().0 }
        }
        let again = try #require(reopened)
        #expect(Self.secondsUntilClosed(again, limit: 0.3) == nil)
    }
}

extension HTTPConnectionGuardTests {
    @Test("a body over 64 KiB is refused with 413 (HTTPHandler), not cut off by the guard; a URI past the head limit is closed")
    func largeBodyAndURI() throws {
        let server = try Server(HTTPLimits())
        let (client, collector) = try server.connect()
        let body = String(repeating: "x", count: 100 * 1024)
        try Self.send("POST /whep HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)",
                      on: client)
        #expect(Self.secondsUntilClosed(client, limit: 3) != nil)
        #expect(collector.text.hasPrefix("HTTP/1.1 413"))

        let (long, _) = try server.connect()
        try? Self.send("GET /\(String(repeating: "a", count: 40 * 1024)) HTTP/1.1\r\n", on: long)
        #expect(Self.secondsUntilClosed(long, limit: 3) != nil)
    }
}
