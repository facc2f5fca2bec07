import RTCBase
import SCTP
import Testing

@Suite("SCTP association on a virtual clock")
struct AssociationTests {
    @Test func setupClientInitiates() throws {
        let pair = SCTPPair(seed: 1)
        #expect(pair.connect(initiators: [0]))
        #expect(pair.eventList(0) == [.associationEstablished])
        #expect(pair.eventList(1) == [.associationEstablished])
        // INIT, COOKIE ECHO from the initiator; INIT ACK, COOKIE ACK from the other side.
        #expect(pair.transmitted[0].count == 2)
        #expect(pair.transmitted[1].count == 2)
        try pair.send(0, Array("hello".utf8), ppid: 51)
        try pair.send(1, Array("world".utf8), ppid: 51)
        #expect(pair.run(for: .seconds(5)) { pair.received[0].count == 1 && pair.received[1].count == 1 })
        #expect(pair.received[1] == [ReceivedMessage(stream: 1, ppid: 51, payload: Array("hello".utf8))])
        #expect(pair.received[0] == [ReceivedMessage(stream: 1, ppid: 51, payload: Array("world".utf8))])
    }

    @Test func setupServerInitiates() throws {
        let pair = SCTPPair(seed: 2)
        #expect(pair.connect(initiators: [1]))
        try pair.send(0, [1, 2, 3])
        #expect(pair.run(for: .seconds(5)) { pair.received[1].count == 1 })
    }

    /// Both sides send INIT at once (RFC 9260 §5.2.1), as WebRTC peers often do.
    @Test func setupBothInitiate() throws {
        for seed in UInt64(10)..<20 {
            let pair = SCTPPair(seed: seed)
            #expect(pair.connect(initiators: [0, 1]), "seed \(seed)")
            #expect(pair.eventList(0) == [.associationEstablished])
            #expect(pair.eventList(1) == [.associationEstablished])
            try pair.send(0, [9])
            try pair.send(1, [8])
            #expect(pair.run(for: .seconds(5)) { pair.received[0].count == 1 && pair.received[1].count == 1 })
        }
    }

    /// Lost INIT, INIT ACK, COOKIE ECHO and COOKIE ACK are each recovered by T1.
    @Test func setupSurvivesLostHandshakePackets() throws {
        for lost in 0..<4 {
            let pair = SCTPPair(seed: 3)
            var count = 0
            pair.network.dropRule = { _, _ in
                count += 1
                return count == lost + 1
            }
            #expect(pair.connect(initiators: [0]), "lost packet \(lost)")
            #expect(pair.now - MonotonicTime(seconds: 1000) >= .seconds(1), "a T1 retransmission took at least RTO.Initial")
        }
    }

    @Test func forgedCookieIsIgnored() throws {
        var random = SeededRandom(seed: 5)
        var server = SCTPAssociation(configuration: SCTPPair.configuration(), random: &random)
        var client = SCTPAssociation(configuration: SCTPPair.configuration(), random: &random)
        let now = MonotonicTime(seconds: 1)
        client.connect(now: now)
        guard case let .transmit(initPacket) = client.firstOutput() else { Issue.record("no INIT"); return }
        server.handle(.receive(initPacket), now: now)
        guard case let .transmit(initAck) = server.firstOutput() else { Issue.record("no INIT ACK"); return }
        #expect(server.state == .idle, "no state kept for an INIT")
        client.handle(.receive(initAck), now: now)
        guard case let .transmit(cookieEcho) = client.firstOutput() else { Issue.record("no COOKIE ECHO"); return }
        var packet = try SCTPPacket(parsing: cookieEcho)
        guard case var .cookieEcho(cookie) = packet.chunks[0] else { Issue.record("not COOKIE ECHO"); return }
        cookie[10] ^= 0x40  // flip a bit of the body: the MAC no longer matches
        packet.chunks = [.cookieEcho(cookie: cookie)]
        server.handle(.receive(packet.serialized()), now: now)
        #expect(server.state == .idle)
        // The genuine one works; a stale one (older than its lifetime) would not.
        var late = server
        late.handle(.receive(cookieEcho), now: now + .seconds(61))
        #expect(late.state == .idle)
        server.handle(.receive(cookieEcho), now: now)
        #expect(server.state == .established)
    }

