import DataChannel
import RTCBase
import SCTP
import Testing

/// Two DataChannelEndpoints (side 0 the DTLS client, side 1 the server) on the in-memory network.
final class DataChannelPair {
    var now = MonotonicTime(seconds: 1000)
    var endpoints: [DataChannelEndpoint]
    var network: PacketNetwork
    var events: [[DataChannelEvent]] = [[], []]

    init(seed: UInt64, lossRate: Double = 0) {
        var random = SeededRandom(seed: seed)
        endpoints = [DataChannelEndpoint(role: .client, configuration: SCTPPair.configuration(), random: &random),
                     DataChannelEndpoint(role: .server, configuration: SCTPPair.configuration(), random: &random)]
        network = PacketNetwork(seed: seed &+ 1)
        network.lossRate = lossRate
    }

    func drain(_ side: Int) {
        for output in endpoints[side].drainOutputs() {
            switch output {
            case let .transmit(bytes): network.send(bytes, from: side, now: now)
            case let .event(event): events[side].append(event)
            case .timeout: break
            }
        }
    }

    @discardableResult
    func run(for limit: Duration, until condition: () -> Bool = { false }) -> Bool {
        let end = now + limit
        while true {
            drain(0)
            drain(1)
            if condition() { return true }
            guard let next = earliest(network.nextDelivery, endpoints[0].nextDeadline, endpoints[1].nextDeadline), next <= end else {
                now = end
                return condition()
            }
            now = max(now, next)
            while let packet = network.popDue(now: now) {
                endpoints[packet.to].handle(.receive(packet.bytes), now: now)
                drain(packet.to)
            }
            for side in 0..<2 where (endpoints[side].nextDeadline.map { $0 <= now } ?? false) {
                endpoints[side].handle(.timeout, now: now)
                drain(side)
            }
        }
    }

    func messages(_ side: Int) -> [(UInt16, DataChannelMessage)] {
        events[side].compactMap { if case let .message(channel, message) = $0 { return (channel, message) } else { return nil } }
    }
}

