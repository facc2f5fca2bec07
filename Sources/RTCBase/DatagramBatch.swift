/// Datagrams laid end to end in one buffer that is emptied and refilled, never given back: what
/// one viewer gets of one frame, protected and ready for one `sendmsg`. Filling it costs no
/// allocation once it has grown to a frame's size, and a run of equal-sized datagrams is one
/// contiguous span of memory, which is what a UDP GSO write sends (README "Performance").
public struct DatagramBatch: Sendable {
    /// The datagrams' bytes, one after the other.
    public private(set) var storage: [UInt8] = []
    /// Where each datagram ends in `storage`.
    private var ends: [Int] = []

    public init() {}

    public var count: Int { ends.count }
    public var isEmpty: Bool { ends.isEmpty }

    /// The bytes of datagram `index` within `storage`.
    public func range(at index: Int) -> Range<Int> {
        (index == 0 ? 0 : ends[index - 1]) ..< ends[index]
    }

    public func length(at index: Int) -> Int { range(at: index).count }

    public subscript(index: Int) -> ArraySlice<UInt8> { storage[range(at: index)] }

    /// Every datagram as an array of its own (tests, and callers off the media path).
    public var datagrams: [[UInt8]] { (0 ..< count).map { Array(self[$0]) } }

    /// Appends a copy of `datagram`; an empty one is not a datagram and is left out.
    public mutating func append(_ datagram: some Collection<UInt8>) {
        guard !datagram.isEmpty else { return }
        storage.append(contentsOf: datagram)
        ends.append(storage.count)
    }

    /// Appends one datagram that `write` adds to the end of `storage` (SRTP protecting in place).
    /// If `write` throws, whatever it added is taken back; if it adds nothing, no datagram is made.
    /// It must not change the bytes already there.
    public mutating func append<Failure: Error>(writtenBy write: (inout [UInt8]) throws(Failure) -> Void) throws(Failure) {
        let start = storage.count
        do {
            try write(&storage)
        } catch {
            storage.removeSubrange(min(start, storage.count)...)
            throw error
        }
        precondition(storage.count >= start, "a datagram writer removed bytes of earlier datagrams")
        if storage.count > start { ends.append(storage.count) }
    }

    /// Empties the batch, keeping its memory for the next fill.
    public mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }
}