    @Test func messageSizesFromOneByteTo256KiB() throws {
        let pair = SCTPPair(seed: 6)
        #expect(pair.connect())
        let sizes = [1, 2, 3, 4, 5, 100, 1171, 1172, 1173, 2344, 2345, 4096, 65_535, 65_536, 100_000, 262_143, 262_144]
        for (index, size) in sizes.enumerated() {
            try pair.send(0, testMessage(index: index, size: size), stream: UInt16(index % 3))
            try pair.send(1, testMessage(index: index, size: size), stream: 7, unordered: index % 2 == 0)
        }
        #expect(pair.peers[0].bufferedAmount == sizes.reduce(0, +), "nothing acknowledged yet")
        #expect(pair.peers[0].bufferedAmount(stream: 1) == sizes.enumerated().filter { $0.offset % 3 == 1 }.map(\.element).reduce(0, +))
        #expect(pair.peers[0].bufferedAmount(stream: 9) == 0)
        #expect(pair.run(for: .seconds(60)) { pair.received[1].count == sizes.count && pair.received[0].count == sizes.count })
        #expect(pair.run(for: .seconds(1)) { pair.peers[0].bufferedAmount == 0 && pair.peers[1].bufferedAmount == 0 })
        #expect(pair.peers[0].bufferedAmount(stream: 1) == 0 && pair.peers[1].bufferedAmount(stream: 7) == 0)
        // In order within each stream (streams are independent: jitter reorders packets between them).
        for stream in UInt16(0)..<3 {
            let indices = pair.received[1].filter { $0.stream == stream }.map { messageIndex($0.payload) }
            #expect(indices == Array(stride(from: Int(stream), to: sizes.count, by: 3)))
        }
        for message in pair.received[1] {
            let index = messageIndex(message.payload)
            #expect(message.payload == testMessage(index: index, size: sizes[index]), "message \(index) differs")
        }
        #expect(Set(pair.received[0].map(\.payload.count)) == Set(sizes))
        #expect(throws: SCTPError.messageSize(262_145)) { try pair.send(0, [UInt8](repeating: 0, count: 262_145)) }
        #expect(throws: SCTPError.messageSize(0)) { try pair.send(0, []) }
        // A peer that takes at most 64 KiB (no a=max-message-size in its SDP).
        let small = SCTPPair(seed: 61) { side, configuration in if side == 0 { configuration.remoteMaxMessageSize = 65_536 } }
        #expect(small.connect())
        #expect(throws: SCTPError.messageSize(65_537)) { try small.send(0, [UInt8](repeating: 0, count: 65_537)) }
        try small.send(0, [UInt8](repeating: 0, count: 65_536))
    }

    /// 2,000 messages each way through 5 % loss, delay and reordering: none lost, none out of order.
    @Test func twoThousandOrderedMessagesEachWayThroughLossAndReordering() throws {
        let pair = SCTPPair(seed: 7)
        pair.network.lossRate = 0.05
        pair.network.jitter = .milliseconds(30)
        #expect(pair.connect())
        var random = SeededRandom(seed: 70)
        var sizes: [[Int]] = [[], []]
        for index in 0..<2000 {
            for side in 0..<2 {
                let size = 1 + Int(random.next() % 3000)
                sizes[side].append(size)
                try pair.send(side, testMessage(index: index, size: size), stream: UInt16(index % 4))
            }
            if index % 50 == 49 { pair.run(for: .milliseconds(100)) }
        }
        #expect(pair.run(for: .seconds(600)) { pair.received[0].count == 2000 && pair.received[1].count == 2000 })
        for side in 0..<2 {
            // In order within each stream, and every message whole.
            for stream in UInt16(0)..<4 {
                let indices = pair.received[1 - side].filter { $0.stream == stream }.map { messageIndex($0.payload) }
                #expect(indices == Array(stride(from: Int(stream), to: 2000, by: 4)))
            }
            for message in pair.received[1 - side] {
                let index = messageIndex(message.payload)
                #expect(message.payload == testMessage(index: index, size: sizes[side][index]))
            }
            #expect(pair.peers[side].statistics.retransmittedChunks > 0)
        }
        #expect(pair.peers[0].statistics.fastRetransmits > 0)
        #expect(pair.peers[0].bufferedAmount == 0 || pair.run(for: .seconds(10)) { pair.peers[0].bufferedAmount == 0 })
    }

