import RTCBase

/// An in-memory network between two addresses with seeded delay, jitter, loss and reordering, on a
/// virtual clock. Every datagram that enters it is checked against the 1200-byte WebRTC MTU.
struct SimulatedNetwork {
    struct Datagram {
        var bytes: [UInt8]
        var from: TransportAddress
        var to: TransportAddress
        var deliverAt: MonotonicTime
        var order: Int
    }

    var random: SeededRandom
    var baseDelay: Duration = .milliseconds(20)
    var jitter: Duration = .milliseconds(10)
    var lossRate: Double = 0
    /// Drop this datagram instead of delivering it (targeted loss: DTLS flights, one direction...).
    var dropRule: ((Datagram) -> Bool)?
    private(set) var inFlight: [Datagram] = []
    private(set) var largestDatagram = 0
    private(set) var sent = 0
    private(set) var dropped = 0
    private var order = 0

    init(seed: UInt64) { random = SeededRandom(seed: seed) }

    mutating func send(_ bytes: [UInt8], from: TransportAddress, to: TransportAddress, now: MonotonicTime) {
        sent += 1
        largestDatagram = max(largestDatagram, bytes.count)
        let jitterNanoseconds = jitter.nanosecondsClamped > 0 ? Int64(random.next() % UInt64(jitter.nanosecondsClamped)) : 0
        order += 1
        let datagram = Datagram(bytes: bytes, from: from, to: to,
                                deliverAt: now + baseDelay + .nanoseconds(jitterNanoseconds), order: order)
        if let dropRule, dropRule(datagram) { dropped += 1; return }
        if lossRate > 0, Double(random.next() % 1_000_000) / 1_000_000 < lossRate { dropped += 1; return }
        inFlight.append(datagram)
    }

    var nextDelivery: MonotonicTime? { inFlight.map(\.deliverAt).min() }

    /// Datagrams due by `now`, earliest first (jitter larger than the packet spacing reorders them).
    mutating func deliverDue(now: MonotonicTime) -> [Datagram] {
        let due = inFlight.filter { $0.deliverAt <= now }.sorted { ($0.deliverAt, $0.order) < ($1.deliverAt, $1.order) }
        inFlight.removeAll { $0.deliverAt <= now }
        return due
    }
}
