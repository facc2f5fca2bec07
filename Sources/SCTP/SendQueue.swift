/// Messages waiting for TSNs: one FIFO per stream, the streams served round-robin one message at a
/// time, so a large transfer on one data channel does not hold back the others (RFC 8831 §6.2
/// asks for a fair scheduler; RFC 8260 §3.2 describes round-robin). A message, once begun, is
/// finished first: without I-DATA its fragments need consecutive TSNs (RFC 9260 §6.9).
struct SendQueue: Sendable {
    private struct StreamQueue: Sendable {
        var messages: [OutgoingMessage] = []
        var head = 0
        var isEmpty: Bool { head == messages.count }
    }

    private var queues: [UInt16: StreamQueue] = [:]
    /// Streams with messages waiting, in turn order.
    private var active: [UInt16] = []
    private var turn = 0
    /// The stream whose head message is being sent.
    private var current: UInt16?

    var isEmpty: Bool { active.isEmpty }

    mutating func append(_ message: OutgoingMessage) {
        if queues[message.stream]?.isEmpty ?? true { active.append(message.stream) }
        queues[message.stream, default: StreamQueue()].messages.append(message)
    }

    func hasMessages(on streams: [UInt16]) -> Bool {
        streams.contains { !(queues[$0]?.isEmpty ?? true) }
    }

    /// The message to send from next: the one begun, else the head of the next stream in turn.
    mutating func next() -> OutgoingMessage? {
        if current == nil {
            guard !active.isEmpty else { return nil }
            if turn >= active.count { turn = 0 }
            current = active[turn]
            turn += 1
        }
        guard let stream = current, let queue = queues[stream] else { return nil }
        return queue.messages[queue.head]
    }

    /// Stores the head message back after fragments of it were taken.
    mutating func updateCurrent(_ message: OutgoingMessage) {
        guard let stream = current, let head = queues[stream]?.head else { return }
        queues[stream]!.messages[head] = message
    }

    /// The current message is done (wholly given TSNs, or dropped).
    mutating func removeCurrent() {
        // Taken out of the dictionary while it changes, so its array is not copied.
        guard let stream = current, var queue = queues.removeValue(forKey: stream) else { return }
        current = nil
        queue.messages[queue.head] = .done  // let go of its bytes
        queue.head += 1
        if queue.isEmpty {
            if let index = active.firstIndex(of: stream) {
                active.remove(at: index)
                if index < turn { turn -= 1 }
            }
        } else {
            if queue.head > 64, queue.head * 2 > queue.messages.count {
                queue.messages.removeFirst(queue.head)
                queue.head = 0
            }
            queues[stream] = queue
        }
    }

    /// The message `id` if it is the one being sent (a partly sent message that was abandoned).
    func currentMessage(id: UInt64) -> OutgoingMessage? {
        guard let stream = current, let queue = queues[stream], queue.messages[queue.head].id == id else { return nil }
        return queue.messages[queue.head]
    }

    mutating func removeAll() {
        self = SendQueue()
    }
}