    @Test func unorderedDeliveryDoesNotWaitForGaps() throws {
        let pair = SCTPPair(seed: 8)
        #expect(pair.connect())
        // Drop the first data packet once: the unordered messages after it are delivered before it.
        var droppedFirst = false
        pair.network.dropRule = { from, bytes in
            guard from == 0, !droppedFirst, let packet = try? SCTPPacket(parsing: bytes),
                  packet.chunks.contains(where: { if case .data = $0 { return true } else { return false } }) else { return false }
            droppedFirst = true
            return true
        }
        for index in 0..<10 { try pair.send(0, testMessage(index: index, size: 1000), unordered: true) }
        #expect(pair.run(for: .seconds(10)) { pair.received[1].count == 10 })
        let order = pair.received[1].map { messageIndex($0.payload) }
        #expect(Set(order) == Set(0..<10))
        #expect(order.first != 0, "the lost first message came last, not first")
    }

    /// maxRetransmits = 0 through 10 % loss: lost messages are abandoned, FORWARD TSN moves the
    /// peer past them, what arrives is in order, and the association stays healthy.
    @Test func partialReliabilityMaxRetransmitsZero() throws {
        let pair = SCTPPair(seed: 9)
        #expect(pair.connect())
        pair.network.lossRate = 0.10
        for index in 0..<1000 {
            try pair.send(0, testMessage(index: index, size: 200 + index % 2000), stream: 2, reliability: .maxRetransmits(0))
            if index % 20 == 19 { pair.run(for: .milliseconds(50)) }
        }
        pair.run(for: .seconds(30)) { pair.peers[0].bufferedAmount == 0 }
        #expect(pair.peers[0].bufferedAmount == 0, "everything acknowledged or abandoned")
        let indices = pair.received[1].map { messageIndex($0.payload) }
        #expect(indices == indices.sorted(), "ordered stream stays in order")
        #expect(indices.count < 1000 && indices.count > 700, "\(indices.count) of 1000 arrived")
        #expect(pair.peers[0].statistics.abandonedMessages > 0)
        #expect(pair.peers[0].statistics.forwardTSNsSent > 0)
        #expect(pair.peers[1].statistics.forwardTSNsReceived > 0)
        #expect(pair.peers[0].statistics.retransmittedChunks == 0, "nothing sent twice")
        // A reliable message afterwards still arrives: the peer's cumulative TSN was moved.
        pair.network.lossRate = 0
        try pair.send(0, Array("after".utf8), stream: 2)
        #expect(pair.run(for: .seconds(10)) { pair.received[1].last?.payload == Array("after".utf8) })
    }

    @Test func partialReliabilityLifetime() throws {
        let pair = SCTPPair(seed: 11)
        #expect(pair.connect())
        pair.network.lossRate = 0.10
        for index in 0..<500 {
            try pair.send(0, testMessage(index: index, size: 3000), stream: 4, reliability: .lifetime(.milliseconds(150)))
            if index % 10 == 9 { pair.run(for: .milliseconds(40)) }
        }
        pair.run(for: .seconds(30)) { pair.peers[0].bufferedAmount == 0 }
        #expect(pair.peers[0].bufferedAmount == 0)
        let indices = pair.received[1].map { messageIndex($0.payload) }
        #expect(indices == indices.sorted())
        #expect(indices.count < 500)
        #expect(pair.peers[0].statistics.abandonedMessages > 0)
        #expect(pair.peers[1].statistics.forwardTSNsReceived > 0)
        pair.network.lossRate = 0
        try pair.send(0, [42], stream: 4)
        #expect(pair.run(for: .seconds(10)) { pair.received[1].last?.payload == [42] })
    }