@Suite("Data channels and DCEP (RFC 8831, RFC 8832)")
struct DataChannelTests {
    /// RFC 8832 §5.1: DATA_CHANNEL_OPEN laid out by hand.
    @Test func openMessageWireFormat() throws {
        let open = DCEPMessage.open(options: DataChannelOptions(ordered: false, reliability: .maxRetransmits(3), priority: 256),
                                    label: "chat", protocol: "x")
        let bytes = open.serialized()
        #expect(bytes == [0x03, 0x81, 0x01, 0x00, 0, 0, 0, 3, 0, 4, 0, 1] + Array("chatx".utf8))
        #expect(try DCEPMessage(parsing: bytes) == open)
        #expect(DCEPMessage.ack.serialized() == [0x02])
        #expect(try DCEPMessage(parsing: [0x02]) == .ack)
        let timed = DCEPMessage.open(options: DataChannelOptions(reliability: .maxPacketLifeTime(milliseconds: 500)), label: "", protocol: "")
        #expect(timed.serialized()[1] == 0x02)
        #expect(try DCEPMessage(parsing: timed.serialized()) == timed)
        #expect(throws: DataChannelError.unknownType(0x07)) { try DCEPMessage(parsing: [0x07]) }
        #expect(throws: DataChannelError.self) { try DCEPMessage(parsing: [0x03, 0x00, 0x00]) }
        #expect(throws: DataChannelError.unknownType(0x03 | 0x40)) {
            try DCEPMessage(parsing: [0x03, 0x43, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        }
        // A label longer than the message says: truncated.
        #expect(throws: DataChannelError.self) { try DCEPMessage(parsing: [0x03, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 65]) }
    }

    @Test func openSendCloseBothWays() throws {
        let pair = DataChannelPair(seed: 1)
        pair.endpoints[0].connect(now: pair.now)
        pair.endpoints[1].connect(now: pair.now)  // both start: crossing INITs
        #expect(pair.run(for: .seconds(10)) { pair.events[0].contains(.connected) && pair.events[1].contains(.connected) })

        // Stream ids by DTLS role: the client takes even ids, the server odd ones.
        let chat = try pair.endpoints[0].open(label: "chat", protocol: "json", now: pair.now)
        let second = try pair.endpoints[0].open(label: "more", now: pair.now)
        let fromServer = try pair.endpoints[1].open(label: "srv", options: DataChannelOptions(ordered: false), now: pair.now)
        #expect([chat, second, fromServer] == [0, 2, 1])
        // Data may follow the OPEN at once, before the ACK.
        try pair.endpoints[0].send(.text("hello"), on: chat, now: pair.now)
        #expect(pair.run(for: .seconds(5)) { pair.events[0].contains(.acknowledged(chat)) && pair.events[1].contains(.acknowledged(fromServer)) })
        #expect(pair.events[1].contains(.opened(DataChannelInfo(id: 0, label: "chat", protocol: "json",
                                                                options: DataChannelOptions(), negotiated: false))))
        #expect(pair.events[0].contains(.opened(DataChannelInfo(id: 1, label: "srv", protocol: "",
                                                                options: DataChannelOptions(ordered: false), negotiated: false))))

        // Text, binary, and the empty forms (PPIDs 51, 53, 56, 57).
        try pair.endpoints[0].send(.binary([1, 2, 3]), on: chat, now: pair.now)
        try pair.endpoints[0].send(.text(""), on: chat, now: pair.now)
        try pair.endpoints[0].send(.binary([]), on: chat, now: pair.now)
        try pair.endpoints[0].send(.text("é ✓"), on: chat, now: pair.now)
        try pair.endpoints[1].send(.binary([UInt8](repeating: 7, count: 200_000)), on: fromServer, now: pair.now)
        #expect(pair.run(for: .seconds(10)) { pair.messages(1).count == 5 && pair.messages(0).count == 1 })
        #expect(pair.messages(1).map(\.1) == [.text("hello"), .binary([1, 2, 3]), .text(""), .binary([]), .text("é ✓")])
        #expect(pair.messages(1).allSatisfy { $0.0 == chat })
        #expect(pair.messages(0).first?.1 == .binary([UInt8](repeating: 7, count: 200_000)))

        // Closing resets both directions; the id is then free.
        pair.endpoints[0].close(chat, now: pair.now)
        #expect(throws: DataChannelError.channelNotOpen(chat)) { try pair.endpoints[0].send(.text("late"), on: chat, now: pair.now) }
        #expect(pair.run(for: .seconds(10)) { pair.events[0].contains(.closed(chat)) && pair.events[1].contains(.closed(chat)) })
        #expect(pair.endpoints[0].channelInfos.map(\.id) == [1, 2])
        #expect(try pair.endpoints[0].open(label: "again", now: pair.now) == 0)
        #expect(pair.run(for: .seconds(5)) { pair.events[1].filter { if case .opened = $0 { return true } else { return false } }.count == 3 })
    }

    /// Channels may be opened before SCTP is up (as browsers allow); the OPEN goes out on `.connected`.
    @Test func openBeforeConnected() throws {
        let pair = DataChannelPair(seed: 4)
        let early = try pair.endpoints[0].open(label: "early", now: pair.now)
        let negotiated = try pair.endpoints[1].open(label: "n", negotiatedID: 10, now: pair.now)
        _ = try pair.endpoints[0].open(label: "n", negotiatedID: 10, now: pair.now)
        #expect(throws: DataChannelError.channelNotOpen(early)) { try pair.endpoints[0].send(.text("too soon"), on: early, now: pair.now) }
        pair.endpoints[0].connect(now: pair.now)
        #expect(pair.run(for: .seconds(10)) { pair.events[0].contains(.acknowledged(early)) })
        #expect(pair.events[1].contains(.opened(DataChannelInfo(id: early, label: "early", protocol: "", options: DataChannelOptions(),
                                                                negotiated: false))))
        #expect(pair.run(for: .seconds(10)) { pair.events[1].contains(.connected) })
        try pair.endpoints[1].send(.text("on the negotiated one"), on: negotiated, now: pair.now)
        #expect(pair.run(for: .seconds(10)) { pair.messages(0).count == 1 })
    }

    /// The association's refusals come through typed.
    @Test func sctpErrorsAreWrapped() throws {
        let pair = DataChannelPair(seed: 5)
        pair.endpoints[0].connect(now: pair.now)
        #expect(pair.run(for: .seconds(10)) { pair.events[0].contains(.connected) })
        let id = try pair.endpoints[0].open(label: "big", now: pair.now)
        #expect(throws: DataChannelError.sctp(.messageSize(262_145))) {
            try pair.endpoints[0].send(.binary([UInt8](repeating: 1, count: 262_145)), on: id, now: pair.now)
        }
        #expect(throws: DataChannelError.unknownChannel(40)) { try pair.endpoints[0].send(.text("?"), on: 40, now: pair.now) }
    }

    /// Negotiated channels (RFC 8831 §6.5) skip DCEP: both sides create the same id.
    @Test func negotiatedChannel() throws {
        let pair = DataChannelPair(seed: 2)
        pair.endpoints[0].connect(now: pair.now)
        #expect(pair.run(for: .seconds(10)) { pair.events[1].contains(.connected) && pair.events[0].contains(.connected) })
        let id = try pair.endpoints[0].open(label: "n", negotiatedID: 7, now: pair.now)
        _ = try pair.endpoints[1].open(label: "n", negotiatedID: 7, now: pair.now)
        #expect(id == 7)
        try pair.endpoints[1].send(.text("pre-agreed"), on: 7, now: pair.now)
        #expect(pair.run(for: .seconds(5)) { pair.messages(0).count == 1 })
        #expect(!pair.events[0].contains { if case .opened = $0 { return true } else { return false } })
    }

    /// An unreliable, unordered channel (maxRetransmits 0) through 10 % loss keeps going.
    @Test func partiallyReliableChannelUnderLoss() throws {
        let pair = DataChannelPair(seed: 3, lossRate: 0.1)
        pair.endpoints[0].connect(now: pair.now)
        #expect(pair.run(for: .seconds(30)) { pair.events[1].contains(.connected) && pair.events[0].contains(.connected) })
        let id = try pair.endpoints[0].open(label: "telemetry", options: DataChannelOptions(ordered: false, reliability: .maxRetransmits(0)),
                                            now: pair.now)
        #expect(pair.run(for: .seconds(30)) { pair.events[0].contains(.acknowledged(id)) })
        for index in 0..<500 {
            try pair.endpoints[0].send(.binary(testMessage(index: index, size: 500)), on: id, now: pair.now)
            pair.run(for: .milliseconds(20))
        }
        pair.run(for: .seconds(20)) { pair.endpoints[0].association.bufferedAmount == 0 }
        let received = pair.messages(1).count
        #expect(received > 350 && received < 500, "\(received) of 500")
        // Only the reliable DATA_CHANNEL_OPEN may have been sent twice; none of the messages was.
        #expect(pair.endpoints[0].association.statistics.retransmittedChunks <= 1)
        #expect(pair.endpoints[0].association.bufferedAmount == 0)
    }

    /// Any bytes under PPID 50 parse or throw DataChannelError; whatever parses round-trips.
    @Test func dcepParserNeverTraps() {
        var random = SeededRandom(seed: 50)
        let seeds = [DCEPMessage.open(options: DataChannelOptions(), label: "label", protocol: "p").serialized(), [0x02]]
        for _ in 0..<20_000 {
            var bytes = seeds[Int(random.next() % 2)]
            for _ in 0..<(1 + Int(random.next() % 3)) {
                switch random.next() % 4 {
                case 0 where !bytes.isEmpty: bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count + 1))))
                case 2: bytes += random.bytes(Int(random.next() % 6))
                default: bytes = random.bytes(Int(random.next() % 20))
                }
            }
            if let message = try? DCEPMessage(parsing: bytes), case let .open(_, label, protocolName) = message,
               label.utf8.count < 1000, protocolName.utf8.count < 1000 {
                // Invalid UTF-8 is repaired on parse, so compare what parsed with its own round trip.
                #expect((try? DCEPMessage(parsing: message.serialized())) == message)
            }
        }
    }
}

