/// The receiving side's message store (RFC 9260 §6.5, §6.9): fragments by TSN until a message is
/// whole; whole ordered messages wait for their stream sequence number.
struct Reassembly: Sendable {
    struct Delivered: Sendable {
        var stream: UInt16
        var ppid: UInt32
        var payload: [UInt8]
    }

    private struct InboundStream: Sendable {
        var nextSSN: UInt16 = 0
        /// Whole messages that arrived ahead of `nextSSN`.
        var ready: [UInt16: (ppid: UInt32, payload: [UInt8])] = [:]
    }

    private var fragments: [UInt64: DataChunk] = [:]
    private var fragmentBytes = 0
    private var streams: [UInt16: InboundStream] = [:]
    private var readyBytes = 0

    /// Bytes held (the advertised window shrinks by this much).
    var bufferedBytes: Int { fragmentBytes + readyBytes }

    func contains(_ tsn: UInt64) -> Bool { fragments[tsn] != nil }

    /// Adds a new (not duplicate) chunk; returns the messages it completes, in delivery order.
    mutating func insert(_ chunk: DataChunk, tsn: UInt64) -> [Delivered] {
        if !chunk.unordered, let stream = streams[chunk.stream], ssnLess(chunk.ssn, stream.nextSSN) {
            return []  // a message of an SSN already delivered or skipped
        }
        let payload: [UInt8]
        if chunk.beginning && chunk.ending {
            payload = Array(chunk.payload)
        } else {
            fragments[tsn] = chunk
            fragmentBytes += chunk.payload.count
            guard let whole = assemble(around: tsn, like: chunk) else { return [] }
            payload = whole
        }
        if chunk.unordered { return [Delivered(stream: chunk.stream, ppid: chunk.ppid, payload: payload)] }
        var stream = streams[chunk.stream] ?? InboundStream()
        stream.ready[chunk.ssn] = (chunk.ppid, payload)
        readyBytes += payload.count
        let delivered = drain(&stream, id: chunk.stream)
        streams[chunk.stream] = stream
        return delivered
    }

    private func sameMessage(_ a: DataChunk, _ b: DataChunk) -> Bool {
        a.stream == b.stream && a.unordered == b.unordered && (a.unordered || a.ssn == b.ssn)
    }

    /// The whole message around `tsn` if every fragment from B to E is here (consecutive TSNs).
    /// The walk goes forward to E first: fragments arriving in order stop at once (the next one is
    /// not there yet), so only the last fragment walks the whole message.
    private mutating func assemble(around tsn: UInt64, like chunk: DataChunk) -> [UInt8]? {
        var last = tsn
        var current = chunk
        while !current.ending {
            guard let next = fragments[last + 1], sameMessage(next, chunk), !next.beginning else { return nil }
            last += 1
            current = next
        }
        var first = tsn
        current = chunk
        while !current.beginning {
            guard first > 0, let previous = fragments[first - 1], sameMessage(previous, chunk), !previous.ending else { return nil }
            first -= 1
            current = previous
        }
        var payload: [UInt8] = []
        var size = 0
        for index in first...last { size += fragments[index]!.payload.count }
        payload.reserveCapacity(size)
        for index in first...last {
            payload.append(contentsOf: fragments.removeValue(forKey: index)!.payload)
        }
        fragmentBytes -= size
        return payload
    }

    private mutating func drain(_ stream: inout InboundStream, id: UInt16) -> [Delivered] {
        var delivered: [Delivered] = []
        while let message = stream.ready.removeValue(forKey: stream.nextSSN) {
            readyBytes -= message.payload.count
            delivered.append(Delivered(stream: id, ppid: message.ppid, payload: message.payload))
            stream.nextSSN &+= 1
        }
        return delivered
    }

    /// FORWARD TSN (RFC 3758 §3.6): fragments up to `cumulative` are dropped, and each ordered
    /// stream listed moves past the SSN given, delivering what then is next.
    mutating func forward(to cumulative: UInt64, skipped: [ForwardTSNChunk.Skipped]) -> [Delivered] {
        if !fragments.isEmpty {
            for (tsn, chunk) in fragments where tsn <= cumulative {
                fragments[tsn] = nil
                fragmentBytes -= chunk.payload.count
            }
        }
        var delivered: [Delivered] = []
        for skip in skipped {
            var stream = streams[skip.stream] ?? InboundStream()
            guard !ssnLess(skip.ssn, stream.nextSSN) else { continue }
            // Whole messages at or before the skipped SSN are delivered first (they were complete),
            // in SSN order. Only the messages held are looked at, not every SSN skipped: a hostile
            // FORWARD TSN full of far-ahead SSNs costs little.
            let base = stream.nextSSN
            let span = skip.ssn &- base
            let due = stream.ready.keys.filter { $0 &- base <= span }.sorted { $0 &- base < $1 &- base }
            for ssn in due {
                let message = stream.ready.removeValue(forKey: ssn)!
                readyBytes -= message.payload.count
                delivered.append(Delivered(stream: skip.stream, ppid: message.ppid, payload: message.payload))
            }
            stream.nextSSN = skip.ssn &+ 1
            delivered += drain(&stream, id: skip.stream)
            streams[skip.stream] = stream
        }
        return delivered
    }

    /// RFC 6525 §5.2.2: incoming streams start again at SSN 0 (all of them when `ids` is empty).
    mutating func reset(streams ids: [UInt16]) {
        if ids.isEmpty {
            for (_, stream) in streams { for (_, message) in stream.ready { readyBytes -= message.payload.count } }
            streams = [:]
            return
        }
        for id in ids {
            if let stream = streams.removeValue(forKey: id) {
                for (_, message) in stream.ready { readyBytes -= message.payload.count }
            }
        }
    }
}
