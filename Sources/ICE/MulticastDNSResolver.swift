import RTCBase

/// Resolves the `.local` names browsers put in their host candidates instead of their addresses
/// (draft-ietf-mmusic-mdns-ice-candidates §3.1) with one-shot Multicast DNS queries (RFC 6762 §5.1):
/// an A query to 224.0.0.251:5353 from the owner's own socket (not port 5353), which responders
/// answer by unicast to that socket with the query's ID (§6.7). Sans-IO: the owner sends what it is
/// told, hands over the datagrams `isResponse` claims, and calls `handleTimeout` at `nextDeadline`.
/// A name is asked twice, a second apart, and given up after three seconds. IPv4 (A) only, like
/// the media socket.
public struct MulticastDNSResolver: Sendable {
    public static let multicastGroup = TransportAddress(ip: .v4(224, 0, 0, 251), port: 5353)
    /// Names asked at once (a browser offers one or two; more is a peer making work for us).
    public static let maximumPending = 16
    static let retransmitAfter: Duration = .seconds(1)
    static let giveUpAfter: Duration = .seconds(3)

    public enum Action: Equatable, Sendable {
        case send([UInt8], to: TransportAddress)
        case resolved(name: String, ip: TransportAddress.IP)
        case failed(name: String)
    }

    struct Query {
        var name: String
        var id: UInt16
        var packet: [UInt8]
        var sentAt: MonotonicTime
        var retransmitted = false
    }

    /// Where queries go (a test gives a loopback address); responses come from its port.
    public let group: TransportAddress
    private var pending: [Query] = []
    private var random: SeededRandom

    public init(group: TransportAddress = MulticastDNSResolver.multicastGroup, random: some RandomNumberGenerator) {
        self.group = group
        var random = random
        self.random = SeededRandom(seed: random.next())
    }

    /// Whether `name` looks like an mDNS candidate name ("<something>.local", RFC 6762 §3).
    public static func isMulticastDNSName(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return lowered.hasSuffix(".local") && lowered.count > 6 && lowered.count <= 253
    }

    public var nextDeadline: MonotonicTime? {
        pending.map { $0.sentAt + ($0.retransmitted ? Self.giveUpAfter : Self.retransmitAfter) }.min()
    }

    /// Asks for `name` unless it is already being asked (or too many are).
    public mutating func resolve(_ name: String, now: MonotonicTime) -> [Action] {
        let name = name.lowercased()
        guard Self.isMulticastDNSName(name) else { return [.failed(name: name)] }
        guard !pending.contains(where: { $0.name == name }) else { return [] }
        guard pending.count < Self.maximumPending, let packet = Self.query(for: name, id: 0) else { return [.failed(name: name)] }
        // RFC 7983: an ID whose first byte is 192 or more makes the answer classify as none of
        // STUN, DTLS, RTP or RTCP on the shared socket.
        let id = UInt16(truncatingIfNeeded: random.next()) | 0xC000
        var query = Query(name: name, id: id, packet: packet, sentAt: now)
        query.packet[0] = UInt8(id >> 8)
        query.packet[1] = UInt8(truncatingIfNeeded: id)
        pending.append(query)
        return [.send(query.packet, to: group)]
    }

    public mutating func handleTimeout(now: MonotonicTime) -> [Action] {
        var actions: [Action] = []
        pending.removeAll { query in
            if query.retransmitted, now >= query.sentAt + Self.giveUpAfter {
                actions.append(.failed(name: query.name))
                return true
            }
            return false
        }
        for index in pending.indices where !pending[index].retransmitted && now >= pending[index].sentAt + Self.retransmitAfter {
            pending[index].retransmitted = true
            actions.append(.send(pending[index].packet, to: group))
        }
        return actions
    }

    /// A response to one of our queries: from the group's port (a responder's mDNS socket), a
    /// response (QR set) carrying a pending query's ID.
    public func isResponse(_ datagram: [UInt8], from source: TransportAddress) -> Bool {
        guard source.port == group.port, datagram.count >= 12, datagram[2] & 0x80 != 0 else { return false }
        let id = UInt16(datagram[0]) << 8 | UInt16(datagram[1])
        return pending.contains { $0.id == id }
    }

    /// Takes the first A record (RFC 1035 §3.4.1) for the pending name of this ID.
    public mutating func receive(_ datagram: [UInt8], from source: TransportAddress) -> [Action] {
        guard isResponse(datagram, from: source) else { return [] }
        let id = UInt16(datagram[0]) << 8 | UInt16(datagram[1])
        guard let index = pending.firstIndex(where: { $0.id == id }),
              let ip = Self.address(of: pending[index].name, in: datagram) else { return [] }
        let name = pending.remove(at: index).name
        return [.resolved(name: name, ip: ip)]
    }

    // MARK: - DNS messages (RFC 1035 §4.1)

    /// Header (ID 0, no flags, one question), then QNAME, QTYPE A, QCLASS IN.
    static func query(for name: String, id: UInt16) -> [UInt8]? {
        var packet: [UInt8] = [UInt8(id >> 8), UInt8(truncatingIfNeeded: id), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(label.utf8)
            guard !bytes.isEmpty, bytes.count <= 63 else { return nil }
            packet.append(UInt8(bytes.count))
            packet += bytes
        }
        packet += [0, 0, 1, 0, 1]
        return packet
    }

    /// The address of the first A record named `name` among the answers (and additional records).
    static func address(of name: String, in message: [UInt8]) -> TransportAddress.IP? {
        guard message.count >= 12 else { return nil }
        let questions = Int(message[4]) << 8 | Int(message[5])
        let records = (Int(message[6]) << 8 | Int(message[7])) + (Int(message[8]) << 8 | Int(message[9]))
            + (Int(message[10]) << 8 | Int(message[11]))
        var offset = 12
        for _ in 0..<questions {
            guard let (_, end) = readName(message, at: offset), end + 4 <= message.count else { return nil }
            offset = end + 4
        }
        for _ in 0..<records {
            guard let (recordName, end) = readName(message, at: offset), end + 10 <= message.count else { return nil }
            let type = UInt16(message[end]) << 8 | UInt16(message[end + 1])
            let recordClass = (UInt16(message[end + 2]) << 8 | UInt16(message[end + 3])) & 0x7FFF  // RFC 6762 §10.2 cache-flush bit
            let length = Int(message[end + 8]) << 8 | Int(message[end + 9])
            let data = end + 10
            guard data + length <= message.count else { return nil }
            if type == 1, recordClass == 1, length == 4, recordName == name {
                return .v4(message[data], message[data + 1], message[data + 2], message[data + 3])
            }
            offset = data + length
        }
        return nil
    }

    /// A (possibly compressed, RFC 1035 §4.1.4) name, lowercased, and where the record goes on.
    static func readName(_ message: [UInt8], at start: Int) -> (String, Int)? {
        var labels: [String] = []
        var offset = start
        var end: Int?
        var jumps = 0
        while true {
            guard offset < message.count else { return nil }
            let length = Int(message[offset])
            if length == 0 {
                return (labels.joined(separator: "."), end ?? offset + 1)
            }
            if length & 0xC0 == 0xC0 {
                guard offset + 1 < message.count, jumps < 16 else { return nil }
                if end == nil { end = offset + 2 }
                offset = (length & 0x3F) << 8 | Int(message[offset + 1])
                jumps += 1
                continue
            }
            guard length <= 63, offset + 1 + length <= message.count else { return nil }
            labels.append(String(decoding: message[(offset + 1)..<(offset + 1 + length)], as: UTF8.self).lowercased())
            offset += 1 + length
        }
    }
}