    /// RFC 6525 as data channels close (RFC 8831 §6.7): each side resets its outgoing stream.
    @Test func streamReset() throws {
        let pair = SCTPPair(seed: 12)
        #expect(pair.connect())
        for index in 0..<5 { try pair.send(0, testMessage(index: index, size: 5000), stream: 3) }
        pair.peers[0].resetStreams([3], now: pair.now)
        #expect(throws: SCTPError.streamUnavailable(3)) { try pair.send(0, [1], stream: 3) }
        #expect(pair.run(for: .seconds(10)) { pair.eventList(0).contains(.outgoingStreamsReset([3])) })
        #expect(pair.eventList(1).contains(.incomingStreamsReset([3])))
        #expect(pair.received[1].count == 5, "queued messages went before the reset")
        // The other side closes its half too; then the stream starts again from SSN 0.
        pair.peers[1].resetStreams([3], now: pair.now)
        #expect(pair.run(for: .seconds(10)) { pair.eventList(1).contains(.outgoingStreamsReset([3])) })
        try pair.send(0, Array("again".utf8), stream: 3)
        #expect(pair.run(for: .seconds(10)) { pair.received[1].count == 6 })
        #expect(pair.received[1].last?.payload == Array("again".utf8))
    }

    /// A reset request that overtakes its stream's data waits ("In progress", RFC 6525 §5.2.2).
    @Test func streamResetWaitsForData() throws {
        let pair = SCTPPair(seed: 13)
        #expect(pair.connect())
        pair.network.lossRate = 0.2
        for index in 0..<20 { try pair.send(0, testMessage(index: index, size: 2000), stream: 5) }
        pair.peers[0].resetStreams([5], now: pair.now)
        #expect(pair.run(for: .seconds(120)) { pair.eventList(0).contains(.outgoingStreamsReset([5])) })
        #expect(pair.received[1].map { messageIndex($0.payload) } == Array(0..<20))
        let resetAt = pair.events[1].firstIndex { $0.1 == .incomingStreamsReset([5]) }
        #expect(resetAt != nil)
    }

    /// The request overtakes the stream's last DATA (which is lost): "In progress" first, then the
    /// reset once the DATA is through, answered to the resent request (RFC 6525 §5.2.2).
    @Test func streamResetInProgressThenPerformed() throws {
        let pair = SCTPPair(seed: 23)
        pair.network.jitter = .zero
        #expect(pair.connect())
        var dropped = false
        pair.network.dropRule = { from, bytes in
            guard from == 0, !dropped, let packet = try? SCTPPacket(parsing: bytes),
                  packet.chunks.contains(where: { if case .data = $0 { return true } else { return false } }) else { return false }
            dropped = true
            return true
        }
        try pair.send(0, Array("last words".utf8), stream: 5)
        pair.peers[0].resetStreams([5], now: pair.now)
        pair.drain(0)
        #expect(pair.run(for: .seconds(30)) { pair.eventList(0).contains(.outgoingStreamsReset([5])) })
        let results = pair.transmitted[1].flatMap { entry -> [UInt32] in
            guard let packet = try? SCTPPacket(parsing: entry.1) else { return [] }
            return packet.chunks.flatMap { chunk -> [UInt32] in
                guard case let .reconfig(parameters) = chunk else { return [] }
                return parameters.compactMap { if case let .response(_, result) = $0 { return result } else { return nil } }
            }
        }
        #expect(results == [ReconfigParameter.Result.inProgress, ReconfigParameter.Result.successPerformed])
        #expect(pair.received[1].map(\.payload) == [Array("last words".utf8)])
        // The message came before the reset event on the receiving side.
        #expect(pair.eventList(1).contains(.incomingStreamsReset([5])))
    }

    /// T3-rtx doubles on each expiry (RFC 9260 §6.3.3) until Association.Max.Retrans ends it.
    @Test func retransmissionTimerBacksOff() throws {
        let pair = SCTPPair(seed: 14) { _, configuration in configuration.heartbeatInterval = .seconds(100_000) }
        #expect(pair.connect())
        let start = pair.transmitted[0].count
        pair.network.dropRule = { _, _ in true }
        try pair.send(0, [1, 2, 3])
        #expect(pair.run(for: .seconds(3600)) { pair.closeReason(0) != nil })
        #expect(pair.closeReason(0) == .unreachable)
        let times = pair.transmitted[0][start...].compactMap { entry -> MonotonicTime? in
            guard let packet = try? SCTPPacket(parsing: entry.1),
                  packet.chunks.contains(where: { if case .data = $0 { return true } else { return false } }) else { return nil }
            return entry.0
        }
        #expect(times.count == 11, "first send and 10 retransmissions")
        let gaps = zip(times.dropFirst(), times).map { ($0 - $1) }
        // The handshake measured no RTT, so the first gap is RTO.Initial (1 s); then 2, 4, ... capped at 60 s.
        #expect(gaps.first == .seconds(1))
        for (earlier, later) in zip(gaps, gaps.dropFirst()) {
            #expect(later == min(earlier * 2, .seconds(60)), "\(gaps)")
        }
        #expect(gaps.last == .seconds(60))
    }