/// A raw association as a hostile data channel peer: malformed and out-of-place DCEP, data on
/// channels that do not exist, endless partial messages, every PPID. The endpoint must not trap and
/// must keep working.
@Suite("Data channels against a hostile peer")
struct HostileDataChannelPeerTests {
    @Test func hostileDCEPAndData() throws {
        var random = SeededRandom(seed: 80)
        var raw = SCTPAssociation(configuration: SCTPPair.configuration(), random: &random)
        var endpoint = DataChannelEndpoint(role: .server, configuration: SCTPPair.configuration(), random: &random)
        var now = MonotonicTime(seconds: 1)
        var events: [DataChannelEvent] = []
        func exchange() {
            for _ in 0..<50 {
                var moved = false
                for case let .transmit(bytes) in raw.drainOutputs() {
                    endpoint.handle(.receive(bytes), now: now)
                    moved = true
                }
                for output in endpoint.drainOutputs() {
                    switch output {
                    case let .transmit(bytes):
                        raw.handle(.receive(bytes), now: now)
                        moved = true
                    case let .event(event): events.append(event)
                    case .timeout: break
                    }
                }
                if !moved {
                    now = now + .milliseconds(250)  // let delayed SACKs and timers run
                    raw.handle(.timeout, now: now)
                    endpoint.handle(.timeout, now: now)
                    if raw.drainOutputs().isEmpty, endpoint.drainOutputs().isEmpty { return }
                }
            }
        }
        raw.connect(now: now)
        exchange()
        #expect(events.contains(.connected))
        _ = raw.drainOutputs()

        let open = DCEPMessage.open(options: DataChannelOptions(), label: "x", protocol: "").serialized()
        var fuzz = SeededRandom(seed: 81)
        for index in 0..<400 {
            let stream = UInt16(fuzz.next() % 8)
            var payload: [UInt8]
            switch fuzz.next() % 6 {
            case 0: payload = open
            case 1: payload = [0x02]  // ACK for whatever
            case 2: payload = Array(open.prefix(Int(fuzz.next() % UInt64(open.count))))  // truncated OPEN
            case 3:
                payload = open
                payload[Int(fuzz.next() % UInt64(payload.count))] = UInt8(truncatingIfNeeded: fuzz.next())
            default: payload = fuzz.bytes(1 + Int(fuzz.next() % 300))
            }
            let ppid: UInt32 = [50, 51, 52, 53, 54, 56, 57, 0, 99][Int(fuzz.next() % 9)]
            try? raw.send(payload, stream: stream, ppid: ppid, unordered: fuzz.next() % 2 == 0, now: now)
            if index % 10 == 0 { exchange() }
        }
        exchange()
        #expect(endpoint.association.state == .established)
        #expect(endpoint.association.statistics.messagesReceived > 300, "the hostile messages got there")
        #expect(events.contains { if case .opened = $0 { return true } else { return false } })
        #expect(events.contains { if case .message = $0 { return true } else { return false } })
        // Still usable: the endpoint opens a channel of its own and the raw side receives the OPEN.
        let id = try endpoint.open(label: "after", now: now)
        #expect(id % 2 == 1)
        for output in endpoint.drainOutputs() { if case let .transmit(bytes) = output { raw.handle(.receive(bytes), now: now) } }
        let sawOpen = raw.drainOutputs().contains { output in
            if case let .event(.message(stream, ppid, _)) = output { return stream == id && ppid == 50 }
            return false
        }
        #expect(sawOpen)
    }
}
