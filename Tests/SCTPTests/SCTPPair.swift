import RTCBase
import SCTP
import STUN

/// Packets between the two associations on a virtual clock: seeded loss, a base delay and jitter
/// (jitter larger than the packet spacing reorders), kept in a heap by delivery time.
struct PacketNetwork {
    struct Packet {
        var bytes: [UInt8]
        var to: Int
        var deliverAt: MonotonicTime
        var order: Int
    }

    var random: SeededRandom
    var baseDelay: Duration = .milliseconds(20)
    var jitter: Duration = .milliseconds(10)
    var lossRate: Double = 0
    /// Drop this packet (from side `Int`) instead of delivering it.
    var dropRule: ((Int, [UInt8]) -> Bool)?
    private var heap: [Packet] = []
    private var order = 0
    private(set) var sent = 0
    private(set) var dropped = 0

    init(seed: UInt64) { random = SeededRandom(seed: seed) }

    mutating func send(_ bytes: [UInt8], from: Int, now: MonotonicTime) {
        sent += 1
        if let dropRule, dropRule(from, bytes) { dropped += 1; return }
        if lossRate > 0, Double(random.next() % 1_000_000) / 1_000_000 < lossRate { dropped += 1; return }
        let jitterNanoseconds = jitter > .zero ? Int64(random.next() % UInt64(jitter.nanosecondsClamped)) : 0
        order += 1
        push(Packet(bytes: bytes, to: 1 - from, deliverAt: now + baseDelay + .nanoseconds(jitterNanoseconds), order: order))
    }

    var nextDelivery: MonotonicTime? { heap.first?.deliverAt }

    mutating func popDue(now: MonotonicTime) -> Packet? {
        guard let first = heap.first, first.deliverAt <= now else { return nil }
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var index = 0
        while true {
            let left = 2 * index + 1, right = left + 1
            var smallest = index
            if left < heap.count, before(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count, before(heap[right], heap[smallest]) { smallest = right }
            if smallest == index { break }
            heap.swapAt(index, smallest)
            index = smallest
        }
        return first
    }

    private func before(_ a: Packet, _ b: Packet) -> Bool { (a.deliverAt, a.order) < (b.deliverAt, b.order) }

    private mutating func push(_ packet: Packet) {
        heap.append(packet)
        var index = heap.count - 1
        while index > 0 {
            let parent = (index - 1) / 2
            guard before(heap[index], heap[parent]) else { break }
            heap.swapAt(index, parent)
            index = parent
        }
    }
}

struct ReceivedMessage: Equatable {
    var stream: UInt16
    var ppid: UInt32
    var payload: [UInt8]
}

/// Two associations (side 0 and side 1) joined by a PacketNetwork, driven on a virtual clock.
final class SCTPPair {
    var now = MonotonicTime(seconds: 1000)
    var peers: [SCTPAssociation]
    var network: PacketNetwork
    var events: [[(MonotonicTime, SCTPEvent)]] = [[], []]
    var received: [[ReceivedMessage]] = [[], []]
    /// Every packet each side transmitted, with its time (for timer tests).
    var transmitted: [[(MonotonicTime, [UInt8])]] = [[], []]
    /// Keep payloads and packets (off for throughput runs).
    var record = true
    var receivedCount = [0, 0]
    var receivedBytes = [0, 0]

    static let cookieKey: [UInt8] = Array("rtcam sctp test cookie key".utf8)

    static func configuration(_ adjust: (inout SCTPConfiguration) -> Void = { _ in }) -> SCTPConfiguration {
        var configuration = SCTPConfiguration(cookieAuthenticator: { HMACSHA1.authenticationCode(key: SCTPPair.cookieKey, message: $0) })
        adjust(&configuration)
        return configuration
    }

    init(seed: UInt64, configure: (Int, inout SCTPConfiguration) -> Void = { _, _ in }) {
        var random = SeededRandom(seed: seed)
        peers = (0..<2).map { side in SCTPAssociation(configuration: SCTPPair.configuration { configure(side, &$0) }, random: &random) }
        network = PacketNetwork(seed: seed &+ 1)
    }

    func drain(_ side: Int) {
        for output in peers[side].drainOutputs() {
            switch output {
            case let .transmit(bytes):
                if record { transmitted[side].append((now, bytes)) }
                network.send(bytes, from: side, now: now)
            case let .event(event):
                if case let .message(stream, ppid, payload) = event {
                    receivedCount[side] += 1
                    receivedBytes[side] += payload.count
                    if record {
                        received[side].append(ReceivedMessage(stream: stream, ppid: ppid, payload: payload))
                    }
                } else {
                    events[side].append((now, event))
                }
            case .timeout:
                break
            }
        }
    }

    /// Runs the network and timers until `condition` holds or `limit` of virtual time passes.
    @discardableResult
    func run(for limit: Duration, until condition: () -> Bool = { false }) -> Bool {
        let end = now + limit
        while true {
            drain(0)
            drain(1)
            if condition() { return true }
            guard let next = earliest(network.nextDelivery, peers[0].nextDeadline, peers[1].nextDeadline), next <= end else {
                now = end
                return condition()
            }
            now = max(now, next)
            while let packet = network.popDue(now: now) {
                peers[packet.to].handle(.receive(packet.bytes), now: now)
                drain(packet.to)
            }
            for side in 0..<2 {
                if let deadline = peers[side].nextDeadline, deadline <= now {
                    peers[side].handle(.timeout, now: now)
                    drain(side)
                }
            }
        }
    }

    func connect(initiators: [Int] = [0]) -> Bool {
        for side in initiators { peers[side].connect(now: now) }
        return run(for: .seconds(120)) { self.established(0) && self.established(1) }
    }

    func established(_ side: Int) -> Bool { peers[side].state == .established }

    func eventList(_ side: Int) -> [SCTPEvent] { events[side].map(\.1) }

    func closeReason(_ side: Int) -> SCTPCloseReason? {
        for case let (_, .closed(reason)) in events[side] { return reason }
        return nil
    }

    func send(_ side: Int, _ message: [UInt8], stream: UInt16 = 1, ppid: UInt32 = 51, unordered: Bool = false,
              reliability: SCTPReliability = .reliable) throws {
        try peers[side].send(message, stream: stream, ppid: ppid, unordered: unordered, reliability: reliability, now: now)
        drain(side)
    }
}

/// A message whose bytes say which one it is (index in the first 4 bytes, then a pattern).
func testMessage(index: Int, size: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: size)
    for i in 0..<size { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ index) }
    for i in 0..<min(4, size) { bytes[i] = UInt8(truncatingIfNeeded: index >> (8 * i)) }
    return bytes
}

func messageIndex(_ payload: [UInt8]) -> Int {
    var index = 0
    for i in 0..<min(4, payload.count) { index |= Int(payload[i]) << (8 * i) }
    return index
}