    @Test func heartbeatsKeepAnIdleAssociationAndDetectADeadPeer() throws {
        let pair = SCTPPair(seed: 15)
        #expect(pair.connect())
        pair.run(for: .seconds(200))
        #expect(pair.peers[0].statistics.heartbeatsSent >= 4)
        #expect(pair.peers[0].statistics.heartbeatAcksReceived == pair.peers[0].statistics.heartbeatsSent)
        #expect(pair.peers[0].state == .established)
        // The peer vanishes: unanswered heartbeats end the association.
        pair.network.dropRule = { from, _ in from == 1 }
        #expect(pair.run(for: .seconds(7200)) { pair.closeReason(0) != nil })
        #expect(pair.closeReason(0) == .unreachable)
    }

    @Test func shutdownDeliversQueuedDataFirst() throws {
        let pair = SCTPPair(seed: 16)
        pair.network.lossRate = 0.05
        #expect(pair.connect())
        for index in 0..<50 { try pair.send(0, testMessage(index: index, size: 10_000)) }
        pair.peers[0].shutdown(now: pair.now)
        #expect(throws: SCTPError.notEstablished) { try pair.send(0, [1]) }
        #expect(pair.run(for: .seconds(120)) { pair.closeReason(0) != nil && pair.closeReason(1) != nil })
        #expect(pair.closeReason(0) == .shutdown)
        #expect(pair.closeReason(1) == .shutdown)
        #expect(pair.received[1].map { messageIndex($0.payload) } == Array(0..<50))
        #expect(pair.peers[0].nextDeadline == nil && pair.peers[1].nextDeadline == nil)
    }

    /// The SHUTDOWN COMPLETE is lost: the closed side answers the resent SHUTDOWN ACK (§8.4 rule 5).
    @Test func shutdownSurvivesALostShutdownComplete() throws {
        let pair = SCTPPair(seed: 22)
        #expect(pair.connect())
        var dropped = false
        pair.network.dropRule = { _, bytes in
            guard !dropped, let packet = try? SCTPPacket(parsing: bytes), packet.chunks.contains(.shutdownComplete(reflected: false)) else {
                return false
            }
            dropped = true
            return true
        }
        pair.peers[0].shutdown(now: pair.now)
        #expect(pair.run(for: .seconds(30)) { pair.closeReason(0) != nil && pair.closeReason(1) != nil })
        #expect(dropped)
        #expect(pair.closeReason(0) == .shutdown && pair.closeReason(1) == .shutdown)
    }

    @Test func abort() throws {
        let pair = SCTPPair(seed: 17)
        #expect(pair.connect())
        try pair.send(0, [UInt8](repeating: 1, count: 100_000))
        pair.peers[0].abort(reason: "user closed")
        pair.drain(0)
        #expect(pair.run(for: .seconds(5)) { pair.closeReason(1) != nil })
        #expect(pair.closeReason(0) == .aborted)
        #expect(pair.closeReason(1) == .abortedByPeer(causes: [12]))
        #expect(pair.peers[1].state == .closed)
    }

