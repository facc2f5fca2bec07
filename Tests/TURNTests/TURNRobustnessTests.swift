import RTCBase
import STUN
import Testing
@testable import TURN

@Suite struct TURNRobustnessTests {
    /// 20,000 seeded garbage and mutated messages from the server's address (random bytes, STUN and
    /// ChannelData headers, truncated and bit-flipped copies of real responses, indications and
    /// ChannelData) while a Refresh is out: nothing traps, the allocation and its channel stay as
    /// they were, and the only events are data from the peers the relay may deliver.
    @Test func garbageFromTheServerChangesNothing() throws {
        let start = MonotonicTime(seconds: 1000)
        let peer = TransportAddress(host: "203.0.113.9", port: 61000)!
        var h = Harness(start: start)
        h.run(until: start)
        h.call { $0.bindChannel(to: peer, now: $1) }
        // A Refresh out (its answer withheld), so that mutated responses have a transaction to hit.
        h.run(until: start + .seconds(539))
        h.server.silent = true
        h.run(until: start + .seconds(540))  // the Refresh and the channel's refresh
        h.server.silent = false
        let refresh = try #require(h.sent.last { (try? STUNMessage(parsing: $0))?.method == TURNMethod.refresh })
        let realRefreshAnswer = h.server.handle(refresh)[0]
        let samples: [[UInt8]] = [
            realRefreshAnswer,
            h.server.fromPeer(Array(repeating: 1, count: 40), peer: peer, transactionID: Array(repeating: 3, count: 12))!,
            STUNMessage(method: TURNMethod.data, messageClass: .indication, transactionID: Array(repeating: 5, count: 12),
                        attributes: [.xorPeerAddress(peer, transactionID: Array(repeating: 5, count: 12)), .data([1, 2, 3])])
                .serialized(integrityKey: nil, fingerprint: false),
            ChannelData.frame([9, 9, 9, 9, 9], channel: 0x4000, padded: true),
        ]
        var random = SeededRandom(seed: 1919)
        var client = h.client
        var events: [TURNClient.Action] = []
        for round in 0..<20_000 {
            var message: [UInt8]
            switch round % 5 {
            case 0:
                message = random.bytes(Int(random.next() % 120))
            case 1:  // a STUN or ChannelData header and random rest
                message = [UInt8(random.next() % 0x80), UInt8(truncatingIfNeeded: random.next())] + random.bytes(Int(random.next() % 80) + 2)
                if message[0] < 0x40 { message.replaceSubrange(4..<min(8, message.count), with: [0x21, 0x12, 0xA4, 0x42].prefix(message.count - 4)) }
            default:
                message = samples[Int(random.next() % UInt64(samples.count))]
                let flips = Int(random.next() % 4) + 1
                for _ in 0..<flips { message[Int(random.next() % UInt64(message.count))] ^= UInt8(1 << (random.next() % 8)) }
                if random.next() % 4 == 0 { message = Array(message.prefix(Int(random.next() % UInt64(message.count)))) }
            }
            guard client.isFromServer(message) else { continue }
            events += client.receive(message, now: start + .seconds(540))
        }
        for event in events {
            guard case .received = event else { Issue.record("unexpected \(event)"); break }
        }
        #expect(client.relayedAddress == FakeTURNServer.relayedAddress && client.boundChannel(for: peer) == 0x4000)
        // The Refresh ends only with its genuine answer (a copy changed only after MESSAGE-INTEGRITY,
        // e.g. in FINGERPRINT's type, is that answer: a garbled FINGERPRINT value is dropped).
        if client.isFromServer(realRefreshAnswer) {
            #expect(client.receive(realRefreshAnswer, now: start + .seconds(541)).isEmpty)
        }
        #expect(!client.isFromServer(realRefreshAnswer) && client.relayedAddress == FakeTURNServer.relayedAddress)
    }

    /// The stream framer on random bytes never traps and never hands out more than it was given.
    @Test func framerOnGarbage() {
        var random = SeededRandom(seed: 8656)
        for _ in 0..<2_000 {
            var framer = TURNStreamFramer()
            var given = 0, taken = 0
            for _ in 0..<8 {
                let chunk = random.bytes(Int(random.next() % 64))
                given += chunk.count
                taken += framer.append(chunk).reduce(0) { $0 + $1.count }
            }
            #expect(taken <= given)
        }
    }
}
