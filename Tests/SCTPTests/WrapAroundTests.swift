import RTCBase
import SCTP
import Testing

/// A generator that always returns the same word: the verification tag and initial TSN it yields
/// sit near the top of the 32-bit range, so TSNs wrap soon.
struct ConstantRandom: RandomNumberGenerator {
    var value: UInt64
    mutating func next() -> UInt64 { value }
}

@Suite("SCTP serial number wrap-around")
struct WrapAroundTests {
    static func dataTSNs(_ packets: [(MonotonicTime, [UInt8])]) -> [UInt32] {
        packets.flatMap { entry -> [UInt32] in
            guard let packet = try? SCTPPacket(parsing: entry.1) else { return [] }
            return packet.chunks.compactMap { if case let .data(data) = $0 { return data.tsn } else { return nil } }
        }
    }

    /// TSNs (and the cumulative acks, gap blocks and FORWARD TSNs about them) cross 2^32 while
    /// packets are lost and reordered.
    @Test func tsnWrapsUnderLoss() throws {
        let pair = SCTPPair(seed: 30)
        var high = ConstantRandom(value: 0xFFFF_FF80_FFFF_FF80)
        var other = SeededRandom(seed: 31)
        pair.peers[0] = SCTPAssociation(configuration: SCTPPair.configuration(), random: &high)
        pair.peers[1] = SCTPAssociation(configuration: SCTPPair.configuration(), random: &other)
        pair.network.lossRate = 0.05
        pair.network.jitter = .milliseconds(30)
        #expect(pair.connect())
        for index in 0..<600 {
            try pair.send(0, testMessage(index: index, size: 1 + index % 1500), stream: 1,
                          reliability: index % 3 == 0 ? .maxRetransmits(0) : .reliable)
            if index % 20 == 19 { pair.run(for: .milliseconds(50)) }
        }
        pair.run(for: .seconds(60)) { pair.peers[0].bufferedAmount == 0 }
        let tsns = Self.dataTSNs(pair.transmitted[0])
        #expect(tsns.first.map { $0 > 0xFFFF_0000 } == true, "first TSN \(String(tsns.first ?? 0, radix: 16))")
        #expect(tsns.contains(0) && tsns.contains(0xFFFF_FFFF), "the TSNs crossed 2^32")
        let indices = pair.received[1].map { messageIndex($0.payload) }
        #expect(indices == indices.sorted())
        let reliable = Set((0..<600).filter { $0 % 3 != 0 })
        #expect(reliable.isSubset(of: Set(indices)), "every reliable message arrived")
        #expect(pair.peers[0].bufferedAmount == 0)
    }

    /// Stream sequence numbers are 16 bits: 70,000 ordered messages on one stream wrap them.
    @Test func ssnWraps() throws {
        let pair = SCTPPair(seed: 32)
        #expect(pair.connect())
        let total = 70_000
        var sent = 0
        while sent < total {
            while sent < total, pair.peers[0].bufferedAmount < 64 * 1024 {
                try pair.peers[0].send([UInt8(truncatingIfNeeded: sent)], stream: 9, ppid: 53, now: pair.now)
                sent += 1
            }
            pair.run(for: .milliseconds(100))
        }
        #expect(pair.run(for: .seconds(30)) { pair.receivedCount[1] == total })
        #expect(pair.received[1].enumerated().allSatisfy { $0.element.payload == [UInt8(truncatingIfNeeded: $0.offset)] }, "in order")
    }
}