    /// Packets for another association (wrong verification tag or ports) change nothing.
    @Test func foreignPacketsAreDropped() throws {
        let pair = SCTPPair(seed: 18)
        #expect(pair.connect())
        let abort = SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0x1234_5678,
                               chunks: [.abort(reflected: false, causes: [])])
        pair.peers[1].handle(.receive(abort.serialized()), now: pair.now)
        let wrongPort = SCTPPacket(sourcePort: 5001, destinationPort: 5000, verificationTag: 0, chunks: [.cookieAck])
        pair.peers[1].handle(.receive(wrongPort.serialized()), now: pair.now)
        #expect(pair.peers[1].state == .established)
        #expect(pair.peers[1].statistics.packetsDropped == 2)
    }

    /// DATA on a stream beyond the inbound count: acknowledged, not delivered, reported (§6.5).
    @Test func dataOnAnInvalidStreamIsReported() throws {
        let pair = SCTPPair(seed: 24) { side, configuration in
            if side == 1 { configuration.inboundStreams = 4 }
        }
        #expect(pair.connect())
        #expect(throws: SCTPError.streamUnavailable(4)) { try pair.send(0, [1], stream: 4) }  // side 0 knows the limit
        // A peer that ignores it anyway:
        let tag = pair.peers[1].localVerificationTag
        guard let initPacket = try? SCTPPacket(parsing: pair.transmitted[0][0].1), case let .initiation(initChunk) = initPacket.chunks[0] else {
            Issue.record("no INIT")
            return
        }
        let data = SCTPChunk.data(DataChunk(tsn: initChunk.initialTSN, stream: 9, ssn: 0, ppid: 53, payload: [1][...]))
        pair.peers[1].handle(.receive(SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: tag, chunks: [data]).serialized()),
                             now: pair.now)
        pair.peers[1].handle(.timeout, now: pair.now + .milliseconds(200))  // the delayed SACK
        let chunks = pair.peers[1].drainOutputs().compactMap { output -> SCTPPacket? in
            if case let .transmit(bytes) = output { return try? SCTPPacket(parsing: bytes) } else { return nil }
        }.flatMap(\.chunks)
        #expect(chunks.contains(.error(causes: [SCTPErrorCause(code: 1, information: [0, 9, 0, 0])])))
        #expect(chunks.contains { if case let .sack(sack) = $0 { return sack.cumulativeTSNAck == initChunk.initialTSN } else { return false } })
    }

    /// Streams take turns a message at a time: a chat line is not stuck behind a queued transfer.
    @Test func streamsTakeTurns() throws {
        let pair = SCTPPair(seed: 19)
        #expect(pair.connect())
        for index in 0..<8 { try pair.send(0, testMessage(index: index, size: 200_000), stream: 1) }
        try pair.send(0, testMessage(index: 100, size: 10), stream: 2)
        try pair.send(0, testMessage(index: 101, size: 10), stream: 2)
        #expect(pair.run(for: .seconds(60)) { pair.received[1].count == 10 })
        let order = pair.received[1].map { messageIndex($0.payload) }
        #expect(order.firstIndex(of: 100)! <= 1 && order.firstIndex(of: 101)! <= 3, "\(order)")
        #expect(order.filter { $0 < 100 } == Array(0..<8))
    }
}

