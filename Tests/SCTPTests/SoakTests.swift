#if canImport(Glibc)
import Glibc
#endif
import RTCBase
import SCTP
import Testing

/// Seeded random workloads: both sides send on random streams with random sizes, ordering and
/// reliability, reset streams now and then, through loss, delay and reordering. Invariants: every
/// reliable message arrives exactly once and whole; ordered ones in order per stream (between
/// resets); partially reliable ones at most once; everything ends acknowledged or abandoned.
/// Seeds 1...240 passed once; the suite runs 12.
@Suite("SCTP soak (seeded random workloads)")
struct SoakTests {
    struct Sent {
        var side: Int
        var stream: UInt16
        var payload: [UInt8]
        var ordered: Bool
        var reliable: Bool
    }

    @Test(arguments: UInt64(1)...12)
    func randomWorkload(seed: UInt64) throws {
        let pair = SCTPPair(seed: 1000 + seed)
        var random = SeededRandom(seed: 2000 + seed)
        pair.network.lossRate = Double(random.next() % 15) / 100
        pair.network.jitter = .milliseconds(Int64(random.next() % 40))
        #expect(pair.connect(initiators: seed % 3 == 0 ? [0, 1] : [Int(seed % 2)]))
        var sent: [Sent] = []
        var serial = 0
        for _ in 0..<400 {
            let side = Int(random.next() % 2)
            let stream = UInt16(random.next() % 6)
            let ordered = random.next() % 3 != 0
            let reliabilityChoice = random.next() % 4
            let reliability: SCTPReliability = reliabilityChoice == 0 ? .maxRetransmits(Int(random.next() % 3))
                : reliabilityChoice == 1 ? .lifetime(.milliseconds(Int64(50 + random.next() % 500))) : .reliable
            let size = [1, 10, 500, 1172, 1173, 3000, 20_000, 70_000][Int(random.next() % 8)]
            // The first byte says who sent it, the next four which one: every payload is unique.
            let payload = [UInt8(side)] + testMessage(index: serial, size: max(size, 4))
            serial += 1
            let result: Result<Void, SCTPError> = Result { () throws(SCTPError) in
                try pair.peers[side].send(payload, stream: stream, ppid: 53, unordered: !ordered, reliability: reliability, now: pair.now)
            }
            switch result {
            case .success:
                sent.append(Sent(side: side, stream: stream, payload: payload, ordered: ordered, reliable: reliability == .reliable))
            case .failure(.streamUnavailable):
                break  // being reset
            case let .failure(error):
                Issue.record("seed \(seed): send failed: \(error)")
            }
            pair.drain(side)
            if random.next() % 40 == 0 {
                pair.peers[side].resetStreams([stream], now: pair.now)
                pair.drain(side)
            }
            pair.run(for: .milliseconds(Int64(random.next() % 30)))
        }
        #expect(pair.run(for: .seconds(3600)) { pair.peers[0].allAcknowledged && pair.peers[1].allAcknowledged },
                "seed \(seed): all acknowledged or abandoned and forwarded")
        #expect(pair.peers[0].bufferedAmount == 0 && pair.peers[1].bufferedAmount == 0)
        for stream in UInt16(0)..<6 {
            #expect(pair.peers[0].bufferedAmount(stream: stream) == 0 && pair.peers[1].bufferedAmount(stream: stream) == 0)
        }
        for side in 0..<2 {
            let received = pair.received[1 - side]
            let mine = sent.filter { $0.side == side }
            var byPayload: [[UInt8]: Int] = [:]
            for message in received { byPayload[message.payload, default: 0] += 1 }
            #expect(byPayload.values.allSatisfy { $0 == 1 }, "seed \(seed): no message twice")
            for (position, message) in mine.enumerated() where message.reliable {
                #expect(byPayload[message.payload] == 1,
                        "seed \(seed): reliable message lost: from \(side), #\(position), stream \(message.stream), ordered \(message.ordered), \(message.payload.count) B")
            }
            let sentSet = Set(mine.map(\.payload))
            #expect(received.allSatisfy { sentSet.contains($0.payload) }, "seed \(seed): nothing that was not sent")
            // Ordered messages of a stream arrive in the order sent.
            for stream in UInt16(0)..<6 {
                let order = Dictionary(uniqueKeysWithValues: mine.enumerated().filter { $0.element.stream == stream && $0.element.ordered }
                                                                .map { ($0.element.payload, $0.offset) })
                let arrived = received.filter { $0.stream == stream }.compactMap { order[$0.payload] }
                #expect(arrived == arrived.sorted(), "seed \(seed): stream \(stream) out of order")
            }
        }
        #expect(pair.peers[0].state == .established && pair.peers[1].state == .established)
        if getenv("SCTP_SOAK_DEBUG") != nil {
            print("seed \(seed) events 0:", pair.eventList(0))
            print("seed \(seed) events 1:", pair.eventList(1))
            print("seed \(seed) stats 0:", pair.peers[0].statistics)
        }
    }
}
