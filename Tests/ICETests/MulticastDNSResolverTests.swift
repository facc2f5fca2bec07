import RTCBase
import Testing
@testable import ICE

@Suite struct MulticastDNSResolverTests {
    static let name = "0b1e0b4c-8c3e-4a8e-9d4b-2f1f1f1f1f1f.local"
    let start = MonotonicTime(seconds: 10)
    let responder = TransportAddress(host: "192.168.1.20", port: 5353)!

    /// A legacy unicast answer (RFC 6762 §6.7): the question repeated, then the A record with its
    /// name compressed to a pointer at the question's (RFC 1035 §4.1.4) and the cache-flush bit set.
    func answer(to query: [UInt8], address: [UInt8] = [192, 168, 1, 20], type: UInt16 = 1) -> [UInt8] {
        var message = Array(query[0..<2]) + [0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]
        message += query[12...]                       // the question, at offset 12
        message += [0xC0, 12]                         // name: pointer to offset 12
        message += [UInt8(type >> 8), UInt8(type & 0xFF), 0x80, 0x01, 0, 0, 0, 10, 0, UInt8(address.count)] + address
        return message
    }

    @Test func asksOnceResolvesFromTheAnswer() throws {
        var resolver = MulticastDNSResolver(random: SeededRandom(seed: 1))
        let actions = resolver.resolve(Self.name.uppercased(), now: start)
        guard case let .send(query, to)? = actions.first else { Issue.record("no query"); return }
        #expect(to == MulticastDNSResolver.multicastGroup)
        #expect(query[0] >= 0xC0 && query[2...11] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0][...])
        #expect(query.suffix(5) == [0, 0, 1, 0, 1])   // root, QTYPE A, QCLASS IN
        #expect(resolver.resolve(Self.name, now: start).isEmpty)   // already being asked
        let reply = answer(to: query)
        #expect(!resolver.isResponse(reply, from: TransportAddress(host: "192.168.1.20", port: 5000)!))
        var otherID = reply
        otherID[1] ^= 0xFF
        #expect(!resolver.isResponse(otherID, from: responder))
        #expect(resolver.receive(answer(to: query, type: 28), from: responder).isEmpty)   // no A record in it
        #expect(resolver.receive(reply, from: responder) == [.resolved(name: Self.name, ip: .v4(192, 168, 1, 20))])
        #expect(resolver.nextDeadline == nil)
    }

    @Test func asksTwiceThenGivesUp() {
        var resolver = MulticastDNSResolver(random: SeededRandom(seed: 2))
        let first = resolver.resolve(Self.name, now: start)
        #expect(resolver.nextDeadline == start + .seconds(1))
        #expect(resolver.handleTimeout(now: start + .seconds(1)) == first)
        #expect(resolver.nextDeadline == start + .seconds(3))   // three seconds after the first query
        #expect(resolver.handleTimeout(now: start + .seconds(3)) == [.failed(name: Self.name)])
        #expect(resolver.nextDeadline == nil)
    }

    @Test func refusesWhatIsNoMulticastDNSName() {
        var resolver = MulticastDNSResolver(random: SeededRandom(seed: 3))
        #expect(resolver.resolve("example.org", now: start) == [.failed(name: "example.org")])
        #expect(resolver.resolve(".local", now: start) == [.failed(name: ".local")])
        for index in 0..<MulticastDNSResolver.maximumPending { _ = resolver.resolve("n\(index).local", now: start) }
        #expect(resolver.resolve("one-more.local", now: start) == [.failed(name: "one-more.local")])
    }

    @Test func survivesMalformedAnswers() {
        // A pointer loop, a truncated record: no address, no crash.
        let loop: [UInt8] = [0xC0, 0x01, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xC0, 12]
        #expect(MulticastDNSResolver.address(of: Self.name, in: loop) == nil)
        let truncated: [UInt8] = [0xC0, 0x01, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0x61]
        #expect(MulticastDNSResolver.address(of: Self.name, in: truncated) == nil)
    }
}
