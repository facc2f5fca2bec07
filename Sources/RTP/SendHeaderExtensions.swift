/// The RTP header extensions rtcam writes into each viewer's copy of a packet (RFC 8285 one-byte
/// form): the transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01
/// §2), abs-send-time (the 6.18 fixed-point send time REMB estimators such as aiortc's use) and
/// playout-delay (min = max = 0: render at once, what live video wants) and abs-capture-time (the
/// capture instant in NTP time, so a receiver can tell how long ago a frame was taken; without the
/// optional clock offset, as the capturing sender). Each only where the
/// viewer's answer negotiated it, under the id it chose. The shared packets carry none: the block
/// is built per viewer and packet into a reused buffer and inserted after the fixed header.
public struct SendHeaderExtensions: Equatable, Sendable {
    public var transportSequenceNumberID: UInt8?
    public var absoluteSendTimeID: UInt8?
    public var playoutDelayID: UInt8?
    public var absoluteCaptureTimeID: UInt8?

    /// The most bytes a block takes: 4 (profile, length) + 3 + 4 + 4 + 9 elements, padded to 24.
    public static let maximumBlockSize = 24
    /// The block without abs-capture-time (what every packet may carry; the capture time goes only
    /// where the packet has room for it: `fitsAbsoluteCaptureTime`).
    public static let maximumBlockSizeWithoutCaptureTime = 16

    public init(transportSequenceNumberID: UInt8? = nil, absoluteSendTimeID: UInt8? = nil, playoutDelayID: UInt8? = nil,
                absoluteCaptureTimeID: UInt8? = nil) {
        self.transportSequenceNumberID = transportSequenceNumberID.flatMap(Self.validOneByteID)
        self.absoluteSendTimeID = absoluteSendTimeID.flatMap(Self.validOneByteID)
        self.playoutDelayID = playoutDelayID.flatMap(Self.validOneByteID)
        self.absoluteCaptureTimeID = absoluteCaptureTimeID.flatMap(Self.validOneByteID)
    }

    /// Whether a packet of `packetBytes` (RTP header and payload) still fits `wireLimit` with the
    /// largest block and an SRTP trailer of `trailerBytes`.
    public static func fitsAbsoluteCaptureTime(packetBytes: Int, trailerBytes: Int = 16, wireLimit: Int = 1200) -> Bool {
        packetBytes + maximumBlockSize + trailerBytes <= wireLimit
    }

    /// RFC 8285 §4.2: ids 1...14 in the one-byte form (0 is padding, 15 reserved).
    private static func validOneByteID(_ id: UInt8) -> UInt8? { (1...14).contains(id) ? id : nil }

    public var isEmpty: Bool {
        transportSequenceNumberID == nil && absoluteSendTimeID == nil && playoutDelayID == nil && absoluteCaptureTimeID == nil
    }

    /// Replaces `block` with the extension block (0xBEDE header, elements, zero padding to 32 bits)
    /// for one packet; empty when nothing applies. `sendTime`: nanoseconds on any clock (only its
    /// fraction of 64 s goes on the wire, §abs-send-time). `playoutDelay`: whether this packet
    /// carries playout-delay (video only). `absoluteCaptureTime`: the NTP time (UQ32.32) the
    /// packet's media was captured, on the packets chosen to carry it.
    public func write(into block: inout [UInt8], transportSequenceNumber: UInt16?, sendTimeNanoseconds: UInt64?,
                      playoutDelay: Bool, absoluteCaptureTime: UInt64? = nil) {
        block.removeAll(keepingCapacity: true)
        guard !isEmpty else { return }
        block.append(contentsOf: [0xBE, 0xDE, 0, 0])
        if let id = transportSequenceNumberID, let sequence = transportSequenceNumber {
            block.append(id << 4 | 1)                       // L = length − 1
            block.append(UInt8(truncatingIfNeeded: sequence >> 8))
            block.append(UInt8(truncatingIfNeeded: sequence))
        }
        if let id = absoluteSendTimeID, let nanoseconds = sendTimeNanoseconds {
            // 24 bits: 6 of seconds, 18 of fraction (seconds × 2^18, mod 2^24).
            let withinWrap = nanoseconds % 64_000_000_000          // < 2^36: shifted, it stays < 2^54
            let value = UInt32(truncatingIfNeeded: (withinWrap << 18) / 1_000_000_000) & 0xFF_FFFF
            block.append(id << 4 | 2)
            block.append(UInt8(truncatingIfNeeded: value >> 16))
            block.append(UInt8(truncatingIfNeeded: value >> 8))
            block.append(UInt8(truncatingIfNeeded: value))
        }
        if let id = playoutDelayID, playoutDelay {
            block.append(id << 4 | 2)                       // 12 bits min, 12 bits max, 10 ms units: 0, 0
            block.append(contentsOf: [0, 0, 0])
        }
        if let id = absoluteCaptureTimeID, let captureTime = absoluteCaptureTime {
            block.append(id << 4 | 7)                       // 8 bytes: the capture time, big-endian
            for shift in stride(from: 56, through: 0, by: -8) { block.append(UInt8(truncatingIfNeeded: captureTime >> UInt64(shift))) }
        }
        if block.count == 4 { block.removeAll(keepingCapacity: true); return }
        while block.count % 4 != 0 { block.append(0) }
        let words = (block.count - 4) / 4
        block[2] = UInt8(truncatingIfNeeded: words >> 8)
        block[3] = UInt8(truncatingIfNeeded: words)
    }
}
