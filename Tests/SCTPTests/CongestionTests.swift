import RTCBase
import SCTP
import Testing

@Suite("SCTP congestion and flow control")
struct CongestionTests {
    static func isData(_ bytes: [UInt8]) -> Bool {
        guard let packet = try? SCTPPacket(parsing: bytes) else { return false }
        return packet.chunks.contains { if case .data = $0 { return true } else { return false } }
    }

    /// RFC 9260 §7.2.1-§7.2.3: initial cwnd, slow start, halving on fast retransmit, one MTU after T3.
    @Test func congestionWindowFollowsTheRules() throws {
        let pair = SCTPPair(seed: 40)
        pair.network.jitter = .zero  // no reordering: any fast retransmit comes from the one drop below
        #expect(pair.connect())
        let mtu = pair.peers[0].configuration.maxPacketSize
        #expect(pair.peers[0].congestionWindow == 4404)  // min(4 MTU, max(2 MTU, 4404)) with a 1200-byte MTU
        #expect(pair.peers[0].slowStartThreshold == 1024 * 1024)  // the peer's a_rwnd
        for index in 0..<200 { try pair.send(0, testMessage(index: index, size: 1100)) }
        #expect(pair.peers[0].flightSize <= 4404 + 1100, "no more than cwnd (plus one chunk) goes out at first")
        #expect(pair.run(for: .seconds(30)) { pair.received[1].count == 200 })
        let grown = pair.peers[0].congestionWindow
        #expect(grown > 20 * mtu, "slow start grew cwnd to \(grown)")

        // One lost data packet: three SACKs reporting it missing trigger a fast retransmit.
        var dropped = false
        pair.network.dropRule = { from, bytes in
            guard from == 0, !dropped, Self.isData(bytes) else { return false }
            dropped = true
            return true
        }
        for index in 0..<40 { try pair.send(0, testMessage(index: index, size: 1100)) }
        #expect(pair.run(for: .seconds(30)) { pair.received[1].count == 240 })
        #expect(pair.peers[0].statistics.fastRetransmits == 1)
        #expect(pair.peers[0].statistics.retransmissionTimeouts == 0)
        // ssthresh = cwnd / 2 at the moment of loss; cwnd had grown a little more with the 40 new messages.
        let threshold = pair.peers[0].slowStartThreshold
        #expect(threshold >= grown / 2 && threshold <= (grown + 40 * 1100) / 2, "ssthresh \(threshold), cwnd before \(grown)")

        // Nothing gets through: T3 expires, cwnd drops to one MTU.
        pair.network.dropRule = { _, _ in true }
        try pair.send(0, [1])
        #expect(pair.run(for: .seconds(10)) { pair.peers[0].statistics.retransmissionTimeouts == 1 })
        #expect(pair.peers[0].congestionWindow == mtu)
    }

    /// RFC 9260 §7.2.1: cwnd decays while no DATA is sent, halving per RTO down to 4 MTU.
    @Test func congestionWindowDecaysWhileIdle() throws {
        let pair = SCTPPair(seed: 43)
        pair.network.jitter = .zero
        #expect(pair.connect())
        for index in 0..<300 { try pair.send(0, testMessage(index: index, size: 1100)) }
        #expect(pair.run(for: .seconds(30)) { pair.received[1].count == 300 })
        let grown = pair.peers[0].congestionWindow
        #expect(grown > 40 * 1200)
        pair.run(for: .milliseconds(300))  // under one RTO (at least 400 ms): no decay
        try pair.send(0, [1])
        #expect(pair.peers[0].congestionWindow == grown)
        #expect(pair.run(for: .seconds(5)) { pair.received[1].count == 301 })
        pair.run(for: .seconds(20))  // a long pause
        #expect(pair.peers[0].statistics.retransmissionTimeouts == 0, "the lone message's delayed SACK came before T3")
        try pair.send(0, [2])
        #expect(pair.peers[0].congestionWindow == 4 * 1200)
    }

    /// With a wide cwnd, a burst of 1-byte messages still puts at most 16,384 TSNs in flight (what
    /// a receiver keeps above its cumulative TSN).
    @Test func tinyMessagesDoNotFloodTSNs() throws {
        let pair = SCTPPair(seed: 44)
        pair.network.jitter = .zero
        #expect(pair.connect())
        for index in 0..<600 { try pair.send(0, testMessage(index: index, size: 1100)) }
        #expect(pair.run(for: .seconds(30)) { pair.received[1].count == 600 && pair.peers[0].allAcknowledged })
        #expect(pair.peers[0].congestionWindow > 100_000)
        for index in 0..<40_000 { try pair.peers[0].send([UInt8(truncatingIfNeeded: index)], stream: 2, ppid: 53, now: pair.now) }
        #expect(pair.peers[0].flightSize <= 16_384)
        var largest = 0
        for _ in 0..<1000 where pair.received[1].count < 40_600 {
            pair.run(for: .milliseconds(5))
            largest = max(largest, pair.peers[0].flightSize)
        }
        #expect(pair.received[1].count == 40_600)
        #expect(largest <= 16_384)
        #expect(pair.peers[0].statistics.retransmittedChunks == 0, "the receiver dropped none")
    }

    /// RFC 9260 §6.1: a small receive window bounds what is in flight, however much is queued.
    @Test func peerWindowBoundsTheFlight() throws {
        let pair = SCTPPair(seed: 41) { side, configuration in
            if side == 1 { configuration.receiveWindow = 8000 }
        }
        #expect(pair.connect())
        for index in 0..<100 { try pair.send(0, testMessage(index: index, size: 3000)) }
        var largest = 0
        for _ in 0..<2000 where pair.received[1].count < 100 {
            pair.run(for: .milliseconds(5))
            largest = max(largest, pair.peers[0].flightSize)
        }
        #expect(pair.received[1].count == 100)
        #expect(largest <= 8000, "at most a_rwnd in flight (\(largest))")
        #expect(largest > 4000)
    }

    /// RFC 9260 §6.2: a lone packet is acknowledged after the delayed-ack time, every second at once.
    @Test func delayedAcknowledgement() throws {
        let pair = SCTPPair(seed: 42)
        pair.network.jitter = .zero
        #expect(pair.connect())
        let before = pair.transmitted[1].count
        let sentAt = pair.now
        try pair.send(0, [1])
        #expect(pair.run(for: .seconds(1)) { pair.transmitted[1].count > before })
        let delay = pair.transmitted[1][before].0 - sentAt
        #expect(delay == .milliseconds(20) + .milliseconds(200), "one-way delay plus the 200 ms delayed ack")
        // Two packets back to back: the second one is acknowledged at once.
        let before2 = pair.transmitted[1].count
        let sentAt2 = pair.now
        try pair.send(0, [2])
        try pair.send(0, [3])
        #expect(pair.run(for: .seconds(1)) { pair.transmitted[1].count > before2 })
        #expect(pair.transmitted[1][before2].0 - sentAt2 == .milliseconds(20))
    }
}
