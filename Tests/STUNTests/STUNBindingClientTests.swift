import RTCBase
import Testing
@testable import STUN

@Suite struct STUNBindingClientTests {
    static let server = TransportAddress(host: "192.0.2.10", port: 3478)!
    static let otherServer = TransportAddress(host: "198.51.100.20", port: 3478)!
    static let mapped = TransportAddress(host: "203.0.113.7", port: 40001)!
    let start = MonotonicTime(seconds: 100)

    func answer(_ request: [UInt8], mapped: TransportAddress = STUNBindingClientTests.mapped) throws -> [UInt8] {
        let parsed = try STUNMessage(parsing: request)
        return STUNMessage(messageClass: .successResponse, transactionID: parsed.transactionID,
                           attributes: [.xorMappedAddress(mapped)]).serialized(integrityKey: nil, fingerprint: true)
    }

    func sends(_ actions: [STUNBindingClient.Action]) -> [([UInt8], TransportAddress)] {
        actions.compactMap { if case let .send(bytes, to) = $0 { (bytes, to) } else { nil } }
    }

    @Test func learnsTheMappedAddressAndRefreshesEveryMinute() throws {
        var client = STUNBindingClient(servers: [Self.server, Self.otherServer], now: start, random: SeededRandom(seed: 1))
        #expect(client.nextDeadline == start && client.addresses.isEmpty)
        let first = sends(client.handleTimeout(now: start))
        #expect(first.map(\.1) == [Self.server, Self.otherServer])
        let request = try STUNMessage(parsing: first[0].0)
        #expect(request.messageClass == .request && request.method == STUNMessage.bindingMethod && STUNMessage.hasValidFingerprint(first[0].0))
        let response = try answer(first[0].0)
        #expect(client.isResponse(response))
        // From elsewhere than the server asked: nothing.
        #expect(client.receive(response, from: Self.otherServer, now: start + .milliseconds(30)).isEmpty)
        #expect(client.receive(response, from: Self.server, now: start + .milliseconds(30)) == [.addressesChanged([Self.mapped])])
        #expect(!client.isResponse(response))   // answered: that transaction is over
        // The second server sees the same address: listed once.
        #expect(client.receive(try answer(first[1].0), from: Self.otherServer, now: start + .milliseconds(40)).isEmpty)
        #expect(client.addresses == [Self.mapped])
        // Asked again a minute later, each time a new transaction.
        _ = client.handleTimeout(now: start + .milliseconds(500))
        #expect(client.nextDeadline == start + .milliseconds(30) + .seconds(60))
        let refresh = sends(client.handleTimeout(now: start + .milliseconds(30) + .seconds(60)))
        #expect(refresh.count == 1 && refresh[0].1 == Self.server)
        #expect(try STUNMessage(parsing: refresh[0].0).transactionID != request.transactionID)
    }

    /// RFC 8489 §6.2.1: the same request at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; at 39.5 s the
    /// transaction failed and the address it had given is dropped; asked again 10 s later.
    @Test func retransmitsThenForgetsASilentServer() throws {
        var client = STUNBindingClient(servers: [Self.server], now: start, random: SeededRandom(seed: 2))
        let first = sends(client.handleTimeout(now: start))
        _ = client.receive(try answer(first[0].0), from: Self.server, now: start)
        var now = start + .seconds(60)
        var sentAt: [Duration] = []
        var requests = Set<[UInt8]>()
        var lost: MonotonicTime?
        while let deadline = client.nextDeadline, deadline <= start + .seconds(120), lost == nil {
            now = deadline
            let actions = client.handleTimeout(now: now)
            for (bytes, _) in sends(actions) { sentAt.append(now - (start + .seconds(60))); requests.insert(bytes) }
            if actions.contains(.addressesChanged([])) { lost = now }
        }
        #expect(sentAt.map(\.millisecondsDouble) == [0, 500, 1500, 3500, 7500, 15500, 31500])
        #expect(requests.count == 1)
        #expect(lost == start + .seconds(60) + .milliseconds(39500) && client.addresses.isEmpty)
        #expect(client.nextDeadline == start + .seconds(60) + .milliseconds(49500))
    }

    @Test func anErrorResponseEndsTheTransaction() throws {
        var client = STUNBindingClient(servers: [Self.server], now: start, random: SeededRandom(seed: 3))
        let request = try STUNMessage(parsing: sends(client.handleTimeout(now: start))[0].0)
        let error = STUNMessage(messageClass: .errorResponse, transactionID: request.transactionID,
                                attributes: [.errorCode(code: 400, reason: "Bad Request")]).serialized(integrityKey: nil, fingerprint: true)
        #expect(client.isResponse(error))
        #expect(client.receive(error, from: Self.server, now: start).isEmpty)
        #expect(client.nextDeadline == start + .seconds(10) && client.addresses.isEmpty)
    }
}