@Suite("SCTP unknown chunks and parameters")
struct UnknownChunkTests {
    /// RFC 9260 §3.2: 0x40 asks for an ERROR (Unrecognized Chunk Type); 0x80 says skip, not stop.
    @Test func unknownChunksAreReportedAndSkippedByTheirBits() throws {
        let pair = SCTPPair(seed: 20)
        #expect(pair.connect())
        let tag = pair.peers[1].localVerificationTag
        let data = SCTPChunk.data(DataChunk(tsn: 0, stream: 1, ssn: 0, ppid: 51, payload: [1][...]))
        // 0xC1 (top bits 11): skip and report; the HEARTBEAT after it is still answered.
        var packet = SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: tag,
                                chunks: [.unknown(type: 0xC1, flags: 0, value: [9, 9]), .heartbeat(info: [1, 2, 3])])
        pair.peers[1].handle(.receive(packet.serialized()), now: pair.now)
        var answers = pair.peers[1].drainOutputs().compactMap { output -> SCTPPacket? in
            if case let .transmit(bytes) = output { return try? SCTPPacket(parsing: bytes) } else { return nil }
        }.flatMap(\.chunks)
        #expect(answers.contains(.error(causes: [SCTPErrorCause(code: 6, information: [0xC1, 0, 0, 6, 9, 9, 0, 0])])))
        #expect(answers.contains(.heartbeatAck(info: [1, 2, 3])))
        // 0x3F (top bits 00): stop, no report; the heartbeat after it is not answered.
        packet.chunks = [.unknown(type: 0x3F, flags: 0, value: []), .heartbeat(info: [4]), data]
        pair.peers[1].handle(.receive(packet.serialized()), now: pair.now)
        answers = pair.peers[1].drainOutputs().compactMap { output -> SCTPPacket? in
            if case let .transmit(bytes) = output { return try? SCTPPacket(parsing: bytes) } else { return nil }
        }.flatMap(\.chunks)
        #expect(answers.isEmpty)
    }

    @Test func unknownInitParametersAreReportedInInitAck() throws {
        var random = SeededRandom(seed: 21)
        var server = SCTPAssociation(configuration: SCTPPair.configuration(), random: &random)
        let initChunk = InitChunk(initiateTag: 77, advertisedReceiverWindow: 100_000, outboundStreams: 10, inboundStreams: 10,
                                  initialTSN: 5, parameters: [SCTPParameter(type: 0x8002, value: [1, 2, 3, 4]),  // RANDOM (AUTH): skip silently
                                                              SCTPParameter(type: 0xC123, value: [7]),  // skip, report
                                                              SCTPParameter(type: 0x8008, value: [0xC0])])
        server.handle(.receive(SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0,
                                          chunks: [.initiation(initChunk)]).serialized()), now: .zero)
        guard case let .transmit(bytes) = server.firstOutput(), case let .initiationAck(ack) = try SCTPPacket(parsing: bytes).chunks.first else {
            Issue.record("no INIT ACK")
            return
        }
        #expect(ack.parameters.filter { $0.type == SCTPParameter.unrecognizedParameter }.map(\.value) == [[0xC1, 0x23, 0, 5, 7, 0, 0, 0]])
        #expect(ack.stateCookie != nil)
    }
}

@Suite("SCTP with a peer lacking extensions")
struct MinimalPeerTests {
    /// A hand-driven peer whose INIT lists neither FORWARD TSN nor RE-CONFIG: stream reset reports
    /// failure at once, and partial reliability falls back to reliable (RFC 3758 §3.3).
    @Test func noForwardTSNNoReconfig() throws {
        var random = SeededRandom(seed: 60)
        var server = SCTPAssociation(configuration: SCTPPair.configuration(), random: &random)
        let now = MonotonicTime(seconds: 10)
        let peerTag: UInt32 = 0xABCD_0001
        let initChunk = InitChunk(initiateTag: peerTag, advertisedReceiverWindow: 65_536, outboundStreams: 16, inboundStreams: 16,
                                  initialTSN: 1000, parameters: [])
        server.handle(.receive(SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 0,
                                          chunks: [.initiation(initChunk)]).serialized()), now: now)
        guard case let .transmit(bytes) = server.firstOutput(), case let .initiationAck(ack) = try SCTPPacket(parsing: bytes).chunks[0],
              let cookie = ack.stateCookie else {
            Issue.record("no INIT ACK")
            return
        }
        server.handle(.receive(SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: ack.initiateTag,
                                          chunks: [.cookieEcho(cookie: cookie)]).serialized()), now: now)
        #expect(server.state == .established)
        _ = server.drainOutputs()
        #expect(throws: SCTPError.streamUnavailable(16)) { try server.send([1], stream: 16, ppid: 51, now: now) }  // peer's MIS is 16
        server.resetStreams([3], now: now)
        let events = server.drainOutputs().compactMap { if case let .event(event) = $0 { return event } else { return nil } }
        #expect(events == [.outgoingStreamsResetFailed([3])])
        // maxRetransmits 0 without FORWARD TSN: the lost message is still resent.
        try server.send([1, 2, 3], stream: 1, ppid: 51, reliability: .maxRetransmits(0), now: now)
        _ = server.drainOutputs()
        server.handle(.timeout, now: now + .seconds(2))
        let resent = server.drainOutputs().contains { output in
            guard case let .transmit(bytes) = output, let packet = try? SCTPPacket(parsing: bytes) else { return false }
            return packet.chunks.contains { if case .data = $0 { return true } else { return false } }
        }
        #expect(resent)
        #expect(server.statistics.abandonedMessages == 0)
    }
}
