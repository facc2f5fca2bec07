/// RFC 4571 framing: datagrams (STUN, DTLS, RTP, RTCP) over a byte stream, each preceded by its
/// length as a 16-bit big-endian number. ICE-TCP (RFC 6544 §3) carries every packet of a TCP
/// candidate pair this way.
public enum LengthPrefixedFraming {
    /// The largest datagram the 16-bit length can announce.
    public static let largestFrame = 65_535

    /// `datagram` with its 2-byte length in front; nil when it is longer than 65,535 bytes.
    public static func frame(_ datagram: some Collection<UInt8>) -> [UInt8]? {
        guard datagram.count <= largestFrame else { return nil }
        var framed = [UInt8]()
        framed.reserveCapacity(datagram.count + 2)
        append(datagram, to: &framed)
        return framed
    }

    /// Appends `datagram`, framed, to `stream` (which holds earlier frames); false when it is too long
    /// (nothing appended).
    @discardableResult
    public static func append(_ datagram: some Collection<UInt8>, to stream: inout [UInt8]) -> Bool {
        guard datagram.count <= largestFrame else { return false }
        stream.append(UInt8(datagram.count >> 8))
        stream.append(UInt8(datagram.count & 0xFF))
        stream.append(contentsOf: datagram)
        return true
    }
}

/// Why a stream stopped being read: the peer announced something the deframer will not hold.
public enum LengthPrefixedFramingError: Error, Equatable, CustomStringConvertible {
    /// A frame announced longer than the deframer's bound.
    case frameTooLong(length: Int, maximum: Int)
    /// More complete frames at once than one read may hand out.
    case tooManyFrames(maximum: Int)
    /// Read again after an error: the stream has lost its framing and must be closed.
    case broken

    public var description: String {
        switch self {
        case let .frameTooLong(length, maximum): "a frame of \(length) bytes (at most \(maximum) accepted)"
        case let .tooManyFrames(maximum): "more than \(maximum) frames in one read"
        case .broken: "the stream's framing was already lost"
        }
    }
}

/// Cuts an RFC 4571 stream back into datagrams, whatever pieces the reads deliver: a length split
/// between two reads, many frames in one read, a frame spread over many. Holds at most one partial
/// frame (at most `maximumFrameLength` + 2 bytes), so a peer cannot make it buffer more. A frame
/// announced longer than the bound is an error, after which the deframer refuses everything: the
/// stream's boundaries are lost and its owner closes the connection.
public struct LengthPrefixedDeframer: Sendable {
    public let maximumFrameLength: Int
    /// Complete frames one `append` may return (a bound on what one read can make the owner do).
    public let maximumFramesPerRead: Int
    /// The bytes of the frame not yet complete (its length prefix included).
    private var partial: [UInt8] = []
    public private(set) var isBroken = false
    /// Zero-length frames passed over (RFC 4571 allows them; they carry nothing).
    public private(set) var emptyFrames = 0

    /// `maximumFrameLength` defaults to 16 KiB: more than any STUN, DTLS record or RTP packet rtcam
    /// and browsers send (they keep them under the path MTU), far less than the 64 KiB the format allows.
    public init(maximumFrameLength: Int = 16_384, maximumFramesPerRead: Int = 1024) {
        self.maximumFrameLength = min(maximumFrameLength, LengthPrefixedFraming.largestFrame)
        self.maximumFramesPerRead = maximumFramesPerRead
    }

    /// Bytes held for the frame not yet complete (never more than `maximumFrameLength` + 2).
    public var bufferedByteCount: Int { partial.count }

    /// The frames `bytes` completes, in order.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(LengthPrefixedFramingError) -> [[UInt8]] {
        guard !isBroken else { throw .broken }
        var frames: [[UInt8]] = []
        var input = bytes[...]
        while !input.isEmpty {
            // The length first (it may arrive one byte at a time).
            if partial.count < 2 {
                let take = min(2 - partial.count, input.count)
                partial.append(contentsOf: input.prefix(take))
                input = input.dropFirst(take)
                guard partial.count == 2 else { break }
                let length = Int(partial[0]) << 8 | Int(partial[1])
                guard length <= maximumFrameLength else {
                    isBroken = true
                    partial = []
                    throw .frameTooLong(length: length, maximum: maximumFrameLength)
                }
            }
            let length = Int(partial[0]) << 8 | Int(partial[1])
            let missing = length - (partial.count - 2)
            let take = min(missing, input.count)
            partial.append(contentsOf: input.prefix(take))
            input = input.dropFirst(take)
            guard take == missing else { break }
            if length == 0 { emptyFrames += 1 } else {
                guard frames.count < maximumFramesPerRead else {
                    isBroken = true
                    partial = []
                    throw .tooManyFrames(maximum: maximumFramesPerRead)
                }
                frames.append(Array(partial[2...]))
            }
            partial.removeAll(keepingCapacity: true)
        }
        return frames
    }
}
